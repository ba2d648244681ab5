"""Reports the conformance suite's case count at the end of the run."""

from __future__ import annotations

from typing import Any

CASES_RUN: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CASES_RUN:
        terminalreporter.write_line(
            f"bundle conformance: {len(CASES_RUN)} cases against the CLI's documented behaviour"
        )
