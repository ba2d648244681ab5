"""What the bundle tooling knows about Jobs 2.2 ``JobSettings``.

Config loading and the engine share this knowledge: which lists are keyed, where
local library paths can appear, and the fields every bundle-managed job carries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableSequence
from dataclasses import dataclass
from typing import Any

# Lists whose elements are identified by a key rather than a position. The CLI merges
# target overrides into these element by element, and the server may return them reordered.
KEYED_LISTS = {
    "tasks": "task_key",
    "job_clusters": "job_cluster_key",
    "parameters": "name",
    "environments": "environment_key",
}

# A local library reference, after config loading, is a path relative to the bundle root
# starting with this prefix, as in the CLI's `validate` output (e.g. `./dist/*.whl`).
LOCAL_LIBRARY_PREFIX = "./"


def bundle_annotations(state_path: str) -> dict[str, Any]:
    """Fields the CLI sets on every job it deploys (`metadata.AnnotateJobs`)."""
    return {
        "deployment": {"kind": "BUNDLE", "metadata_file_path": f"{state_path}/metadata.json"},
        "edit_mode": "UI_LOCKED",
        "format": "MULTI_TASK",
    }


def deployment_marker(settings: Mapping[str, Any]) -> str | None:
    """What ties a job or pipeline to the bundle deployment that made it: its metadata file path.

    Every deploy of one bundle to one target sets the same one, so a resource carrying it
    was made by that deployment, whether or not its state recorded the resource.
    """
    deployment = settings.get("deployment")
    path = deployment.get("metadata_file_path") if isinstance(deployment, Mapping) else None
    return str(path) if path else None


@dataclass(frozen=True)
class LibrarySlot:
    """One place in a job's settings that names a library: a list and an index in it."""

    where: str  # e.g. "tasks[ingest].libraries[0].whl", for messages
    items: MutableSequence[Any]
    index: int
    field: str | None  # "whl"/"jar" inside a library map; None for a plain dependency string

    @property
    def value(self) -> Any:
        item = self.items[self.index]
        return item.get(self.field) if self.field else item

    def replace(self, values: list[str]) -> None:
        """Put one library per value where this one was (a glob expands into several)."""
        if self.field:
            template = self.items[self.index]
            new_items: list[Any] = [{**template, self.field: value} for value in values]
        else:
            new_items = list(values)
        self.items[self.index : self.index + 1] = new_items


def tasks_of(job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each task of a job with its path in the settings, including the task inside a `for_each_task`."""
    for index, task in enumerate(job.get("tasks") or []):
        if not isinstance(task, dict):
            continue
        yield f"tasks[{index}]", task
        inner = (task.get("for_each_task") or {}).get("task")
        if isinstance(inner, dict):
            yield f"tasks[{index}].for_each_task.task", inner


def library_slots(job: dict[str, Any]) -> Iterator[LibrarySlot]:
    """Every wheel, jar and environment dependency of a job, each list walked from its end.

    From the end, so a caller may replace one slot by several without shifting the
    slots of the same list still to come.
    """
    for env_index, environment in enumerate(job.get("environments") or []):
        dependencies = (environment.get("spec") or {}).get("dependencies") or []
        for index in reversed(range(len(dependencies))):
            where = f"environments[{env_index}].spec.dependencies[{index}]"
            yield LibrarySlot(where, dependencies, index, None)
    for task_path, task in tasks_of(job):
        libraries = task.get("libraries") or []
        for index in reversed(range(len(libraries))):
            for field in ("whl", "jar"):
                if isinstance(libraries[index], dict) and field in libraries[index]:
                    yield LibrarySlot(f"{task_path}.libraries[{index}].{field}", libraries, index, field)


def is_local_library(reference: str) -> bool:
    """Whether a library reference in the config names a file on the local disk.

    Local: relative paths to a wheel or jar, or anything starting with `.`.
    Not local: PyPI specs (`requests==2.32`), pip flags, workspace, volume,
    DBFS and URL paths.
    """
    if reference.startswith("."):
        return True
    if reference.startswith(("-", "/")) or ":" in reference:
        return False
    return reference.endswith((".whl", ".jar"))


def differs(sent: Any, remote: Any) -> bool:
    """Whether `remote` no longer holds what was `sent`.

    Only fields that were sent count: the server adds defaults of its own
    (`timeout_seconds: 0`, `run_if`, ...) that are not drift.
    """
    if isinstance(sent, dict):
        if not isinstance(remote, dict):
            return True
        return any(
            differs(value, remote[key]) if key in remote else not _is_empty(value)
            for key, value in sent.items()
        )
    if isinstance(sent, list):
        return _list_differs(sent, remote)
    return bool(sent != remote)


def field_differences(sent: Any, remote: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Each place where `remote` no longer holds what was `sent`: (dotted path, sent, remote).

    The same rules as `differs`, one level deeper each time: keyed lists are walked by key
    (`tasks[ingest].new_cluster.num_workers`), so a reader sees which task changed.
    """
    if isinstance(sent, dict) and isinstance(remote, dict):
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key in remote:
                yield from field_differences(value, remote[key], where)
            elif not _is_empty(value):
                yield where, value, None
        return
    if isinstance(sent, list) and isinstance(remote, list):
        by_key = _index_by_key(sent), _index_by_key(remote)
        if by_key[0] is not None and by_key[1] is not None and by_key[0].keys() == by_key[1].keys():
            for key, item in by_key[0].items():
                yield from field_differences(item, by_key[1][key], f"{path}[{key}]")
            return
    if differs(sent, remote):
        yield path, sent, remote


def _is_empty(value: Any) -> bool:
    """An empty value the server may leave out of what it returns."""
    return value is None or value == {} or value == [] or value == ""


def _list_differs(sent: list[Any], remote: Any) -> bool:
    if not isinstance(remote, list) or len(sent) != len(remote):
        return True
    by_key = _index_by_key(sent), _index_by_key(remote)
    if by_key[0] is not None and by_key[1] is not None:
        if by_key[0].keys() != by_key[1].keys():
            return True
        return any(differs(item, by_key[1][key]) for key, item in by_key[0].items())
    return any(differs(item, other) for item, other in zip(sent, remote, strict=True))


def _index_by_key(items: list[Any]) -> dict[str, Any] | None:
    """Index a keyed list (tasks by task_key, ...) so order does not count as a change; None when
    some item has no text key, or two share one (then the list is compared item by item)."""
    for key_field in KEYED_LISTS.values():
        if items and all(isinstance(item, dict) and isinstance(item.get(key_field), str) for item in items):
            index = {item[key_field]: item for item in items}
            return index if len(index) == len(items) else None
    return None
