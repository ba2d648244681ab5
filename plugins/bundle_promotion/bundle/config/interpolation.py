"""`${...}` references in a bundle config, resolved the way the CLI resolves them.

- `${var.x}` is short for `${variables.x.value}`; `${bundle.*}` and `${workspace.*}`
  read the config tree itself, so they also see defaults set by earlier steps.
- A string that is exactly one reference takes the referenced value with its type
  (a number stays a number, a complex variable stays a map); a reference inside a
  longer string is formatted into it.
- `${resources.*}` references name deployed resources (`${resources.jobs.x.id}`) and
  are left for the engine, which knows the ids.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.located_yaml import SourcedStr, source_of
from bundle_promotion.errors import BundleConfigError

REFERENCE = re.compile(r"\$\{([A-Za-z][\w-]*(?:\[\d+\])*(?:\.[A-Za-z][\w-]*(?:\[\d+\])*)*)\}")
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_RESOLVABLE_ROOTS = ("bundle", "workspace", "variables")
ENGINE_ROOT = "resources"


def resolve_references(tree: dict[str, Any], root_file: Path) -> dict[str, Any]:
    """A copy of `tree` with every reference but `${resources.*}` replaced by its value."""
    resolved = _Resolver(tree, root_file).value(tree, "")
    assert isinstance(resolved, dict)
    return resolved


def resolve_value(tree: dict[str, Any], value: Any, root_file: Path, where: str) -> Any:
    """`value` with its references resolved against `tree`, e.g. a lookup's name."""
    return _Resolver(tree, root_file).value(value, where)


def _path_segments(path: str) -> list[str | int]:
    """`a.b[2].c` as `["a", "b", 2, "c"]`."""
    return [int(index) if index else key for key, index in _SEGMENT.findall(path)]


class _Resolver:
    def __init__(self, tree: dict[str, Any], root_file: Path) -> None:
        self._tree = tree
        self._root_file = root_file
        self._done: dict[str, Any] = {}
        self._in_progress: list[str] = []

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {key: self.value(item, _join(where, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item, f"{where}[{index}]") for index, item in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return self._string(value, where)
        return value

    def _string(self, text: str, where: str) -> Any:
        """The innermost references first: `${var.foo_${var.tail}}` reads `tail`, then `foo_<tail>`."""
        source = text

        def substitute(match: re.Match[str]) -> str:
            found = self._lookup(match.group(1), source, where)
            if isinstance(found, dict | list):
                raise self._error(source, where, f"cannot interpolate non-string value {match.group(0)}")
            return _format_scalar(found)

        while True:
            whole = REFERENCE.fullmatch(text)
            if whole:
                return self._lookup(whole.group(1), source, where)
            resolved = REFERENCE.sub(substitute, text)
            if resolved == text:
                break
            text = resolved
        return SourcedStr(text, source.file) if isinstance(source, SourcedStr) else text

    def _lookup(self, reference: str, text: str, where: str) -> Any:
        """The resolved value a reference points at; `${resources.*}` stays as written."""
        if reference.split(".", 1)[0].split("[", 1)[0] == ENGINE_ROOT:
            return f"${{{reference}}}"
        path = _canonical(reference)
        if path in self._done:
            return copy.deepcopy(self._done[path])  # each use gets its own copy to change later
        if path in self._in_progress:
            cycle = " -> ".join([*self._in_progress[self._in_progress.index(path) :], path])
            raise self._error(text, where, f"cycle detected in references: {cycle}")
        raw = self._get(path)
        if raw is _MISSING:
            raise self._error(text, where, f"reference does not exist: ${{{reference}}}")
        self._in_progress.append(path)
        try:
            resolved = self.value(raw, path)
        finally:
            self._in_progress.pop()
        self._done[path] = resolved
        return resolved

    def _get(self, path: str) -> Any:
        segments = _path_segments(path)
        if segments[0] not in _RESOLVABLE_ROOTS:
            return _MISSING
        node: Any = self._tree
        for segment in segments:
            found = isinstance(segment, int) and isinstance(node, list) and segment < len(node)
            if not (found or (isinstance(segment, str) and isinstance(node, dict) and segment in node)):
                return _MISSING
            node = node[segment]
        return node

    def _error(self, text: str, where: str, problem: str) -> BundleConfigError:
        return BundleConfigError(str(source_of(text, self._root_file)), where, problem)


_MISSING = object()


def _canonical(reference: str) -> str:
    """`var.x...` is `variables.x.value...`."""
    if not reference.startswith("var."):
        return reference
    name, _, rest = reference[len("var.") :].partition(".")
    base, bracket, index = name.partition("[")
    path = f"variables.{base}.value"
    if bracket:
        path += f"[{index}"
    return f"{path}.{rest}" if rest else path


def _format_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)
