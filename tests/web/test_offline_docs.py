"""The API's docs pages work offline: every asset comes from the plugin, none from a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlparse

import pytest


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """The plugin's app mounted as Airflow's API server mounts it."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from bundle_promotion.web.api import URL_PREFIX, app

    server = FastAPI()
    server.mount(URL_PREFIX, app)
    with TestClient(server) as test_client:
        yield test_client


@pytest.mark.parametrize("page", ["docs", "redoc"])
def test_the_docs_page_references_no_external_host_and_each_asset_is_served(client: Any, page: str) -> None:
    html = client.get(f"/bundle-promotion/{page}").text

    urls = references(html)

    assert any(url.endswith(".js") for url in urls), html
    assert [url for url in urls if urlparse(url).netloc] == []
    assert all(url.startswith("/bundle-promotion/") for url in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_swagger_ui_is_told_to_call_no_validator(client: Any) -> None:
    html = client.get("/bundle-promotion/docs").text

    assert '"validatorUrl": null' in html
    assert "http" not in html.replace("/bundle-promotion/openapi.json", "")
