"""Translate paths: notebooks and files of the bundle to their uploaded copies in the workspace."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.job_settings import (
    LOCAL_LIBRARY_PREFIX,
    is_local_library,
    library_slots,
    tasks_of,
)
from bundle_promotion.bundle.config.located_yaml import source_of
from bundle_promotion.bundle.config.notebooks import notebook_import
from bundle_promotion.bundle.config.steps.loading import Loading, jobs_of, resources_of

# Task fields naming a notebook or file of the bundle, uploaded under `workspace.file_path`.
_TASK_FILE_FIELDS = (("notebook_task", "notebook_path"), ("spark_python_task", "python_file"))
# Pipeline library fields naming a notebook or file of the bundle.
_PIPELINE_LIBRARY_FIELDS = (("notebook", "path"), ("file", "path"))


def translate_paths(loading: Loading) -> None:
    """Resolve local paths against the file that declared them.

    Notebooks and Python files become their uploaded copies under `workspace.file_path`;
    libraries become `./<path from the bundle root>` globs the engine builds and uploads;
    artifact folders become absolute local paths.
    """
    for key, pipeline in resources_of(loading.tree, "pipelines").items():
        _translate_pipeline_libraries(loading, f"resources.pipelines.{key}", pipeline)
    for key, job in jobs_of(loading.tree).items():
        _translate_task_files(loading, f"resources.jobs.{key}", job)
        for slot in library_slots(job):
            if isinstance(slot.value, str) and is_local_library(slot.value):
                slot.replace([_library_reference(loading, slot.value)])
    for artifact in (loading.tree.get("artifacts") or {}).values():
        declared = artifact.get("path") or "."
        artifact["path"] = os.path.normpath(source_of(declared, loading.root_file).parent / declared)


def _translate_task_files(loading: Loading, where: str, job: dict[str, Any]) -> None:
    file_path = loading.tree["workspace"]["file_path"]
    for task_path, task in tasks_of(job):
        for task_type, field_name in _TASK_FILE_FIELDS:
            spec = task.get(task_type)
            if not isinstance(spec, dict) or not _is_local_path(spec.get(field_name)):
                continue
            if (spec.get("source") or ("GIT" if job.get("git_source") else "WORKSPACE")) == "GIT":
                continue  # a path inside the job's git repository, not in the bundle
            field_path = f"{where}.{task_path}.{task_type}.{field_name}"
            is_notebook = task_type == "notebook_task"
            spec[field_name] = _uploaded_copy(loading, spec[field_name], is_notebook, file_path, field_path)


def _translate_pipeline_libraries(loading: Loading, where: str, pipeline: dict[str, Any]) -> None:
    file_path = loading.tree["workspace"]["file_path"]
    for index, library in enumerate(pipeline.get("libraries") or []):
        for library_type, field_name in _PIPELINE_LIBRARY_FIELDS:
            spec = library.get(library_type) if isinstance(library, dict) else None
            if isinstance(spec, dict) and _is_local_path(spec.get(field_name)):
                field_path = f"{where}.libraries[{index}].{library_type}.{field_name}"
                is_notebook = library_type == "notebook"
                spec[field_name] = _uploaded_copy(
                    loading, spec[field_name], is_notebook, file_path, field_path
                )


def _uploaded_copy(loading: Loading, local: str, is_notebook: bool, file_path: str, field_path: str) -> str:
    """Where the deploy uploads a task's notebook or file: under `file_path`, a notebook without suffix."""
    declared_in = source_of(local, loading.root_file)
    absolute = Path(os.path.normpath(declared_in.parent / local))
    if not absolute.is_relative_to(loading.bundle_dir):
        raise loading.error(
            field_path, f"{local} is outside the bundle folder {loading.bundle_dir}", declared_in
        )
    if not absolute.is_file():
        what = "notebook" if is_notebook else "file"
        raise loading.error(field_path, f"{what} {local} not found", declared_in)
    relative = absolute.relative_to(loading.bundle_dir).as_posix()
    if is_notebook:
        if notebook_import(absolute) is None:
            raise loading.error(
                field_path,
                f"{local} is not a notebook: a notebook is an .ipynb file or a source file whose first "
                "line is `# Databricks notebook source` (`--` for SQL, `//` for Scala)",
                declared_in,
            )
        relative = posixpath.splitext(relative)[0]
    return f"{file_path}/{relative}"


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not value.startswith("/") and ":" not in value


def _library_reference(loading: Loading, local: str) -> str:
    absolute = os.path.normpath(source_of(local, loading.root_file).parent / local)
    return LOCAL_LIBRARY_PREFIX + Path(os.path.relpath(absolute, loading.bundle_dir)).as_posix()
