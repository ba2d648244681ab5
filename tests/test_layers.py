"""The package's architecture, held against its imports.

Each folder of ``bundle_promotion`` is a layer that imports only from the layers beneath
it, and no two modules import each other, even through others. Every import counts:
inside functions and under ``if TYPE_CHECKING:`` too, since a type is a dependency.
Changing the order below is a design decision: make it here, deliberately.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "plugins" / "bundle_promotion"

# Bottom to top. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    (
        "errors",
        "identity",
        "processes",
        "testing",
    ),  # errors, identities, child processes; emulators
    ("workspace",),
    ("bundle", "bundle.config"),  # the bundle package itself only documents its parts
    ("bundle.resources",),
    ("bundle.deploy",),
    ("spec",),
    ("ledger",),
    ("release",),
    ("github",),
    ("gates",),
    ("lifecycle",),
    # The Airflow layer.
    ("hooks",),
    ("settings",),
    ("triggers",),
    ("operators",),
    ("sensors",),
    ("dags",),
    ("web",),
    ("plugin", "demo", "workers"),
    ("cli",),
]
CORE_LAYERS = LAYERS[: LAYERS.index(("lifecycle",)) + 1]
MAX_TOP_LEVEL_MODULES = 8


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name relative to it (``bundle.deploy.engine``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    """The absolute names of everything ``path`` imports, anywhere in the file."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["bundle_promotion", *package[: len(package) - node.level + 1]]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield from (f"{source}.{alias.name}" for alias in node.names)
            yield source


def dependencies(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of other modules of the package (a name imported from a package
    counts as its submodule when one has that name, else as the package)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            if not name.startswith("bundle_promotion."):
                continue
            target = name.removeprefix("bundle_promotion.")
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != module and not module.startswith(target + "."):
                targets.add(target)
        graph[module] = targets
    return {module: targets - _own_packages(module) for module, targets in graph.items()}


def _own_packages(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def layer_of(module: str) -> int:
    matches = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add its folder to LAYERS in {__file__}")
    return max(matches)[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return dependencies(module_names())


def test_every_module_belongs_to_a_layer(graph: dict[str, set[str]]) -> None:
    for module in graph:
        layer_of(module)


def test_no_module_imports_one_from_a_higher_layer(graph: dict[str, set[str]]) -> None:
    upward = [
        f"{module} (layer {LAYERS[layer_of(module)]}) imports {target} (layer {LAYERS[layer_of(target)]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_no_modules_import_each_other(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_the_core_never_imports_airflow() -> None:
    core = [(module, path) for module, path in module_names().items() if layer_of(module) < len(CORE_LAYERS)]
    airflow_imports = [
        f"{module} imports {name}"
        for module, path in core
        for name in imported_names(module, path)
        if name == "airflow" or name.startswith("airflow.")
    ]
    assert airflow_imports == []


def test_the_package_top_level_stays_small() -> None:
    top_level = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, top_level


def test_the_checks_see_an_upward_import_and_a_cycle() -> None:
    """The rules would catch a breach: a ledger module importing gates, and two modules in a loop."""
    graph = {"ledger.records": {"gates.contract"}, "gates.contract": set(), "a": {"b"}, "b": {"a"}}
    assert layer_of("gates.contract") > layer_of("ledger.records")
    assert cycles(graph) == [["a", "b"]]
