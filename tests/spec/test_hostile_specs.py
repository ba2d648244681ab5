"""A hostile or broken spec file is one clean SpecError naming it; it never crashes the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundle_promotion.errors import SpecError
from bundle_promotion.spec import PromotionSpec, load_spec, load_specs
from bundle_promotion.spec import loading as spec_loading
from tests.spec.test_spec import VALID, edited, spec_error, write_spec


def deeply_nested(depth: int) -> str:
    return "bundle: " + "[" * depth + "]" * depth + "\n"


def test_a_spec_nested_30000_deep_is_refused_and_the_process_survives(tmp_path: Path) -> None:
    # PyYAML's C loader recurses once per level and kills the process near this depth: run it
    # the way `spec check` runs, in a process of its own, and ask for a clean exit with the error.
    spec = write_spec(tmp_path, deeply_nested(30_000))
    probe = (
        "import sys\nfrom bundle_promotion.cli import main\nsys.exit(main(['spec', 'check', sys.argv[1]]))"
    )

    result = subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True, text=True)

    assert result.returncode == 1, result.stderr
    assert f"{spec}:1: nests more than 100 levels deep" in result.stdout


def test_nesting_within_the_bound_is_read(tmp_path: Path) -> None:
    error = spec_error(tmp_path, deeply_nested(99))

    assert "nests" not in error.problem
    assert error.field == "bundle"


def test_an_alias_that_contains_itself_is_refused_with_its_line(tmp_path: Path) -> None:
    error = spec_error(tmp_path, VALID + "x-loop: &loop [*loop]\n")

    assert error.line == VALID.count("\n") + 1
    assert "the alias *loop refers to a node that contains it" in error.problem


def test_aliases_that_expand_past_a_million_values_are_refused(tmp_path: Path) -> None:
    laughs = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    laughs += [f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]" for level in range(1, 7)]

    error = spec_error(tmp_path, "\n".join(laughs) + "\n")

    assert "expands to more than 1,000,000 values" in error.problem
    assert error.line == 6  # the first alias that takes the count past the bound


def test_aliases_of_a_few_values_are_read(tmp_path: Path) -> None:
    spec = VALID + "x-defaults: &defaults [a, b]\nx-again: *defaults\n"

    error = spec_error(tmp_path, spec)

    assert error.problem.startswith("unknown key 'x-defaults'")


def test_a_spec_larger_than_a_mebibyte_is_refused(tmp_path: Path) -> None:
    error = spec_error(tmp_path, VALID + "# " + "x" * (1024 * 1024) + "\n")

    assert "is larger than 1 MiB" in error.problem


def test_a_spec_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sales.yaml"
    path.write_bytes(edited("bundle: sales", "bundle: sales\ndescription: caf\xe9").encode("latin-1"))

    with pytest.raises(SpecError) as raised:
        load_spec(path)

    assert raised.value.line == 2
    assert raised.value.problem == "is not UTF-8 text (byte 0xe9); save it as UTF-8"


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda path: path.symlink_to("/dev/zero"), "a character device"),
        (os.mkfifo, "a named pipe"),
        (lambda path: path.mkdir(), "a directory"),
    ],
    ids=["symlink-to-dev-zero", "fifo", "directory"],
)
def test_a_spec_that_is_no_regular_file_is_refused(tmp_path: Path, make: object, kind: str) -> None:
    path = tmp_path / "sales.yaml"
    make(path)  # type: ignore[operator]

    with pytest.raises(SpecError) as raised:
        load_spec(path)

    assert str(raised.value) == f"{path}: is {kind}, not a regular file; replace it with a YAML file"


def test_a_nul_byte_in_the_repo_is_a_spec_error_on_that_field(tmp_path: Path) -> None:
    error = spec_error(tmp_path, edited("repo: https://github.com/acme/sales.git", 'repo: "./sales\\0.git"'))

    assert (error.field, error.line) == ("source.repo", 3)
    assert "contains the control character '\\x00'" in error.problem


def test_a_control_character_in_test_params_names_the_param(tmp_path: Path) -> None:
    suite = 'tests: [{job: integration_tests, params: {day: "mon\\x07"}}]'
    error = spec_error(tmp_path, edited("tests: [integration_tests]", suite))

    assert error.field == "environments[0].tests[0].params.day"


def test_a_bundle_name_too_long_for_an_airflow_dag_id_is_a_spec_error(tmp_path: Path) -> None:
    error = spec_error(tmp_path, edited("bundle: sales", f"bundle: {'s' * 251}"))

    assert (error.field, error.line) == ("bundle", 1)
    assert "must be at most 239 characters" in error.problem


def test_an_environment_name_too_long_for_task_ids_is_a_spec_error(tmp_path: Path) -> None:
    error = spec_error(tmp_path, edited("name: dev", f"name: {'d' * 101}"))

    assert error.field == "environments[0].name"
    assert "must be at most 100 characters" in error.problem


def test_a_5000_character_repo_is_a_spec_error_on_that_field(tmp_path: Path) -> None:
    error = spec_error(tmp_path, edited("repo: https://github.com/acme/sales.git", f"repo: {'r' * 5000}"))

    assert (error.field, error.line) == ("source.repo", 3)
    assert error.problem == "must be at most 1024 characters, as any git URL or path is; got 5000"


def test_a_local_repo_path_the_file_system_refuses_is_a_spec_error(tmp_path: Path) -> None:
    error = spec_error(tmp_path, edited("repo: https://github.com/acme/sales.git", f"repo: {'r' * 300}"))

    assert error.field == "source.repo"
    assert error.problem == "cannot look for the repository: File name too long"


def test_one_spec_that_fails_unexpectedly_is_its_own_error_and_the_others_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spec(tmp_path, VALID, "a.yaml")
    write_spec(tmp_path, edited("bundle: sales", "bundle: other"), "b.yaml")
    load = spec_loading._load

    def fail_on_a(path: Path) -> object:
        if path.name == "a.yaml":
            raise RecursionError("maximum recursion depth exceeded")
        return load(path)

    monkeypatch.setattr(spec_loading, "_load", fail_on_a)

    first, second = load_specs(tmp_path)

    assert isinstance(first, SpecError)
    assert str(first) == (
        f"{tmp_path / 'a.yaml'}: cannot be loaded: RecursionError: maximum recursion depth exceeded"
    )
    assert isinstance(second, PromotionSpec)
    assert second.bundle == "other"


@pytest.mark.timeout(10)  # linear: about a second; checking each test against the earlier ones took a minute
def test_a_spec_with_40000_tests_validates_in_linear_time(tmp_path: Path) -> None:
    tests = "".join(f"\n      - job_{index}" for index in range(40_000))

    spec = load_spec(write_spec(tmp_path, edited("tests: [integration_tests]", f"tests:{tests}")))

    assert len(spec.environments[0].tests) == 40_000


@pytest.mark.timeout(10)  # linear: about a second; comparing each environment with the earlier ones took 30 s
def test_a_spec_with_12000_environments_is_checked_in_linear_time(tmp_path: Path) -> None:
    environments = "".join(
        f"\n- {{name: e{index}, target: t, databricks_conn_id: c{index}, schedules: paused}}"
        for index in range(12_000)
    )
    text = VALID[: VALID.index("environments:")] + f"environments:{environments}\n"

    assert len(load_spec(write_spec(tmp_path, text)).environments) == 12_000


def test_a_tag_that_makes_bytes_is_refused_with_its_line(tmp_path: Path) -> None:
    error = spec_error(tmp_path, edited("bundle: sales", "bundle: !!binary c2FsZXM="))

    assert error.line == 1
    assert error.problem == "the tag !!binary makes neither text, a number, a list nor a mapping; remove it"


def test_a_long_wrong_value_is_quoted_shortened_in_the_message(tmp_path: Path) -> None:
    error = spec_error(tmp_path, edited("tests: [integration_tests]", f"tests: {'t' * 5000}"))

    assert error.field == "environments[0].tests"
    assert f"got the text '{'t' * 80}… (5000 characters)'" in error.problem
    assert len(str(error)) < 400
