"""Every trigger survives the trip through the triggerer's table: serialized, rebuilt, the same."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk.module_loading import import_string

from bundle_promotion.triggers.base import PromotionTrigger
from bundle_promotion.triggers.gate import GateTrigger
from bundle_promotion.triggers.lock import DeployLockTrigger
from bundle_promotion.triggers.pipeline import PipelineUpdateTrigger
from bundle_promotion.triggers.quiet import QuietTrigger

DEADLINE = datetime(2026, 1, 1, tzinfo=UTC)
TRIGGERS: list[PromotionTrigger] = [
    DeployLockTrigger(databricks_conn_id="c", lock_path="/state/deploy.lock", deadline=DEADLINE),
    QuietTrigger(databricks_conn_id="c", job_ids=["1"], pipeline_ids=["p"], deadline=DEADLINE),
    PipelineUpdateTrigger(databricks_conn_id="c", pipeline_id="p", update_id="u"),
    GateTrigger(check={"bundle": "example"}, polling_period_seconds=5.0, github_repo="acme/sales"),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda trigger: type(trigger).__name__)
def test_a_trigger_rebuilt_from_what_it_serialized_serializes_the_same(trigger: PromotionTrigger) -> None:
    classpath, kwargs = trigger.serialize()

    rebuilt: Any = import_string(classpath)(**kwargs)

    assert rebuilt.serialize() == (classpath, kwargs)
    assert set(kwargs) == set(inspect.signature(type(trigger).__init__).parameters) - {"self"}
