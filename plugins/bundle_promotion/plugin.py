"""The Airflow plugin of bundle-promotion.

Operator links need no registration on Airflow 3 (they travel as XCom), so for now the
plugin only makes the package known to Airflow; the approvals API and the board will
hang off it.
"""

from __future__ import annotations

from airflow.sdk.plugins_manager import AirflowPlugin


class BundlePromotionPlugin(AirflowPlugin):
    name = "bundle_promotion"
