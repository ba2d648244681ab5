"""The promotion spec: what a valid spec gives the DAG factory, and how every bad spec is reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bundle_promotion.errors import SpecError
from bundle_promotion.spec import PromotionSpec, Rollback, load_spec, load_specs, spec_json_schema

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLE_BUNDLE = PROJECT / "include" / "example_bundle"
EXAMPLE_SPEC = PROJECT / "include" / "promotions" / "example.yaml"

# A valid spec whose repo is remote, so nothing is checked against a bundle on disk.
VALID = """\
bundle: sales
source:
  repo: https://github.com/acme/sales.git
environments:
  - name: dev
    target: dev
    databricks_conn_id: databricks_dev
    schedules: paused
    tests: [integration_tests]
  - name: prod
    target: prod
    databricks_conn_id: databricks_prod
    schedules: unpaused
"""


def edited(old: str, new: str, text: str = VALID) -> str:
    assert old in text, f"{old!r} is not in the spec being edited"
    return text.replace(old, new, 1)


def write_spec(folder: Path, text: str, name: str = "sales.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def spec_error(folder: Path, text: str) -> SpecError:
    with pytest.raises(SpecError) as raised:
        load_spec(write_spec(folder, text))
    return raised.value


def bundle_repo(folder: Path) -> Path:
    """A local git working tree holding a copy of the example bundle."""
    repo = folder / "example_repo"
    shutil.copytree(EXAMPLE_BUNDLE, repo)
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True)
    return repo


def local_spec(text: str = VALID) -> str:
    """The spec text, sourced from the local example repo next to the spec file."""
    return edited("repo: https://github.com/acme/sales.git", "repo: example_repo", text)


# --- a valid spec ---------------------------------------------------------------------------


def test_valid_spec_loads_environments_in_order(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, VALID))
    assert [env.name for env in spec.environments] == ["dev", "prod"]
    assert [suite.job for suite in spec.environments[0].tests] == ["integration_tests"]
    assert spec.environments[1].schedules == "unpaused"


def test_optional_fields_take_their_defaults(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, VALID))
    prod = spec.environments[1]
    assert (spec.description, spec.owner, spec.source.path) == (None, "bundle-promotion", ".")
    assert (prod.tests, prod.gates, prod.rollback) == ((), (), Rollback())


def test_empty_gates_and_rollback_are_accepted(tmp_path: Path) -> None:
    text = edited("    schedules: unpaused\n", "    schedules: unpaused\n    gates: []\n    rollback: {}\n")
    assert load_spec(write_spec(tmp_path, text)).environments[1].gates == ()


def test_dag_id_is_promote_and_the_bundle_name(tmp_path: Path) -> None:
    assert load_spec(write_spec(tmp_path, VALID)).dag_id == "promote__sales"


def test_spec_remembers_its_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path, VALID)
    assert load_spec(path).spec_file == path


def test_spec_file_is_not_part_of_the_serialised_spec(tmp_path: Path) -> None:
    dumped = load_spec(write_spec(tmp_path, VALID)).model_dump()
    assert "spec_file" not in dumped
    assert "_spec_file" not in dumped


def test_spec_is_immutable(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, VALID))
    with pytest.raises(ValidationError):
        spec.bundle = "other"  # type: ignore[misc]


def test_source_path_is_normalised(tmp_path: Path) -> None:
    text = edited("  repo: https://github.com/acme/sales.git\n", "  repo: x.git\n  path: ./bundles//sales/\n")
    assert load_spec(write_spec(tmp_path, text)).source.path == "bundles/sales"


# --- where the repository is ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/sales.git",
        "ssh://git@github.com/acme/sales.git",
        "git@github.com:acme/sales.git",
        "file:///srv/git/sales.git",
    ],
)
def test_repo_location_keeps_urls_as_written(tmp_path: Path, url: str) -> None:
    spec = load_spec(write_spec(tmp_path, edited("https://github.com/acme/sales.git", url)))
    assert spec.repo_location() == url


def test_repo_location_resolves_a_relative_path_against_the_spec_folder(tmp_path: Path) -> None:
    (tmp_path / "promotions").mkdir()
    spec = load_spec(
        write_spec(tmp_path / "promotions", local_spec().replace("example_repo", "../repos/sales"))
    )
    assert spec.repo_location() == str(tmp_path.resolve() / "repos" / "sales")


def test_repo_location_expands_variables_and_home_so_a_copied_spec_finds_the_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUNDLE_REPOS", str(tmp_path / "repos"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for folder in ("promotions", "copied/elsewhere"):
        (tmp_path / folder).mkdir(parents=True)

    for folder in ("promotions", "copied/elsewhere"):
        spec = load_spec(
            write_spec(tmp_path / folder, local_spec().replace("example_repo", "$BUNDLE_REPOS/sales"))
        )
        assert spec.repo_location() == str(tmp_path.resolve() / "repos" / "sales")
    spec = load_spec(write_spec(tmp_path / "promotions", local_spec().replace("example_repo", "~/git/sales")))
    assert spec.repo_location() == str(tmp_path.resolve() / "home" / "git" / "sales")


def test_bundle_dir_is_none_for_a_remote_repo(tmp_path: Path) -> None:
    assert load_spec(write_spec(tmp_path, VALID)).bundle_dir() is None


def test_bundle_dir_is_none_when_the_local_repo_does_not_exist(tmp_path: Path) -> None:
    assert load_spec(write_spec(tmp_path, local_spec())).bundle_dir() is None


def test_bundle_dir_is_none_for_a_folder_that_is_no_git_working_tree(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE_BUNDLE, tmp_path / "example_repo")
    assert load_spec(write_spec(tmp_path, local_spec())).bundle_dir() is None


def test_bundle_dir_is_the_bundle_folder_in_a_local_working_tree(tmp_path: Path) -> None:
    repo = bundle_repo(tmp_path)
    assert load_spec(write_spec(tmp_path, local_spec())).bundle_dir() == repo.resolve()


def test_bundle_dir_follows_a_file_url(tmp_path: Path) -> None:
    repo = bundle_repo(tmp_path)
    text = edited("https://github.com/acme/sales.git", repo.resolve().as_uri())
    assert load_spec(write_spec(tmp_path, text)).bundle_dir() == repo.resolve()


# --- bad specs ------------------------------------------------------------------------------

BAD_SPECS = [
    pytest.param(
        "bundle: sales\nsource:\n  repo: x.git\n   path: .\n",
        4,
        "",
        ["invalid YAML: mapping values are not allowed", "at column 8", "indentation"],
        id="yaml-syntax",
    ),
    pytest.param(
        "bundle: 'sales\nsource: x\n",
        3,
        "",
        ["invalid YAML: while scanning a quoted scalar on line 1", "end of stream"],
        id="yaml-unclosed-quote",
    ),
    pytest.param(
        "", None, "", ["the file is empty", "needs bundle, source and environments"], id="empty-file"
    ),
    pytest.param(
        "- bundle: sales\n", 1, "", ["the top level must be a mapping", "got a list"], id="top-level-list"
    ),
    pytest.param(
        VALID + "---\nbundle: other\n",
        14,
        "",
        ["expected a single document", "found another document"],
        id="two-yaml-documents",
    ),
    pytest.param(
        edited("bundle: sales", "bundle: !env BUNDLE"),
        1,
        "",
        ["invalid YAML", "tag '!env'"],
        id="unknown-yaml-tag",
    ),
    pytest.param(
        edited("environments:", "enviroments:"),
        4,
        "enviroments",
        ["unknown key 'enviroments'; did you mean 'environments'?", "bundle, description, owner, source"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        edited("    schedules: unpaused", "    schedules: unpaused\n    notify: team@acme.com"),
        14,
        "environments[1].notify",
        ["unknown key 'notify'", "name, target, databricks_conn_id, schedules, tests, gates, rollback"],
        id="unknown-environment-key",
    ),
    pytest.param(
        edited("    target: prod\n", ""),
        10,
        "environments[1].target",
        ["is required but missing", "The bundle target to deploy"],
        id="missing-environment-field",
    ),
    pytest.param(
        edited("source:\n  repo: https://github.com/acme/sales.git\n", ""),
        1,
        "source",
        ["is required but missing", "Where the bundle's source lives"],
        id="missing-top-level-field",
    ),
    pytest.param(
        edited("tests: [integration_tests]", "tests: integration_tests"),
        9,
        "environments[0].tests",
        ["expected a list; got the text 'integration_tests'", "write it as a list: [integration_tests]"],
        id="string-instead-of-list",
    ),
    pytest.param(
        edited("target: prod", "target: 1"),
        11,
        "environments[1].target",
        ["expected text; got 1, which YAML reads as the number 1", "quote it"],
        id="number-instead-of-text",
    ),
    pytest.param(
        edited("schedules: paused", "schedules: on"),
        8,
        "environments[0].schedules",
        ["expected 'paused' or 'unpaused'; got on, which YAML reads as the boolean true"],
        id="yaml-boolean-instead-of-enum",
    ),
    pytest.param(
        edited("schedules: paused", "schedules: stopped"),
        8,
        "environments[0].schedules",
        ["expected 'paused' or 'unpaused'; got the text 'stopped'"],
        id="invalid-enum",
    ),
    pytest.param(
        VALID.split("environments:")[0] + "environments: []\n",
        4,
        "environments",
        ["needs at least one environment"],
        id="no-environments",
    ),
    pytest.param(
        edited("name: prod", "name: dev"),
        10,
        "environments[1].name",
        ["environment name 'dev' is already used by environments[0]", "unique"],
        id="duplicate-environment-name",
    ),
    pytest.param(
        edited(
            "target: prod\n    databricks_conn_id: databricks_prod",
            "target: dev\n    databricks_conn_id: databricks_dev",
        ),
        11,
        "environments[1].target",
        ["deploys target 'dev' through connection 'databricks_dev', exactly like environments[0] ('dev')"],
        id="two-environments-deploy-the-same-target-and-connection",
    ),
    pytest.param(
        edited("bundle: sales", "bundle: Sales-ETL"),
        1,
        "bundle",
        ["use only a-z, 0-9 and _", "promote__<bundle>", "got 'Sales-ETL'; try 'sales_etl'"],
        id="bad-bundle-name",
    ),
    pytest.param(
        edited("name: prod", "name: 1prod"),
        10,
        "environments[1].name",
        ["must start with a lowercase letter", "TaskGroup id", "got '1prod'"],
        id="bad-environment-name",
    ),
    pytest.param(
        edited("    schedules: unpaused", "    schedules: unpaused\n    gates: [approvl]"),
        14,
        "environments[1].gates[0].approvl",
        ["unknown key 'approvl'", "did you mean 'approval'?"],
        id="unknown-gate",
    ),
    pytest.param(
        edited(
            "    schedules: unpaused",
            "    schedules: unpaused\n    gates: [approval: {groups: [{name: qc}]}]",
        ),
        14,
        "environments[1].gates[0].approval.groups[0]",
        ["name who may approve: list users, give a role, or both"],
        id="approval-group-without-approvers",
    ),
    pytest.param(
        edited(
            "    schedules: unpaused",
            "    schedules: unpaused\n"
            '    gates: [approval: {groups: [{name: qc, users: [alice, "\u0441arol"]}]}]',
        ),
        14,
        "environments[1].gates[0].approval.groups[0].users[1]",
        ["mixes scripts"],
        id="approval-user-with-a-cyrillic-letter",
    ),
    pytest.param(
        edited(
            "    schedules: unpaused",
            "    schedules: unpaused\n    gates: [approval: {groups: [{name: qc, role: Op}],"
            " identities: {alice: {emails: [a@corp.example]}, bob: {emails: [a@corp.example]}}}]",
        ),
        14,
        "environments[1].gates[0].approval.identities.bob",
        ["'a@corp.example' is given to both alice and bob; give it to one"],
        id="an-address-mapped-to-two-users",
    ),
    pytest.param(
        edited(
            "    schedules: unpaused",
            "    schedules: unpaused\n    gates: [window: {deny: [{cron: '0 25 * * *', duration: PT1H}]}]",
        ),
        14,
        "environments[1].gates[0].window.deny[0].cron",
        ["'0 25 * * *' is not a cron expression"],
        id="bad-cron",
    ),
    pytest.param(
        edited("    schedules: unpaused", "    schedules: unpaused\n    rollback: {tables: [main.s.orders]}"),
        14,
        "environments[1].rollback.warehouse_id",
        ["tables need a warehouse_id"],
        id="rollback-tables-without-warehouse",
    ),
    pytest.param(
        edited(
            "  repo: https://github.com/acme/sales.git",
            "  repo: https://github.com/acme/sales.git\n  path: /etc",
        ),
        4,
        "source.path",
        ["must be relative to the repository root", "got '/etc'"],
        id="absolute-source-path",
    ),
    pytest.param(
        edited(
            "  repo: https://github.com/acme/sales.git",
            "  repo: https://github.com/acme/sales.git\n  path: a/../../b",
        ),
        4,
        "source.path",
        ["must stay inside the repository, but 'a/../../b' leads out of it"],
        id="source-path-escapes-the-repo",
    ),
    pytest.param(
        edited("https://", "ftp://"),
        3,
        "source.repo",
        ["unsupported URL scheme 'ftp://'", "https://", "ssh://", "file://", "a local path"],
        id="unsupported-url-scheme",
    ),
    pytest.param(
        edited("[integration_tests]", "[integration_tests, smoke, integration_tests]"),
        9,
        "environments[0].tests[2]",
        ["job 'integration_tests' is listed twice"],
        id="duplicate-test-job",
    ),
    pytest.param(
        edited("    schedules: unpaused", "    schedules: unpaused\n    target: production"),
        14,
        "environments[1].target",
        ["appears twice (also on line 11)"],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        edited("databricks_conn_id: databricks_prod", "databricks_conn_id: ''"),
        12,
        "environments[1].databricks_conn_id",
        ["must not be empty"],
        id="empty-connection-id",
    ),
]


@pytest.mark.parametrize(("text", "line", "field", "fragments"), BAD_SPECS)
def test_bad_spec_is_reported_with_file_line_field_and_fix(
    tmp_path: Path, text: str, line: int | None, field: str, fragments: list[str]
) -> None:
    error = spec_error(tmp_path, text)
    where = f"{tmp_path / 'sales.yaml'}:{line}" if line else f"{tmp_path / 'sales.yaml'}"
    assert str(error).startswith(f"{where}: {field}: " if field else f"{where}: ")
    assert (error.file, error.line, error.field) == (str(tmp_path / "sales.yaml"), line, field)
    for fragment in fragments:
        assert fragment in error.problem


def test_every_problem_of_a_file_is_reported_first_one_first(tmp_path: Path) -> None:
    text = edited("schedules: paused", "schedules: on", edited("bundle: sales", "bundle: Sales"))
    error = spec_error(tmp_path, text)
    assert (error.field, error.line) == ("bundle", 1)
    assert f"\n{tmp_path / 'sales.yaml'}:8: environments[0].schedules: expected 'paused'" in str(error)


def test_a_misspelt_key_is_not_also_reported_as_missing(tmp_path: Path) -> None:
    error = spec_error(tmp_path, edited("environments:", "environment:"))
    assert "missing" not in str(error)


def test_a_missing_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "nowhere.yaml")


# --- checks against the bundle on disk ------------------------------------------------------


def test_unknown_target_lists_the_targets_of_the_bundle(tmp_path: Path) -> None:
    repo = bundle_repo(tmp_path)
    error = spec_error(tmp_path, local_spec(edited("target: prod", "target: stg")))
    assert (error.field, error.line) == ("environments[1].target", 11)
    assert (
        f"unknown target 'stg'; the bundle at {repo.resolve()} defines: dev, prod, staging" in error.problem
    )
    assert "did you mean 'staging'?" in error.problem


def test_test_job_that_is_not_a_job_of_the_bundle_is_reported(tmp_path: Path) -> None:
    repo = bundle_repo(tmp_path)
    error = spec_error(tmp_path, local_spec(edited("[integration_tests]", "[integration_tests, smoke]")))
    assert (error.field, error.line) == ("environments[0].tests[1]", 9)
    assert (
        f"'smoke' is not a job of the bundle at {repo.resolve()}; its jobs are: etl, integration_tests"
        in str(error)
    )


def test_a_local_bundle_that_cannot_be_read_is_reported_on_source(tmp_path: Path) -> None:
    repo = bundle_repo(tmp_path)
    (repo / "databricks.yml").unlink()
    error = spec_error(tmp_path, local_spec())
    assert (error.field, error.line) == ("source", 2)
    assert f"cannot read the bundle at {repo.resolve()}: " in error.problem
    assert "no bundle configuration found" in error.problem


def test_targets_and_jobs_of_a_local_bundle_that_match_load(tmp_path: Path) -> None:
    bundle_repo(tmp_path)
    assert load_spec(write_spec(tmp_path, local_spec())).bundle_dir() is not None


def test_targets_are_not_checked_when_the_bundle_is_not_on_disk(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, edited("target: prod", "target: anything")))
    assert spec.environments[1].target == "anything"


# --- folders of specs -----------------------------------------------------------------------


def test_load_specs_reads_yaml_and_yml_files_sorted_by_name(tmp_path: Path) -> None:
    write_spec(tmp_path, edited("bundle: sales", "bundle: zeta"), "z.yml")
    write_spec(tmp_path, VALID, "a.yaml")
    (tmp_path / "notes.txt").write_text("not a spec")
    assert [spec.spec_file.name for spec in load_specs(tmp_path) if isinstance(spec, PromotionSpec)] == [
        "a.yaml",
        "z.yml",
    ]


def test_load_specs_gives_a_bad_file_its_error_and_loads_the_others(tmp_path: Path) -> None:
    write_spec(tmp_path, "bundle: [", "a.yaml")
    write_spec(tmp_path, VALID, "b.yaml")
    bad, good = load_specs(tmp_path)
    assert isinstance(bad, SpecError)
    assert bad.file == str(tmp_path / "a.yaml")
    assert isinstance(good, PromotionSpec)


def test_two_specs_of_the_same_bundle_fail_on_the_second_file(tmp_path: Path) -> None:
    write_spec(tmp_path, VALID, "a.yaml")
    write_spec(tmp_path, "# the same bundle again\n" + VALID, "b.yaml")
    first, second = load_specs(tmp_path)
    assert isinstance(first, PromotionSpec)
    assert isinstance(second, SpecError)
    assert (second.file, second.field, second.line) == (str(tmp_path / "b.yaml"), "bundle", 2)
    assert f"bundle 'sales' is already promoted by {tmp_path / 'a.yaml'}" in second.problem


def test_load_specs_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert load_specs(tmp_path / "nowhere") == []


# --- schema, example, import cost -----------------------------------------------------------


def test_json_schema_forbids_unknown_keys_and_requires_the_core_fields() -> None:
    schema = spec_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"bundle", "source", "environments"}
    assert set(schema["$defs"]["Environment"]["required"]) == {
        "name",
        "target",
        "databricks_conn_id",
        "schedules",
    }


def test_json_schema_does_not_expose_the_spec_file() -> None:
    assert "spec_file" not in spec_json_schema()["properties"]


def test_example_spec_promotes_dev_staging_prod() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    assert spec.dag_id == "promote__example"
    assert [(env.name, env.databricks_conn_id, env.schedules) for env in spec.environments] == [
        ("dev", "databricks_dev", "paused"),
        ("staging", "databricks_staging", "paused"),
        ("prod", "databricks_prod", "unpaused"),
    ]


def test_example_spec_matches_the_example_bundle(tmp_path: Path) -> None:
    repo = bundle_repo(tmp_path)
    spec_text = EXAMPLE_SPEC.read_text().replace("../../.demo/example_bundle", repo.name)
    assert load_spec(write_spec(tmp_path, spec_text)).bundle_dir() == repo.resolve()


def test_importing_the_spec_module_does_not_import_airflow() -> None:
    probe = "import sys, bundle_promotion.spec; print(any(m.split('.')[0] == 'airflow' for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "False"


PROD_SUITE = """\
    schedules: unpaused
    production: true
    tests:
      - job: smoke
        params: {catalog: prod}
        timeout: 30m
        non_destructive: true
