"""The tasks after a deploy reach their deployment only through a check, and a refusal changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bundle_promotion import settings
from bundle_promotion.errors import EnvironmentHeld, TestRunFailed
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Artifact, Release
from bundle_promotion.operators.record import RecordDeploymentOperator, mark_deployment_failed


class DeployedTaskInstance:
    """What these tasks read from their task instance: the deploy task's XCom."""

    def __init__(self, deployment_id: int) -> None:
        self.deployment_id = deployment_id

    def xcom_pull(self, task_ids: str) -> dict[str, Any]:
        assert task_ids == "dev.deploy"
        return {"deployment_id": self.deployment_id, "jobs": {}}


def applied(ledger: Ledger, bundle: str) -> int:
    release = Release(bundle, "v1.2.0", "a" * 40, (Artifact("w", "dist/w", "b" * 64),), "c" * 64)
    deployment_id = ledger.start_deployment(
        bundle=bundle, environment="dev", target="dev", release_id=ledger.record_release(release), run_id="r"
    )
    ledger.mark_applied(deployment_id)
    return deployment_id


def context(deployment_id: int, **extra: Any) -> Any:
    task = RecordDeploymentOperator(task_id="record", deploy_task_id="dev.deploy")
    return {"task": task, "ti": DeployedTaskInstance(deployment_id), "run_id": "r", **extra}


def test_record_refuses_a_held_environment_and_leaves_the_deployment_as_it_was() -> None:
    ledger = settings.ledger()
    deployment_id = applied(ledger, "steps_held")
    ledger.hold_environment("steps_held", "dev", reason="rolled back", actor="bundle-promotion", run_id="r")
    ctx = context(deployment_id)

    with pytest.raises(AirflowFailException, match="hold clear steps_held dev") as refused:
        ctx["task"].execute(ctx)

    assert isinstance(refused.value.__cause__, EnvironmentHeld)  # final: Airflow does not retry it
    assert ledger.deployment(deployment_id).state == "deployed"


def refusal_as_airflow_sees_it() -> Exception:
    """A refusal is final: the task fails with AirflowFailException, the refusal as its cause."""
    try:
        raise AirflowFailException("held") from EnvironmentHeld("held")
    except AirflowFailException as failed:
        return failed


@pytest.mark.parametrize(
    ("failure", "state"),
    [
        (EnvironmentHeld("held"), "deployed"),
        (refusal_as_airflow_sees_it(), "deployed"),
        (TestRunFailed("run ended FAILED"), "failed"),
    ],
    ids=["a refusal", "a refusal failing the task at once", "a failed test"],
)
def test_only_a_real_failure_marks_the_deployment_failed(failure: Exception, state: str) -> None:
    ledger = settings.ledger()
    deployment_id = applied(ledger, f"steps_{state}")

    mark_deployment_failed(context(deployment_id, exception=failure))

    assert ledger.deployment(deployment_id).state == state
