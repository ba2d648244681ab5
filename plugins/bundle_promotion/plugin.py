"""The Airflow plugin of bundle-promotion.

Operator links need no registration on Airflow 3 (they travel as XCom). The plugin mounts
its app (``web/app.py``: the approvals API, the board's API and page) in Airflow's API
server, under Airflow's auth, and puts the release board in Airflow's navigation and on
each DAG's page.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin


class _ApiApps:
    """The plugin's FastAPI apps, imported only when read.

    Every Airflow process loads plugins, task processes included, but only the API server
    reads ``fastapi_apps``; importing the app (and Airflow's API security with it) costs
    about 1.5 s, which no task should pay.
    """

    def __get__(self, plugin: object, owner: type | None = None) -> list[dict[str, Any]]:
        from bundle_promotion.web import app

        return [{"app": app.app, "url_prefix": app.URL_PREFIX, "name": "bundle-promotion"}]


# Spelled here rather than imported from web/, which the plugin must not import until read.
_BOARD_PAGE = "/bundle-promotion/ui/"


class BundlePromotionPlugin(AirflowPlugin):
    name = "bundle_promotion"
    fastapi_apps = _ApiApps()
    external_views = [  # noqa: RUF012 (AirflowPlugin's attributes are plain class lists)
        {"name": "Releases", "href": _BOARD_PAGE, "destination": "nav", "url_route": "releases"},
        # On a DAG's page: the board of that DAG's bundle, with its history.
        {
            "name": "Releases",
            "href": _BOARD_PAGE + "?dag={DAG_ID}",
            "destination": "dag",
            "url_route": "bundle-releases",
        },
    ]
