"""An approval gate's identity map: the spec's ``identities`` over a connection's, one owner per name."""

from __future__ import annotations

from typing import Any

import pytest

from bundle_promotion.errors import IdentityRefused
from bundle_promotion.gates.approvals import ApprovalGate, policy_from_spec
from bundle_promotion.gates.check import build_gates
from bundle_promotion.spec import ApprovalGateSpec, ConnectionIdentitiesSpec


def gate_spec(**identities: Any) -> ApprovalGateSpec:
    return ApprovalGateSpec.model_validate(
        {"groups": [{"name": "QC", "min": 2, "users": ["alice", "bob", "carol"]}], "identities": identities}
    )


def connection(**identities: Any) -> ConnectionIdentitiesSpec:
    return ConnectionIdentitiesSpec.model_validate({"identities": identities})


CORPORATE = connection(
    Alice={"github": ["alice-old"], "emails": ["alice@corp.example"]},
    carol={"github": ["carol-gh"], "emails": ["carol@corp.example"]},
)


def test_a_connection_maps_the_people_the_spec_does_not() -> None:
    identities = policy_from_spec(gate_spec(), CORPORATE).identities

    assert identities.github_user("carol-gh") == "carol"
    assert "carol" in identities.people_of_authors(["carol@corp.example"])


def test_for_a_user_both_map_the_specs_entry_wins_whole() -> None:
    identities = policy_from_spec(gate_spec(alice={"github": ["alice-acme"]}), CORPORATE).identities

    assert identities.github_user("alice-acme") == "alice"
    assert identities.github_user("alice-old") is None
    assert identities.github_user("carol-gh") == "carol"


def test_a_login_the_spec_and_the_connection_give_to_different_users_is_refused() -> None:
    with pytest.raises(IdentityRefused, match=r"'carol-gh' is mapped to both carol and bob; map it to one"):
        policy_from_spec(gate_spec(bob={"github": ["carol-gh"]}), CORPORATE)


def test_without_a_connection_only_the_spec_maps() -> None:
    identities = policy_from_spec(gate_spec(alice={"github": ["alice-acme"]})).identities

    assert identities.github_user("carol-gh") is None


def test_the_gates_built_for_a_run_use_the_connections_map(tmp_path: Any) -> None:
    entries = [{"approval": gate_spec().model_dump(mode="json", exclude_none=True)}]

    [gate] = build_gates(entries, bundle_path=".", checkouts=tmp_path, identities=CORPORATE)

    assert isinstance(gate, ApprovalGate)
    assert gate.policy.identities.github_user("carol-gh") == "carol"


def test_who_may_approve_names_each_group_and_whom_segregation_of_duties_excludes() -> None:
    from bundle_promotion.gates.approvals import who_may_approve

    policy = policy_from_spec(gate_spec(), CORPORATE)

    text = who_may_approve(policy, triggered_by="Bob", commit_authors=("carol@corp.example",))

    assert text == "QC: 2 of alice; not bob (triggered this run), carol (authored a commit of this release)"
