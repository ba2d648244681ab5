"""The Airflow plugin of bundle-promotion.

Operator links need no registration on Airflow 3 (they travel as XCom). The plugin mounts
the approvals API (``api.py``) in Airflow's API server, under Airflow's auth.
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
        from bundle_promotion.web import api

        return [{"app": api.app, "url_prefix": api.URL_PREFIX, "name": "bundle-promotion approvals"}]


class BundlePromotionPlugin(AirflowPlugin):
    name = "bundle_promotion"
    fastapi_apps = _ApiApps()
