"""The plugin's FastAPI app as Airflow's API server mounts it: the approvals API, the board's API and page."""

from __future__ import annotations

from bundle_promotion.web import api, board, page

URL_PREFIX = api.URL_PREFIX

app = api.app
app.include_router(board.router)
app.include_router(page.router)
