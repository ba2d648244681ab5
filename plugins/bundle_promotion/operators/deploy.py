"""Deploy a recorded release to one environment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import Context

from bundle_promotion import settings
from bundle_promotion.operators import deployment_mirror
from bundle_promotion.operators.base import FromBundleSource, OnWorkspace, PromotionOperator, actor_of
from bundle_promotion.operators.bundle import EngineName, make_engine, resource_links

if TYPE_CHECKING:
    from bundle_promotion.lifecycle.promotion import EnvironmentDeployment

# The engine's message is the Databricks CLI's (--force-lock); this is how a task does the same.
AIRFLOW_LOCK_FIX = (
    "From Airflow: if that deployment is dead, break its lock on purpose with force_lock=True on "
    "this task (or `bundle-promotion bundle deploy --force-lock`); the audit trail records who broke it"
)


class BundleDeployOperator(FromBundleSource, OnWorkspace, PromotionOperator):
    """Deploy the release built by ``release_task_id`` to ``target`` through ``databricks_conn_id``.

    The deploy converges: a retry, a clear or a second promotion of the same release creates no
    new jobs and, when nothing changed, writes nothing. Returns the deployed jobs by bundle key.

    ``engine`` is the spec's: ``native`` (REST) or ``cli`` (the Databricks CLI on the worker).
    ``resources`` (``jobs.etl``, ``pipelines.sales``) get one operator extra link each, to what this
    task deployed, beside the target's folder.

    The task owns the target's deploy lock: a retry, on any worker, resumes the lock a killed try
    left. A lock held by another deployment is waited for in the triggerer, holding no worker slot,
    for up to ``lock_timeout``; ``force_lock`` breaks it instead, which the audit trail records.

    :param environment: the environment of the promotion spec
    :param target: the bundle target to deploy (templated)
    :param release_task_id: the task id whose XCom is the ledger's release id
    :param github_repo: ``owner/name`` to mirror the deploy to as a GitHub deployment; None for none
    :param github_conn_id: the Airflow connection to GitHub (templated)
    :param engine: ``native`` (REST) or ``cli`` (the Databricks CLI on the worker)
    :param resources: the links to render, one per deployed resource: ``jobs.<key>`` or ``pipelines.<key>``
    :param force_lock: break a deploy lock another deployment holds; the audit trail records it
    :param lock_timeout: how long to wait, deferred, for another deployment's lock
    :param polling_period_seconds: seconds between looks at the lock while waiting
    """

    template_fields: Sequence[str] = ("target", "databricks_conn_id", "repo", "bundle_path", "github_conn_id")
    ui_color = "#fde8d7"

    def __init__(
        self,
        *,
        environment: str,
        target: str,
        release_task_id: str = "release",
        github_repo: str | None = None,
        github_conn_id: str = "github_default",
        engine: EngineName = "native",
        resources: Sequence[str] = (),
        force_lock: bool = False,
        lock_timeout: timedelta = timedelta(hours=1),
        polling_period_seconds: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.force_lock = force_lock
        self.lock_timeout = lock_timeout
        self.polling_period_seconds = polling_period_seconds
        self.operator_extra_links = resource_links(resources)
        self.resource_urls: dict[str, str] = {}
        self.environment = environment
        self.target = target
        self.release_task_id = release_task_id
        self.github_repo = github_repo
        self.github_conn_id = github_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from bundle_promotion.bundle.deploy.lock import LockOwner
        from bundle_promotion.errors import LockHeld
        from bundle_promotion.lifecycle.holds import refuse_if_held
        from bundle_promotion.lifecycle.promotion import deploy_release

        release_id = int(context["ti"].xcom_pull(task_ids=self.release_task_id))
        ledger = settings.ledger()
        # Checked again as the deploy starts; here so that a refused deploy tells GitHub nothing.
        refuse_if_held(ledger, self.bundle, self.environment)
        mirror = deployment_mirror.mirror(self.github_repo, self.github_conn_id, self.environment, release_id)
        if mirror:
            mirror.started(context)
        hook = self.workspace()
        checkouts = settings.checkouts()
        try:
            deployment = deploy_release(
                self.source(),
                release_id,
                environment=self.environment,
                target=self.target,
                run_id=context["run_id"],
                api=hook,
                ledger=ledger,
                store=settings.artifact_store(),
                checkouts=checkouts,
                engine=make_engine(self.engine, hook, state_cache=checkouts / ".states"),
                owner=LockOwner(context["run_id"], self.task_id, self.environment),
                force_lock=self.force_lock,
                actor=actor_of(context),
            )
        except LockHeld as held:
            if held.path is None:  # the CLI engine does not say where its lock is: nothing to wait on
                raise LockHeld(f"{held}. {AIRFLOW_LOCK_FIX}", held.holder) from held
            self._wait_for(held.path)
        except Exception as error:
            if mirror:
                mirror.failed(context, f"deploy failed: {error}")
            raise
        self.resource_urls = deployment_urls(hook.workspace_host_url(), deployment)
        for job in deployment.jobs.values():
            url = self.resource_urls[f"jobs.{job.key}"]
            self.log.info("Job %s is %r (job_id %s): %s", job.key, job.name, job.id, url)
        return {**deployment.to_xcom(), **(mirror.to_xcom() if mirror else {})}

    def _wait_for(self, lock_path: str) -> NoReturn:
        from bundle_promotion.triggers.lock import DeployLockTrigger

        self.log.info("Another deployment holds %s; waiting up to %s for it", lock_path, self.lock_timeout)
        trigger = DeployLockTrigger(
            databricks_conn_id=self.databricks_conn_id,
            lock_path=lock_path,
            deadline=datetime.now(UTC) + self.lock_timeout,
            polling_period_seconds=self.polling_period_seconds,
        )
        self.defer(trigger=trigger, method_name="resume_after_lock")

    def resume_after_lock(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Deploy once the lock is free; else fail, without retry, naming the holder and how to break it."""
        from airflow.sdk.exceptions import AirflowFailException

        from bundle_promotion.bundle.deploy.lock import held_message
        from bundle_promotion.errors import LockHeld

        if event["status"] == "free":
            return self.execute(context)
        settings.ledger().end_lock_wait(self.bundle, self.environment, run_id=context["run_id"])
        lock_path = event.get("lock_path", "deploy.lock")
        message = (
            f"{held_message(event['holder'], lock_path)}. Still held after {self.lock_timeout}. "
            f"{AIRFLOW_LOCK_FIX}"
        )
        # Final: a retry would only wait as long again, holding off the rollback.
        raise AirflowFailException(message) from LockHeld(message, event["holder"], lock_path)


def deployment_urls(host: str, deployment: EnvironmentDeployment) -> dict[str, str]:
    """The pages of what a deploy left, by link name: the target's folder, each job and pipeline."""
    from bundle_promotion.bundle.resources import jobs, pipelines

    return {
        "folder": f"{host}/#workspace{deployment.root_path}",
        **{f"jobs.{key}": jobs.url(host, job.id) for key, job in deployment.jobs.items()},
        **{f"pipelines.{key}": pipelines.url(host, id_) for key, id_ in deployment.pipelines.items()},
    }
