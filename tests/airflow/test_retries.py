"""Transient failures retry with backoff; final errors, and waits past their deadline, fail at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bundle_promotion.errors import BundleConfigError, LockHeld, VerificationFailed, WorkspaceApiError
from bundle_promotion.operators.base import PromotionOperator
from tests.airflow.test_dag_factory import specs_folder  # noqa: F401  # a fixture

UNAVAILABLE = WorkspaceApiError("POST", "2.2/jobs/create", 503, "TEMPORARILY_UNAVAILABLE", "try again")
# What Airflow's scheduler sends back to a task whose deferral ran past its timeout.
DEFERRAL_TIMED_OUT = {"next_method": "__fail__", "next_kwargs": {"error": "Trigger timeout"}}


class Raising(PromotionOperator):
    """Raises ``error`` from execute, or from execute_complete after a deferral."""

    def __init__(self, *, error: Exception, defer_first: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.defer_first = defer_first
        self.timeouts: list[Any] = []

    def execute(self, context: Any) -> None:
        if self.defer_first:
            raise TaskDeferred(trigger=None, method_name="execute_complete")  # type: ignore[arg-type]
        raise self.error

    def execute_complete(self, context: Any, event: Any = None) -> None:
        raise self.error

    def on_deferral_timeout(self, context: Any) -> None:
        self.timeouts.append(context)


@pytest.mark.parametrize(
    "error",
    [
        BundleConfigError("databricks.yml", "resources.jobs.etl", "unknown field"),
        VerificationFailed("prod", ["jobs.etl: tags differ"]),
        WorkspaceApiError("POST", "2.2/jobs/create", 400, "INVALID_PARAMETER_VALUE", "bad name"),
    ],
)
def test_a_final_error_fails_the_task_without_retries_keeping_its_message(error: Exception) -> None:
    with pytest.raises(AirflowFailException) as raised:
        Raising(task_id="deploy", error=error).execute({})

    assert str(raised.value) == str(error)
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error", [UNAVAILABLE, LockHeld("deploy lock acquired by run r1"), ConnectionError()]
)
def test_a_transient_error_stays_itself_so_airflow_retries_it(error: Exception) -> None:
    with pytest.raises(type(error)):
        Raising(task_id="deploy", error=error).execute({})


def test_a_final_error_after_a_deferral_fails_the_task_without_retries() -> None:
    operator = Raising(
        task_id="tests", error=VerificationFailed("prod", ["jobs.etl: missing"]), defer_first=True
    )

    with pytest.raises(AirflowFailException, match="1 mismatch"):
        operator.resume_execution("execute_complete", {}, {})  # type: ignore[arg-type]


def test_a_deferral_past_its_timeout_stops_what_it_started_and_fails_without_retries() -> None:
    operator = Raising(task_id="tests", error=UNAVAILABLE, defer_first=True)

    with pytest.raises(AirflowFailException, match="waited past its timeout"):
        operator.resume_execution(**DEFERRAL_TIMED_OUT, context={})  # type: ignore[arg-type]
    assert operator.timeouts == [{}]


def test_every_task_of_a_promotion_retries_with_exponential_backoff(specs_folder: Path) -> None:  # noqa: F811
    from bundle_promotion.dags.factory import promotion_dags

    dags = promotion_dags(specs_folder)
    tasks = [*dags["promote__example"].tasks, *dags["rollback__example"].tasks]

    assert {(task.retries, task.retry_delay, task.retry_exponential_backoff) for task in tasks} == {
        (3, timedelta(seconds=30), 2.0)
    }


def test_the_manual_rollbacks_approval_is_a_decision_and_never_retries(specs_folder: Path) -> None:  # noqa: F811
    from bundle_promotion.dags.factory import promotion_dags

    spec_file = specs_folder / "example.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["environments"][-1]["rollback"] = {"require_approval": True}
    spec_file.write_text(yaml.safe_dump(spec))

    rollback = promotion_dags(specs_folder)["rollback__example"]

    assert rollback.get_task("prod.approval").retries == 0
    assert rollback.get_task("prod.redeploy").retries == 3
