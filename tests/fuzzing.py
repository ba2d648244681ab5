"""Hypothesis strategies for hostile input: documents shaped like ours, with wrong values anywhere.

Shared by the property tests of the spec loader and of `bundle validate`. Each document keeps
the real keys, so generated input reaches deep into validation, and any value may be
replaced by something of the wrong type, a wrong length or with control characters.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# 1,000 inputs per property in CI, the same ones on every run; no deadline on a shared machine.
HOSTILE = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text as people and tools write it, and as they should not: control characters, NUL, paths, globs.
_ALPHABET = st.sampled_from(list("abz_-09./*?[]{}$: \t\n\x00\x07\x7féλ"))
text = st.one_of(
    st.text(_ALPHABET, max_size=12),
    st.sampled_from(
        ["", " ", "..", "../x", "/etc/passwd", "${var.x}", "${resources.jobs.a.id}", "~", "a" * 300]
    ),
    st.text(max_size=6),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), text)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def mostly(right: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``right`` eleven times in twelve, else ``wrong``.

    Rare enough that most documents get deep into validation, common enough that every
    place in a document sees every kind of wrong value.
    """
    return st.integers(0, 11).flatmap(lambda roll: wrong if roll == 0 else right)


def field(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right kind of value, now and then anything at all."""
    return mostly(right, anything)


def document(required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """A mapping with these keys, each value of its strategy or, now and then, anything."""
    return st.fixed_dictionaries(
        {key: field(value) for key, value in required.items()},
        optional={key: field(value) for key, value in (optional or {}).items()},
    )


def mapping(required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    return field(document(required, optional))


def listing(item: st.SearchStrategy[Any], min_size: int = 0, max_size: int = 3) -> st.SearchStrategy[Any]:
    return field(st.lists(item, min_size=min_size, max_size=max_size))


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes replaced, inserted or cut: a valid file damaged in transit."""

    @st.composite
    def damage(draw: st.DrawFn) -> bytes:
        damaged = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(damaged)))
            action = draw(st.sampled_from(["replace", "insert", "cut"]))
            piece = draw(st.binary(min_size=1, max_size=6))
            if action == "insert":
                damaged[at:at] = piece
            elif action == "replace":
                damaged[at : at + len(piece)] = piece
            else:
                del damaged[at : at + len(piece)]
        return bytes(damaged)

    return damage()


def raw_bytes(valid: bytes) -> st.SearchStrategy[bytes]:
    """Any bytes at all, or a valid file damaged."""
    return st.one_of(st.binary(max_size=400), mutated(valid))
