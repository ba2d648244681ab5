"""Gates other than approval: each result and the reason a person reads."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bundle_promotion.gates.approvals import freeze_overriders
from bundle_promotion.gates.builtin import (
    PreviousEnvironmentGate,
    ReleaseNotesGate,
    ReleaseTagGate,
    SoakGate,
    WindowGate,
)
from bundle_promotion.gates.check import build_gates, commit_authors
from bundle_promotion.gates.contract import evaluate_all, summary
from bundle_promotion.ledger.records import GateResult, overall_status
from bundle_promotion.spec.windows import WindowRule
from tests.conftest import git
from tests.gates.gate_support import approval, context, deploy, make_ledger, make_release

AMSTERDAM = "Europe/Amsterdam"
# Clocks in Amsterdam go from 02:00 CET to 03:00 CEST on Sunday 29 March 2026.
FRIDAY_BEFORE_DST = datetime(2026, 3, 27, tzinfo=UTC)
MONDAY_AFTER_DST = datetime(2026, 3, 30, tzinfo=UTC)
OFFICE_HOURS = WindowRule("office hours", timedelta(hours=10), cron="0 8 * * MON-FRI")
WEEKEND_FREEZE = WindowRule("weekend", timedelta(days=2), rrule="FREQ=WEEKLY;BYDAY=SA;BYHOUR=0;BYMINUTE=0")


def window(
    allow: tuple[WindowRule, ...] = (),
    deny: tuple[WindowRule, ...] = (),
    overrides: bool = False,
    overrides_needed: int = 1,
    expires_after: timedelta | None = None,
) -> WindowGate:
    overriders = functools.partial(freeze_overriders, expires_after=expires_after)
    return WindowGate(
        AMSTERDAM, allow, deny, overriders if overrides else lambda _c, _s: [], overrides_needed
    )


def test_the_first_environment_passes_the_previous_environment_gate(tmp_path: Path) -> None:
    result = PreviousEnvironmentGate().evaluate(context(make_ledger(tmp_path), make_release(), previous=None))
    assert result == GateResult.passed("previous_environment", "prod is the first environment")


def test_a_release_not_recorded_in_the_previous_environment_fails(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    gate_context = context(ledger, make_release())
    deploy(ledger, gate_context.release_id, "staging", state="failed")

    result = PreviousEnvironmentGate().evaluate(gate_context)

    assert result.status == "failed"
    assert result.reason == "v1.0.0 has no successful deployment in staging; promote it there first"


def test_a_release_recorded_in_the_previous_environment_passes(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    gate_context = context(ledger, make_release())
    deploy(ledger, gate_context.release_id, "staging")

    assert PreviousEnvironmentGate().evaluate(gate_context).reason == "v1.0.0 succeeded in staging"


def test_soak_waits_for_the_rest_of_its_time(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    release_id = context(ledger, make_release()).release_id
    deploy(ledger, release_id, "staging")
    live_since = ledger.deployments("sales", "staging")[0].finished_at
    assert live_since is not None

    result = SoakGate(timedelta(hours=2)).evaluate(
        context(ledger, make_release(), now=live_since + timedelta(minutes=30))
    )

    assert result.status == "waiting"
    assert result.reason == "soaking in staging: 30m of 2h, 1h30m to go"
    assert result.recheck_after == timedelta(hours=1, minutes=30)


def test_soak_passes_once_the_release_ran_long_enough(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    deploy(ledger, context(ledger, make_release()).release_id, "staging")
    live_since = ledger.deployments("sales", "staging")[0].finished_at
    assert live_since is not None

    result = SoakGate(timedelta(hours=2)).evaluate(
        context(ledger, make_release(), now=live_since + timedelta(hours=3))
    )

    assert result == GateResult.passed("soak", "healthy in staging for 3h")


def test_soak_fails_after_a_failure_in_the_previous_environment_since(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    release_id = context(ledger, make_release()).release_id
    deploy(ledger, release_id, "staging", run="first")
    deploy(ledger, release_id, "staging", state="failed", run="second")

    result = SoakGate(timedelta(hours=2)).evaluate(
        context(ledger, make_release(), now=datetime.now(UTC) + timedelta(hours=3))
    )

    assert result.status == "failed"
    assert result.reason.startswith("staging failed since v1.0.0 went live there (v1.0.0, ")
    assert result.reason.endswith(": test job failed)")


@pytest.fixture
def tagged_repo(bundle_repo: Callable[..., Path]) -> tuple[Path, str]:
    repo = bundle_repo()
    return repo, git(repo, "rev-parse", "v1.0.0^{commit}")


def test_release_tag_passes_when_the_tag_points_at_the_release_commit(
    tmp_path: Path, tagged_repo: tuple[Path, str]
) -> None:
    repo, commit = tagged_repo
    gate_context = context(make_ledger(tmp_path), make_release(commit=commit), repo=str(repo))

    assert ReleaseTagGate().evaluate(gate_context) == GateResult.passed(
        "release_tag", f"tag v1.0.0 points at {commit[:12]}"
    )


def test_a_missing_tag_fails_the_release_tag_gate(tmp_path: Path, tagged_repo: tuple[Path, str]) -> None:
    repo, commit = tagged_repo
    gate_context = context(make_ledger(tmp_path), make_release("v9.9.9", commit=commit), repo=str(repo))

    result = ReleaseTagGate().evaluate(gate_context)

    assert result.status == "failed"
    assert result.reason.startswith(f"tag 'v9.9.9' not found in {repo}; ")


def test_a_moved_tag_fails_the_release_tag_gate(tmp_path: Path, tagged_repo: tuple[Path, str]) -> None:
    repo, commit = tagged_repo
    gate_context = context(make_ledger(tmp_path), make_release(commit="b" * 40), repo=str(repo))

    result = ReleaseTagGate().evaluate(gate_context)

    assert result.status == "failed"
    assert result.reason.startswith(
        f"tag v1.0.0 points at {commit[:12]}, not at the release's commit bbbbbbbbbbbb"
    )


def notes_gate(tmp_path: Path, path: str = "documentation/releases/{version}.md") -> ReleaseNotesGate:
    return ReleaseNotesGate(path, ".", tmp_path / "checkouts")


def test_release_notes_present_at_the_commit_pass(tmp_path: Path, tagged_repo: tuple[Path, str]) -> None:
    repo, commit = tagged_repo
    gate_context = context(make_ledger(tmp_path), make_release(commit=commit), repo=str(repo))

    result = notes_gate(tmp_path).evaluate(gate_context)

    assert result == GateResult.passed(
        "release_notes", "release notes documentation/releases/1.0.0.md present"
    )


def test_missing_release_notes_fail(tmp_path: Path, tagged_repo: tuple[Path, str]) -> None:
    repo, commit = tagged_repo
    gate_context = context(make_ledger(tmp_path), make_release("v2.0.0", commit=commit), repo=str(repo))

    result = notes_gate(tmp_path).evaluate(gate_context)

    assert result.status == "failed"
    assert result.reason == (
        f"release notes documentation/releases/2.0.0.md are missing at {commit[:12]}; add and tag them"
    )


def test_empty_release_notes_fail(tmp_path: Path, bundle_repo: Callable[..., Path]) -> None:
    repo = bundle_repo(edit=lambda folder: (folder / "documentation/releases/1.0.0.md").write_text("\n"))
    commit = git(repo, "rev-parse", "v1.0.0^{commit}")
    gate_context = context(make_ledger(tmp_path), make_release(commit=commit), repo=str(repo))

    result = notes_gate(tmp_path).evaluate(gate_context)

    assert result == GateResult.failed(
        "release_notes", f"release notes documentation/releases/1.0.0.md are empty at {commit[:12]}"
    )


def test_an_allow_window_stays_at_local_time_across_a_dst_change(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    # 07:30 UTC is 08:30 in Amsterdam on Friday (CET) and 09:30 on Monday (CEST).
    before = window(allow=(OFFICE_HOURS,)).evaluate(
        context(ledger, make_release(), now=FRIDAY_BEFORE_DST.replace(hour=6, minute=30))
    )
    after = window(allow=(OFFICE_HOURS,)).evaluate(
        context(ledger, make_release(), now=MONDAY_AFTER_DST.replace(hour=5, minute=30))
    )

    assert before.status == "waiting"
    assert before.reason == "window opens Fri 27 Mar 08:00 Europe/Amsterdam"
    assert before.recheck_after == timedelta(minutes=30)  # 08:00 CET is 07:00 UTC
    assert after.status == "waiting"
    assert after.reason == "window opens Mon 30 Mar 08:00 Europe/Amsterdam"
    assert after.recheck_after == timedelta(minutes=30)  # 08:00 CEST is 06:00 UTC


def test_inside_an_allow_window_the_window_gate_passes(tmp_path: Path) -> None:
    now = MONDAY_AFTER_DST.replace(hour=6, minute=30)  # 08:30 CEST

    result = window(allow=(OFFICE_HOURS,)).evaluate(context(make_ledger(tmp_path), make_release(), now=now))

    assert result == GateResult.passed(
        "window", "inside office hours window until Mon 30 Mar 18:00 Europe/Amsterdam"
    )


def test_a_freeze_wins_over_an_allow_window(tmp_path: Path) -> None:
    everyday = WindowRule("all day", timedelta(hours=24), cron="0 0 * * *")
    now = datetime(2026, 3, 29, 12, tzinfo=UTC)  # Sunday, after the clocks went forward

    result = window(allow=(everyday,), deny=(WEEKEND_FREEZE,)).evaluate(
        context(make_ledger(tmp_path), make_release(), now=now)
    )

    assert result.status == "waiting"
    assert result.reason == "weekend freeze until Mon 30 Mar 00:00 Europe/Amsterdam"


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (datetime(2026, 3, 29, 21, 30, tzinfo=UTC), "waiting"),  # Sunday 23:30 CEST
        (datetime(2026, 3, 29, 22, 30, tzinfo=UTC), "passed"),  # Monday 00:30 CEST
    ],
)
def test_a_two_day_freeze_ends_at_local_midnight_across_a_dst_change(
    tmp_path: Path, now: datetime, status: str
) -> None:
    # Saturday 00:00 CET + 2 calendar days is Monday 00:00 CEST: 47 hours, not 48.
    result = window(deny=(WEEKEND_FREEZE,)).evaluate(context(make_ledger(tmp_path), make_release(), now=now))

    assert result.status == status


def test_a_freeze_is_lifted_only_by_an_approval_that_says_so(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    gate_context = context(ledger, make_release(), now=datetime(2026, 3, 28, 12, tzinfo=UTC))
    ledger.record_approval(approval(gate_context, "alice"))
    assert window(deny=(WEEKEND_FREEZE,), overrides=True).evaluate(gate_context).status == "waiting"

    ledger.record_approval(approval(gate_context, "bob", overrides_freeze=True, reason="hotfix for INC-42"))

    result = window(deny=(WEEKEND_FREEZE,), overrides=True).evaluate(gate_context)
    assert result == GateResult.passed("window", "weekend freeze overridden by bob")


def test_a_freeze_needs_two_people_to_override_it_by_default(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    gate_context = context(ledger, make_release(), now=datetime(2026, 3, 28, 12, tzinfo=UTC))
    gate = WindowGate(AMSTERDAM, (), (WEEKEND_FREEZE,), freeze_overriders)
    ledger.record_approval(approval(gate_context, "bob", overrides_freeze=True, reason="hotfix for INC-42"))

    assert gate.evaluate(gate_context).reason == (
        "weekend freeze until Mon 30 Mar 00:00 Europe/Amsterdam; 1 of 2 overrides (have: bob)"
    )
    ledger.record_approval(approval(gate_context, "Alice", overrides_freeze=True, reason="INC-42 confirmed"))
    assert gate.evaluate(gate_context) == GateResult.passed(
        "window", "weekend freeze overridden by alice, bob"
    )


def test_an_expired_override_no_longer_lifts_a_freeze(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    gate_context = context(ledger, make_release(), now=datetime(2026, 3, 30, 21, tzinfo=UTC))
    long_freeze = WindowRule(
        "release freeze", timedelta(days=5), rrule="FREQ=WEEKLY;BYDAY=SA;BYHOUR=0;BYMINUTE=0"
    )
    three_days_old = gate_context.now - timedelta(days=2, hours=12)
    ledger.record_approval(approval(gate_context, "bob", overrides_freeze=True, given_at=three_days_old))

    gate = window(deny=(long_freeze,), overrides=True, expires_after=timedelta(hours=1))

    assert gate.evaluate(gate_context).status == "waiting"
    assert window(deny=(long_freeze,), overrides=True).evaluate(gate_context).status == "passed"


def test_the_triggering_user_cannot_lift_a_freeze(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    gate_context = context(ledger, make_release(), now=datetime(2026, 3, 28, 12, tzinfo=UTC))
    ledger.record_approval(approval(gate_context, "dag_test", overrides_freeze=True))

    result = window(deny=(WEEKEND_FREEZE,), overrides=True).evaluate(gate_context)

    assert result.reason == "weekend freeze until Mon 30 Mar 00:00 Europe/Amsterdam"


def test_overall_status_fails_on_any_failure_and_waits_on_any_wait() -> None:
    waiting = GateResult.waiting("approval", "1 of 2 QC approvals (have: alice)")
    failed = GateResult.failed("release_tag", "tag v1 is missing")
    passed = GateResult.passed("soak", "healthy")

    assert overall_status([passed, waiting]) == "waiting"
    assert overall_status([waiting, failed]) == "failed"
    assert summary([passed, waiting]) == "waiting: 1 of 2 QC approvals (have: alice)"


def test_a_gate_that_raises_fails_with_its_message(tmp_path: Path) -> None:
    gate_context = context(make_ledger(tmp_path), make_release(), repo=str(tmp_path / "no-such-repo"))

    [result] = evaluate_all([ReleaseTagGate()], gate_context)

    assert result.status == "failed"
    assert "no-such-repo" in result.reason


def test_spec_entries_become_gates_in_their_order(tmp_path: Path) -> None:
    gates = build_gates(
        [
            {"release_tag": {}},
            {"soak": {"duration": "PT2H"}},
            {"approval": {"groups": [{"name": "qc", "role": "Op"}]}},
        ],
        bundle_path=".",
        checkouts=tmp_path,
    )

    assert [gate.name for gate in gates] == ["release_tag", "soak", "approval"]
    assert gates[1] == SoakGate(timedelta(hours=2))


def test_commit_authors_are_those_since_the_release_the_environment_runs(
    tmp_path: Path, bundle_repo: Callable[..., Path]
) -> None:
    repo = bundle_repo()
    first = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("changed\n")
    git(repo, "add", "-A")
    git(
        repo,
        "-c",
        "user.name=Carol",
        "-c",
        "user.email=carol@example.com",
        "commit",
        "-q",
        "-m",
        "x",
        "--author",
        "Carol <carol@example.com>",
    )
    second = git(repo, "rev-parse", "HEAD")

    assert commit_authors(str(repo), second, first, tmp_path / "checkouts") == ("Carol", "carol@example.com")
    assert commit_authors(str(repo), second, None, tmp_path / "checkouts") == (
        "Carol",
        "Release Bot",
        "carol@example.com",
        "release-bot@example.com",
    )


def test_an_environment_with_gates_holds_its_deploy_behind_a_gates_task(tmp_path: Path) -> None:
    from bundle_promotion.dags.factory import build_promotion_dag
    from bundle_promotion.spec import PromotionSpec

    environments = [
        {"name": name, "target": name, "databricks_conn_id": f"databricks_{name}", "schedules": "paused"}
        for name in ("dev", "prod")
    ]
    environments[1]["gates"] = ["previous_environment", {"soak": {"duration": "PT1H"}}]
    spec = PromotionSpec.model_validate(
        {
            "bundle": "sales",
            "source": {"repo": "https://github.com/acme/sales.git"},
            "environments": environments,
        }
    )

    dag = build_promotion_dag(spec)

    assert "dev.gates" not in dag.task_dict
    assert dag.get_task("prod.gates").upstream_task_ids == {"dev.record"}
    held = dag.get_task("prod.gates").get_flat_relative_ids(upstream=False)
    assert {task_id for task_id in dag.task_dict if task_id.startswith("prod.")} - held == {"prod.gates"}
    gate = dag.get_task("prod.gates")
    assert (gate.previous_environment, gate.gates) == (
        "dev",
        [{"previous_environment": {}}, {"soak": {"duration": "PT1H"}}],
    )


class _GitHubDown:
    name = "checks_passed"

    def __init__(self, status: int) -> None:
        self.status = status

    def evaluate(self, context: object) -> GateResult:
        from bundle_promotion.errors import GitHubApiError

        raise GitHubApiError("acme/sales", "list check runs", self.status, "unavailable")


def test_a_gate_waits_through_a_github_outage_and_fails_on_a_permanent_error(tmp_path: Path) -> None:
    gate_context = context(make_ledger(tmp_path), make_release())

    outage, denied = evaluate_all([_GitHubDown(503), _GitHubDown(404)], gate_context)

    assert (outage.status, denied.status) == ("waiting", "failed")
    assert outage.reason.startswith(
        "cannot read GitHub now, trying again: GitHub acme/sales: list check runs"
    )


def test_soak_fails_once_the_previous_environment_runs_another_release(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    deploy(ledger, context(ledger, make_release()).release_id, "staging", run="first")
    older = context(ledger, make_release("v0.9.0", config_digest="0" * 64))
    deploy(ledger, older.release_id, "staging", run="rollback")

    result = SoakGate(timedelta(hours=2)).evaluate(
        context(ledger, make_release(), now=datetime.now(UTC) + timedelta(hours=3))
    )

    assert result == GateResult.failed("soak", "staging runs v0.9.0 now, not v1.0.0")


def test_soak_fails_while_a_rollback_holds_the_previous_environment(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path)
    deploy(ledger, context(ledger, make_release()).release_id, "staging")
    ledger.hold_environment("sales", "staging", reason="rolled back: verify failed", actor="bundle-promotion")

    result = SoakGate(timedelta(hours=2)).evaluate(
        context(ledger, make_release(), now=datetime.now(UTC) + timedelta(hours=3))
    )

    assert result.status == "failed"
    assert result.reason.startswith("staging is held since ")
    assert result.reason.endswith(": rolled back: verify failed")


def test_an_evaluation_is_recorded_only_when_it_says_something_new_in_the_run(tmp_path: Path) -> None:
    from bundle_promotion.ledger.records import GateEvaluation

    ledger = make_ledger(tmp_path)
    gate_context = context(ledger, make_release())

    def evaluate(*results: GateResult) -> None:
        ledger.record_gate_evaluation(
            GateEvaluation(
                bundle="sales",
                environment="prod",
                release_id=gate_context.release_id,
                release_digest=gate_context.release.digest,
                version="v1.0.0",
                run_id="manual__1",
                triggered_by="dag_test",
                commit_authors=(),
                evaluated_at=datetime.now(UTC),
                results=results,
            )
        )

    evaluate(GateResult.waiting("soak", "soaking in staging: 10m of 2h, 1h50m to go"))
    evaluate(GateResult.waiting("soak", "soaking in staging: 10m of 2h, 1h50m to go"))
    evaluate(GateResult.waiting("soak", "soaking in staging: 11m of 2h, 1h49m to go"))
    evaluate(GateResult.passed("soak", "healthy in staging for 2h"))

    gate_events = [event.action for event in ledger.audit_events() if event.action.startswith("gates.")]
    assert gate_events == ["gates.waiting", "gates.waiting", "gates.passed"]
    [latest] = ledger.latest_gate_evaluations("sales")
    assert latest.results == (GateResult.passed("soak", "healthy in staging for 2h"),)
