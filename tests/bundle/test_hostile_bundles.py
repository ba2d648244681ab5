"""A hostile or broken bundle file is a clean BundleConfigError naming it; nothing beyond its repo is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundle_promotion.bundle.config.load import load_bundle, validate
from bundle_promotion.bundle.config.outline import read_outline
from bundle_promotion.errors import BundleConfigError
from tests.bundle.test_bundle_config import write_bundle

ROOT = """\
bundle:
  name: demo
include:
  - resources/*.yml
targets:
  dev:
    default: true
    workspace:
      root_path: /Workspace/demo
"""
JOB = "resources:\n  jobs:\n    {key}:\n      name: {key}\n"


def bundle_with(folder: Path, root: str = ROOT) -> Path:
    files = {"databricks.yml": root, "resources/etl.yml": JOB.format(key="etl")}
    return write_bundle(folder / "bundle", files)


def the_error(bundle: Path) -> BundleConfigError:
    validation = validate(bundle, "")
    assert len(validation.errors) == 1, validation.errors
    return validation.errors[0]


@pytest.mark.parametrize(
    "read",
    [
        "from bundle_promotion.bundle.config.load import validate\n"
        "print(validate(Path(sys.argv[1]), '').stderr())",
        "from bundle_promotion.bundle.config.outline import read_outline\n"
        "from bundle_promotion.errors import BundleConfigError\n"
        "try:\n    read_outline(Path(sys.argv[1]))\nexcept BundleConfigError as error:\n    print(error)",
    ],
    ids=["bundle-validate", "dag-parse-outline"],
)
def test_a_bundle_file_nested_40000_deep_is_refused_and_the_process_survives(
    tmp_path: Path, read: str
) -> None:
    bundle = bundle_with(tmp_path)
    deep = bundle / "resources" / "deep.yml"
    deep.write_text("resources: " + "[" * 40_000 + "]" * 40_000 + "\n")

    result = subprocess.run(
        [sys.executable, "-c", f"import sys\nfrom pathlib import Path\n{read}", str(bundle)],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert f"{deep}:1: nests more than 100 levels deep" in result.stdout


def test_an_include_that_is_a_symlink_to_dev_zero_is_refused_unread(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path)
    (bundle / "resources" / "zero.yml").symlink_to("/dev/zero")

    error = the_error(bundle)

    assert error.field == "include[0]"
    assert error.problem.startswith("resources/*.yml reads /dev/zero, through a symbolic link outside")


@pytest.mark.parametrize(
    ("make", "kind"),
    [(os.mkfifo, "a named pipe"), (lambda path: path.mkdir(), "a directory")],
    ids=["fifo", "directory"],
)
def test_an_include_that_is_no_regular_file_is_refused(tmp_path: Path, make: object, kind: str) -> None:
    bundle = bundle_with(tmp_path)
    make(bundle / "resources" / "odd.yml")  # type: ignore[operator]

    error = the_error(bundle)

    assert error.file == str(bundle / "resources" / "odd.yml")
    assert error.problem == f"is {kind}, not a regular file; replace it with a YAML file"


def test_a_root_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "databricks.yml").write_bytes(b"bundle:\n  name: caf\xe9\n")

    error = the_error(bundle)

    assert (error.file, error.line) == (str(bundle / "databricks.yml"), 2)
    assert error.problem == "is not UTF-8 text (byte 0xe9); save it as UTF-8"


@pytest.mark.parametrize("entry", ["5", "[resources]", "{a: b}", "''", "null"])
def test_an_include_entry_that_is_not_a_path_names_the_entry(tmp_path: Path, entry: str) -> None:
    bundle = bundle_with(tmp_path, ROOT.replace("  - resources/*.yml", f"  - resources/*.yml\n  - {entry}"))

    error = the_error(bundle)

    assert (error.file, error.field) == (str(bundle / "databricks.yml"), "include[1]")
    assert error.problem.startswith("expected a relative path or glob, like resources/*.yml; got ")


def test_an_include_leading_out_of_a_bundle_in_no_repository_is_refused(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, ROOT.replace("resources/*.yml", "../secrets/*.yml"))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "worker.yml").write_text("variables:\n  token:\n    default: dapi-secret\n")

    error = the_error(bundle)

    assert error.field == "include[0]"
    assert error.problem == (
        f"../secrets/*.yml reads {tmp_path / 'secrets' / 'worker.yml'}, outside the bundle folder "
        f"{bundle}, in no git repository; an include must stay inside the bundle's repository: "
        "copy or move the file into it"
    )
    assert "dapi-secret" not in str(validate(bundle, "").document)


@pytest.mark.parametrize("git", ["folder", "file"], ids=["checkout", "worktree"])
def test_an_include_in_a_sibling_folder_of_the_repository_is_read_with_a_warning(
    tmp_path: Path, git: str
) -> None:
    repository = tmp_path / "repo"
    bundle = bundle_with(repository, ROOT.replace("resources/*.yml", "../shared/*.yml"))
    if git == "folder":
        (repository / ".git").mkdir()
    else:
        (repository / ".git").write_text("gitdir: /elsewhere/worktrees/repo\n")
    write_bundle(repository / "shared", {"jobs.yml": JOB.format(key="shared")})

    validation = validate(bundle, "")

    assert validation.errors == []
    assert [(str(warning.file), warning.field) for warning in validation.warnings] == [
        (str(bundle / "databricks.yml"), "include[0]")
    ]
    assert validation.warnings[0].problem == (
        f"../shared/*.yml reads {repository / 'shared' / 'jobs.yml'}, outside the bundle folder {bundle}; "
        f"read because it is in the bundle's repository {repository}"
    )
    assert sorted(validation.document["resources"]["jobs"]) == ["shared"]
    assert read_outline(bundle).job_keys == ("shared",)


def repository_with_bundle(tmp_path: Path, root: str = ROOT) -> Path:
    """A bundle in `repo/bundle`, `repo` holding a `.git` folder."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    return bundle_with(tmp_path / "repo", root)


def test_an_include_leading_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    bundle = repository_with_bundle(tmp_path, ROOT.replace("resources/*.yml", "../../secrets/*.yml"))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "worker.yml").write_text("variables:\n  token:\n    default: dapi-secret\n")

    error = the_error(bundle)

    assert error.field == "include[0]"
    assert error.problem == (
        f"../../secrets/*.yml reads {tmp_path / 'secrets' / 'worker.yml'}, outside the repository "
        f"{tmp_path / 'repo'}; an include must stay inside the bundle's repository: "
        "copy or move the file into it"
    )
    assert "dapi-secret" not in str(validate(bundle, "").document)
    with pytest.raises(BundleConfigError, match="outside the repository"):
        read_outline(bundle)


@pytest.mark.parametrize(
    ("include", "link_folder"),
    [("resources/*.yml", "bundle/resources"), ("../shared/*.yml", "shared")],
    ids=["link-in-the-bundle", "link-in-a-sibling-folder"],
)
def test_an_include_through_a_symlink_leaving_the_repository_is_refused(
    tmp_path: Path, include: str, link_folder: str
) -> None:
    bundle = repository_with_bundle(tmp_path, ROOT.replace("resources/*.yml", include))
    (tmp_path / "elsewhere.yml").write_text(JOB.format(key="elsewhere"))
    (tmp_path / "repo" / link_folder).mkdir(exist_ok=True)
    (tmp_path / "repo" / link_folder / "linked.yml").symlink_to(tmp_path / "elsewhere.yml")

    error = the_error(bundle)

    assert error.problem.startswith(
        f"{include} reads {tmp_path / 'elsewhere.yml'}, through a symbolic link outside the repository "
        f"{tmp_path / 'repo'}; "
    )
    with pytest.raises(BundleConfigError, match="through a symbolic link outside the repository"):
        read_outline(bundle)


def test_an_include_through_a_symlink_leaving_the_bundle_is_refused(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path)
    (tmp_path / "elsewhere.yml").write_text(JOB.format(key="elsewhere"))
    (bundle / "resources" / "linked.yml").symlink_to(tmp_path / "elsewhere.yml")

    error = the_error(bundle)

    assert f"reads {tmp_path / 'elsewhere.yml'}, through a symbolic link outside the bundle" in error.problem
    with pytest.raises(BundleConfigError, match="through a symbolic link outside the bundle"):
        read_outline(bundle)


def test_an_include_through_a_symlink_inside_the_bundle_is_read(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path)
    (bundle / "shared").mkdir()
    (bundle / "shared" / "jobs.yml").write_text(JOB.format(key="shared"))
    (bundle / "resources" / "shared.yml").symlink_to(bundle / "shared" / "jobs.yml")

    resolved = load_bundle(bundle, "")

    assert sorted(resolved.resources["jobs"]) == ["etl", "shared"]


@pytest.mark.parametrize(
    ("section", "field", "problem"),
    [
        ("bundle: ~", "bundle", "expected a mapping; found no value"),
        ("variables: ~", "variables", "expected a mapping of names to values; found no value"),
        ("workspace: {root_path: [a]}", "workspace.root_path", "expected a path, as text; found a list"),
        ("workspace: {file_path: ~}", "workspace.file_path", "expected a path, as text; found no value"),
        ("artifacts: {wheel: ~}", "artifacts.wheel", "expected a mapping; found no value"),
        ("presets: {name_prefix: 7}", "presets.name_prefix", "expected text; found a number"),
        (
            "resources: {schemas: [a]}",
            "resources.schemas",
            "expected a mapping of resource keys to resources",
        ),
        ("resources: {jobs: {etl2: {tasks: {a: b}}}}", "resources.jobs.etl2.tasks", "expected a list"),
        (
            "resources: {jobs: {etl2: {tasks: [{task_key: {a: b}}]}}}",
            "resources.jobs.etl2.tasks[0].task_key",
            "expected text or a number; found a mapping",
        ),
        (
            "permissions: [{level: [CAN_VIEW], user_name: a}]",
            "permissions[0].level",
            "expected text; found a list",
        ),
        ("targets: {1: {}}", "targets", "expected a mapping of names to values; the key 1 is not a name"),
    ],
)
def test_a_value_of_the_wrong_kind_names_its_file_and_field(
    tmp_path: Path, section: str, field: str, problem: str
) -> None:
    bundle = bundle_with(tmp_path)
    (bundle / "resources" / "odd.yml").write_text(section + "\n")

    error = the_error(bundle)

    assert (error.file, error.field) == (str(bundle / "resources" / "odd.yml"), field)
    assert error.problem.startswith(problem)


def test_the_dag_parse_outline_refuses_a_target_named_by_a_number(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, ROOT.replace("targets:\n", "targets:\n  1: {}\n"))

    with pytest.raises(BundleConfigError, match="targets: expected a mapping of names to values; the key 1"):
        read_outline(bundle)


def test_a_tag_that_makes_a_set_is_refused_with_its_line(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path)
    (bundle / "resources" / "odd.yml").write_text("variables:\n  days:\n    default: !!set {mon, tue}\n")

    error = the_error(bundle)

    assert (error.file, error.line) == (str(bundle / "resources" / "odd.yml"), 3)
    assert error.problem.startswith("the tag !!set makes neither text")


def test_a_root_file_linked_from_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.yml").write_text("bundle:\n  name: elsewhere\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "databricks.yml").symlink_to(tmp_path / "elsewhere.yml")

    error = the_error(bundle)

    assert error.file == str(bundle / "databricks.yml")
    assert error.problem.startswith(f"is a symbolic link to {tmp_path / 'elsewhere.yml'}, outside the bundle")
    with pytest.raises(BundleConfigError, match="outside the bundle folder"):
        read_outline(bundle)
