"""Drift: when ``drift__<bundle>`` checks the environments, and whether an environment heals itself."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from bundle_promotion.spec.base import _Frozen, _rule

# Airflow's presets that repeat; "@once" and "@continuous" make no sense for a periodic check.
_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


def _cron_or_preset(value: str) -> str:
    if value in _PRESETS:
        return value
    from croniter import croniter  # type: ignore[import-untyped]  # Airflow's cron parser, only when needed

    if croniter.is_valid(value):
        return value
    raise _rule(f"must be a cron expression like '0 * * * *' or one of {', '.join(_PRESETS)}; got '{value}'")


class DriftCheck(_Frozen):
    """When the bundle's environments are compared with the releases they run."""

    schedule: Annotated[str, AfterValidator(_cron_or_preset)] | None = Field(
        default="@hourly",
        description="When drift__<bundle> runs: a cron expression or an Airflow preset such as @hourly; "
        "null to check only when triggered.",
    )


class DriftPolicy(_Frozen):
    """What the drift check does in one environment once it finds drift."""

    heal: Literal[False, "redeploy", "schedules_only"] = Field(
        default=False,
        description="false: report only. redeploy: deploy the running release again (the same bytes) and "
        "re-assert the schedule policy. schedules_only: re-assert the schedule policy only. A held "
        "environment, or one a promotion is deploying, is never healed.",
    )
