"""Which source files are notebooks, as the Databricks CLI tells them apart.

A source file whose first line is the `Databricks notebook source` header of its
language, or any `.ipynb`, is imported as a workspace notebook; anything else is a
plain workspace file. Path translation and the file upload both ask this.
"""

from __future__ import annotations

from pathlib import Path

_NOTEBOOK_HEADERS = {
    ".py": ("PYTHON", b"# Databricks notebook source"),
    ".sql": ("SQL", b"-- Databricks notebook source"),
    ".scala": ("SCALA", b"// Databricks notebook source"),
    ".r": ("R", b"# Databricks notebook source"),
}


def notebook_import(path: Path) -> tuple[str, str | None] | None:
    """The import format and language that make `path` a notebook; None for a plain file."""
    if path.suffix == ".ipynb":
        return "JUPYTER", None
    header = _NOTEBOOK_HEADERS.get(path.suffix.lower())
    if header is None:
        return None
    with path.open("rb") as file:
        first_line = file.readline().strip()
    return ("SOURCE", header[0]) if first_line == header[1] else None


def remote_notebook_name(remote: str, import_format: str) -> str:
    """A notebook's workspace path: a source notebook loses its suffix, a Jupyter one keeps `.ipynb`."""
    return remote if import_format == "JUPYTER" else remote.rsplit(".", 1)[0]
