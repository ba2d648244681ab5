"""The spec's drift settings: when drift__<bundle> runs, and how each environment heals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bundle_promotion.errors import SpecError
from bundle_promotion.spec import load_spec

PROD = {"name": "prod", "target": "prod", "databricks_conn_id": "databricks_prod", "schedules": "paused"}
CRON_RULE = "drift.schedule: must be a cron expression like '0 * * * *' or one of"


def spec_file(tmp_path: Path, top: dict[str, Any] | None = None, prod: dict[str, Any] | None = None) -> Path:
    spec = {
        "bundle": "sales",
        "source": {"repo": "https://github.com/acme/sales.git"},
        "environments": [{**PROD, **(prod or {})}],
        **(top or {}),
    }
    path = tmp_path / "sales.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_by_default_drift_is_checked_hourly_and_never_healed(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path))

    assert (spec.drift.schedule, spec.environments[0].drift.heal) == ("@hourly", False)


def test_a_cron_schedule_and_a_heal_mode_are_kept(tmp_path: Path) -> None:
    every_quarter_hour = {"drift": {"schedule": "*/15 * * * *"}}
    spec = load_spec(spec_file(tmp_path, every_quarter_hour, {"drift": {"heal": "schedules_only"}}))

    assert (spec.drift.schedule, spec.environments[0].drift.heal) == ("*/15 * * * *", "schedules_only")


@pytest.mark.parametrize(
    ("top", "prod", "message"),
    [
        ({"drift": {"schedule": "@once"}}, None, CRON_RULE),
        ({"drift": {"schedule": "every hour"}}, None, CRON_RULE),
        (None, {"drift": {"heal": "sometimes"}}, "drift.heal"),
    ],
)
def test_a_bad_drift_setting_names_the_field(
    tmp_path: Path, top: dict[str, Any] | None, prod: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        load_spec(spec_file(tmp_path, top, prod))

    assert message in str(error.value)