"""


def test_a_test_suite_carries_its_params_timeout_and_non_destructive_flag(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, edited("    schedules: unpaused\n", PROD_SUITE)))

    [suite] = spec.environments[1].tests

    assert (suite.job, suite.params, suite.timeout, suite.non_destructive) == (
        "smoke",
        {"catalog": "prod"},
        1800,
        True,
    )
    assert spec.environments[1].production


def test_a_bare_job_key_is_a_suite_with_the_defaults(tmp_path: Path) -> None:
    [suite] = load_spec(write_spec(tmp_path, VALID)).environments[0].tests

    assert (suite.job, suite.params, suite.timeout, suite.non_destructive) == (
        "integration_tests",
        {},
        3600,
        False,
    )


def test_production_refuses_a_suite_not_marked_non_destructive(tmp_path: Path) -> None:
    error = spec_error(
        tmp_path, edited("    non_destructive: true\n", "", edited("    schedules: unpaused\n", PROD_SUITE))
    )

    assert error.field == "environments[1].tests[0]"
    assert "'prod' is production, where only suites marked non_destructive: true run" in str(error)
    assert "mark 'smoke' non_destructive: true" in str(error)


def test_a_timeout_that_is_no_duration_names_the_accepted_forms(tmp_path: Path) -> None:
    error = spec_error(
        tmp_path,
        edited("timeout: 30m", "timeout: half an hour", edited("    schedules: unpaused\n", PROD_SUITE)),
    )

    assert error.field == "environments[1].tests[0].timeout"
    assert "must be a duration like 90s, 30m, 2h, 7d or ISO 8601 (PT2H, P7D)" in str(error)


def test_a_test_suite_timeout_takes_days_like_every_other_duration(tmp_path: Path) -> None:
    spec = load_spec(
        write_spec(
            tmp_path, edited("timeout: 30m", "timeout: 7d", edited("    schedules: unpaused\n", PROD_SUITE))
        )
    )

    assert spec.environments[1].tests[0].timeout == 7 * 24 * 3600


def approval_gate(options: str) -> str:
    return edited("    schedules: unpaused", f"    schedules: unpaused\n    gates: [approval: {{{options}}}]")


@pytest.mark.parametrize(
    ("options", "field", "problem"),
    [
        ("groups: [{name: qc, role: Op}], expires_after: -P7D", "expires_after", "must be longer than zero"),
        ("groups: [{name: qc, role: Op}], expires_after: PT0S", "expires_after", "must be longer than zero"),
        ("groups: [{name: qc, role: Op}], expires_after: 0d", "expires_after", "must be longer than zero"),
        ("groups: [{name: qc, role: Op}], expires_after: true", "expires_after", "got true"),
        ("groups: [{name: qc, role: Op, min: true}]", "groups[0].min", "integer"),
        ("groups: [{name: qc, role: Op, min: 1.5}]", "groups[0].min", "integer"),
        (
            "groups: [{name: qc, role: Op}], signature_lockout: {attempts: 0}",
            "signature_lockout.attempts",
            "greater than or equal to 1",
        ),
    ],
    ids=["negative", "zero", "zero-days", "boolean", "min-boolean", "min-fraction", "no-attempts"],
)
def test_approval_durations_are_positive_and_minimums_whole_numbers(
    tmp_path: Path, options: str, field: str, problem: str
) -> None:
    error = spec_error(tmp_path, approval_gate(options))

    assert error.field == f"environments[1].gates[0].approval.{field}"
    assert problem in error.problem


def test_an_approval_expiry_takes_days(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, approval_gate("groups: [{name: qc, role: Op}], expires_after: 7d")))

    [gate] = spec.environments[1].gates
    assert gate.approval is not None
    assert gate.approval.expires_after == timedelta(days=7)


def test_hold_clearers_name_someone(tmp_path: Path) -> None:
    error = spec_error(
        tmp_path, edited("    schedules: unpaused", "    schedules: unpaused\n    hold_clearers: {}")
    )

    assert error.field == "environments[1].hold_clearers"
    assert "name who may clear a hold: list users, give a role, or both" in error.problem


def test_load_specs_of_one_bundle_validates_only_the_files_naming_it(tmp_path: Path) -> None:
    write_spec(tmp_path, edited("bundle: sales", "bundle: orders", VALID), "orders.yaml")
    write_spec(tmp_path, edited("schedules: paused", "schedules: sometimes"), "sales.yaml")
    write_spec(tmp_path, VALID.replace("sales", "sales_again"), "sales_again.yaml")

    [orders] = load_specs(tmp_path, bundle="orders")

    assert isinstance(orders, PromotionSpec)
    assert orders.bundle == "orders"


def test_load_specs_of_one_bundle_still_refuses_a_second_file_naming_it(tmp_path: Path) -> None:
    write_spec(tmp_path, VALID, "a.yaml")
    write_spec(tmp_path, VALID, "b.yaml")

    first, second = load_specs(tmp_path, bundle="sales")

    assert isinstance(first, PromotionSpec)
    assert isinstance(second, SpecError)
    assert "already promoted by" in str(second)
