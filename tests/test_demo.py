"""The demo starts Airflow through the interpreter it runs in, activated venv or not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bundle_promotion import demo


def test_the_demo_migrates_airflow_without_the_venv_on_path(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.defpath)

    demo._migrate_airflow_db()

    assert airflow_db.exists()


def test_the_demo_prints_each_notification_it_sent_on_one_line() -> None:
    payloads = [
        {
            "text": "[example/prod] v1.0.0 (0123456789ab) waits for approval: 0 of 2 QC approvals.\nhttp://board"
        },
        {"text": "[example/prod] v1.0.0 (0123456789ab) promoted to production: prod runs it.\nhttp://board"},
    ]

    assert demo.render_notifications(payloads).splitlines() == [
        "",
        "Notifications sent (to the demo_webhook connection):",
        "  - [example/prod] v1.0.0 (0123456789ab) waits for approval: 0 of 2 QC approvals.",
        "  - [example/prod] v1.0.0 (0123456789ab) promoted to production: prod runs it.",
    ]
