"""Each name the plugin shares is spelled in one module: the DAG-id prefixes, the config
section's reads, the specs folder's default and the system actor. Docstrings may mention them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SOURCES = [*(PROJECT / "plugins" / "bundle_promotion").rglob("*.py"), *(PROJECT / "dags").glob("*.py")]


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, nodes) and node.body and isinstance(node.body[0], ast.Expr)
    }


def _strings(tree: ast.AST) -> Iterator[str]:
    """Every string constant of the code, f-strings' literal parts included, docstrings not."""
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def _modules_where(found: str, *, whole: bool = False) -> set[str]:
    def matches(text: str) -> bool:
        return text == found if whole else found in text

    return {
        str(path.relative_to(PROJECT))
        for path in SOURCES
        if any(matches(text) for text in _strings(ast.parse(path.read_text(encoding="utf-8"))))
    }


@pytest.mark.parametrize("prefix", ["promote__", "schedules__", "rollback__"])
def test_a_dag_id_prefix_is_spelled_only_by_the_specs_dag_ids(prefix: str) -> None:
    assert _modules_where(prefix) == {"plugins/bundle_promotion/spec/dag_ids.py"}


def test_the_specs_folder_default_is_spelled_only_by_settings() -> None:
    spelled = _modules_where("promotions", whole=True) | _modules_where("include/promotions")
    assert spelled == {"plugins/bundle_promotion/settings.py"}


def test_only_settings_reads_the_config_section() -> None:
    readers = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "conf"
                and node.args
                and not (isinstance(node.args[0], ast.Constant) and node.args[0].value == "core")
            ):
                readers.add(str(path.relative_to(PROJECT)))
    assert readers == {"plugins/bundle_promotion/settings.py"}


def test_the_system_actor_is_named_once_and_no_step_names_another() -> None:
    named, spelled = set(), set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id.endswith("ACTOR") for target in node.targets
            ):
                named.add(str(path.relative_to(PROJECT)))
            literal_fallback = isinstance(node, ast.BoolOp) and any(
                isinstance(value, ast.Constant) and value.value == "airflow" for value in node.values
            )
            literal_actor = isinstance(node, ast.keyword) and node.arg == "actor"
            if literal_fallback or (literal_actor and isinstance(node.value, ast.Constant)):
                spelled.add(str(path.relative_to(PROJECT)))
    assert named == {"plugins/bundle_promotion/ledger/audit.py"}
    assert spelled == set()
