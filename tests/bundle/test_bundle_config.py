"""Bundle config resolution, compared with what `databricks bundle validate` gives."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from textwrap import dedent

import pytest

from bundle_promotion.bundle.config.load import find_root_file, job_keys, load_bundle, target_names
from bundle_promotion.bundle.config.outline import read_outline
from bundle_promotion.errors import BundleConfigError

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLE_BUNDLE = PROJECT / "include" / "example_bundle"
MULTI_FILE = Path(__file__).resolve().parents[1] / "bundles" / "multi_file"
USER = {"userName": "jane.doe@example.com", "displayName": "Jane Doe"}


def write_bundle(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(dedent(text))
    return folder


def one_target_bundle(folder: Path, body: str = "", target: str = "") -> Path:
    """A bundle named `demo` with one target `dev`, `body` added at the root, `target` in dev."""
    target_block = "\n".join(f"    {line}" for line in dedent(target).splitlines())
    root = f"bundle:\n  name: demo\n{dedent(body)}\ntargets:\n  dev:\n    default: true\n{target_block}\n"
    return write_bundle(folder, {"databricks.yml": root})


# --- root file and includes ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml"])
def test_any_root_file_name_is_found(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("bundle: {name: demo}\n")

    assert find_root_file(tmp_path) == tmp_path / name
    assert load_bundle(tmp_path, "", current_user=USER).name == "demo"


def test_a_folder_without_root_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(BundleConfigError, match="no bundle configuration found") as raised:
        find_root_file(tmp_path)

    assert raised.value.file == str(tmp_path)


def test_includes_are_read_relative_to_the_root_file(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        {
            "databricks.yml": "bundle: {name: demo}\ninclude: [jobs/*.yml]\n",
            "jobs/b.yml": "resources: {jobs: {b: {name: B}}}\n",
            "jobs/a.yml": "resources: {jobs: {a: {name: A}}}\n",
        },
    )

    bundle = load_bundle(tmp_path, "", current_user=USER)

    assert list(bundle.resources["jobs"]) == ["a", "b"]  # sorted per glob, like the CLI


def test_an_include_that_matches_no_file_is_an_error(tmp_path: Path) -> None:
    write_bundle(tmp_path, {"databricks.yml": "bundle: {name: demo}\ninclude: [jobs.yml]\n"})

    with pytest.raises(
        BundleConfigError, match=re.escape("jobs.yml defined in 'include' section does not match any files")
    ):
        load_bundle(tmp_path, "", current_user=USER)


def test_a_resource_defined_in_two_files_is_an_error(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        {
            "databricks.yml": "bundle: {name: demo}\ninclude: ['*.job.yml']\n",
            "a.job.yml": "resources: {jobs: {etl: {name: A}}}\n",
            "b.job.yml": "resources: {jobs: {etl: {name: B}}}\n",
        },
    )

    with pytest.raises(
        BundleConfigError, match=r"resources\.jobs\.etl: already defined in .*a\.job\.yml"
    ) as raised:
        load_bundle(tmp_path, "", current_user=USER)

    assert raised.value.file.endswith("b.job.yml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    write_bundle(tmp_path, {"databricks.yml": "bundle: [unclosed\n"})

    with pytest.raises(BundleConfigError, match="invalid YAML") as raised:
        load_bundle(tmp_path, "")

    assert raised.value.file == str(tmp_path / "databricks.yml")


# --- targets ---------------------------------------------------------------------------------------


def test_the_default_target_is_chosen_when_none_is_given() -> None:
    assert load_bundle(MULTI_FILE, "").target == "dev"


def test_the_only_target_is_chosen_when_none_is_given(tmp_path: Path) -> None:
    write_bundle(tmp_path, {"databricks.yml": "bundle: {name: demo}\ntargets: {qa: {}}\n"})

    assert load_bundle(tmp_path, "", current_user=USER).target == "qa"


def test_several_targets_and_no_default_need_a_target(tmp_path: Path) -> None:
    write_bundle(tmp_path, {"databricks.yml": "bundle: {name: demo}\ntargets: {qa: {}, prod: {}}\n"})

    with pytest.raises(BundleConfigError, match="please specify a target; available targets: prod, qa"):
        load_bundle(tmp_path, "", current_user=USER)


def test_an_unknown_target_is_an_error_listing_the_targets() -> None:
    with pytest.raises(
        BundleConfigError, match=re.escape("test: no such target. Available targets: dev, prod")
    ):
        load_bundle(MULTI_FILE, "test")


def test_a_target_merges_maps_and_tasks_by_task_key() -> None:
    job = load_bundle(MULTI_FILE, "dev").resources["jobs"]["pipeline"]

    assert job["tags"] == {"team": "data", "owner": "dev-team"}
    assert [task["task_key"] for task in job["tasks"]] == ["ingest", "transform", "publish"]
    transform = job["tasks"][1]
    assert transform["max_retries"] == 5  # the target's value
    assert transform["depends_on"] == [{"task_key": "ingest"}]  # kept from the root


def test_other_lists_of_a_target_are_appended_like_the_cli(tmp_path: Path) -> None:
    one_target_bundle(
        tmp_path,
        body="""
        resources:
          jobs:
            etl:
              email_notifications: {on_failure: [a@example.com]}
        """,
        target="""
        resources:
          jobs:
            etl:
              email_notifications: {on_failure: [b@example.com]}
        """,
    )

    job = load_bundle(tmp_path, "dev", current_user=USER).resources["jobs"]["etl"]

    assert job["email_notifications"] == {"on_failure": ["a@example.com", "b@example.com"]}


def test_a_target_replaces_run_as_and_sets_the_mode(tmp_path: Path) -> None:
    one_target_bundle(
        tmp_path,
        body="""
        run_as: {user_name: root@example.com}
        resources: {jobs: {etl: {name: etl}, own: {name: own, run_as: {user_name: own@example.com}}}}
        """,
        target="""
        mode: production
        workspace: {root_path: /Shared/demo}
        run_as: {service_principal_name: 5f2e3c1a-0000-4000-8000-000000000001}
        """,
    )

    bundle = load_bundle(tmp_path, "dev")

    assert bundle.mode == "production"
    assert bundle.resources["jobs"]["etl"]["run_as"] == {
        "service_principal_name": "5f2e3c1a-0000-4000-8000-000000000001"
    }
    assert bundle.resources["jobs"]["own"]["run_as"] == {"user_name": "own@example.com"}


# --- variables -------------------------------------------------------------------------------------


def variables_bundle(folder: Path) -> Path:
    one_target_bundle(folder, body="variables:\n  catalog:\n    default: from_default\n")
    return folder


def test_a_variable_takes_its_default(tmp_path: Path) -> None:
    bundle = load_bundle(variables_bundle(tmp_path), "dev", current_user=USER)

    assert bundle.variables == {"catalog": "from_default"}


def test_a_target_value_wins_over_the_default(tmp_path: Path) -> None:
    one_target_bundle(tmp_path, body="variables: {catalog: {default: d}}", target="variables: {catalog: t}")

    assert load_bundle(tmp_path, "dev", current_user=USER).variables["catalog"] == "t"


def test_the_overrides_file_wins_over_the_target_value(tmp_path: Path) -> None:
    one_target_bundle(tmp_path, body="variables: {catalog: {default: d}}", target="variables: {catalog: t}")
    overrides = tmp_path / ".databricks" / "bundle" / "dev" / "variable-overrides.json"
    overrides.parent.mkdir(parents=True)
    overrides.write_text(json.dumps({"catalog": "from_file"}))

    assert load_bundle(tmp_path, "dev", current_user=USER).variables["catalog"] == "from_file"


def test_the_environment_wins_over_the_target_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one_target_bundle(tmp_path, body="variables: {catalog: {default: d}}", target="variables: {catalog: t}")
    monkeypatch.setenv("BUNDLE_VAR_catalog", "from_env")

    assert load_bundle(tmp_path, "dev", current_user=USER).variables["catalog"] == "from_env"


def test_a_var_override_wins_over_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    variables_bundle(tmp_path)
    monkeypatch.setenv("BUNDLE_VAR_catalog", "from_env")

    bundle = load_bundle(tmp_path, "dev", variables={"catalog": "from_var"}, current_user=USER)

    assert bundle.variables["catalog"] == "from_var"


def test_a_required_variable_without_value_is_the_cli_error(tmp_path: Path) -> None:
    one_target_bundle(tmp_path, body="variables: {catalog: {description: where to write}}")

    with pytest.raises(BundleConfigError) as raised:
        load_bundle(tmp_path, "dev", current_user=USER)

    assert raised.value.field == "variables.catalog"
    assert raised.value.problem == (
        'no value assigned to required variable catalog. Assignment can be done using "--var", '
        "by setting the BUNDLE_VAR_catalog environment variable, "
        "or in .databricks/bundle/dev/variable-overrides.json file"
    )


def test_a_target_cannot_assign_an_undeclared_variable(tmp_path: Path) -> None:
    one_target_bundle(tmp_path, target="variables: {catalog: t}")

    with pytest.raises(BundleConfigError, match="variable catalog is not defined but is assigned a value"):
        load_bundle(tmp_path, "dev", current_user=USER)


def test_a_var_override_of_an_undeclared_variable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BundleConfigError, match="variable schema has not been defined"):
        load_bundle(variables_bundle(tmp_path), "dev", variables={"schema": "x"}, current_user=USER)


# --- interpolation ---------------------------------------------------------------------------------


def test_whole_string_references_keep_their_type() -> None:
    job = load_bundle(MULTI_FILE, "dev").resources["jobs"]["pipeline"]

    assert job["max_concurrent_runs"] == 2
    assert job["email_notifications"] == {"on_failure": ["data-team@example.com"]}


def test_references_inside_strings_are_formatted_and_may_chain() -> None:
    job = load_bundle(MULTI_FILE, "prod").resources["jobs"]["pipeline"]

    assert job["name"] == "multi_file pipeline (prod-prod_catalog)"
    assert job["tasks"][1]["spark_python_task"]["parameters"] == ["--catalog", "prod_catalog"]


def test_resource_references_are_left_for_the_engine() -> None:
    job = load_bundle(MULTI_FILE, "dev").resources["jobs"]["report"]

    assert job["tasks"][0]["run_job_task"]["job_id"] == "${resources.jobs.pipeline.id}"


def test_an_unknown_reference_names_the_file_and_field(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        {
            "databricks.yml": "bundle: {name: demo}\ninclude: [etl.yml]\n",
            "etl.yml": "resources: {jobs: {etl: {tags: {owner: '${var.owner}'}}}}\n",
        },
    )

    with pytest.raises(BundleConfigError, match=r"reference does not exist: \$\{var.owner\}") as raised:
        load_bundle(tmp_path, "", current_user=USER)

    assert raised.value.file == str(tmp_path / "etl.yml")
    assert raised.value.field == "resources.jobs.etl.tags.owner"


def test_a_reference_cycle_is_an_error(tmp_path: Path) -> None:
    one_target_bundle(tmp_path, body="variables: {a: {default: '${var.b}'}, b: {default: 'x${var.a}'}}")

    with pytest.raises(BundleConfigError, match="cycle detected in references"):
        load_bundle(tmp_path, "dev", current_user=USER)


def test_a_map_cannot_be_formatted_into_a_string(tmp_path: Path) -> None:
    one_target_bundle(
        tmp_path,
        body="""
        variables: {tags: {type: complex, default: {a: b}}}
        resources: {jobs: {etl: {name: 'x ${var.tags}'}}}
        """,
    )

    with pytest.raises(BundleConfigError, match=r"cannot interpolate non-string value \$\{var.tags\}"):
        load_bundle(tmp_path, "dev", current_user=USER)


# --- workspace paths -------------------------------------------------------------------------------


def test_default_paths_live_in_the_users_home(tmp_path: Path) -> None:
    one_target_bundle(tmp_path)

    workspace = load_bundle(tmp_path, "dev", current_user=USER).workspace

    root = "/Workspace/Users/jane.doe@example.com/.bundle/demo/dev"
    assert workspace.root_path == root
    assert workspace.file_path == f"{root}/files"
    assert workspace.artifact_path == f"{root}/artifacts"
    assert workspace.state_path == f"{root}/state"
    assert workspace.resource_path == f"{root}/resources"


def test_the_current_user_gets_a_short_name(tmp_path: Path) -> None:
    one_target_bundle(
        tmp_path, body="resources: {jobs: {etl: {name: 'etl of ${workspace.current_user.short_name}'}}}"
    )

    bundle = load_bundle(tmp_path, "dev", current_user=USER)

    assert bundle.resources["jobs"]["etl"]["name"] == "etl of jane_doe"


def test_a_home_path_needs_the_current_user(tmp_path: Path) -> None:
    one_target_bundle(tmp_path)

    with pytest.raises(BundleConfigError, match="needs the deploying user's name: pass current_user"):
        load_bundle(tmp_path, "dev")


def test_absolute_paths_get_the_workspace_prefix() -> None:
    workspace = load_bundle(MULTI_FILE, "dev").workspace

    assert workspace.root_path == "/Workspace/Shared/.bundle/multi_file/dev"
    assert workspace.state_path == "/Workspace/Shared/.bundle/multi_file/dev/state"


# --- path translation ------------------------------------------------------------------------------


def test_library_globs_become_local_references_from_the_bundle_root() -> None:
    bundle = load_bundle(EXAMPLE_BUNDLE, "staging")

    for job in bundle.resources["jobs"].values():
        assert job["environments"][0]["spec"]["dependencies"] == ["./dist/*.whl"]


def test_pypi_libraries_are_left_alone() -> None:
    libraries = load_bundle(MULTI_FILE, "dev").resources["jobs"]["pipeline"]["tasks"][1]["libraries"]

    assert libraries == [{"whl": "./dist/*.whl"}, {"pypi": {"package": "requests==2.32.3"}}]


def test_notebooks_and_files_point_to_their_uploaded_copies() -> None:
    tasks = load_bundle(MULTI_FILE, "dev").resources["jobs"]["pipeline"]["tasks"]

    files = "/Workspace/Shared/.bundle/multi_file/dev/files"
    assert tasks[0]["notebook_task"]["notebook_path"] == f"{files}/src/ingest"  # relative to its include
    assert tasks[1]["spark_python_task"]["python_file"] == f"{files}/src/transform.py"
    assert tasks[2]["notebook_task"]["notebook_path"] == f"{files}/src/publish"  # relative to databricks.yml


def test_a_missing_notebook_is_an_error_naming_the_declaring_file(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        {
            "databricks.yml": "bundle: {name: demo}\ninclude: [jobs/*.yml]\n",
            "jobs/etl.yml": """
            resources:
              jobs:
                etl: {tasks: [{task_key: a, notebook_task: {notebook_path: nb.py}}]}
            """,
        },
    )

    with pytest.raises(BundleConfigError, match=re.escape("notebook nb.py not found")) as raised:
        load_bundle(tmp_path, "", current_user=USER)

    assert raised.value.file == str(tmp_path / "jobs" / "etl.yml")
    assert raised.value.field == "resources.jobs.etl.tasks[0].notebook_task.notebook_path"


def test_a_notebook_task_needs_a_notebook(tmp_path: Path) -> None:
    write_bundle(
        tmp_path,
        {
            "databricks.yml": "bundle: {name: demo}\n"
            "resources: {jobs: {etl: {tasks: [{task_key: a, notebook_task: {notebook_path: plain.py}}]}}}",
            "plain.py": "print('not a notebook')\n",
        },
    )

    with pytest.raises(BundleConfigError, match=re.escape("plain.py is not a notebook")):
        load_bundle(tmp_path, "", current_user=USER)


def test_artifact_paths_become_absolute() -> None:
    artifact = load_bundle(EXAMPLE_BUNDLE, "dev").artifacts["example_etl_wheel"]

    assert (artifact.type, artifact.build, artifact.path) == ("whl", "uv build --wheel", EXAMPLE_BUNDLE)


# --- jobs and modes --------------------------------------------------------------------------------


def test_jobs_are_marked_as_deployed_by_a_bundle() -> None:
    job = load_bundle(EXAMPLE_BUNDLE, "prod").resources["jobs"]["etl"]

    assert job["deployment"] == {
        "kind": "BUNDLE",
        "metadata_file_path": "/Workspace/Shared/.bundle/example_etl/prod/state/metadata.json",
    }
    assert (job["edit_mode"], job["format"]) == ("UI_LOCKED", "MULTI_TASK")


def test_production_mode_needs_a_root_path_set_by_the_target(tmp_path: Path) -> None:
    one_target_bundle(tmp_path, body="workspace: {root_path: /Shared/demo}", target="mode: production")

    with pytest.raises(BundleConfigError) as raised:
        load_bundle(tmp_path, "dev", current_user=USER)

    assert raised.value.field == "targets.dev.workspace.root_path"
    assert raised.value.problem == (
        "target with 'mode: production' must set 'workspace.root_path' to make sure only one copy is deployed"
    )


def test_production_mode_accepts_jobs_that_all_run_as_someone(tmp_path: Path) -> None:
    one_target_bundle(
        tmp_path,
        body="run_as: {user_name: etl@example.com}\nresources: {jobs: {etl: {name: etl}}}",
        target="mode: production",
    )

    assert load_bundle(tmp_path, "dev", current_user=USER).mode == "production"


# --- parse-time reads ------------------------------------------------------------------------------


def test_target_names_and_job_keys_read_every_file() -> None:
    assert target_names(EXAMPLE_BUNDLE) == ["dev", "prod", "staging"]
    assert job_keys(EXAMPLE_BUNDLE) == ["etl", "integration_tests"]


def test_job_keys_include_jobs_only_a_target_defines(tmp_path: Path) -> None:
    one_target_bundle(tmp_path, body="resources: {jobs: {etl: {}}}", target="resources: {jobs: {smoke: {}}}")

    assert job_keys(tmp_path) == ["etl", "smoke"]


def test_parse_time_reads_resolve_nothing(tmp_path: Path) -> None:
    """They work on a bundle that cannot be resolved without its variables, and stay fast."""
    one_target_bundle(
        tmp_path, body="variables: {catalog: {}}\nresources: {jobs: {etl: {name: '${var.catalog}'}}}"
    )

    started = time.perf_counter()
    for _ in range(20):
        assert target_names(tmp_path) == ["dev"]
        assert job_keys(tmp_path) == ["etl"]
    assert (time.perf_counter() - started) / 20 < 0.05


# --- validate output -------------------------------------------------------------------------------


def test_validate_json_of_the_example_bundle() -> None:
    document = load_bundle(EXAMPLE_BUNDLE, "staging").as_validate_json()

    assert list(document) == ["bundle", "workspace", "variables", "artifacts", "resources", "sync"]
    bundle = {"name": "example_etl", "target": "staging", "environment": "staging", "mode": "production"}
    assert {key: document["bundle"][key] for key in bundle} == bundle
    assert document["bundle"]["git"]["bundle_root_path"] == "include/example_bundle"
    assert document["workspace"]["file_path"] == "/Workspace/Shared/.bundle/example_etl/staging/files"
    assert document["variables"]["catalog"]["value"] == "staging"
    assert document["variables"]["schema"]["value"] == "sales"
    assert document["artifacts"]["example_etl_wheel"]["path"] == str(EXAMPLE_BUNDLE)
    assert document["sync"] == {"paths": ["."]}
    etl = document["resources"]["jobs"]["etl"]
    assert etl["name"] == "[staging] example_etl nightly"
    assert etl["tasks"][0]["python_wheel_task"]["parameters"] == ["--catalog", "staging", "--schema", "sales"]
    assert document["resources"]["jobs"]["integration_tests"]["parameters"] == [
        {"name": "catalog", "default": "staging"}
    ]
    json.dumps(document)  # plain JSON, ready to print


# --- the bundle command ----------------------------------------------------------------------------


def test_bundle_validate_prints_only_the_resolved_json_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    from bundle_promotion.cli import main

    code = main(["bundle", "validate", "-t", "staging", "-o", "json", "--bundle-dir", str(EXAMPLE_BUNDLE)])

    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out) == load_bundle(EXAMPLE_BUNDLE, "staging").as_validate_json()
    assert captured.err == "Validation OK!\n"


def test_bundle_validate_in_text_prints_validation_ok_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    from bundle_promotion.cli import main

    code = main(["bundle", "validate", "-t", "staging", "--bundle-dir", str(EXAMPLE_BUNDLE)])

    assert code == 0
    assert capsys.readouterr().out.endswith("\nValidation OK!\n")


def test_bundle_validate_takes_the_target_from_databricks_bundle_target(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bundle_promotion.cli import main

    monkeypatch.setenv("DATABRICKS_BUNDLE_TARGET", "staging")

    code = main(["bundle", "validate", "-o", "json", "--bundle-dir", str(EXAMPLE_BUNDLE)])

    assert code == 0
    assert json.loads(capsys.readouterr().out)["bundle"]["target"] == "staging"


def test_bundle_validate_of_an_invalid_bundle_prints_the_json_and_found_1_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bundle_promotion.cli import main

    one_target_bundle(tmp_path, body="variables: {catalog: {}}")

    code = main(["bundle", "validate", "-o", "json", "--var", "schema=x", "--bundle-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["bundle"]["name"] == "demo"
    assert captured.err.startswith("Error: ")
    assert "variable schema has not been defined" in captured.err
    assert captured.err.rstrip().endswith("Found 1 error")


def test_the_outline_reads_pipeline_keys_for_the_deploy_tasks_links(tmp_path: Path) -> None:
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: b}\nresources: {pipelines: {sales: {name: sales}}}\n"
        "targets: {dev: {resources: {pipelines: {debug: {name: debug}}}}}\n"
    )

    assert read_outline(tmp_path).pipeline_keys == ("debug", "sales")
