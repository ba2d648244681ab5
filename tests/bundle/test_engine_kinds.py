"""The native engine on the kinds beside jobs and pipelines: schemas, volumes, registered models,
experiments, secret scopes, clusters, SQL warehouses, dashboards, serving endpoints, apps and
quality monitors; their permissions, grants and ACLs; recreates by the CLI's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.bundle.config.load import load_bundle, validate
from bundle_promotion.bundle.config.resource_kinds import NATIVE_KINDS
from bundle_promotion.bundle.config.steps.kinds import identifier_prefix
from bundle_promotion.bundle.deploy.engine import DEPLOYED_KINDS, KINDS, DeployResult, NativeEngine
from bundle_promotion.errors import DeployError
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files

ROOT = "/Workspace/Shared/kinds"
DASHBOARD = '{"pages": [{"name": "overview"}]}'
EVERY_KIND = """
  schemas:
    sales:
      catalog_name: main
      name: sales
      comment: sales data
      grants: [{principal: analysts, privileges: [USE_SCHEMA, SELECT]}]
  volumes:
    landing:
      catalog_name: main
      schema_name: ${resources.schemas.sales.name}
      name: landing
  registered_models:
    churn: {catalog_name: main, schema_name: sales, name: churn}
  experiments:
    churn: {name: /Shared/kinds/churn}
  secret_scopes:
    creds:
      name: kinds-creds
      permissions: [{level: READ, group_name: analysts}]
  clusters:
    shared:
      cluster_name: shared
      spark_version: 15.4.x-scala2.12
      num_workers: 1
      permissions: [{level: CAN_RESTART, group_name: analysts}]
  sql_warehouses:
    bi: {name: bi, cluster_size: Small}
  dashboards:
    overview: {display_name: overview, file_path: ./overview.lvdash.json, warehouse_id: abc}
  model_serving_endpoints:
    scorer:
      name: kinds-scorer
      config: {served_models: [{model_name: main.sales.churn, model_version: "1", workload_size: Small}]}
      permissions: [{level: CAN_QUERY, group_name: analysts}]
  apps:
    board: {name: kinds-board, source_code_path: ./app}
  quality_monitors:
    orders: {table_name: main.sales.orders, assets_dir: /Shared/kinds/monitor, output_schema_name: main.sales}
"""


@pytest.fixture
def hook(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook(
        "databricks_staging", retry_args={"stop": stop_after_attempt(3), "wait": wait_none()}
    )


def write_bundle(folder: Path, resources: str) -> Path:
    (folder / "app").mkdir(parents=True, exist_ok=True)
    (folder / "app" / "app.py").write_text("print('board')\n")
    (folder / "overview.lvdash.json").write_text(DASHBOARD)
    (folder / "databricks.yml").write_text(
        "bundle: {name: kinds}\nworkspace: {root_path: /Shared/kinds}\nresources:\n" + resources
    )
    return folder


def deploy(hook: WorkspaceHook, folder: Path, **engine: Any) -> DeployResult:
    return NativeEngine(hook, **engine).deploy(load_bundle(folder, "", current_user=current_user(hook)))


def current_user(hook: WorkspaceHook) -> dict[str, Any]:
    return hook.call("GET", "2.0/preview/scim/v2/Me")


def writes(emulator: WorkspaceEmulator, since: int = 0) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emulator.requests("staging")[since:] if r.method != "GET"]


def resource_writes(emulator: WorkspaceEmulator, since: int = 0) -> list[tuple[str, str]]:
    """The writes other than the deploy's own files, lock and state."""
    return [(method, path) for method, path in writes(emulator, since) if "/workspace/" not in path]


def state_entries(hook: WorkspaceHook) -> dict[str, Any]:
    state = workspace_files.read_json(hook, f"{ROOT}/state/resources.json")
    assert isinstance(state, dict)
    return dict(state["state"])


def test_the_engine_deploys_exactly_the_kinds_validation_lets_through() -> None:
    assert DEPLOYED_KINDS == NATIVE_KINDS
    assert set(DEPLOYED_KINDS) <= set(KINDS)


