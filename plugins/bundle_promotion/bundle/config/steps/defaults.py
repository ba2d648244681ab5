"""Defaults the CLI sets on every resource after the presets: what `validate -o json` then shows.

Each entry is a pattern and a value, as the CLI's `SetDefault`: every node the pattern
matches up to its last key gets that key when it lacks it. `*` matches every key of a
mapping and `[*]` every element of a list; nothing else is created, so a job without a
`schedule` gets no `schedule.pause_status`. Per-kind defaults of other kinds join this table.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from bundle_promotion.bundle.config.steps.loading import Loading

# The same defaults as the Terraform provider's, which the CLI sets for both engines.
RESOURCE_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("resources.jobs.*.name", "Untitled"),
    ("resources.jobs.*.max_concurrent_runs", 1),
    ("resources.jobs.*.schedule.pause_status", "UNPAUSED"),
    ("resources.jobs.*.trigger.pause_status", "UNPAUSED"),
    ("resources.jobs.*.continuous.pause_status", "UNPAUSED"),
    ("resources.jobs.*.queue", {"enabled": True}),  # as Jobs API 2.2 does
    ("resources.jobs.*.job_clusters[*].new_cluster.workload_type.clients.notebooks", True),
    ("resources.jobs.*.job_clusters[*].new_cluster.workload_type.clients.jobs", True),
    ("resources.pipelines.*.edition", "ADVANCED"),
    ("resources.pipelines.*.channel", "CURRENT"),
)


def set_resource_defaults(loading: Loading) -> None:
    for pattern, value in RESOURCE_DEFAULTS:
        set_default(loading.tree, pattern, value)


def set_default(tree: dict[str, Any], pattern: str, value: Any) -> None:
    """Give every node `pattern`'s parent part matches its last key, where that key is missing."""
    *parents, key = pattern.split(".")
    for node in _matches(tree, parents):
        if isinstance(node, dict) and key not in node:
            node[key] = copy.deepcopy(value)


def _matches(node: Any, segments: list[str]) -> Iterator[Any]:
    if not segments:
        yield node
        return
    name, each_element = segments[0].removesuffix("[*]"), segments[0].endswith("[*]")
    if not isinstance(node, dict):
        return
    children = list(node.values()) if name == "*" else [node[name]] if name in node else []
    for child in children:
        if not each_element:
            yield from _matches(child, segments[1:])
        elif isinstance(child, list):
            for element in child:
                yield from _matches(element, segments[1:])
