"""Planning as plain Python: config vs the last deploy vs the server, per resource."""

from __future__ import annotations

from typing import Any

import pytest

from bundle_promotion.bundle.deploy.engine import KINDS
from bundle_promotion.bundle.deploy.plan import Change, describe, kind_of, plan_json, plan_resources
from bundle_promotion.bundle.deploy.state import DeploymentState, make_entry
from bundle_promotion.errors import DeployError

PIPELINE = {"name": "sales", "storage": "/mnt/a", "catalog": "main"}
JOB = {
    "name": "refresh",
    "tasks": [{"task_key": "t", "pipeline_task": {"pipeline_id": "${resources.pipelines.p.id}"}}],
}


def deployed(**entries: tuple[str, dict[str, Any]]) -> DeploymentState:
    state = {
        key.replace("__", "."): make_entry(id_, settings, []) for key, (id_, settings) in entries.items()
    }
    return DeploymentState("lineage-1", 3, state)


def actions(changes: list[Change]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {change.key: (change.action, change.changed_fields) for change in changes}


def test_an_unchanged_resource_is_skipped() -> None:
    state = deployed(resources__pipelines__p=("p-1", PIPELINE))

    changes = plan_resources(
        {"resources.pipelines.p": PIPELINE}, state, {"resources.pipelines.p": PIPELINE}, KINDS
    )

    assert actions(changes) == {"resources.pipelines.p": ("skip", ())}


def test_a_config_change_is_an_update_naming_the_field() -> None:
    state = deployed(resources__pipelines__p=("p-1", PIPELINE))
    desired = {"resources.pipelines.p": {**PIPELINE, "catalog": "prod"}}

    changes = plan_resources(desired, state, {"resources.pipelines.p": PIPELINE}, KINDS)

    assert actions(changes) == {"resources.pipelines.p": ("update", ("catalog",))}


def test_a_change_made_on_the_server_is_drift_to_put_back() -> None:
    state = deployed(resources__pipelines__p=("p-1", PIPELINE))
    remote = {"resources.pipelines.p": {**PIPELINE, "catalog": "changed_by_hand", "id": "p-1"}}

    changes = plan_resources({"resources.pipelines.p": PIPELINE}, state, remote, KINDS)

    assert actions(changes) == {"resources.pipelines.p": ("update", ("catalog",))}


def test_a_storage_change_recreates_the_pipeline_and_updates_its_user() -> None:
    state = deployed(resources__pipelines__p=("p-1", PIPELINE), resources__jobs__j=("7", {**JOB}))
    desired = {"resources.pipelines.p": {**PIPELINE, "storage": "/mnt/b"}, "resources.jobs.j": JOB}
    remote = {"resources.pipelines.p": PIPELINE, "resources.jobs.j": JOB}

    changes = plan_resources(desired, state, remote, KINDS)

    assert actions(changes) == {
        "resources.pipelines.p": ("recreate", ("storage",)),
        "resources.jobs.j": ("update", ("tasks",)),
    }


def test_a_resource_gone_from_the_server_is_created_again() -> None:
    state = deployed(resources__pipelines__p=("p-1", PIPELINE))

    changes = plan_resources(
        {"resources.pipelines.p": PIPELINE}, state, {"resources.pipelines.p": None}, KINDS
    )

    assert changes[0].action == "create"


def test_resources_gone_from_the_config_are_deleted_and_unknown_kinds_kept() -> None:
    state = deployed(
        resources__jobs__old=("1", {"name": "old"}),
        resources__jobs__old__permissions=("/jobs/1", {"object_id": "/jobs/1", "permissions": []}),
        resources__alerts__late=("a1", {"display_name": "late"}),
    )

    changes = plan_resources({}, state, {}, KINDS)

    assert actions(changes) == {
        "resources.jobs.old": ("delete", ()),
        "resources.jobs.old.permissions": ("delete", ()),
    }


def test_kinds_are_read_from_the_state_key() -> None:
    assert [
        kind_of(key) for key in ("resources.jobs.a", "resources.pipelines.b", "resources.jobs.a.permissions")
    ] == [
        "jobs",
        "pipelines",
        "permissions",
    ]


def test_ids_referenced_in_a_cycle_are_an_error() -> None:
    desired = {
        "resources.jobs.a": {"name": "${resources.jobs.b.id}"},
        "resources.jobs.b": {"name": "${resources.jobs.a.id}"},
    }

    with pytest.raises(DeployError, match="reference each other's ids in a cycle"):
        plan_resources(desired, DeploymentState.new(), {}, KINDS)


def test_the_plan_json_and_lines_name_the_action_and_fields() -> None:
    state = deployed(resources__pipelines__p=("p-1", PIPELINE))
    changes = plan_resources(
        {"resources.pipelines.p": {**PIPELINE, "catalog": "x"}},
        state,
        {"resources.pipelines.p": PIPELINE},
        KINDS,
    )

    assert plan_json(changes, state) == {
        "plan_version": 2,
        "cli_version": "",
        "lineage": "lineage-1",
        "serial": 3,
        "plan": {"resources.pipelines.p": {"action": "update", "changed_fields": ["catalog"]}},
    }
    assert describe(changes) == ["update   resources.pipelines.p (catalog)"]
