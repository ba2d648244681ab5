"""The approvals API inside Airflow's API server: identity from the token, permissions, Part 11."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import GateEvaluation, GateResult
from tests.gates.gate_support import make_release

pytestmark = pytest.mark.usefixtures("airflow_db")

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "dag_test": "dag-pw", "vera": "vera-pw"}
SPEC = {
    "bundle": "sales",
    "source": {"repo": "https://github.com/acme/sales.git"},
    "environments": [
        {"name": "dev", "target": "dev", "databricks_conn_id": "databricks_dev", "schedules": "paused"},
        {
            "name": "validation",
            "target": "val",
            "databricks_conn_id": "databricks_val",
            "schedules": "paused",
            "gates": [{"approval": {"groups": [{"name": "QA", "role": "op"}], "signature": "part11"}}],
        },
        {
            "name": "prod",
            "target": "prod",
            "databricks_conn_id": "databricks_prod",
            "schedules": "unpaused",
            "gates": [
                {"approval": {"groups": [{"name": "QC", "min": 2, "users": ["alice", "bob", "dag_test"]}]}}
            ],
        },
    ],
}
APPROVALS = "/bundle-promotion/dags/promote__sales/environments/{}/approvals"


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    connection = {"conn_type": "generic", "extra": {"sqlalchemy_url": url}}
    monkeypatch.setenv("AIRFLOW_CONN_BUNDLE_PROMOTION_LEDGER", json.dumps(connection))
    ledger = Ledger(url)
    ledger.migrate()
    return ledger


@pytest.fixture
def spec() -> dict[str, Any]:
    """The promotion spec the API serves; a module may override it."""
    return SPEC


@pytest.fixture
def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger: Ledger, spec: dict[str, Any]
) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    specs = tmp_path / "promotions"
    specs.mkdir()
    (specs / "sales.yaml").write_text(yaml.safe_dump(spec))
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", str(specs))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "alice:op,bob:op,dag_test:op,vera:viewer")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv(
        "AIRFLOW__API_AUTH__JWT_SECRET", "approvals-api-test-secret-of-a-decent-length-for-hs512"
    )
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def token(username: str, role: str = "op") -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))
    return {"Authorization": f"Bearer {jwt}"}


@pytest.fixture
def waiting_in_prod(ledger: Ledger) -> str:
    """A run triggered by dag_test waits at prod's gates; returns the release digest."""
    release = make_release()
    ledger.record_gate_evaluation(
        GateEvaluation(
            bundle="sales",
            environment="prod",
            release_id=ledger.record_release(release),
            release_digest=release.digest,
            version=release.version,
            run_id="manual__1",
            triggered_by="dag_test",
            commit_authors=("Release Bot", "release-bot@example.com"),
            evaluated_at=datetime.now(UTC),
            results=(GateResult.waiting("approval", "0 of 2 QC approvals"),),
        )
    )
    return release.digest


def body(digest: str, **extra: Any) -> dict[str, Any]:
    return {"release_digest": digest, "reason": "staging run checked", **extra}


def test_the_approver_is_the_user_of_the_token(client: Any, ledger: Ledger, waiting_in_prod: str) -> None:
    response = client.post(APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token("alice"))

    assert response.status_code == 201, response.text
    assert response.json()["approver"] == "alice"
    assert [a.approver for a in ledger.approvals("sales", "prod")] == ["alice"]


@pytest.mark.parametrize("look_alike", ["alice ", "\u0430lice", "ali\u200bce"])
def test_a_look_alike_account_is_refused(
    client: Any, ledger: Ledger, waiting_in_prod: str, look_alike: str
) -> None:
    response = client.post(APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token(look_alike))

    assert response.status_code == 403
    assert "user name" in response.json()["detail"]
    assert ledger.approvals("sales", "prod") == []


def test_an_account_differing_only_in_case_is_the_same_person(
    client: Any, ledger: Ledger, waiting_in_prod: str
) -> None:
    for account in ("alice", "Alice"):
        response = client.post(APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token(account))
        assert response.status_code == 201, response.text

    assert [a.approver for a in ledger.approvals("sales", "prod")] == ["alice", "alice"]


def test_a_body_naming_an_approver_is_rejected(client: Any, ledger: Ledger, waiting_in_prod: str) -> None:
    response = client.post(
        APPROVALS.format("prod"), json=body(waiting_in_prod, approver="bob"), headers=token("alice")
    )

    assert response.status_code == 422
    assert ledger.approvals("sales", "prod") == []


def test_a_viewer_may_not_approve(client: Any, ledger: Ledger, waiting_in_prod: str) -> None:
    response = client.post(
        APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token("vera", "viewer")
    )

    assert response.status_code == 403
    assert ledger.approvals("sales", "prod") == []


def test_an_anonymous_request_is_unauthorized(client: Any, waiting_in_prod: str) -> None:
    assert client.post(APPROVALS.format("prod"), json=body(waiting_in_prod)).status_code == 401


