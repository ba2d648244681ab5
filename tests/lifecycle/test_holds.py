"""A held environment refuses every step that would change it, except the rollback that held it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion.errors import EnvironmentHeld, StaleDeployment
from bundle_promotion.ledger import Ledger
from bundle_promotion.lifecycle.holds import refuse_if_held, require_current
from bundle_promotion.lifecycle.promotion import BundleSource, deploy_release
from bundle_promotion.lifecycle.rollback import hold, plan_rollback, refuse_if_moved_on
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.testing.workspace import WorkspaceEmulator
from tests.lifecycle.test_rollback import BUNDLE, release

FAILED_RUN = "manual__v1.2.0"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    return ledger


def applied(ledger: Ledger, version: str, run_id: str) -> int:
    deployment_id = ledger.start_deployment(
        bundle=BUNDLE,
        environment="dev",
        target="dev",
        release_id=ledger.record_release(release(version)),
        run_id=run_id,
    )
    ledger.mark_applied(deployment_id)
    return deployment_id


@pytest.fixture
def rolled_back(ledger: Ledger) -> int:
    """v1.1.0 good; v1.2.0 failed its test; the rollback of that run redeployed v1.1.0 and held dev.
    Returns v1.2.0's deployment."""
    ledger.finish_deployment(applied(ledger, "v1.1.0", "manual__v1.1.0"), "succeeded")
    failed = applied(ledger, "v1.2.0", FAILED_RUN)
    ledger.finish_deployment(failed, "failed", detail="tests failed")
    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev", run_id=FAILED_RUN)
    ledger.finish_rollback(applied(ledger, "v1.1.0", FAILED_RUN), detail="rollback redeploy")
    hold(ledger, plan, run_id=FAILED_RUN)
    return failed


def test_a_held_environment_says_how_to_clear_the_hold(ledger: Ledger, rolled_back: int) -> None:
    with pytest.raises(EnvironmentHeld) as held:
        refuse_if_held(ledger, BUNDLE, "dev")

    message = str(held.value)
    assert f"rolled back in run {FAILED_RUN}: redeploy v1.1.0 to dev" in message
    assert f"bundle-promotion hold clear {BUNDLE} dev --reason" in message
    assert f"POST /bundle-promotion/dags/promote__{BUNDLE}/environments/dev/hold/clear" in message


def test_the_rollback_that_held_the_environment_can_still_finish(ledger: Ledger, rolled_back: int) -> None:
    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev", run_id=FAILED_RUN)

    assert plan.target_version == "v1.1.0"


def test_a_rollback_of_another_run_is_refused(ledger: Ledger, rolled_back: int) -> None:
    with pytest.raises(EnvironmentHeld, match=re.escape(f"{BUNDLE}/dev is held")):
        plan_rollback(ledger, bundle=BUNDLE, environment="dev", run_id="manual__rollback")


def test_a_step_after_the_deploy_refuses_a_held_environment_even_in_the_run_that_holds_it(
    ledger: Ledger, rolled_back: int
) -> None:
    with pytest.raises(EnvironmentHeld):
        require_current(ledger, rolled_back)


def test_once_the_hold_is_cleared_a_superseded_deployment_is_still_refused(
    ledger: Ledger, rolled_back: int
) -> None:
    ledger.clear_hold(BUNDLE, "dev", reason="understood", actor="alice")

    with pytest.raises(StaleDeployment, match=re.escape(f"{BUNDLE}/dev runs v1.1.0 now")):
        require_current(ledger, rolled_back)


def test_a_step_after_the_deploy_acts_on_the_deployment_the_environment_runs(ledger: Ledger) -> None:
    deployment_id = applied(ledger, "v1.2.0", "manual__v1.2.0")

    assert require_current(ledger, deployment_id).version == "v1.2.0"


def test_a_deploy_into_a_held_environment_touches_neither_workspace_nor_ledger(
    ledger: Ledger, rolled_back: int, workspaces: WorkspaceEmulator, tmp_path: Path
) -> None:
    from bundle_promotion.hooks.workspace import WorkspaceHook

    release_id = ledger.record_release(release("v1.3.0"))
    deployments = ledger.deployments(BUNDLE)
    requests_before = len(workspaces.requests("dev"))
    deploy: dict[str, Any] = {
        "environment": "dev",
        "target": "dev",
        "api": WorkspaceHook(databricks_conn_id="databricks_dev"),
        "ledger": ledger,
        "store": ArtifactStore(tmp_path / "store"),
        "checkouts": tmp_path / "checkouts",
    }

    with pytest.raises(EnvironmentHeld):
        deploy_release(
            BundleSource(BUNDLE, str(tmp_path / "repo")), release_id, run_id="manual__v1.3.0", **deploy
        )
    with pytest.raises(EnvironmentHeld):  # the run that holds it, outside its rollback
        deploy_release(BundleSource(BUNDLE, str(tmp_path / "repo")), release_id, run_id=FAILED_RUN, **deploy)

    assert ledger.deployments(BUNDLE) == deployments
    assert len(workspaces.requests("dev")) == requests_before


def test_a_run_holds_once_so_a_cleared_hold_is_not_set_again_by_its_rollback(
    ledger: Ledger, rolled_back: int
) -> None:
    ledger.clear_hold(BUNDLE, "dev", reason="understood", actor="alice")
    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev", run_id=FAILED_RUN)

    assert hold(ledger, plan, run_id=FAILED_RUN) is None
    assert ledger.environment_hold(BUNDLE, "dev") is None
    assert hold(ledger, plan, run_id="manual__rollback") is not None


def test_a_runs_rollback_has_nothing_to_undo_once_another_run_deployed_since(
    ledger: Ledger, rolled_back: int
) -> None:
    refuse_if_moved_on(ledger, BUNDLE, "dev", FAILED_RUN)
    ledger.clear_hold(BUNDLE, "dev", reason="fixed in v1.3.0", actor="alice")
    applied(ledger, "v1.3.0", "manual__v1.3.0")

    with pytest.raises(
        StaleDeployment, match=r"runs v1\.3\.0 from run manual__v1\.3\.0 since .*nothing left"
    ):
        refuse_if_moved_on(ledger, BUNDLE, "dev", FAILED_RUN)
