"""Reading YAML that anyone may have written, within bounds a parser survives.

Specs and bundle files are written by many people and parsed in the DAG processor,
where one crash loses every DAG. PyYAML's C loader composes nodes recursively and
kills the process on a few tens of thousands of nested brackets, so the file is
checked before any loader composes it: a regular file, a bounded size, UTF-8, and
a bounded depth and alias expansion, counted on libyaml's event stream, which is
flat and does not recurse.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from bundle_promotion.errors import FileRefused

try:
    from yaml import CSafeLoader as _EventLoader
except ImportError:  # PyYAML built without libyaml: same events, slower
    from yaml import SafeLoader as _EventLoader  # type: ignore[assignment]

_MiB = 1024 * 1024
# Tags whose values are not JSON (bytes, sets, ordered pairs): a config is JSON-shaped data.
_NOT_JSON_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("binary", "set", "omap", "pairs")}


@dataclass(frozen=True)
class Bounds:
    """What a file may hold before it is parsed."""

    max_bytes: int
    max_depth: int = 100  # real configs nest about 12 deep; the C loader dies near 20,000
    max_nodes: int = 1_000_000  # after aliases are expanded: a "billion laughs" stops here


SPEC_BOUNDS = Bounds(max_bytes=1 * _MiB)
BUNDLE_FILE_BOUNDS = Bounds(max_bytes=16 * _MiB)


def read_bounded(path: Path, bounds: Bounds) -> str:
    """The text of ``path``, checked so that any YAML loader can then parse it safely.

    Raises ``FileRefused`` naming the file (and the line, when there is one) otherwise.
    """
    text = _decoded(path, _read_regular_file(path, bounds.max_bytes))
    _check_structure(path, text, bounds)
    return text


def top_level_scalar(path: Path, key: str, bounds: Bounds) -> str | None:
    """The text of ``key`` in the file's top-level mapping, read from the event stream only as
    far as that key: a glance at a file that composes nothing, so it needs no structure check.
    None when the top level is not a mapping or ``key`` holds no plain value.

    Raises ``FileRefused`` for a file that is not a regular, bounded UTF-8 file, and
    ``yaml.YAMLError`` for a syntax error before the key.
    """
    text = _decoded(path, _read_regular_file(path, bounds.max_bytes))
    depth, expecting_key, wanted = 0, True, False
    for event in yaml.parse(text, Loader=_EventLoader):
        if isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        if depth == 0 and not isinstance(event, yaml.MappingStartEvent):
            return None
        if depth == 1:
            if wanted:
                return event.value if isinstance(event, yaml.ScalarEvent) else None
            wanted = expecting_key and isinstance(event, yaml.ScalarEvent) and event.value == key
            expecting_key = not expecting_key
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
    return None


def _read_regular_file(path: Path, max_bytes: int) -> bytes:
    # Non-blocking, so a FIFO is opened, seen for what it is and refused, not waited on.
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        raise FileRefused(str(path), f"cannot read the file: {_reason(error)}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise FileRefused(
                str(path), f"is {_kind_of_file(mode)}, not a regular file; replace it with a YAML file"
            )
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            data = stream.read(max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        too_big = f"is larger than {max_bytes // _MiB} MiB; split it, or remove what does not belong in it"
        raise FileRefused(str(path), too_big)
    return data


def _reason(error: OSError | ValueError) -> str:
    return error.strerror or str(error) if isinstance(error, OSError) else str(error)


def _kind_of_file(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a named pipe",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((kind for test, kind in kinds.items() if test(mode)), "a special file")


def _decoded(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise FileRefused(
            str(path),
            f"is not UTF-8 text (byte 0x{data[error.start]:02x}); save it as UTF-8",
            line,
        ) from None


def _check_structure(path: Path, text: str, bounds: Bounds) -> None:
    """Refuse deep nesting, recursive aliases and aliases that expand past ``max_nodes``.

    Each anchor remembers the expanded size and height of its node, so an alias counts
    as what it will become once loaded and copied.
    """
    open_nodes: list[tuple[str | None, int]] = []  # (its anchor, the nodes counted before it)
    anchors: dict[str, tuple[int, int] | None] = {}  # anchor -> (nodes, height); None while open
    heights: list[int] = [0]  # the height of what each open node holds so far
    nodes = 0
    try:
        for event in yaml.parse(text, Loader=_EventLoader):
            if (tag := getattr(event, "tag", None)) in _NOT_JSON_TAGS:
                shown = tag.replace("tag:yaml.org,2002:", "!!")
                raise FileRefused(
                    str(path),
                    f"the tag {shown} makes neither text, a number, a list nor a mapping; remove it",
                    _line(event),
                )
            if isinstance(event, yaml.CollectionStartEvent):
                if len(open_nodes) >= bounds.max_depth:
                    raise _too_deep(path, event, bounds)
                if event.anchor is not None:
                    anchors[event.anchor] = None
                open_nodes.append((event.anchor, nodes))
                heights.append(0)
                nodes += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, before = open_nodes.pop()
                height = heights.pop() + 1
                heights[-1] = max(heights[-1], height)
                if anchor is not None:
                    anchors[anchor] = (nodes - before, height)
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    anchors[event.anchor] = (1, 0)
            elif isinstance(event, yaml.AliasEvent):
                nodes += _alias_size(path, event, anchors, len(open_nodes), heights, bounds)
            if nodes > bounds.max_nodes:
                raise FileRefused(
                    str(path),
                    f"expands to more than {bounds.max_nodes:,} values once its aliases are "
                    "resolved; write the repeated parts out, or use fewer aliases",
                    _line(event),
                )
    except yaml.YAMLError:
        return  # not YAML: the loader that parses the file next reports it with its line


def _alias_size(
    path: Path,
    event: yaml.AliasEvent,
    anchors: dict[str, tuple[int, int] | None],
    depth: int,
    heights: list[int],
    bounds: Bounds,
) -> int:
    if event.anchor not in anchors:
        return 0  # an undefined alias: the loader reports it
    anchored = anchors[event.anchor]
    if anchored is None:
        raise FileRefused(
            str(path),
            f"the alias *{event.anchor} refers to a node that contains it; a config cannot contain itself",
            _line(event),
        )
    size, height = anchored
    if depth + height > bounds.max_depth:
        raise _too_deep(path, event, bounds)
    heights[-1] = max(heights[-1], height)
    return size


def _too_deep(path: Path, event: yaml.Event, bounds: Bounds) -> FileRefused:
    return FileRefused(
        str(path),
        f"nests more than {bounds.max_depth} levels deep; flatten it (real configs nest about a dozen)",
        _line(event),
    )


def _line(event: yaml.Event) -> int | None:
    return event.start_mark.line + 1 if event.start_mark else None
