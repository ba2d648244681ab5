"""The release board in headless Chromium, driven by Playwright, against a real ``airflow api-server``.

Each user logs in through Airflow's ``/auth/token`` and carries the token in the ``_token``
cookie, as Airflow's UI does after its login page; the board reads and acts with that
cookie only. Promotions, and the rollback run the board triggers, run under ``dag.test()`` in
this process against the workspace emulator; a promotion waiting on approvals runs while the
browser acts from another thread. One PNG per state is written under the test's output folder
(printed at the end of each test).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bundle_promotion.web.client import login
from tests.e2e.test_gates_e2e import api_server, jobs_in, task_states, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "dag_test": "dag-test-pw", "vera": "vera-pw"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SEEN_SECONDS = 60  # how long the page may take to show a change (it polls every 2 s)
PROMOTION_SECONDS = 240


@dataclass(frozen=True)
class Airflow:
    url: str
    specs: Path
    screenshots: Path


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """``airflow api-server`` with the plugin, users alice, bob, dag_test (op) and vera (viewer)."""
    folder = tmp_path_factory.mktemp("board_browser")
    specs = folder / "promotions"
    specs.mkdir()
    shots = folder / "screenshots"
    shots.mkdir()
    users = "alice:op,bob:op,dag_test:op,vera:viewer"
    try:
        with api_server(
            folder, users, PASSWORDS, AIRFLOW__BUNDLE_PROMOTION__SIGNATURE_ATTEMPT_INTERVAL="0"
        ) as url:
            yield Airflow(url, specs, shots)
    finally:
        print(f"board screenshots in {shots}")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def board_page(browser: Any, airflow: Airflow, user: str, query: str = "") -> Any:
    """A page of the board as ``user``, logged in with Airflow's token in the UI's cookie."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    token = login(airflow.url, user, PASSWORDS[user])
    context.add_cookies([{"name": "_token", "value": token, "url": airflow.url}])
    page = context.new_page()
    page.goto(f"{airflow.url}/bundle-promotion/ui/{query}")
    page.get_by_text(f"Signed in to Airflow as {user}").wait_for()
    return page


def cell(page: Any, bundle: str, environment: str) -> Any:
    return page.locator(f'td.cell[data-bundle="{bundle}"][data-environment="{environment}"]')


def decide(page: Any, target: Any, button: str, reason: str, password: str | None = None) -> None:
    target.get_by_role("button", name=button, exact=True).click()
    dialog = page.locator("dialog#action")
    dialog.locator("textarea[name=reason]").fill(reason)
    if password is not None:
        dialog.locator("select[name=meaning]").select_option("approval")
        dialog.locator("input[name=password]").fill(password)
    dialog.get_by_role("button", name="Confirm").click()


def shot(page: Any, airflow: Airflow, name: str) -> None:
    page.screenshot(path=str(airflow.screenshots / f"{name}.png"), full_page=True)


def expect_text(locator: Any, text: str) -> None:
    from playwright.sync_api import expect

    expect(locator).to_contain_text(text, timeout=SEEN_SECONDS * 1000)


