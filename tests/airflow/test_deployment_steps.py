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


class ReleaseTaskInstance:
    """The deploy task's view of its run: the release task's XCom, the ledger's release id."""

    def __init__(self, release_id: int) -> None:
        self.release_id = release_id

    def xcom_pull(self, task_ids: str) -> int:
        assert task_ids == "release"
        return self.release_id


def test_a_deploy_refused_by_a_hold_tells_github_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cleared deploy task in a held environment is refused before any GitHub deployment is made."""
    from bundle_promotion.operators.deploy import BundleDeployOperator
    from bundle_promotion.operators.deployment_mirror import GitHubDeploymentMirror

    told: list[str] = []
    monkeypatch.setattr(GitHubDeploymentMirror, "started", lambda self, context: told.append("started"))
    monkeypatch.setattr(GitHubDeploymentMirror, "failed", lambda self, context, detail: told.append(detail))
    ledger = settings.ledger()
    release = Release("deploy_held", "v1.2.0", "a" * 40, (Artifact("w", "dist/w", "b" * 64),), "c" * 64)
    release_id = ledger.record_release(release)
    ledger.hold_environment("deploy_held", "dev", reason="rolled back", actor="bundle-promotion", run_id="r")
    task = BundleDeployOperator(
        task_id="deploy",
        bundle="deploy_held",
        repo="https://github.com/acme/deploy_held.git",
        environment="dev",
        target="dev",
        databricks_conn_id="databricks_dev",
        github_repo="acme/deploy_held",
    )

    with pytest.raises(AirflowFailException, match="hold clear deploy_held dev") as refused:
        task.execute({"task": task, "ti": ReleaseTaskInstance(release_id), "run_id": "r2"})

    assert isinstance(refused.value.__cause__, EnvironmentHeld)
    assert told == []
