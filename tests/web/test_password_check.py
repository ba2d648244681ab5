"""Part 11 signatures re-check the signer's password with the configured check, or SimpleAuthManager's."""

from __future__ import annotations

import pytest

from bundle_promotion.web import api


def accept_only_hunter2(username: str, password: str) -> bool:
    return password == "hunter2"


def test_a_configured_password_check_is_the_one_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW__BUNDLE_PROMOTION__SIGNATURE_PASSWORD_CHECK", f"{__name__}.accept_only_hunter2"
    )

    check = api._password_check()

    assert check is accept_only_hunter2
    assert check("alice", "hunter2")
    assert not check("alice", "wrong")


def test_without_configuration_the_simple_auth_managers_password_file_decides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AIRFLOW__BUNDLE_PROMOTION__SIGNATURE_PASSWORD_CHECK", raising=False)

    assert api._password_check() is api.simple_auth_manager_password_check
