"""Recurring windows in wall-clock time: cron or RRULE occurrences that last a fixed duration.

Occurrences are computed on the local wall clock of the window's time zone and only then
placed in time, so "Mon 08:00 Europe/Amsterdam" stays 08:00 across a DST change. Whole
days of a duration are calendar days on that wall clock (a P2D freeze from Saturday 00:00
ends Monday 00:00 even when the clocks change on Sunday); the rest is elapsed time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pendulum

# Where an RRULE without DTSTART starts counting; occurrences keep its time of day unless
# the rule sets BYHOUR/BYMINUTE.
_RRULE_ANCHOR = datetime(2000, 1, 3)  # a Monday, 00:00
_NEVER = "never (the rule has no later occurrence)"


@dataclass(frozen=True)
class WindowRule:
    """Exactly one of ``cron`` and ``rrule``."""

    label: str
    duration: timedelta
    cron: str | None = None
    rrule: str | None = None


def check_expression(cron: str | None, rrule: str | None) -> None:
    """Raise ``ValueError`` with the parser's message when the expression is invalid."""
    if cron is not None:
        from croniter import croniter  # type: ignore[import-untyped]

        if not croniter.is_valid(cron):
            raise ValueError(f"'{cron}' is not a cron expression (minute hour day month weekday)")
    if rrule is not None:
        from dateutil.rrule import rrulestr  # type: ignore[import-untyped]

        try:
            rrulestr(rrule, dtstart=_RRULE_ANCHOR)
        except (ValueError, TypeError) as error:
            raise ValueError(f"'{rrule}' is not an RRULE: {error}") from None


def active_occurrence(rule: WindowRule, timezone: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The (start, end) of the occurrence ``now`` falls in, if any."""
    start_wall = _previous_start(rule, _wall_clock(now, timezone))
    if start_wall is None:
        return None
    start = _place(start_wall, timezone)
    end = start.add(days=rule.duration.days, seconds=rule.duration.seconds)
    if start <= now < end:
        return start.in_timezone("UTC"), end.in_timezone("UTC")
    return None


def next_start(rule: WindowRule, timezone: str, now: datetime) -> datetime:
    """The start of the first occurrence after ``now``; far in the future when there is none."""
    start_wall = _next_start(rule, _wall_clock(now, timezone))
    return (
        _place(start_wall, timezone).in_timezone("UTC")
        if start_wall
        else datetime.max.replace(tzinfo=now.tzinfo)
    )


def describe(moment: datetime, timezone: str) -> str:
    """``Mon 30 Mar 08:00 Europe/Amsterdam``."""
    if moment.year == datetime.max.year:
        return _NEVER
    return f"{pendulum.instance(moment).in_timezone(timezone).format('ddd D MMM HH:mm')} {timezone}"


def _wall_clock(now: datetime, timezone: str) -> datetime:
    return pendulum.instance(now).in_timezone(timezone).naive()


def _place(wall: datetime, timezone: str) -> pendulum.DateTime:
    """A wall-clock time in ``timezone``; a time skipped by DST moves forward."""
    return pendulum.datetime(
        wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, tz=timezone
    )


def _previous_start(rule: WindowRule, wall: datetime) -> datetime | None:
    if rule.cron is not None:
        from croniter import croniter

        # croniter's previous is strictly earlier; an occurrence starting this very second counts.
        start: datetime = croniter(rule.cron, wall + timedelta(seconds=1)).get_prev(datetime)
        return start
    return _rrule(rule).before(wall, inc=True)


def _next_start(rule: WindowRule, wall: datetime) -> datetime | None:
    if rule.cron is not None:
        from croniter import croniter

        start: datetime = croniter(rule.cron, wall).get_next(datetime)
        return start
    return _rrule(rule).after(wall, inc=False)


def _rrule(rule: WindowRule) -> Any:  # an rrule or rruleset
    from dateutil.rrule import rrulestr

    return rrulestr(rule.rrule or "", dtstart=_RRULE_ANCHOR)
