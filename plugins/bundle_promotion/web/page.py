"""The release board's page: plain HTML, one ES module and a stylesheet, all served from here.

No build step and no CDN: the page works offline and inside Airflow's UI, which shows it in
the "Releases" entry of its navigation (the plugin's ``external_views``). The files hold no
data; the module reads ``/bundle-promotion/board`` with the UI's own session cookie.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
PAGE_PATH = "/ui"
_MEDIA_TYPES = {"index.html": "text/html", "board.js": "text/javascript", "board.css": "text/css"}

router = APIRouter(prefix=PAGE_PATH)


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return _served("index.html")


@router.get("/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    if name not in _MEDIA_TYPES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the board has no file {name}")
    return _served(name)


def _served(name: str) -> FileResponse:
    # Revalidated on each load: an upgraded plugin never runs with a stale module.
    return FileResponse(STATIC / name, media_type=_MEDIA_TYPES[name], headers={"Cache-Control": "no-cache"})
