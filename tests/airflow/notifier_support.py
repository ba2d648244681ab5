"""An Airflow notifier for tests: posts its rendered text to a URL, as the chat providers' notifiers do."""

from __future__ import annotations

from typing import Any

import requests
from airflow.sdk import BaseNotifier


class PostingNotifier(BaseNotifier):
    template_fields = ("text",)

    def __init__(self, *, url: str, text: str) -> None:
        super().__init__()
        self.url = url
        self.text = text

    def notify(self, context: Any) -> None:
        requests.post(self.url, json={"text": self.text}, timeout=10).raise_for_status()
