"""Which errors a retry cannot change: the rule the Airflow layer fails tasks by."""

from __future__ import annotations

import pytest

from bundle_promotion.errors import (
    BundleConfigError,
    DeployError,
    EnvironmentHeld,
    GateFailed,
    GitHubApiError,
    InvalidBundle,
    LockHeld,
    ReleaseError,
    SpecError,
    TestRunFailed,
    VerificationFailed,
    WorkspaceApiError,
    is_final,
)


def api_error(status: int, error_code: str = "") -> WorkspaceApiError:
    return WorkspaceApiError("POST", "2.2/jobs/create", status, error_code, "message")


@pytest.mark.parametrize(
    "error",
    [
        SpecError("include/promotions/etl.yaml", "environments", "must not be empty"),
        BundleConfigError("databricks.yml", "targets.dev", "unknown target"),
        InvalidBundle([BundleConfigError("databricks.yml", "bundle.name", "missing")]),
        VerificationFailed("prod", ["jobs.etl: missing"]),
        TestRunFailed("job integration_tests run 7 ended FAILED"),
        GateFailed("prod: rejected by alice"),
        EnvironmentHeld("prod is held"),
        api_error(400, "INVALID_PARAMETER_VALUE"),
        api_error(403, "PERMISSION_DENIED"),
        api_error(404, "RESOURCE_DOES_NOT_EXIST"),
        GitHubApiError("acme/etl", "list reviews", 404, "Not Found"),
    ],
)
def test_a_wrong_input_a_verdict_or_a_refusal_is_final(error: Exception) -> None:
    assert is_final(error)


@pytest.mark.parametrize(
    "error",
    [
        api_error(0, "REQUEST_FAILED"),
        api_error(500, "INTERNAL_ERROR"),
        api_error(503, "TEMPORARILY_UNAVAILABLE"),
        api_error(429, "REQUEST_LIMIT_EXCEEDED"),
        api_error(409, "RESOURCE_CONFLICT"),
        api_error(400, "COULD_NOT_ACQUIRE_LOCK"),
        GitHubApiError("acme/etl", "list reviews", 429, "rate limited"),
        LockHeld("deploy lock acquired by run manual__1"),
        DeployError("databricks bundle deploy failed"),
        ReleaseError("git clone failed"),
        ConnectionError("reset by peer"),
    ],
)
def test_no_answer_a_server_error_contention_or_an_unknown_error_may_pass_later(error: Exception) -> None:
    assert not is_final(error)
