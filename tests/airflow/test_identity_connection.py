"""Where a gate's connection identity map comes from: its ``identities_conn_id``, else the setting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bundle_promotion import settings
from bundle_promotion.errors import SpecError
from bundle_promotion.spec import ApprovalGateSpec


def gate(conn_id: str | None = None) -> ApprovalGateSpec:
    return ApprovalGateSpec.model_validate(
        {"groups": [{"name": "QC", "users": ["alice"]}], "identities_conn_id": conn_id}
    )


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, extra: dict[str, Any]) -> None:
    document = {"conn_type": "generic", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(document))


def owner_of(login: str) -> dict[str, str]:
    return {"identities": {login.split("-")[0]: {"github": [login]}}}


@pytest.fixture(autouse=True)
def no_configured_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__BUNDLE_PROMOTION__IDENTITIES_CONN_ID", raising=False)


def test_the_gate_reads_the_connection_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "corp_identities", owner_of("carol-gh"))

    identities = settings.approval_identities(gate("corp_identities"))

    assert identities is not None
    assert list(identities.identities["carol"].github) == ["carol-gh"]


def test_a_gate_naming_none_reads_the_configured_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "corp_identities", owner_of("carol-gh"))
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__IDENTITIES_CONN_ID", "corp_identities")

    identities = settings.approval_identities(gate())

    assert identities is not None
    assert list(identities.identities) == ["carol"]


def test_the_connection_the_gate_names_wins_over_the_configured_one(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "corp_identities", owner_of("carol-gh"))
    connection(monkeypatch, "team_identities", owner_of("dave-gh"))
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__IDENTITIES_CONN_ID", "corp_identities")

    identities = settings.approval_identities(gate("team_identities"))

    assert identities is not None
    assert list(identities.identities) == ["dave"]


def test_with_neither_there_is_no_connection_map() -> None:
    assert settings.approval_identities(gate()) is None


def test_a_named_connection_that_does_not_exist_is_an_error_naming_it() -> None:
    with pytest.raises(SpecError, match=r"Airflow connection missing_identities: not found; create it"):
        settings.approval_identities(gate("missing_identities"))


def test_a_malformed_extra_is_an_error_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "corp_identities", {"identities": {"carol": {"github": "carol-gh"}}})

    with pytest.raises(
        SpecError, match=r"Airflow connection corp_identities: extra\.identities\.carol\.github"
    ):
        settings.approval_identities(gate("corp_identities"))
