"""A problem found in a spec file: where it is in the YAML, the ``SpecError`` it becomes, and hints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import yaml

from bundle_promotion.errors import SpecError
from bundle_promotion.spec.base import _Loc


class _Problem(NamedTuple):
    loc: _Loc
    text: str
    line: int | None = None  # when None, the line of ``loc`` in the file


class _Document:
    """A spec file composed to YAML nodes, which know their lines."""

    def __init__(self, file: Path, root: yaml.Node) -> None:
        self.file = file
        self.root = root

    def locate(self, loc: _Loc) -> tuple[int, yaml.Node | None]:
        """The line of the deepest node on ``loc`` (1-based) and the node at ``loc``, if there is one."""
        node, line = self.root, self.root.start_mark.line
        for part in loc:
            key, value = _child(node, part)
            if value is None:
                return line + 1, None
            node, line = value, (key or value).start_mark.line
        return line + 1, node

    def error(self, problems: Sequence[_Problem]) -> SpecError:
        """One ``SpecError`` for all problems; its field and line are those of the first in the file."""
        located = sorted(
            (
                (problem.line or self.locate(problem.loc)[0], _dotted(problem.loc), problem.text)
                for problem in problems
            ),
            key=lambda item: item[0],
        )
        line, field, text = located[0]
        more = "".join(f"\n{self.file}:{line}: {field}: {text}" for line, field, text in located[1:])
        return SpecError(str(self.file), field, text + more, line)


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node | None]:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        matches = [(key, value) for key, value in node.value if key.value == part]
        return matches[-1] if matches else (None, None)  # YAML keeps the last of duplicate keys
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None, None


def _dotted(loc: _Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _closest(word: str, options: Sequence[str]) -> str | None:
    import difflib  # only ever needed to explain an error

    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None
