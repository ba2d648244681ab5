"""Drift in Airflow: check an environment against the release it runs, and heal it when the spec says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import Context

from bundle_promotion import settings
from bundle_promotion.operators.base import FromBundleSource, OnWorkspace, PromotionOperator, actor_of
from bundle_promotion.spec.notifications import Event, Notifications

if TYPE_CHECKING:
    from bundle_promotion.ledger.records import DriftReport, HealMode
    from bundle_promotion.lifecycle.drift import EnvironmentPlace
    from bundle_promotion.lifecycle.schedules import SchedulePolicy

# Threads reading resources at once, and the HTTP connections kept open for them.
MAX_WORKERS = 16
# The drift DAG's params through which a person asks for one environment to be healed.
HEAL_ENVIRONMENT_PARAM = "heal_environment"
HEAL_MODE_PARAM = "heal_mode"


class _DriftOperator(FromBundleSource, OnWorkspace, PromotionOperator):
    """One environment of a bundle, as the drift check sees it.

    :param environment: the environment of the promotion spec
    :param target: the bundle target deployed there (templated)
    :param policy: the environment's schedule policy, ``paused`` or ``unpaused``
    :param notifications: the spec's notifications: who hears of drift found and healed
    """

    template_fields: Sequence[str] = ("target", "databricks_conn_id")
    ui_color = "#e8eef6"

    def __init__(
        self,
        *,
        environment: str,
        target: str,
        policy: SchedulePolicy,
        notifications: Notifications | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.target = target
        self.policy = policy
        self.notifications = notifications or Notifications()

    def tell(self, context: Context, event: Event, report: DriftReport, why: str) -> None:
        """Send ``event`` about ``report``; once per run, whatever retries or clears follow."""
        from bundle_promotion.lifecycle.notifications import Notification
        from bundle_promotion.operators.notifications import SpecNotifier

        notification = Notification(
            event=event,
            bundle=self.bundle,
            environment=self.environment,
            version=report.version,
            digest=report.release_digest,
            why=why,
            key=context["run_id"],
        )
        SpecNotifier(self.notifications, context).send(notification)

    def place(self) -> EnvironmentPlace:
        from bundle_promotion.lifecycle.drift import EnvironmentPlace

        return EnvironmentPlace(self.environment, self.target, self.policy)


class DriftCheckOperator(_DriftOperator):
    """Compare the environment with the release the ledger says runs there, and record the report.

    Reads only. Drift is a finding, not a failure: the task succeeds and logs each changed field;
    the board and ``bundle-promotion drift check`` show the report. Returns its status, how many
    fields drifted, and whether that changed since the previous check.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        from bundle_promotion.lifecycle.drift import record_drift_check

        report, changed = record_drift_check(
            self.workspace(max_connections=MAX_WORKERS),
            settings.ledger(),
            self.source(),
            self.place(),
            store=settings.artifact_store(),
            checkouts=settings.checkouts(),
        )
        self.log.info("%s/%s runs %s: %s", self.bundle, self.environment, report.version, report.status)
        if changed:
            self.log.info("That differs from what the previous check found")
        for finding in report.findings:
            self.log.warning("Drift: %s", finding)
        if changed and report.findings:
            fields = "; ".join(map(str, report.findings))
            self.tell(
                context, Event.DRIFT_FOUND, report, f"{len(report.findings)} field(s) drifted: {fields}"
            )
        return {"status": report.status, "findings": len(report.findings), "changed": changed}


class DriftHealOperator(_DriftOperator):
    """Heal the drift the environment's last check found: ``redeploy`` or ``schedules_only``.

    It heals as the spec's ``drift.heal`` says (``mode``), or as a person asked from the board: a run
    whose params name this environment in ``heal_environment`` heals it with ``heal_mode``, acting
    for the user who triggered the run. Otherwise, or when there is no drift, the task is skipped.
    A held environment, or one a promotion is deploying, is not healed: the task is skipped with
    the reason, which the ledger records too.

    :param mode: the spec's ``drift.heal``: ``redeploy`` (the running release again, the same bytes),
        ``schedules_only``, or None to heal only on request
    """

    ui_color = "#f6e8ee"

    def __init__(self, *, mode: HealMode | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from bundle_promotion.lifecycle.drift import heal

        mode = self._mode(context["params"])
        if mode is None:
            raise AirflowSkipException(
                f"{self.environment} heals only on request (its spec: drift.heal false)"
            )
        ledger = settings.ledger()
        report = ledger.latest_drift_report(self.bundle, self.environment)
        if report is None or not report.findings:
            raise AirflowSkipException(f"{self.bundle}/{self.environment} has no drift to heal")
        healed = heal(
            report,
            mode,
            self.source(),
            self.place(),
            api=self.workspace(max_connections=MAX_WORKERS),
            ledger=ledger,
            store=settings.artifact_store(),
            checkouts=settings.checkouts(),
            actor=actor_of(context),
        )
        if healed.outcome == "refused":
            raise AirflowSkipException(f"not healed: {healed.reason}")
        self.log.info("Healed %d finding(s): %s", len(healed.findings), healed.reason)
        self.tell(context, Event.DRIFT_HEALED, report, f"{mode} by {healed.actor}: {healed.reason}")
        return {"outcome": healed.outcome, "findings": len(healed.findings)}

    def _mode(self, params: Mapping[str, Any]) -> HealMode | None:
        if params.get(HEAL_ENVIRONMENT_PARAM) == self.environment:
            return cast("HealMode", params.get(HEAL_MODE_PARAM) or self.mode or "redeploy")
        return self.mode
