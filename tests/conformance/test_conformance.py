"""Small bundles, each with the `databricks bundle validate -o json` output the CLI documents for it.

A case is a folder under `cases/` with the bundle's files and `expected.json`:

- `args`: `target`, `vars` (`--var`), `env` (`BUNDLE_VAR_*`), `user` (the deploying user's
  name; a UUID is a service principal), `lookups` (`"kind/name": id`), `overrides_file`,
  `engine` (`native`, the default, or `cli`: who deploys);
- `json`: what the output must hold: maps key by key, lists element by element (same length),
  scalars whole;
- `absent`: dotted paths the output must not have;
- `error`: text the error must contain; then the exit code is 1 and stderr ends `Found 1 error`;
  `errors`: one text per error, in order, and stderr ends `Found N errors`;
- `warnings`: one text per warning, in order (none when absent); `args.strict` (`--strict`) makes
  them errors.

Every case also runs through the command, `bundle validate -o json`, whose stdout must be one
JSON document and nothing else, whatever the outcome.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion.bundle.config.load import validate
from bundle_promotion.cli import main
from bundle_promotion.errors import BundleConfigError
from tests.conformance.conftest import CASES_RUN

CASES = Path(__file__).parent / "cases"
CASE_NAMES = sorted(path.name for path in CASES.iterdir() if (path / "expected.json").is_file())


def test_the_suite_covers_at_least_40_bundles() -> None:
    assert len(CASE_NAMES) >= 40, f"{len(CASE_NAMES)} conformance cases"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_validate_matches_the_cli(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = json.loads((CASES / name / "expected.json").read_text())
    args = expected.get("args", {})
    bundle_dir = shutil.copytree(CASES / name, tmp_path / name)
    target = args.get("target", "")
    if "overrides_file" in args:
        overrides = bundle_dir / ".databricks" / "bundle" / target / "variable-overrides.json"
        overrides.parent.mkdir(parents=True)
        overrides.write_text(json.dumps(args["overrides_file"]))
    for name_, value in args.get("env", {}).items():
        monkeypatch.setenv(name_, value)

    validation = validate(
        bundle_dir,
        target,
        args.get("vars"),
        _user(args.get("user")),
        _lookup(args),
        args.get("engine", "native"),
        strict=args.get("strict", False),
    )
    CASES_RUN.append(name)

    if "error" in expected or "errors" in expected:
        wanted = expected.get("errors") or [expected["error"]]
        assert len(validation.errors) == len(wanted), validation.stderr()
        for error, text in zip(validation.errors, wanted, strict=True):
            assert text in str(error)
        count = len(wanted)
        assert f"Found {count} error{'s' if count > 1 else ''}" in validation.stderr()
    else:
        assert validation.errors == [], validation.stderr()
    wanted_warnings = expected.get("warnings", [])
    assert len(validation.warnings) == len(wanted_warnings), validation.stderr()
    for warning, text in zip(validation.warnings, wanted_warnings, strict=True):
        assert text in str(warning)
    _assert_holds(validation.document, expected.get("json", {}), "")
    for dotted in expected.get("absent", []):
        assert _get(validation.document, dotted) is _ABSENT, f"{dotted} should be absent"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_validate_json_is_pure_json_on_stdout(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script piping `-o json` into `json.loads` works for every case, valid or not."""
    expected = json.loads((CASES / name / "expected.json").read_text())
    args = expected.get("args", {})
    bundle_dir = shutil.copytree(CASES / name, tmp_path / name)
    for variable in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-profiles"))
    for name_, value in args.get("env", {}).items():
        monkeypatch.setenv(name_, value)
    flags = [f"--var={key}={value}" for key, value in (args.get("vars") or {}).items()]
    flags += ["--strict"] if args.get("strict") else []
    flags += ["--engine", args["engine"]] if "engine" in args else []

    code = main(
        [
            "bundle",
            "validate",
            "-o",
            "json",
            "-t",
            args.get("target", ""),
            *flags,
            "--bundle-dir",
            str(bundle_dir),
        ]
    )

    out = capsys.readouterr().out
    assert isinstance(json.loads(out), dict), out
    if not ({"user", "lookups", "overrides_file"} & set(args)):  # the rest needs a workspace or a file
        assert code == (1 if "error" in expected or "errors" in expected else 0)


def _user(name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    return {"userName": name, "displayName": name.split("@")[0].replace(".", " ").title()}


def _lookup(args: dict[str, Any]) -> Any:
    known: dict[str, str] = args.get("lookups", {})
    if not known:
        return None

    def lookup(kind: str, name: str) -> str:
        if f"{kind}/{name}" not in known:
            raise BundleConfigError("variables", "lookup", f"failed to resolve {kind}: {name}")
        return known[f"{kind}/{name}"]

    return lookup


def _assert_holds(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a map, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} is missing; have {sorted(actual)}"
            _assert_holds(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for index, (item, wanted) in enumerate(zip(actual, expected, strict=True)):
            _assert_holds(item, wanted, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


_ABSENT = object()


def _get(document: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(document, dict) or part not in document:
            return _ABSENT
        document = document[part]
    return document