def test_the_user_who_triggered_the_run_is_refused(client: Any, ledger: Ledger, waiting_in_prod: str) -> None:
    response = client.post(APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token("dag_test"))

    assert response.status_code == 403
    assert response.json()["detail"] == "dag_test cannot approve: triggered this run (segregation of duties)"
    assert ledger.approvals("sales", "prod") == []


def test_a_part11_approval_with_a_wrong_password_is_refused_and_recorded(
    client: Any, ledger: Ledger, waiting_in_prod: str
) -> None:
    signed = body(waiting_in_prod, meaning="approval", password="not-alice-pw")

    response = client.post(APPROVALS.format("validation"), json=signed, headers=token("alice"))

    assert response.status_code == 403
    assert "signature refused: the password of alice did not match" in response.json()["detail"]
    assert "not-alice-pw" not in response.text
    assert ledger.approvals("sales", "validation") == []
    [attempt] = ledger.signature_attempts("sales")
    assert (attempt.signer, attempt.succeeded, attempt.environment) == ("alice", False, "validation")
    assert [e.action for e in ledger.audit_events()][-1] == "signature.refused"


def test_a_part11_approval_with_the_password_records_its_meaning(
    client: Any, ledger: Ledger, waiting_in_prod: str
) -> None:
    signed = body(waiting_in_prod, meaning="responsibility", password="alice-pw")

    response = client.post(APPROVALS.format("validation"), json=signed, headers=token("alice"))

    assert response.status_code == 201, response.text
    assert (response.json()["signature"], response.json()["meaning"]) == ("part11", "responsibility")
    assert [a.succeeded for a in ledger.signature_attempts("sales")] == [True]


def test_signature_attempts_are_rate_limited_per_user(
    client: Any, ledger: Ledger, waiting_in_prod: str
) -> None:
    wrong = body(waiting_in_prod, meaning="approval", password="guess")
    client.post(APPROVALS.format("validation"), json=wrong, headers=token("alice"))

    again = client.post(APPROVALS.format("validation"), json=wrong, headers=token("alice"))
    other_user = client.post(APPROVALS.format("validation"), json=wrong, headers=token("bob"))

    assert again.status_code == 429
    assert int(again.headers["Retry-After"]) >= 1
    assert other_user.status_code == 403
    assert [a.signer for a in ledger.signature_attempts("sales")] == ["alice", "bob"]


