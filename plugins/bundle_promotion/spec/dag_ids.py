"""The DAG ids a spec renders into, spelled here and nowhere else.

The core needs them too (a bundle name must leave room for the longest, and messages name
the DAG to act on), so they live with the spec rather than in the Airflow layer's settings.
"""

from __future__ import annotations

PROMOTION_PREFIX = "promote__"
SCHEDULES_PREFIX = "schedules__"
ROLLBACK_PREFIX = "rollback__"
DRIFT_PREFIX = "drift__"
LONGEST_PREFIX = max(len(PROMOTION_PREFIX), len(SCHEDULES_PREFIX), len(ROLLBACK_PREFIX), len(DRIFT_PREFIX))
PROMOTION_PATTERN = f"{PROMOTION_PREFIX}<bundle>"


def promotion_dag_id(bundle: str) -> str:
    return f"{PROMOTION_PREFIX}{bundle}"


def schedules_dag_id(bundle: str) -> str:
    return f"{SCHEDULES_PREFIX}{bundle}"


def rollback_dag_id(bundle: str) -> str:
    return f"{ROLLBACK_PREFIX}{bundle}"


def drift_dag_id(bundle: str) -> str:
    return f"{DRIFT_PREFIX}{bundle}"


def promoted_bundle(dag_id: str) -> str | None:
    """The bundle a promotion DAG promotes; None for any other DAG."""
    return dag_id.removeprefix(PROMOTION_PREFIX) if dag_id.startswith(PROMOTION_PREFIX) else None


def rendered_bundle(dag_id: str) -> str | None:
    """The bundle whose spec renders this DAG (promotion, schedules, rollback, drift); None for others."""
    for prefix in (PROMOTION_PREFIX, SCHEDULES_PREFIX, ROLLBACK_PREFIX, DRIFT_PREFIX):
        if dag_id.startswith(prefix):
            return dag_id.removeprefix(prefix)
    return None
