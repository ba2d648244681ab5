"""The release task resolves each target as the user who will deploy it."""

from __future__ import annotations

from typing import Any

from bundle_promotion.operators.release import BuildReleaseOperator


def test_each_target_is_paired_with_the_user_behind_its_connection(workspaces: Any) -> None:
    operator = BuildReleaseOperator(
        task_id="release",
        bundle="example",
        repo="unused",
        version="v1.0.0",
        deployers=[("dev", "databricks_dev"), ("staging", "databricks_staging"), ("prod", "databricks_prod")],
    )

    pairs = operator._targets_with_their_deployers()

    assert [(target, user["userName"]) for target, user in pairs] == [
        ("dev", workspaces.user_name("dev")),
        ("staging", workspaces.user_name("staging")),
        ("prod", workspaces.user_name("prod")),
    ]


def test_environments_sharing_a_connection_ask_for_its_user_once(workspaces: Any) -> None:
    operator = BuildReleaseOperator(
        task_id="release",
        bundle="example",
        repo="unused",
        version="v1.0.0",
        deployers=[("dev", "databricks_dev"), ("dev_eu", "databricks_dev")],
    )

    pairs = operator._targets_with_their_deployers()

    assert [user["userName"] for _, user in pairs] == [workspaces.user_name("dev")] * 2
    assert sum(request.path.endswith("scim/v2/Me") for request in workspaces.requests("dev")) == 1
