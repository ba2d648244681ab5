"""Hold a release before an environment until all of the environment's gates pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue

from bundle_promotion import settings
from bundle_promotion.errors import GateFailed
from bundle_promotion.operators.base import FromBundleSource, PromotionOperator

if TYPE_CHECKING:
    from bundle_promotion.gates.check import GateCheck
    from bundle_promotion.operators.notifications import GateWaitingNotifier

DEFAULT_TIMEOUT = timedelta(days=7)
GATES_XCOM_KEY = "gates"


class GateSensor(FromBundleSource, PromotionOperator, BaseSensorOperator):
    """Evaluate the environment's gates; pass when all pass, fail at once when one fails.

    Deferrable, while a gate waits the task defers to ``GateTrigger``, which re-evaluates in the
    triggerer every ``polling_period_seconds`` seconds (sooner when a gate asks, e.g. a window about
    to open), so waiting holds no worker slot; otherwise it pokes, as any Airflow sensor. Each
    evaluation that says something new goes to the ledger, where the approvals API reads what
    waits; the log gets, each time the reasons change, the release digest, every gate's need, who
    may approve and the board's URL (``triggers.gate.waiting_message``); the ``gates`` XCom gets
    the reasons at deferral and at the end, e.g. "waiting: 1 of 2 QC approvals (have: alice)".
    ``polling_period_seconds`` defaults to ``[bundle_promotion] gate_polling_period_seconds`` (60 s).

    :param environment: the environment the gates guard
    :param previous_environment: the environment before it in the spec, for the ``previous_environment`` gate
    :param gates: the spec's gate entries for the environment
    :param approvals_from_reviews: count pull-request reviews of the release commit as approvals
    :param github_repo: ``owner/name`` for the GitHub gates; None when the spec has none
    :param github_conn_id: the Airflow connection to GitHub
    :param release_task_id: the task id whose XCom is the ledger's release id
    :param polling_period_seconds: seconds between evaluations while a gate waits; by default
        ``[bundle_promotion] gate_polling_period_seconds``
    :param timeout: how long the gates may wait before the task fails
    :param deferrable: wait in the triggerer; by default ``[operators] default_deferrable``
    :param on_waiting: tells the people who may approve, once per run, that the gates wait
    """

    ui_color = "#fbe9e7"

    def __init__(
        self,
        *,
        environment: str,
        previous_environment: str | None,
        gates: Sequence[Mapping[str, Any]],
        approvals_from_reviews: bool = False,
        github_repo: str | None = None,
        github_conn_id: str | None = None,
        release_task_id: str = "release",
        polling_period_seconds: float | None = None,
        timeout: timedelta = DEFAULT_TIMEOUT,
        deferrable: bool | None = None,
        on_waiting: GateWaitingNotifier | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self.on_waiting = on_waiting
        self.environment = environment
        self.previous_environment = previous_environment
        self.gates = [dict(gate) for gate in gates]
        self.approvals_from_reviews = approvals_from_reviews
        self.github_repo = github_repo
        self.github_conn_id = github_conn_id
        self.release_task_id = release_task_id
        self.polling_period_seconds = polling_period_seconds
        self.deferrable = settings.default_deferrable() if deferrable is None else deferrable
        self._logged_summary: str | None = None  # what the log last said while waiting

    def execute(self, context: Context) -> dict[str, Any]:
        if not self.deferrable:
            self.poke_interval = self._polling_period_seconds()
            return super().execute(context)
        from bundle_promotion.triggers.gate import GateTrigger

        check = self._check(context)
        payload = self._evaluate(context, check)
        if payload["status"] == "waiting":
            self.defer(
                trigger=GateTrigger(
                    check=check.to_json(),
                    polling_period_seconds=self._polling_period_seconds(),
                    github_repo=self.github_repo,
                    github_conn_id=self.github_conn_id,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        return self.execute_complete(context, payload)

    def poke(self, context: Context) -> PokeReturnValue:
        payload = self._evaluate(context, self._check(context))
        if payload["status"] == "waiting":
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self.execute_complete(context, payload))

    def _evaluate(self, context: Context, check: GateCheck) -> dict[str, Any]:
        """One evaluation of every gate, recorded in the ledger; what waits goes to XCom, and to the
        log when it changed since the last poke."""
        from bundle_promotion.triggers.gate import evaluate_gates, event_payload, waiting_message

        evaluation = evaluate_gates(check.to_json(), self.github_repo, self.github_conn_id)
        payload = event_payload(evaluation)
        if payload["status"] == "waiting":
            if payload["summary"] != self._logged_summary:
                self.log.info("%s", waiting_message(evaluation, check.to_json()))
                self._logged_summary = payload["summary"]
            context["ti"].xcom_push(key=GATES_XCOM_KEY, value=payload)
            self._announce_waiting(context, payload)
        return payload

    def _announce_waiting(self, context: Context, payload: dict[str, Any]) -> None:
        """Tell who may approve that the gates wait; the notifier sends it once per run."""
        if self.on_waiting is not None:
            self.on_waiting.waiting(context, payload["summary"])

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        context["ti"].xcom_push(key=GATES_XCOM_KEY, value=event)
        if event["status"] == "failed":
            raise GateFailed(f"{self.environment}: {event['summary']}")
        self.log.info("Gates of %s: %s", self.environment, event["summary"])
        return event

    def _check(self, context: Context) -> GateCheck:
        """The run's facts, gathered once: who triggered it and who wrote the release's commits."""
        from bundle_promotion.gates.check import GateCheck, commit_authors

        release_id = int(context["ti"].xcom_pull(task_ids=self.release_task_id))
        ledger = settings.ledger()
        release = ledger.release(release_id)
        current = ledger.current_release(self.bundle, self.environment)
        since = current[0].commit if current else None
        return GateCheck(
            bundle=self.bundle,
            environment=self.environment,
            previous_environment=self.previous_environment,
            release_id=release_id,
            repo=self.repo,
            bundle_path=self.bundle_path,
            run_id=context["run_id"],
            triggered_by=context["dag_run"].triggering_user_name,
            commit_authors=commit_authors(self.repo, release.commit, since, settings.checkouts()),
            gates=tuple(self.gates),
            approvals_from_reviews=self.approvals_from_reviews,
        )

    def _polling_period_seconds(self) -> float:
        if self.polling_period_seconds is not None:
            return self.polling_period_seconds
        return settings.gate_polling_period_seconds()
