"""Load: the root file and its includes, merged into one tree."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.located_yaml import read_yaml
from bundle_promotion.bundle.config.outline import include_files
from bundle_promotion.bundle.config.shape import check_shape
from bundle_promotion.bundle.config.steps.loading import Loading, merge
from bundle_promotion.errors import BundleConfigError


def load_files(loading: Loading) -> None:
    """Read the root file and its includes into one tree; a resource may be defined only once."""
    root = read_yaml(loading.root_file, sourced=True)
    check_shape(root, loading.root_file)
    defined_in: dict[tuple[str, str], Path] = {}
    _record_resources(root, loading.root_file, defined_in)
    for path in include_files(loading.bundle_dir, loading.root_file, root, loading.warn):
        included = read_yaml(path, sourced=True)
        check_shape(included, path)
        if "include" in included:
            raise BundleConfigError(str(path), "include", "only the root file may include other files")
        _record_resources(included, path, defined_in)
        root = merge(root, included, path, "", loading.warn)
    loading.tree = root


def _record_resources(config: Mapping[str, Any], file: Path, defined_in: dict[tuple[str, str], Path]) -> None:
    for kind, resources in (config.get("resources") or {}).items():
        for key in resources or {}:
            if (kind, key) in defined_in:
                raise BundleConfigError(
                    str(file),
                    f"resources.{kind}.{key}",
                    f"already defined in {defined_in[kind, key]}; resource keys must be unique",
                )
            defined_in[kind, key] = file
