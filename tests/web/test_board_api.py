"""The board's API inside Airflow's API server: what runs and waits where, and what the user may do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bundle_promotion.ledger import Ledger
from tests.gates.gate_support import make_release
from tests.web.test_approvals_api import APPROVALS, SPEC, body, token

pytestmark = pytest.mark.usefixtures("airflow_db")

BOARD = "/bundle-promotion/board"


def cell(board: dict[str, Any], environment: str, bundle: str = "sales") -> dict[str, Any]:
    [row] = [row for row in board["bundles"] if row["bundle"] == bundle]
    [found] = [c for c in row["cells"] if c["environment"] == environment]
    return found


def board_of(client: Any, user: str, role: str = "op") -> dict[str, Any]:
    response = client.get(BOARD, headers=token(user, role))
    assert response.status_code == 200, response.text
    return dict(response.json())


def deployed(ledger: Ledger, environment: str, version: str, run_id: str) -> None:
    release = make_release(version=version, commit=version.ljust(40, "0"))
    deployment = ledger.start_deployment(
        bundle="sales",
        environment=environment,
        target=environment,
        release_id=ledger.record_release(release),
        run_id=run_id,
    )
    ledger.mark_applied(deployment)
    ledger.finish_deployment(deployment, "succeeded")


def test_an_anonymous_request_is_unauthorized(client: Any) -> None:
    assert client.get(BOARD).status_code == 401


def test_a_waiting_gate_shows_its_reason_who_may_approve_and_that_alice_may(
    client: Any, waiting_in_prod: str
) -> None:
    prod = cell(board_of(client, "alice"), "prod")

    assert prod["waiting"]["release"]["digest"] == waiting_in_prod
    assert [gate["reason"] for gate in prod["waiting"]["gates"]] == ["0 of 2 QC approvals"]
    assert prod["waiting"]["may_approve"] == ["QC: alice, bob"]  # dag_test triggered the run
    assert prod["actions"]["approve"] == {"allowed": True, "reason": None}


def test_an_approval_given_shows_on_the_board_and_cannot_be_given_twice(
    client: Any, waiting_in_prod: str
) -> None:
    given = client.post(APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token("alice"))
    assert given.status_code == 201, given.text

    prod = cell(board_of(client, "alice"), "prod")

    assert [(d["approver"], d["decision"]) for d in prod["waiting"]["decisions"]] == [("alice", "approve")]
    assert prod["waiting"]["may_approve"] == ["QC: bob"]
    assert prod["actions"]["approve"] == {
        "allowed": False,
        "reason": "alice has approved this release already",
    }


def test_the_user_who_triggered_the_run_sees_why_they_may_not_approve(
    client: Any, waiting_in_prod: str
) -> None:
    prod = cell(board_of(client, "dag_test"), "prod")

    assert prod["actions"]["approve"]["reason"] == "dag_test triggered this run (segregation of duties)"


def test_a_viewer_sees_the_board_with_every_action_disabled_and_why(
    client: Any, ledger: Ledger, waiting_in_prod: str
) -> None:
    deployed(ledger, "prod", "v0.9.0", "manual__0")
    ledger.hold_environment("sales", "prod", reason="rolled back", actor="system", run_id="manual__0")

    board = board_of(client, "vera", "viewer")

    prod = cell(board, "prod")
    assert prod["waiting"]["release"]["digest"] == waiting_in_prod
    assert prod["actions"] == {
        "approve": {"allowed": False, "reason": "your role may not answer approvals of promote__sales"},
        "clear_hold": {"allowed": False, "reason": "your role may not change runs of promote__sales"},
        "rollback": {"allowed": False, "reason": "your role may not trigger rollback__sales"},
        "heal": {"allowed": False, "reason": "your role may not trigger rollback__sales"},
        "break_lock": {"allowed": False, "reason": "no deploy to prod waits on a lock"},
    }
    assert board["bundles"][0]["actions"]["promote"] == {
        "allowed": False,
        "reason": "your role may not trigger promote__sales",
    }


def test_a_cell_shows_the_release_running_there_and_its_schedules(client: Any, ledger: Ledger) -> None:
    deployed(ledger, "prod", "v1.0.0", "manual__1")

    prod = cell(board_of(client, "alice"), "prod")

    assert prod["running"]["release"]["version"] == "v1.0.0"
    assert prod["running"]["state"] == "succeeded"
    assert prod["schedules"] == "unpaused"
    assert cell(board_of(client, "alice"), "dev")["running"] is None


def test_a_hold_shows_who_set_it_and_who_may_clear_it(client: Any, ledger: Ledger) -> None:
    deployed(ledger, "prod", "v1.0.0", "manual__1")
    ledger.hold_environment(
        "sales", "prod", reason="tests failed, rolled back", actor="system", run_id="manual__1"
    )

    alice = cell(board_of(client, "alice"), "prod")
    carol = cell(board_of(client, "carol"), "prod")

    assert (alice["hold"]["reason"], alice["hold"]["held_by"]) == ("tests failed, rolled back", "system")
    assert alice["actions"]["clear_hold"]["allowed"] is True
    assert carol["actions"]["clear_hold"] == {
        "allowed": False,
        "reason": "only prod's hold_clearers may clear its hold (QC (alice, bob, dag_test))",
    }


def test_a_drifted_cell_shows_each_field_and_who_may_heal_it(client: Any, ledger: Ledger) -> None:
    from datetime import UTC, datetime

    from bundle_promotion.ledger.records import DriftFinding, DriftReport

    deployed(ledger, "prod", "v1.0.0", "manual__1")
    finding = DriftFinding("resources.jobs.etl", "schedule.quartz_cron_expression", "0 0 * * *", "0 5 * * *")
    report = DriftReport("sales", "prod", datetime.now(UTC), "v1.0.0", "d" * 64, (finding,))
    ledger.record_drift_report(report, actor="drift__sales")

    alice = cell(board_of(client, "alice"), "prod")
    viewer = cell(board_of(client, "vera", role="viewer"), "prod")

    assert alice["drift"]["status"] == "drifted"
    assert alice["drift"]["findings"] == [str(finding)]
    assert alice["actions"]["heal"]["allowed"] is True
    assert viewer["actions"]["heal"]["allowed"] is False
    assert cell(board_of(client, "alice"), "validation")["actions"]["heal"] == {
        "allowed": False,
        "reason": "no drift found in validation",
    }


def test_part11_cells_say_they_ask_for_a_signature(client: Any) -> None:
    board = board_of(client, "alice")

    assert (cell(board, "validation")["signature"], cell(board, "prod")["signature"]) == ("part11", "none")


@pytest.fixture
def local_spec(
    client: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The sales spec with its source in a local repository tagged v1.0.0, its DAGs in Airflow."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from tests.conftest import PROJECT

    repo = bundle_repo()
    environments = [
        {**env, "target": {"val": "staging"}.get(env["target"], env["target"])}
        for env in SPEC["environments"]
    ]
    spec = {**SPEC, "source": {"repo": str(repo), "path": "."}, "environments": environments}
    (tmp_path / "promotions" / "sales.yaml").write_text(yaml.safe_dump(spec))
    DagBundlesManager().sync_bundles_to_db()
    dagbag = DagBag(dag_folder=str(PROJECT / "dags" / "promotions.py"))
    assert dagbag.import_errors == {}
    sync_bag_to_db(dagbag, "dags-folder", None)
    return str(repo)


def test_versions_are_the_repositorys_tags(client: Any, local_spec: str) -> None:
    response = client.get(f"{BOARD}/bundles/sales/versions", headers=token("alice"))

    assert response.json() == ["v1.0.0"]


def test_promote_triggers_the_promotion_as_the_user_with_a_tag(client: Any, local_spec: str) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    response = client.post(
        f"{BOARD}/bundles/sales/promote", json={"version": "v1.0.0"}, headers=token("alice")
    )

    assert response.status_code == 201, response.text
    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id="promote__sales", run_id=response.json()["run_id"]).one()
        assert (run.conf, run.triggering_user_name) == ({"version": "v1.0.0"}, "alice")


def test_promote_refuses_a_version_that_is_not_a_tag(client: Any, local_spec: str) -> None:
    response = client.post(
        f"{BOARD}/bundles/sales/promote", json={"version": "v9.9.9"}, headers=token("alice")
    )

    assert response.status_code == 422
    assert "v9.9.9 is not a tag of sales's repository" in response.json()["detail"]


def test_a_viewer_may_not_promote(client: Any, local_spec: str) -> None:
    response = client.post(
        f"{BOARD}/bundles/sales/promote", json={"version": "v1.0.0"}, headers=token("vera", "viewer")
    )

    assert response.status_code == 403


def test_rollback_triggers_the_rollback_dag_and_is_audited(
    client: Any, ledger: Ledger, local_spec: str
) -> None:
    deployed(ledger, "prod", "v1.0.0", "manual__1")

    response = client.post(
        f"{BOARD}/bundles/sales/environments/prod/rollback",
        json={"target_version": "v1.0.0", "reason": "v1.1.0 breaks the report"},
        headers=token("alice"),
    )

    assert response.status_code == 201, response.text
    assert response.json()["dag_id"] == "rollback__sales"
    [event] = [e for e in ledger.audit_events() if e.action == "rollback.requested"]
    assert (event.actor, event.subject, event.reason) == ("alice", "sales/prod", "v1.1.0 breaks the report")
    assert event.details["target_version"] == "v1.0.0"


def test_the_history_lists_every_deployment_newest_first_with_decisions(
    client: Any, ledger: Ledger, waiting_in_prod: str
) -> None:
    deployed(ledger, "prod", "v0.8.0", "manual__0")
    deployed(ledger, "prod", "v0.9.0", "manual__1")
    client.post(APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token("alice"))

    response = client.get(f"{BOARD}/bundles/sales", headers=token("alice"))

    [prod] = [env for env in response.json()["environments"] if env["environment"] == "prod"]
    assert [d["release"]["version"] for d in prod["deployments"]] == ["v0.9.0", "v0.8.0"]
    assert [d["approver"] for d in prod["decisions"]] == ["alice"]


def test_the_evidence_pack_is_served_as_markdown(client: Any, ledger: Ledger) -> None:
    deployed(ledger, "prod", "v1.0.0", "manual__1")

    response = client.get(f"{BOARD}/bundles/sales/releases/v1.0.0/evidence.md", headers=token("alice"))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/markdown")
    assert "v1.0.0" in response.text


def test_the_page_and_its_assets_are_served_by_the_plugin(client: Any) -> None:
    page = client.get("/bundle-promotion/ui/")
    script = client.get("/bundle-promotion/ui/board.js")

    assert page.status_code == 200
    assert '<script type="module" src="board.js">' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    assert script.headers["content-type"].startswith("text/javascript")
    assert client.get("/bundle-promotion/ui/..%2Fapi.py").status_code == 404


def test_airflow_lists_the_releases_page_in_its_navigation_and_on_each_dag(client: Any) -> None:
    response = client.get("/api/v2/plugins", headers=token("admin", "admin"))

    [ours] = [plugin for plugin in response.json()["plugins"] if plugin["name"] == "bundle_promotion"]
    views = {(view["name"], view["destination"], view["href"]) for view in ours["external_views"]}
    assert views == {
        ("Releases", "nav", "/bundle-promotion/ui/"),
        ("Releases", "dag", "/bundle-promotion/ui/?dag={DAG_ID}"),
    }


def test_the_diff_of_two_releases_lists_the_commits_between_them(
    client: Any, ledger: Ledger, local_spec: str
) -> None:
    from dataclasses import replace

    from tests.conftest import git

    repo = Path(local_spec)
    (repo / "CHANGELOG.md").write_text("v1.1.0: the report counts late rows\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Count late rows in the report")
    git(repo, "tag", "v1.1.0")
    for version in ("v1.0.0", "v1.1.0"):
        commit = git(repo, "rev-parse", f"{version}^{{commit}}")
        ledger.record_release(replace(make_release(version=version), bundle="sales", commit=commit))

    response = client.get(f"{BOARD}/bundles/sales/diff?base=v1.0.0&head=v1.1.0", headers=token("alice"))

    assert response.status_code == 200, response.text
    assert [(c["author"], c["subject"]) for c in response.json()["commits"]] == [
        ("Release Bot", "Count late rows in the report")
    ]
