"""Reading bundle YAML files, keeping track of where each string was written.

A relative path in a bundle is relative to the file that declares it, and an
error should name that file. The CLI keeps a location on every value; here each
string remembers its file, which is all path translation and errors need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bundle_promotion.bundle.config.bounded_yaml import BUNDLE_FILE_BOUNDS, read_bounded
from bundle_promotion.errors import BundleConfigError, FileRefused

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SourcedStr(str):
    """A string from a bundle file that remembers which file."""

    file: Path

    def __new__(cls, value: str, file: Path) -> SourcedStr:
        text = super().__new__(cls, value)
        text.file = file
        return text

    def __deepcopy__(self, memo: dict[int, Any]) -> SourcedStr:
        return self  # immutable, like str


class _PlainLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader that keeps dates as the strings they were written as, like the CLI."""


class _SourcedLoader(_PlainLoader):
    source_file: Path


def _date_as_string(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _sourced_string(loader: _SourcedLoader, node: yaml.ScalarNode) -> SourcedStr:
    return SourcedStr(str(loader.construct_scalar(node)), loader.source_file)


_PlainLoader.add_constructor("tag:yaml.org,2002:timestamp", _date_as_string)
_SourcedLoader.add_constructor("tag:yaml.org,2002:timestamp", _sourced_string)
_SourcedLoader.add_constructor("tag:yaml.org,2002:str", _sourced_string)


def read_yaml(path: Path, *, sourced: bool = False) -> dict[str, Any]:
    """The mapping in a bundle file; with `sourced`, its strings are `SourcedStr`.

    An empty file is an empty mapping.
    """
    try:
        text = read_bounded(path, BUNDLE_FILE_BOUNDS)
    except FileRefused as refused:
        raise BundleConfigError(str(path), "", refused.problem, refused.line) from None
    loader = _SourcedLoader(text) if sourced else _PlainLoader(text)
    if sourced:
        loader.source_file = path
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as error:
        raise BundleConfigError(str(path), "", f"invalid YAML: {error}") from error
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BundleConfigError(str(path), "", f"expected a mapping at the top level, found {kind_of(data)}")
    return data


def plain(value: Any) -> Any:
    """A copy of `value` with every `SourcedStr` turned back into a plain `str`."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


def source_of(value: Any, default: Path) -> Path:
    """The file a value was written in, when known."""
    return value.file if isinstance(value, SourcedStr) else default


def kind_of(value: Any) -> str:
    """What a YAML value is, for messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else f"a {type(value).__name__}"
