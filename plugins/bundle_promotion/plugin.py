"""The Airflow plugin of bundle-promotion.

Operator links need no registration on Airflow 3 (they travel as XCom). The plugin mounts
its app (``web/app.py``: the approvals API, the board's API and page) in Airflow's API
server, under Airflow's auth, puts the release board in Airflow's navigation and on each DAG's
page, and names the release on each promotion run as the run's note, so the runs list and the
grid show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.listeners import hookimpl
from airflow.sdk.plugins_manager import AirflowPlugin

from bundle_promotion.settings import BOARD_PATH
from bundle_promotion.spec.dag_ids import promoted_bundle


class _ApiApps:
    """The plugin's FastAPI apps, imported only when read.

    Every Airflow process loads plugins, task processes included, but only the API server
    reads ``fastapi_apps``; importing the app (and Airflow's API security with it) costs
    about 1.5 s, which no task should pay.
    """

    def __get__(self, plugin: object, owner: type | None = None) -> list[dict[str, Any]]:
        from bundle_promotion.web import app

        return [{"app": app.app, "url_prefix": app.URL_PREFIX, "name": "bundle-promotion"}]


def release_note(dag_id: str, conf: Mapping[str, Any] | None) -> str | None:
    """The note of a promotion run: the version it promotes; None for any other run."""
    bundle = promoted_bundle(dag_id)
    version = (conf or {}).get("version")
    return f"Release {version} of {bundle}" if bundle and version else None


class RunNotes:
    """A listener, called by the scheduler as it starts a run (Airflow's own notes live in its
    database; this is the one way to set one as the run starts). A note someone gave the run
    when triggering it is kept."""

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        if not dag_run.note and (note := release_note(dag_run.dag_id, dag_run.conf)):
            dag_run.note = note


class BundlePromotionPlugin(AirflowPlugin):
    name = "bundle_promotion"
    fastapi_apps = _ApiApps()
    listeners = [RunNotes()]  # noqa: RUF012  # typed by AirflowPlugin as a plain list
    external_views = [  # noqa: RUF012 (AirflowPlugin's attributes are plain class lists)
        {"name": "Releases", "href": BOARD_PATH, "destination": "nav", "url_route": "releases"},
        # On a DAG's page: the board of that DAG's bundle, with its history.
        {
            "name": "Releases",
            "href": BOARD_PATH + "?dag={DAG_ID}",
            "destination": "dag",
            "url_route": "bundle-releases",
        },
    ]
