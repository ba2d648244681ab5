"""A glance at one top-level key of a YAML file, as a task does to find its spec among many."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bundle_promotion.bundle.config.bounded_yaml import SPEC_BOUNDS, top_level_scalar
from bundle_promotion.errors import FileRefused


def glance(tmp_path: Path, text: str, key: str = "bundle") -> str | None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return top_level_scalar(path, key, SPEC_BOUNDS)


@pytest.mark.parametrize(
    "text",
    [
        "bundle: sales\nsource: {repo: x}\n",
        "description: |\n  many lines\nsource:\n  repo: x\n  bundle: other\n"
        "environments: [{name: dev}]\nbundle: sales\n",
        "? bundle\n: sales\n",
    ],
)
def test_the_top_level_value_is_found_wherever_the_key_is(tmp_path: Path, text: str) -> None:
    assert glance(tmp_path, text) == "sales"


@pytest.mark.parametrize(
    "text",
    [
        "source: {bundle: sales}\n",  # nested, not top level
        "- bundle\n- sales\n",  # a list at the top
        "bundle: {name: sales}\n",  # not a plain value
        "other: bundle\n",  # the word as a value, not a key
        "",
    ],
)
def test_no_value_when_the_top_level_has_no_plain_bundle_key(tmp_path: Path, text: str) -> None:
    assert glance(tmp_path, text) is None


def test_nothing_after_the_key_is_read(tmp_path: Path) -> None:
    assert glance(tmp_path, "bundle: sales\nenvironments: [\n") == "sales"
    with pytest.raises(yaml.YAMLError):
        glance(tmp_path, "environments: [\nbundle: sales\n")


def test_a_file_that_is_no_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match="not a regular file"):
        top_level_scalar(tmp_path, "bundle", SPEC_BOUNDS)
