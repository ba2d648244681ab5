"""The hold a rollback puts on an environment, as every step that changes the environment sees it.

Each core step that changes an environment (deploy, verify, tests, schedules, record, every
rollback step) calls ``refuse_if_held`` or ``require_current`` before it acts, so clearing a
task downstream of ``prepare_rollback`` cannot slip past the hold.
"""

from __future__ import annotations

from bundle_promotion.errors import EnvironmentHeld
from bundle_promotion.ledger import DeploymentRecord, Ledger
from bundle_promotion.spec.dag_ids import promotion_dag_id


def refuse_if_held(ledger: Ledger, bundle: str, environment: str, *, rollback_run: str | None = None) -> None:
    """``EnvironmentHeld`` with how to clear it, unless the environment is free.

    ``rollback_run`` is the run whose rollback steps ask: the hold that run's own rollback set
    lets them through, so a cleared rollback step can still finish the rollback that held it.
    """
    held = ledger.environment_hold(bundle, environment)
    if held is None or (rollback_run is not None and held.run_id == rollback_run):
        return
    clear_url = f"/bundle-promotion/dags/{promotion_dag_id(bundle)}/environments/{environment}/hold/clear"
    raise EnvironmentHeld(
        f"{bundle}/{environment} is held since {held.held_at:%Y-%m-%d %H:%M} UTC by {held.held_by}: "
        f"{held.reason}. Clear it with `bundle-promotion hold clear {bundle} {environment} "
        f"--reason '...'` or `POST {clear_url}` once the cause is understood, then trigger a new run"
    )


def require_current(ledger: Ledger, deployment_id: int) -> DeploymentRecord:
    """The deployment a step after the deploy acts on: its environment is not held and still runs it."""
    deployment = ledger.deployment(deployment_id)
    refuse_if_held(ledger, deployment.bundle, deployment.environment)
    return ledger.require_current(deployment_id)
