"""The shape of a bundle file: which sections are mappings, which are lists, which are text.

The CLI reads bundle files into typed structs, so `include: [5]` or `resources: [jobs]` fails
while loading, naming where. The steps here work on plain YAML data; this check gives them
the same guarantee: each file is held against the shape before it joins the tree, and a
value of the wrong kind is a `BundleConfigError` naming the file and the field. Only what
the steps rely on is described; every other value passes as written, for the workspace to judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.interpolation import REFERENCE
from bundle_promotion.bundle.config.located_yaml import kind_of
from bundle_promotion.errors import BundleConfigError


class Shape:
    """What a value must be; `None` (an empty YAML value) passes unless the shape says otherwise."""

    nullable: bool = True
    expected: str = ""

    def fits(self, value: Any) -> bool:
        raise NotImplementedError

    def parts(self, value: Any) -> list[tuple[str, Any, Shape]]:
        """The values inside ``value`` to check next, with the field suffix and shape of each."""
        return []


@dataclass
class Text(Shape):
    expected: str = "text"
    nullable: bool = True

    def fits(self, value: Any) -> bool:
        return isinstance(value, str)


@dataclass
class Scalar(Shape):
    """Text, a number or a boolean: what identifies an element of a keyed list."""

    expected: str = "text or a number"

    def fits(self, value: Any) -> bool:
        return isinstance(value, str | int | float)


@dataclass
class Fields(Shape):
    """A mapping with some known keys; the other keys' values have the shape ``others``."""

    known: Mapping[str, Shape] = field(default_factory=dict)
    nullable: bool = True
    others: Shape | None = None  # None: other values pass unchecked
    expected: str = "a mapping"

    def fits(self, value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(key, str) for key in value)

    def parts(self, value: Any) -> list[tuple[str, Any, Shape]]:
        return [
            (f".{key}", item, shape)
            for key, item in value.items()
            if (shape := self.known.get(key, self.others)) is not None
        ]


@dataclass
class MapOf(Shape):
    """A mapping of names (text) to values of one shape."""

    values: Shape
    nullable: bool = True
    expected: str = "a mapping of names to values"

    def fits(self, value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(key, str) and key for key in value)

    def parts(self, value: Any) -> list[tuple[str, Any, Shape]]:
        return [(f".{key}", item, self.values) for key, item in value.items()]


@dataclass
class ListOf(Shape):
    items: Shape
    expected: str = "a list"

    def fits(self, value: Any) -> bool:
        return isinstance(value, list)

    def parts(self, value: Any) -> list[tuple[str, Any, Shape]]:
        return [(f"[{index}]", item, self.items) for index, item in enumerate(value)]


@dataclass
class Anything(Shape):
    def fits(self, value: Any) -> bool:
        return True


_ANY = Anything()
_RESOURCES_OF_A_KIND = MapOf(_ANY, expected="a mapping of resource keys to resources")
_PATH = Text(expected="a path, as text")
_KEY = Scalar()
_LIBRARY = Fields({"whl": _PATH, "jar": _PATH})
_TASK_FILE = Fields({"notebook_path": _PATH, "python_file": _PATH, "source": Text()})
_TASK = Fields(
    {
        "task_key": _KEY,
        "notebook_task": _TASK_FILE,
        "spark_python_task": _TASK_FILE,
        "libraries": ListOf(_LIBRARY),
        "for_each_task": Fields({"task": Fields({"libraries": ListOf(_LIBRARY)})}),
    },
    nullable=False,
)
_PERMISSION = Fields({"level": Text()}, nullable=False)
_PERMISSIONS = ListOf(_PERMISSION)
_ENVIRONMENT = Fields(
    {"environment_key": _KEY, "spec": Fields({"dependencies": ListOf(_ANY)})}, nullable=False
)
_JOB = Fields(
    {
        "tasks": ListOf(_TASK),
        "job_clusters": ListOf(Fields({"job_cluster_key": _KEY}, nullable=False)),
        "parameters": ListOf(Fields({"name": _KEY}, nullable=False)),
        "environments": ListOf(_ENVIRONMENT),
        "permissions": _PERMISSIONS,
        "run_as": Fields(),
        "tags": Fields(),
    }
)
_PIPELINE = Fields(
    {
        "libraries": ListOf(Fields({"notebook": Fields({"path": _PATH}), "file": Fields({"path": _PATH})})),
        "permissions": _PERMISSIONS,
    }
)
_VARIABLE = _ANY  # a value, or {default, lookup, type, description}: judged by the variable step
_WORKSPACE_PATHS = ("root_path", "file_path", "artifact_path", "state_path", "resource_path")
# An empty root_path takes the default; the paths under it, once set, must be paths.
_WORKSPACE = Fields(
    {
        "root_path": _PATH,
        **dict.fromkeys(_WORKSPACE_PATHS[1:], Text(expected="a path, as text", nullable=False)),
        "host": Text(),
    },
)
_SECTIONS: dict[str, Shape] = {
    "bundle": Fields({"name": Text()}, nullable=False),
    "workspace": _WORKSPACE,
    "variables": MapOf(_VARIABLE, nullable=False),
    "artifacts": MapOf(Fields({"path": _PATH, "build": Text(), "type": Text()}, nullable=False)),
    "resources": Fields({"jobs": MapOf(_JOB), "pipelines": MapOf(_PIPELINE)}, others=_RESOURCES_OF_A_KIND),
    "sync": Fields({"exclude": ListOf(Text()), "paths": ListOf(_PATH)}, nullable=False),
    "presets": Fields({"name_prefix": Text(), "tags": Fields(), "trigger_pause_status": Text()}),
    "permissions": _PERMISSIONS,
    "run_as": Fields(),
}
_TARGET = Fields({**_SECTIONS, "mode": Text(), "default": _ANY, "variables": Fields()})
BUNDLE_FILE = Fields({**_SECTIONS, "include": ListOf(_ANY), "targets": MapOf(_TARGET)})


def check_shape(config: dict[str, Any], file: Path) -> None:
    """Raise a `BundleConfigError` naming the file and field of the first value of the wrong kind."""
    pending: list[tuple[str, Any, Shape]] = BUNDLE_FILE.parts(config)
    for where, value, shape in pending:  # the list grows as it goes: breadth first, in file order
        if (value is None and shape.nullable) or (isinstance(value, str) and REFERENCE.fullmatch(value)):
            continue  # a reference takes its value's shape once resolved: a complex variable's map
        if not shape.fits(value):
            raise BundleConfigError(str(file), where.lstrip("."), _wrong_kind(shape, value))
        pending += [(f"{where}{suffix}", item, inner) for suffix, item, inner in shape.parts(value)]


def _wrong_kind(shape: Shape, value: Any) -> str:
    if isinstance(shape, Fields | MapOf) and isinstance(value, dict):
        odd = next(key for key in value if not (isinstance(key, str) and key))
        return f"expected {shape.expected}; the key {odd!r} is not a name: quote it, or remove it"
    found = "no value" if value is None else kind_of(value)
    return f"expected {shape.expected}; found {found}"