def test_every_kind_is_created_once_recorded_in_the_state_and_left_alone_on_a_redeploy(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path, EVERY_KIND)

    result = deploy(hook, folder)

    ids = {key: resource.id for key, resource in result.resources.items()}
    assert {resource.action for resource in result.resources.values()} == {"create"}
    assert ids["resources.schemas.sales"] == "main.sales"
    assert ids["resources.volumes.landing"] == "main.sales.landing"
    assert ids["resources.secret_scopes.creds"] == "kinds-creds"
    assert ids["resources.quality_monitors.orders"] == "main.sales.orders"
    assert (
        hook.call("GET", "2.1/clusters/get", query={"cluster_id": ids["resources.clusters.shared"]})[
            "autotermination_minutes"
        ]
        == 60
    )
    assert (
        hook.call("GET", f"2.0/sql/warehouses/{ids['resources.sql_warehouses.bi']}")["auto_stop_mins"] == 120
    )
    assert set(state_entries(hook)) == set(ids)
    before = len(workspaces.requests("staging"))

    again = deploy(hook, folder)

    assert {resource.action for resource in again.resources.values()} == {"skip"}
    assert writes(workspaces, since=before) == []


def test_a_volume_naming_a_schema_of_the_bundle_is_created_after_it(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    deploy(hook, write_bundle(tmp_path, EVERY_KIND))

    creates = [path for method, path in writes(workspaces) if method == "POST" and "unity-catalog" in path]
    assert creates.index("/api/2.1/unity-catalog/schemas") < creates.index("/api/2.1/unity-catalog/volumes")
    volume = hook.call("GET", "2.1/unity-catalog/volumes/main.sales.landing")
    assert (volume["schema_name"], volume["volume_type"]) == ("sales", "MANAGED")
    assert "volume_path" not in volume  # read-only in the config: never sent
    assert (
        state_entries(hook)["resources.volumes.landing"]["depends_on"][0]["node"] == "resources.schemas.sales"
    )


def test_a_schema_moved_to_another_catalog_is_recreated(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    schema = "  schemas:\n    sales: {{catalog_name: {catalog}, name: sales}}\n"
    deploy(hook, write_bundle(tmp_path, schema.format(catalog="main")))
    before = len(workspaces.requests("staging"))

    result = deploy(hook, write_bundle(tmp_path, schema.format(catalog="dev")))

    change = result.resources["resources.schemas.sales"]
    assert (change.action, change.id) == ("recreate", "dev.sales")
    assert resource_writes(workspaces, since=before) == [
        ("DELETE", "/api/2.1/unity-catalog/schemas/main.sales"),
        ("POST", "/api/2.1/unity-catalog/schemas"),
    ]


def test_a_changed_comment_updates_the_schema_in_place(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    schema = "  schemas:\n    sales: {{catalog_name: main, name: sales, comment: {comment}}}\n"
    deploy(hook, write_bundle(tmp_path, schema.format(comment="v1")))

    result = deploy(hook, write_bundle(tmp_path, schema.format(comment="v2")))

    assert result.resources["resources.schemas.sales"].action == "update"
    assert hook.call("GET", "2.1/unity-catalog/schemas/main.sales")["comment"] == "v2"


def test_a_renamed_volume_keeps_its_data_and_the_state_follows_its_new_name(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    volume = "  volumes:\n    landing: {{catalog_name: main, schema_name: sales, name: {name}}}\n"
    deploy(hook, write_bundle(tmp_path, volume.format(name="landing")))
    before = len(workspaces.requests("staging"))

    result = deploy(hook, write_bundle(tmp_path, volume.format(name="raw")))

    renamed = result.resources["resources.volumes.landing"]
    assert (renamed.action, renamed.id) == ("update", "main.sales.raw")
    assert resource_writes(workspaces, since=before) == [
        ("PATCH", "/api/2.1/unity-catalog/volumes/main.sales.landing")
    ]
    assert state_entries(hook)["resources.volumes.landing"]["__id__"] == "main.sales.raw"
    assert deploy(hook, tmp_path).resources["resources.volumes.landing"].action == "skip"


def test_a_kind_without_an_update_api_is_recreated_on_any_change(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    scope = "  secret_scopes:\n    creds: {{name: {name}}}\n"
    deploy(hook, write_bundle(tmp_path, scope.format(name="creds-v1")))

    result = deploy(hook, write_bundle(tmp_path, scope.format(name="creds-v2")))

    assert result.resources["resources.secret_scopes.creds"].action == "recreate"
    names = [scope["name"] for scope in hook.call("GET", "2.0/secrets/scopes/list")["scopes"]]
    assert names == ["creds-v2"]


def test_resources_removed_from_the_config_are_deleted(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    result = deploy(hook, write_bundle(tmp_path, EVERY_KIND))
    ids = {key: resource.id for key, resource in result.resources.items()}

    deploy(hook, write_bundle(tmp_path, "  schemas:\n    sales: {catalog_name: main, name: sales}\n"))

    assert set(state_entries(hook)) == {"resources.schemas.sales"}
    dashboard = hook.call("GET", f"2.0/lakeview/dashboards/{ids['resources.dashboards.overview']}")
    assert dashboard["lifecycle_state"] == "TRASHED"
    assert hook.call("GET", "2.0/secrets/scopes/list") == {}
    with pytest.raises(Exception, match="does not exist"):
        hook.call("GET", "2.0/apps/kinds-board")


def test_drift_on_the_server_is_reverted(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path, "  sql_warehouses:\n    bi: {name: bi, cluster_size: Small}\n")
    warehouse = deploy(hook, folder).resources["resources.sql_warehouses.bi"].id
    hook.call("POST", f"2.0/sql/warehouses/{warehouse}/edit", body={"auto_stop_mins": 5})

    result = deploy(hook, folder)

    assert result.resources["resources.sql_warehouses.bi"].action == "update"
    assert hook.call("GET", f"2.0/sql/warehouses/{warehouse}")["auto_stop_mins"] == 120


def test_grants_are_granted_and_what_the_config_no_longer_grants_is_revoked(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    schema = "  schemas:\n    sales:\n      catalog_name: main\n      name: sales\n      grants: {grants}\n"
    deploy(
        hook, write_bundle(tmp_path, schema.format(grants="[{principal: analysts, privileges: [SELECT]}]"))
    )
    hook.call(
        "PATCH",
        "2.1/unity-catalog/permissions/schema/main.sales",
        body={"changes": [{"principal": "interns", "add": ["SELECT"]}]},
    )

    deploy(
        hook, write_bundle(tmp_path, schema.format(grants="[{principal: analysts, privileges: [MODIFY]}]"))
    )

    assert hook.call("GET", "2.1/unity-catalog/permissions/schema/main.sales") == {
        "privilege_assignments": [{"principal": "analysts", "privileges": ["MODIFY"]}]
    }


def test_permissions_acls_and_publishing_reach_their_apis(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    result = deploy(hook, write_bundle(tmp_path, EVERY_KIND))
    ids = {key: resource.id for key, resource in result.resources.items()}

    cluster = hook.call("GET", f"2.0/permissions/clusters/{ids['resources.clusters.shared']}")
    assert {
        "group_name": "analysts",
        "all_permissions": [{"permission_level": "CAN_RESTART", "inherited": False}],
    } in (cluster["access_control_list"])
    endpoint_id = hook.call("GET", "2.0/serving-endpoints/kinds-scorer")["id"]
    endpoint = hook.call("GET", f"2.0/permissions/serving-endpoints/{endpoint_id}")
    assert any(entry.get("group_name") == "analysts" for entry in endpoint["access_control_list"])
    acls = hook.call("GET", "2.0/secrets/acls/list", query={"scope": "kinds-creds"})["items"]
    assert {"principal": "analysts", "permission": "READ"} in acls
    dashboard = hook.call("GET", f"2.0/lakeview/dashboards/{ids['resources.dashboards.overview']}")
    assert (dashboard["serialized_dashboard"], dashboard["published"]["embed_credentials"]) == (
        DASHBOARD,
        False,
    )
    assert hook.call("GET", "2.0/apps/kinds-board")["active_deployment"]["source_code_path"].endswith("/app")


@pytest.mark.parametrize(
    ("resources", "create"),
    [
        ("  schemas:\n    it: {catalog_name: main, name: sales}\n", "/api/2.1/unity-catalog/schemas"),
        ("  experiments:\n    it: {name: /Shared/kinds/churn}\n", "/api/2.0/mlflow/experiments/create"),
        (
            "  clusters:\n    it: {cluster_name: shared, spark_version: 15.4.x-scala2.12}\n",
            "/api/2.1/clusters/create",
        ),
        (
            "  dashboards:\n    it: {display_name: overview, file_path: ./overview.lvdash.json}\n",
            "/api/2.0/lakeview/dashboards",
        ),
    ],
    ids=["by-full-name", "by-unique-name", "by-name-among-unclaimed", "by-workspace-path"],
)
def test_a_lost_create_answer_is_found_and_never_sent_twice(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path, resources: str, create: str
) -> None:
    folder = write_bundle(tmp_path, resources)
    workspaces.lose_answers("staging", "drop", paths=(create,), count=1)

    result = deploy(hook, folder, unknown_outcome_grace=5)

    created = result.resources[f"resources.{resources.split(':')[0].strip()}.it"]
    assert created.action == "create"
    assert [path for _, path in writes(workspaces)].count(create) == 1
    assert state_entries(hook)[created.key]["__id__"] == created.id
    assert deploy(hook, folder).resources[created.key].action == "skip"


def test_a_name_taken_outside_the_bundle_is_not_taken_over(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    hook.call("POST", "2.1/unity-catalog/schemas", body={"catalog_name": "main", "name": "sales"})

    with pytest.raises(DeployError, match=r"resources\.schemas\.sales: .*already exists.*bind"):
        deploy(hook, write_bundle(tmp_path, "  schemas:\n    sales: {catalog_name: main, name: sales}\n"))


def test_a_kind_the_native_engine_does_not_deploy_fails_validation_but_not_for_the_cli(
    tmp_path: Path,
) -> None:
    folder = write_bundle(tmp_path, "  alerts:\n    late: {display_name: late orders}\n")

    native = validate(folder, "")
    cli = validate(folder, "", engine="cli")

    assert [error.field for error in native.errors] == ["resources.alerts.late"]
    assert "not deployed by the native engine" in str(native.errors[0])
    assert "engine: cli" in str(native.errors[0])
    assert cli.errors == []
    assert (
        cli.document["resources"]["alerts"]["late"]["parent_path"]
        == cli.document["workspace"]["resource_path"]
    )


def test_a_bundle_resolved_for_the_cli_is_refused_by_the_native_engine_before_any_write(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path, "  alerts:\n    late: {display_name: late orders}\n")
    bundle = load_bundle(folder, "", current_user=current_user(hook), engine="cli")

    with pytest.raises(DeployError, match="does not deploy alerts; deploy this bundle with `engine: cli`"):
        NativeEngine(hook).deploy(bundle)

    assert writes(workspaces) == []


def test_deployed_lists_the_jobs_and_pipelines_schedules_act_on(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path, "  jobs:\n    etl: {name: etl}\n" + EVERY_KIND)
    deploy(hook, folder)

    deployed = NativeEngine(hook).deployed(load_bundle(folder, "", current_user=current_user(hook)))

    assert sorted(deployed) == ["resources.jobs.etl"]


def test_destroy_deletes_a_volume_before_its_schema_and_summary_links_each_kind(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path, EVERY_KIND)
    deploy(hook, folder)
    bundle = load_bundle(folder, "", current_user=current_user(hook))
    summary = NativeEngine(hook).summary(bundle, "https://host")
    before = len(workspaces.requests("staging"))

    NativeEngine(hook).destroy(bundle)

    assert summary["resources"]["schemas"]["sales"]["url"] == "https://host/explore/data/main/sales"
    assert summary["resources"]["clusters"]["shared"]["url"].startswith("https://host/compute/clusters/")
    deletes = [path for method, path in resource_writes(workspaces, before) if method == "DELETE"]
    assert deletes.index("/api/2.1/unity-catalog/volumes/main.sales.landing") < deletes.index(
        "/api/2.1/unity-catalog/schemas/main.sales"
    )
    assert hook.call("GET", "2.0/secrets/scopes/list") == {}


def test_a_volume_in_a_schema_of_the_bundle_follows_its_prefixed_name_in_development(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    resources = (
        "  schemas: {raw: {catalog_name: main, name: raw}}\n"
        "  volumes: {landing: {catalog_name: main, schema_name: raw, name: landing}}\n"
        "targets:\n  dev: {mode: development}\n"
    )
    folder = write_bundle(tmp_path, resources)

    NativeEngine(hook).deploy(load_bundle(folder, "dev", current_user=current_user(hook)))

    prefix = identifier_prefix(f"[dev {current_user(hook)['userName'].split('@')[0]}] ")
    volume = hook.call("GET", f"2.1/unity-catalog/volumes/main.{prefix}raw.landing")
    assert volume["schema_name"] == f"{prefix}raw"


class _KilledAfter:
    """A workspace client whose worker dies right after the workspace answered one call."""

    def __init__(self, api: WorkspaceHook, path: str) -> None:
        self._api, self._path = api, path

    def call(self, method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = self._api.call(method, path, *args, **kwargs)
        if method == "POST" and f"/api/{path}" == self._path:
            raise SystemExit("worker killed")
        return answer


@pytest.mark.parametrize(
    ("resources", "create"),
    [
        ("  schemas:\n    it: {catalog_name: main, name: sales}\n", "/api/2.1/unity-catalog/schemas"),
        (
            "  clusters:\n    it: {cluster_name: shared, spark_version: 15.4.x-scala2.12}\n",
            "/api/2.1/clusters/create",
        ),
    ],
    ids=["unique-name", "name-shared-by-many"],
)
def test_a_deploy_killed_after_a_create_is_resumed_by_adopting_what_it_made(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path, resources: str, create: str
) -> None:
    bundle = load_bundle(write_bundle(tmp_path, resources), "", current_user=current_user(hook))
    with pytest.raises(SystemExit):
        NativeEngine(_KilledAfter(hook, create)).deploy(bundle)  # type: ignore[arg-type]

    result = NativeEngine(hook).deploy(bundle)

    created = result.resources[f"resources.{resources.split(':')[0].strip()}.it"]
    assert [path for _, path in writes(workspaces)].count(create) == 1
    assert state_entries(hook)[created.key]["__id__"] == created.id
    assert workspace_files.read_json(hook, f"{ROOT}/state/pending-creates.json") is None


def test_an_endpoints_config_and_tags_are_updated_in_place(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    endpoint = (
        "  model_serving_endpoints:\n    scorer:\n      name: scorer\n      tags: [{tags}]\n"
        "      config: {{served_entities: [{{entity_name: main.ml.churn, entity_version: '{version}'}}]}}\n"
    )
    deploy(hook, write_bundle(tmp_path, endpoint.format(tags="{key: team, value: ml}", version="1")))

    result = deploy(
        hook, write_bundle(tmp_path, endpoint.format(tags="{key: tier, value: gold}", version="2"))
    )

    assert result.resources["resources.model_serving_endpoints.scorer"].action == "update"
    served = hook.call("GET", "2.0/serving-endpoints/scorer")
    assert served["config"]["served_entities"][0]["entity_version"] == "2"
    assert served["tags"] == [{"key": "tier", "value": "gold"}]
    assert deploy(hook, tmp_path).resources["resources.model_serving_endpoints.scorer"].action == "skip"


def test_a_unity_catalog_name_stored_in_lower_case_is_not_a_change(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path, "  schemas:\n    sales: {catalog_name: Main, name: Sales}\n")
    first = deploy(hook, folder)

    again = deploy(hook, folder)

    assert hook.call("GET", "2.1/unity-catalog/schemas/main.sales")["name"] == "sales"
    assert first.resources["resources.schemas.sales"].id == "main.sales"
    assert again.resources["resources.schemas.sales"].action == "skip"
