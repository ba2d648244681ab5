"""The drift DAG's heal task: the spec's mode, or the one a person asked for in the run's params."""

from __future__ import annotations

from typing import Any

import pytest

from bundle_promotion.operators.drift import DriftHealOperator


def heal_task(mode: Any) -> DriftHealOperator:
    return DriftHealOperator(
        task_id="heal",
        mode=mode,
        bundle="example",
        repo="/srv/example",
        environment="prod",
        target="prod",
        databricks_conn_id="databricks_prod",
        policy="unpaused",
    )


@pytest.mark.parametrize(
    ("spec_mode", "params", "mode"),
    [
        (None, {}, None),
        ("schedules_only", {}, "schedules_only"),
        (None, {"heal_environment": "prod", "heal_mode": "schedules_only"}, "schedules_only"),
        ("schedules_only", {"heal_environment": "prod", "heal_mode": None}, "schedules_only"),
        (None, {"heal_environment": "prod", "heal_mode": None}, "redeploy"),
        (None, {"heal_environment": "staging", "heal_mode": "redeploy"}, None),
    ],
)
def test_the_heal_follows_the_spec_unless_the_run_asks_for_this_environment(
    spec_mode: Any, params: dict[str, Any], mode: Any
) -> None:
    assert heal_task(spec_mode)._mode(params) == mode