def test_three_wrong_passwords_lock_the_signer_out_of_the_api(
    client: Any, ledger: Ledger, waiting_in_prod: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SIGNATURE_ATTEMPT_INTERVAL", "0")
    for guess in ("guess-1", "guess-2", "guess-3"):
        signed = body(waiting_in_prod, meaning="approval", password=guess)
        assert (
            client.post(APPROVALS.format("validation"), json=signed, headers=token("alice")).status_code
            == 403
        )

    right = body(waiting_in_prod, meaning="approval", password="alice-pw")
    response = client.post(APPROVALS.format("validation"), json=right, headers=token("alice"))

    assert response.status_code == 403
    assert "alice is locked out of signing after 3 failed attempts" in response.json()["detail"]
    assert ledger.approvals("sales", "validation") == []
    assert ledger.signature_locked_out("alice")


LIFT = "/bundle-promotion/signers/{}/lockout/lift"


def lock_out(ledger: Ledger, signer: str) -> None:
    ledger.record_event(actor=signer, action="signature.locked_out", subject=signer, reason="3 failures")


def test_an_administrator_lifts_a_lockout_through_the_api_as_an_audited_action(
    client: Any, ledger: Ledger, waiting_in_prod: str
) -> None:
    lock_out(ledger, "alice")

    response = client.post(
        LIFT.format("Alice"), json={"reason": "identity checked"}, headers=token("root", "admin")
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"signer": "alice", "lifted": True}
    lifted = ledger.audit_events()[-1]
    assert (lifted.action, lifted.actor, lifted.subject, lifted.reason) == (
        "signature.lockout_lifted",
        "root",
        "alice",
        "identity checked",
    )
    right = body(waiting_in_prod, meaning="approval", password="alice-pw")
    assert client.post(APPROVALS.format("validation"), json=right, headers=token("alice")).status_code == 201


@pytest.mark.parametrize("role", ["viewer", "user", "op"])
def test_only_an_administrator_may_lift_a_lockout(client: Any, ledger: Ledger, role: str) -> None:
    lock_out(ledger, "alice")

    response = client.post(LIFT.format("alice"), json={"reason": "me again"}, headers=token("bob", role))

    assert response.status_code == 403
    assert "bob may not lift signature lockouts: only the Admin role may" in response.json()["detail"]
    assert ledger.signature_locked_out("alice")


def test_the_administrator_role_is_configurable(
    client: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_out(ledger, "alice")
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SIGNATURE_ADMIN_ROLE", "op")

    response = client.post(LIFT.format("alice"), json={"reason": "QA lead"}, headers=token("bob", "op"))

    assert response.json() == {"signer": "alice", "lifted": True}


def test_lifting_needs_a_token_and_a_reason(client: Any, ledger: Ledger) -> None:
    lock_out(ledger, "alice")

    assert client.post(LIFT.format("alice"), json={"reason": "x"}).status_code == 401
    assert (
        client.post(LIFT.format("alice"), json={"reason": ""}, headers=token("root", "admin")).status_code
        == 422
    )
    assert ledger.signature_locked_out("alice")


def test_lifting_a_signer_who_is_not_locked_out_changes_nothing(client: Any, ledger: Ledger) -> None:
    before = len(ledger.audit_events())

    response = client.post(
        LIFT.format("carol"), json={"reason": "just in case"}, headers=token("root", "admin")
    )

    assert response.json() == {"signer": "carol", "lifted": False}
    assert len(ledger.audit_events()) == before


def test_approving_over_ones_own_standing_rejection_is_a_conflict(
    client: Any, ledger: Ledger, waiting_in_prod: str
) -> None:
    rejected = client.post(
        APPROVALS.format("prod"), json=body(waiting_in_prod, decision="reject"), headers=token("alice")
    )
    assert rejected.status_code == 201, rejected.text

    response = client.post(APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token("alice"))

    assert response.status_code == 409
    assert "that rejection stands: withdraw it first" in response.json()["detail"]
    assert [a.decision for a in ledger.approvals("sales", "prod")] == ["reject"]


def test_pending_gates_show_their_reasons(client: Any, waiting_in_prod: str) -> None:
    response = client.get("/bundle-promotion/dags/promote__sales/gates", headers=token("vera", "viewer"))

    assert response.status_code == 200
    [prod] = response.json()
    assert (prod["environment"], prod["status"], prod["release_digest"]) == (
        "prod",
        "waiting",
        waiting_in_prod,
    )
    assert prod["gates"] == [{"gate": "approval", "status": "waiting", "reason": "0 of 2 QC approvals"}]


def test_approving_an_environment_without_an_approval_gate_is_not_found(
    client: Any, waiting_in_prod: str
) -> None:
    response = client.post(APPROVALS.format("dev"), json=body(waiting_in_prod), headers=token("alice"))

    assert response.status_code == 404
    assert response.json()["detail"] == "dev of sales has no approval gate; nothing to approve"


HOLD_CLEAR = "/bundle-promotion/dags/promote__sales/environments/{}/hold/clear"


def test_a_hold_is_cleared_as_the_user_of_the_token_with_a_reason(client: Any, ledger: Ledger) -> None:
    ledger.hold_environment("sales", "prod", reason="rolled back in run r1", actor="bundle-promotion")

    response = client.post(
        HOLD_CLEAR.format("prod"), json={"reason": "root cause fixed"}, headers=token("alice")
    )

    assert response.status_code == 200, response.text
    assert response.json()["reason"] == "rolled back in run r1"
    assert ledger.environment_hold("sales", "prod") is None
    cleared = ledger.audit_events()[-1]
    assert (cleared.action, cleared.actor, cleared.reason) == ("hold.cleared", "alice", "root cause fixed")


def test_a_viewer_may_not_clear_a_hold(client: Any, ledger: Ledger) -> None:
    ledger.hold_environment("sales", "prod", reason="rolled back", actor="bundle-promotion")

    response = client.post(HOLD_CLEAR.format("prod"), json={"reason": "x"}, headers=token("vera", "viewer"))

    assert response.status_code == 403
    assert ledger.environment_hold("sales", "prod") is not None


def test_only_the_environments_approvers_may_clear_its_hold(client: Any, ledger: Ledger) -> None:
    ledger.hold_environment("sales", "prod", reason="rolled back", actor="bundle-promotion")

    response = client.post(HOLD_CLEAR.format("prod"), json={"reason": "looks fine"}, headers=token("dave"))

    assert response.status_code == 403
    assert "dave may not clear the hold on prod: only its hold_clearers may" in response.json()["detail"]
    assert ledger.environment_hold("sales", "prod") is not None


def test_a_hold_on_an_environment_without_approvers_is_cleared_only_by_break_glass(
    client: Any, ledger: Ledger
) -> None:
    ledger.hold_environment("sales", "dev", reason="rolled back", actor="bundle-promotion")

    response = client.post(HOLD_CLEAR.format("dev"), json={"reason": "looks fine"}, headers=token("alice"))

    assert response.status_code == 403
    assert "hold break-glass" in response.json()["detail"]
    assert ledger.environment_hold("sales", "dev") is not None


def test_an_environments_hold_clearers_may_clear_its_hold(
    client: Any, ledger: Ledger, tmp_path: Path
) -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["environments"][0]["hold_clearers"] = {"users": ["Bob"]}
    (tmp_path / "promotions" / "sales.yaml").write_text(yaml.safe_dump(spec))
    ledger.hold_environment("sales", "dev", reason="rolled back", actor="bundle-promotion")

    refused = client.post(HOLD_CLEAR.format("dev"), json={"reason": "fixed"}, headers=token("alice"))
    cleared = client.post(HOLD_CLEAR.format("dev"), json={"reason": "fixed"}, headers=token("bob"))

    assert (refused.status_code, cleared.status_code) == (403, 200)
    assert ledger.audit_events()[-1].actor == "bob"
