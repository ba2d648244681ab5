"""Translate paths: notebooks and files of the bundle to their uploaded copies in the workspace."""

from __future__ import annotations

import glob as glob_module
import os
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.job_settings import (
    LOCAL_LIBRARY_PREFIX,
    is_local_library,
    library_slots,
    tasks_of,
)
from bundle_promotion.bundle.config.located_yaml import SourcedStr, source_of
from bundle_promotion.bundle.config.notebooks import notebook_import, remote_notebook_name
from bundle_promotion.bundle.config.steps.loading import Loading, jobs_of, resources_of

# Task fields naming a notebook or file of the bundle, uploaded under `workspace.file_path`.
_TASK_FILE_FIELDS = (("notebook_task", "notebook_path"), ("spark_python_task", "python_file"))
# Pipeline library fields naming a notebook or file of the bundle.
_PIPELINE_LIBRARY_FIELDS = (("notebook", "path"), ("file", "path"))


def translate_paths(loading: Loading) -> None:
    """Resolve local paths against the file that declared them.

    Notebooks and Python files become their uploaded copies under `workspace.file_path`;
    libraries become `./<path from the bundle root>` globs the engine builds and uploads;
    artifact folders become absolute local paths. What is uploaded is the sync root: the
    bundle folder, or the folder holding it and every `sync.paths` entry, so a path may leave
    the bundle folder as long as it stays in the sync root.
    """
    for key, pipeline in resources_of(loading.tree, "pipelines").items():
        _translate_pipeline(loading, f"resources.pipelines.{key}", pipeline)
    for key, job in jobs_of(loading.tree).items():
        _translate_task_files(loading, f"resources.jobs.{key}", job)
        for slot in library_slots(job):
            if isinstance(slot.value, str) and is_local_library(slot.value):
                slot.replace([_library_reference(loading, slot.value)])
    for artifact in (loading.tree.get("artifacts") or {}).values():
        declared = artifact.get("path") or "."
        artifact["path"] = os.path.normpath(source_of(declared, loading.root_file).parent / declared)


def sync_root(loading: Loading) -> Path:
    """The folder the deploy uploads: the common parent of the bundle folder and `sync.paths`."""
    paths = (loading.tree.get("sync") or {}).get("paths") or ["."]
    folders = [os.path.normpath(loading.bundle_dir / str(path)) for path in paths]
    return Path(os.path.commonpath([str(loading.bundle_dir), *folders]))  # as `ResolvedBundle.sync_root`


def _translate_task_files(loading: Loading, where: str, job: dict[str, Any]) -> None:
    for task_path, task in tasks_of(job):
        for task_type, field_name in _TASK_FILE_FIELDS:
            spec = task.get(task_type)
            if not isinstance(spec, dict) or not _is_local_path(spec.get(field_name)):
                continue
            if (spec.get("source") or ("GIT" if job.get("git_source") else "WORKSPACE")) == "GIT":
                continue  # a path inside the job's git repository, not in the bundle
            field_path = f"{where}.{task_path}.{task_type}.{field_name}"
            is_notebook = task_type == "notebook_task"
            spec[field_name] = _uploaded_copy(loading, spec[field_name], is_notebook, field_path)


def _translate_pipeline(loading: Loading, where: str, pipeline: dict[str, Any]) -> None:
    """Libraries (a notebook or file glob becomes one library per match), `glob.include`, `root_path`."""
    libraries = []
    for index, library in enumerate(pipeline.get("libraries") or []):
        libraries += _pipeline_libraries(loading, f"{where}.libraries[{index}]", library)
    if "libraries" in pipeline:
        pipeline["libraries"] = libraries
    root_path = pipeline.get("root_path")
    if isinstance(root_path, str) and _is_local_path(root_path):
        folder = _in_sync_root(loading, root_path, f"{where}.root_path")
        if not folder.is_dir():
            raise loading.error(
                f"{where}.root_path", f"folder {root_path} not found", source_of(root_path, loading.root_file)
            )
        pipeline["root_path"] = _remote(loading, folder)


def _pipeline_libraries(loading: Loading, where: str, library: Any) -> list[Any]:
    if not isinstance(library, dict):
        return [library]
    glob = library.get("glob")
    if isinstance(glob, dict) and _is_local_path(glob.get("include")):
        pattern = _in_sync_root(loading, glob["include"], f"{where}.glob.include")
        return [{**library, "glob": {**glob, "include": _remote(loading, pattern)}}]
    for library_type, field_name in _PIPELINE_LIBRARY_FIELDS:
        spec = library.get(library_type)
        if not isinstance(spec, dict) or not _is_local_path(spec.get(field_name)):
            continue
        field_path = f"{where}.{library_type}.{field_name}"
        is_notebook = library_type == "notebook"
        return [
            {
                **library,
                library_type: {**spec, field_name: _uploaded_copy(loading, path, is_notebook, field_path)},
            }
            for path in _expanded(loading, spec[field_name], field_path)
        ]
    return [library]


def _expanded(loading: Loading, local: str, field_path: str) -> list[str]:
    """A path with glob characters as the files it matches, sorted, as the CLI's `ExpandPipelineGlobPaths`."""
    if not glob_module.has_magic(local):
        return [local]
    declared_in = source_of(local, loading.root_file)
    matches = sorted(glob_module.glob(str(declared_in.parent / local), recursive=True))
    files = [match for match in matches if Path(match).is_file()]
    if not files:
        raise loading.error(field_path, f"no files match {local}", declared_in)
    return [SourcedStr(os.path.relpath(match, declared_in.parent), declared_in) for match in files]


def _in_sync_root(loading: Loading, local: str, field_path: str) -> Path:
    """The absolute local path of `local`, which must stay inside the sync root."""
    declared_in = source_of(local, loading.root_file)
    absolute = Path(os.path.normpath(declared_in.parent / local))
    root = sync_root(loading)
    if not absolute.is_relative_to(root):
        where = "bundle folder" if root == loading.bundle_dir else "sync root"
        raise loading.error(
            field_path,
            f"{local} is outside the {where} {root}; add its folder to sync.paths to upload it",
            declared_in,
        )
    return absolute


def _remote(loading: Loading, local: Path) -> str:
    """Where the deploy puts a local path: under `workspace.file_path`, as it lies in the sync root."""
    relative = local.relative_to(sync_root(loading)).as_posix()
    file_path = loading.tree["workspace"]["file_path"]
    return file_path if relative == "." else f"{file_path}/{relative}"


def _uploaded_copy(loading: Loading, local: str, is_notebook: bool, field_path: str) -> str:
    """Where the deploy uploads a notebook or file; a source notebook loses its suffix."""
    declared_in = source_of(local, loading.root_file)
    absolute = _in_sync_root(loading, local, field_path)
    if not absolute.is_file():
        what = "notebook" if is_notebook else "file"
        raise loading.error(field_path, f"{what} {local} not found", declared_in)
    if is_notebook:
        notebook = notebook_import(absolute)
        if notebook is None:
            raise loading.error(
                field_path,
                f"{local} is not a notebook: a notebook is an .ipynb file or a source file whose first "
                "line is `# Databricks notebook source` (`--` for SQL, `//` for Scala)",
                declared_in,
            )
        return remote_notebook_name(_remote(loading, absolute), notebook[0])
    return _remote(loading, absolute)


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not value.startswith("/") and ":" not in value


def _library_reference(loading: Loading, local: str) -> str:
    absolute = os.path.normpath(source_of(local, loading.root_file).parent / local)
    return LOCAL_LIBRARY_PREFIX + Path(os.path.relpath(absolute, loading.bundle_dir)).as_posix()