def write_spec(specs: Path, repo: Path, bundle: str, *, part11: bool = False, approvals: bool = True) -> None:
    """dev, then prod behind two of QC's approvals (a Part 11 signature when ``part11``).

    Without ``approvals`` prod waits only on dev, and alice may clear its holds.
    """
    qc = {"name": "QC", "min": 2, "users": ["alice", "bob", "dag_test"]}
    approval = {"groups": [qc], **({"signature": "part11"} if part11 else {})}
    gated = {"gates": ["previous_environment", {"approval": approval}]}
    ungated = {"gates": ["previous_environment"], "hold_clearers": {"users": ["alice"]}}
    spec = {
        "bundle": bundle,
        "source": {"repo": str(repo), "path": "."},
        "environments": [
            {"name": "dev", "target": "dev", "databricks_conn_id": "databricks_dev", "schedules": "paused"},
            {
                "name": "prod",
                "target": "prod",
                "databricks_conn_id": "databricks_prod",
                "schedules": "unpaused",
                **(gated if approvals else ungated),
            },
        ],
    }
    for old in specs.glob("*.yaml"):  # dag.test() parses the whole DAG folder: one spec at a time
        old.unlink()
    (specs / f"{bundle}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def promote_while(dag_id: str, act: Callable[[], None]) -> tuple[Any, list[BaseException]]:
    """Run the promotion in this thread while ``act`` drives the browser from another."""
    errors: list[BaseException] = []

    def actor() -> None:
        try:
            act()
        except BaseException as error:  # surfaced by the test, not lost in the thread
            errors.append(error)

    thread = threading.Thread(target=actor, daemon=True)
    thread.start()
    dag_run = dag_bag().get_dag(dag_id).test(run_conf={"version": "v1.0.0"})
    thread.join(timeout=PROMOTION_SECONDS)
    return dag_run, errors


def test_two_approvals_from_the_board_promote_to_prod_and_a_viewer_may_do_nothing(
    workspaces: Any, bundle_repo: Callable[..., Path], airflow: Airflow
) -> None:
    write_spec(airflow.specs, bundle_repo(), "board")
    seen: list[str] = []

    def approve_in_the_browser() -> None:
        from playwright.sync_api import expect, sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            alice = board_page(browser, airflow, "alice")
            prod = cell(alice, "board", "prod")
            expect_text(prod, "0 of 2 QC approvals")
            shot(alice, airflow, "1-prod-waits-for-two-approvals")
            decide(alice, prod, "Approve", "dev run checked")
            expect_text(prod, "1 of 2 QC approvals")  # polled, not reloaded
            seen.append("1 of 2")
            shot(alice, airflow, "2-alice-approved")

            vera = board_page(browser, airflow, "vera")
            buttons = vera.locator("main button")
            expect(buttons.first).to_be_visible()
            assert buttons.count() > 0
            for index in range(buttons.count()):
                expect(buttons.nth(index)).to_be_disabled()
            expect_text(cell(vera, "board", "prod"), "your role may not answer approvals of promote__board")
            shot(vera, airflow, "3-viewer-sees-everything-disabled")

            bob = board_page(browser, airflow, "bob")
            decide(bob, cell(bob, "board", "prod"), "Approve", "release notes read")
            expect_text(cell(bob, "board", "prod"), "verified · tests passed")
            expect_text(cell(bob, "board", "prod"), "schedules: unpaused")
            seen.append("promoted")
            shot(bob, airflow, "4-prod-runs-the-new-release")
            browser.close()

    dag_run, errors = promote_while("promote__board", approve_in_the_browser)

    assert errors == []
    assert dag_run.state == "success", task_states(dag_run)
    assert seen == ["1 of 2", "promoted"]
    assert jobs_in(workspaces, "prod") != []


def waiting_release(
    bundle: str, environment: str, version: str, reason: str = "0 of 2 QC approvals (Part 11 signatures)"
) -> str:
    """A run waits at the environment's gates, recorded as the gate sensor records it."""
    from dataclasses import replace

    from bundle_promotion.hooks.ledger import LedgerHook
    from bundle_promotion.ledger.records import GateEvaluation, GateResult
    from tests.gates.gate_support import make_release

    ledger = LedgerHook().get_conn()
    release = replace(make_release(version=version), bundle=bundle)
    ledger.record_gate_evaluation(
        GateEvaluation(
            bundle=bundle,
            environment=environment,
            release_id=ledger.record_release(release),
            release_digest=release.digest,
            version=version,
            run_id=f"manual__{bundle}",
            triggered_by="dag_test",
            commit_authors=(),
            evaluated_at=datetime.now(UTC),
            results=(
                GateResult.passed("previous_environment", f"{version} succeeded in dev"),
                GateResult.waiting("approval", reason),
            ),
        )
    )
    return release.digest


def test_a_part11_signature_with_a_wrong_password_is_refused_and_the_right_one_signs(
    bundle_repo: Callable[..., Path], airflow: Airflow, chromium: Any
) -> None:
    write_spec(airflow.specs, bundle_repo(), "signed", part11=True)
    waiting_release("signed", "prod", "v2.0.0")
    alice = board_page(chromium, airflow, "alice")
    prod = cell(alice, "signed", "prod")
    expect_text(prod, "0 of 2 QC approvals")

    decide(alice, prod, "Approve", "validated", password="not-alice-pw")
    expect_text(alice.locator("#action-error"), "signature refused: the password of alice did not match")
    shot(alice, airflow, "5-part11-wrong-password-refused")
    alice.locator("input[name=password]").fill(PASSWORDS["alice"])
    alice.get_by_role("button", name="Confirm").click()

    expect_text(prod, "✓ alice (approval): validated")
    shot(alice, airflow, "6-part11-signed")


def test_a_deploy_waiting_on_a_stale_lock_shows_its_holder_and_breaking_it_frees_the_lock(
    workspaces: Any, bundle_repo: Callable[..., Path], airflow: Airflow, chromium: Any
) -> None:
    from datetime import timedelta

    from airflow.models import Connection
    from airflow.utils.session import create_session
    from playwright.sync_api import expect

    from bundle_promotion.bundle.deploy.lock import DeployLock, LockOwner
    from bundle_promotion.hooks.ledger import LedgerHook
    from bundle_promotion.hooks.workspace import WorkspaceHook
    from bundle_promotion.workspace import files as workspace_files

    write_spec(airflow.specs, bundle_repo(), "locked")
    # The API server started before the emulator's variables were set: it finds the connection here.
    with create_session() as session:
        session.query(Connection).filter_by(conn_id="databricks_prod").delete()
        session.add(Connection(conn_id="databricks_prod", uri=workspaces.airflow_connection_uri("prod")))
    state = "/Workspace/Shared/.bundle/example_etl/prod/state"
    api = WorkspaceHook("databricks_prod")
    dead_run = LockOwner("scheduled__1", "prod.deploy", "prod")
    DeployLock(api, state, owner=dead_run)._acquire("deployer@example.com")
    holder = workspace_files.read_json(api, f"{state}/deploy.lock")
    taken = datetime.now(UTC) - timedelta(hours=2, minutes=5)
    ledger = LedgerHook().get_conn()
    ledger.wait_for_lock(
        "locked",
        "prod",
        run_id="manual__2",
        lock_path=f"{state}/deploy.lock",
        holder={**holder, "AcquisitionTime": taken.isoformat()},
    )
    vera = board_page(chromium, airflow, "vera")
    expect_text(cell(vera, "locked", "prod"), "your role may not change runs of promote__locked")
    alice = board_page(chromium, airflow, "alice")
    prod = cell(alice, "locked", "prod")
    expect_text(prod, "deploy waiting on a lock held by deployer@example.com for run scheduled__1")
    expect_text(prod, "for 2 h 5 min")
    shot(alice, airflow, "10-deploy-waiting-on-a-lock")

    decide(alice, prod, "Break lock", "its worker was lost in the node pool upgrade")

    wait_for(lambda: ledger.lock_wait("locked", "prod") is None, "the break is recorded", SEEN_SECONDS)
    assert workspace_files.read_json(api, f"{state}/deploy.lock") is None
    expect(prod.get_by_role("button", name="Break lock")).to_have_count(0, timeout=SEEN_SECONDS * 1000)
    shot(alice, airflow, "11-lock-broken")


def test_a_rollback_from_the_board_runs_to_the_earlier_release_holds_prod_and_the_board_lifts_the_hold(
    workspaces: Any, bundle_repo: Callable[..., Path], airflow: Airflow, chromium: Any
) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from bundle_promotion.hooks.ledger import LedgerHook
    from tests.conftest import git
    from tests.e2e.test_rollback_e2e import V1_CRON, V2_CRON, Workspace, nightly_cron

    repo = bundle_repo("v0.9.0")
    write_spec(airflow.specs, repo, "rolled", approvals=False)
    assert promote("rolled", "v0.9.0").state == "success"
    etl = repo / "resources" / "etl.job.yml"
    etl.write_text(etl.read_text().replace(V1_CRON, V2_CRON))
    git(repo, "commit", "-q", "-am", "v1.0.0: a new cron for the nightly job")
    git(repo, "tag", "-a", "v1.0.0", "-m", "release v1.0.0")
    assert promote("rolled", "v1.0.0").state == "success"
    assert nightly_cron(Workspace(workspaces, "prod")) == V2_CRON
    alice = board_page(chromium, airflow, "alice")
    prod = cell(alice, "rolled", "prod")
    expect_text(prod, "v1.0.0")

    prod.get_by_role("button", name="Roll back", exact=True).click()
    dialog = alice.locator("dialog#action")
    dialog.locator("select[name=version] option[value='v0.9.0']").wait_for(state="attached")
    dialog.locator("select[name=version]").select_option("v0.9.0")
    dialog.locator("textarea[name=reason]").fill("v1.0.0 breaks the nightly report")
    dialog.get_by_role("button", name="Confirm").click()

    wait_for(lambda: not dialog.is_visible(), "the dialog closes on success", SEEN_SECONDS)
    shot(alice, airflow, "7-rollback-requested")
    with create_session() as session:
        [run] = session.query(DagRun).filter_by(dag_id="rollback__rolled").all()
        assert run.conf == {"environment": "prod", "target_version": "v0.9.0"}
        assert run.triggering_user_name == "alice"
    ledger = LedgerHook().get_conn()
    [event] = [e for e in ledger.audit_events() if e.action == "rollback.requested"]
    assert (event.actor, event.reason) == ("alice", "v1.0.0 breaks the nightly report")

    rolled_back = run_triggered("rollback__rolled", run.run_id)

    assert (rolled_back.run_id, rolled_back.state) == (run.run_id, "success"), task_states(rolled_back)
    assert ledger.current_release("rolled", "prod")[0].version == "v0.9.0"
    assert nightly_cron(Workspace(workspaces, "prod")) == V1_CRON
    expect_text(prod, "v0.9.0")  # polled, not reloaded
    expect_text(prod, f"Held: rolled back in run {run.run_id}: redeploy v0.9.0 to prod")
    expect_text(prod, "— by alice")
    shot(alice, airflow, "8-prod-runs-the-earlier-release-and-is-held")

    decide(alice, prod, "Clear hold", "fixed in v1.0.1; promotions may resume")

    expect_text(prod, "prod is not held")
    assert ledger.environment_hold("rolled", "prod") is None
    shot(alice, airflow, "9-hold-cleared")


def promote(bundle: str, version: str) -> Any:
    """Promote ``version`` of the bundle through every environment under ``dag.test()``."""
    return dag_bag().get_dag(f"promote__{bundle}").test(run_conf={"version": version})


def run_triggered(dag_id: str, run_id: str) -> Any:
    """Run to completion the queued run someone triggered, with its own id, conf and user.

    Airflow 3.3's ``dag.test()`` always makes a run of its own; here it is handed the
    triggered run instead, started as the scheduler starts a queued run.
    """
    from unittest import mock

    from airflow.models import DagRun
    from airflow.utils.state import DagRunState

    def the_triggered_run(*, dag: Any, session: Any, **_: Any) -> DagRun:
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        run.dag = dag
        run.set_state(DagRunState.RUNNING)
        session.commit()
        return run

    with mock.patch("airflow.models.dagrun.get_or_create_dagrun", the_triggered_run):
        return dag_bag().get_dag(dag_id).test()


def dag_bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT

    dagbag = DagBag(dag_folder=str(PROJECT / "dags" / "promotions.py"))
    assert dagbag.import_errors == {}
    return dagbag


def succeeded(ledger: Any, bundle: str, environment: str, version: str) -> None:
    """A deployment of ``version`` that ran its checks: what a promotion records."""
    from dataclasses import replace

    from tests.gates.gate_support import make_release

    release = replace(make_release(version=version), bundle=bundle)
    deployment = ledger.start_deployment(
        bundle=bundle,
        environment=environment,
        target=environment,
        release_id=ledger.record_release(release),
        run_id=f"run_{version}",
    )
    ledger.mark_applied(deployment)
    ledger.finish_deployment(deployment, "succeeded")


def test_releases_opens_the_board_inside_airflows_ui(
    bundle_repo: Callable[..., Path], airflow: Airflow, chromium: Any
) -> None:
    from bundle_promotion.hooks.ledger import LedgerHook
    from bundle_promotion.ledger.records import Approval

    write_spec(airflow.specs, bundle_repo(), "navigated")
    for environment in ("dev", "prod"):
        succeeded(LedgerHook().get_conn(), "navigated", environment, "v1.0.0")
    digest = waiting_release("navigated", "prod", "v1.1.0", "1 of 2 QC approvals (have: bob)")
    LedgerHook().get_conn().record_approval(
        Approval(
            bundle="navigated",
            environment="prod",
            release_digest=digest,
            approver="bob",
            decision="approve",
            reason="staging soak clean",
            given_at=datetime.now(UTC),
        )
    )
    page = board_page(chromium, airflow, "alice")

    page.goto(f"{airflow.url}/plugin/releases")

    board = page.frame_locator("iframe").first
    board.get_by_text("Signed in to Airflow as alice").wait_for(timeout=SEEN_SECONDS * 1000)
    prod = board.locator('td.cell[data-environment="prod"]')
    expect_text(prod, "1 of 2 QC approvals (have: bob)")
    expect_text(prod, "may still approve — QC: alice")
    shot(page, airflow, "0-releases-in-airflows-ui")
