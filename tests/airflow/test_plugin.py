"""The plugin registers once, by entry point when installed and by the plugins folder otherwise."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from types import ModuleType

import pytest

from tests.conftest import AIRFLOW, PROJECT

PLUGIN_FILE = PROJECT / "plugins" / "bundle_promotion_plugin.py"


def test_airflow_lists_the_plugin_once_from_the_installed_entry_point() -> None:
    result = subprocess.run(
        [*AIRFLOW, "plugins", "--output", "json"], capture_output=True, text=True, check=True, env=os.environ
    )

    ours = [plugin for plugin in json.loads(result.stdout) if plugin["name"] == "bundle_promotion"]
    assert len(ours) == 1
    assert "EntryPoint(name='bundle_promotion'" in ours[0]["source"]


def test_loading_plugins_reports_no_import_error() -> None:
    script = (
        "from airflow import plugins_manager as p; p.ensure_plugins_loaded(); print(p.get_import_errors())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=os.environ
    )

    assert result.stdout.strip().splitlines()[-1] == "{}"


def load_plugin_file(monkeypatch: pytest.MonkeyPatch, installed: bool) -> ModuleType:
    real_entry_points = importlib.metadata.entry_points

    def entry_points(**selection: str) -> object:
        return real_entry_points(**selection) if installed else ()

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    spec = importlib.util.spec_from_file_location("bundle_promotion_plugin_under_test", PLUGIN_FILE)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plugins_folder_file_registers_the_plugin_when_the_package_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load_plugin_file(monkeypatch, installed=False)

    assert module.BundlePromotionPlugin.name == "bundle_promotion"


def test_the_plugins_folder_file_stays_empty_when_the_entry_point_registers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load_plugin_file(monkeypatch, installed=True)

    assert not hasattr(module, "BundlePromotionPlugin")


def test_the_package_is_ignored_by_the_plugins_folder_scan() -> None:
    ignored = (PROJECT / "plugins" / ".airflowignore").read_text().split()

    assert "bundle_promotion/" in ignored


class DagRun:
    def __init__(self, dag_id: str, conf: dict[str, str] | None, note: str | None = None) -> None:
        self.dag_id, self.conf, self.note = dag_id, conf, note


def test_a_promotion_run_gets_its_release_as_its_note_when_it_starts() -> None:
    from bundle_promotion.plugin import BundlePromotionPlugin, RunNotes

    run = DagRun("promote__sales", {"version": "v1.2.0"})

    RunNotes().on_dag_run_running(run, msg="started")

    assert run.note == "Release v1.2.0 of sales"
    assert any(isinstance(listener, RunNotes) for listener in BundlePromotionPlugin.listeners)


@pytest.mark.parametrize(
    "run",
    [
        DagRun("promote__sales", {"version": "v1.2.0"}, note="hotfix for INC-42"),
        DagRun("rollback__sales", {"version": "v1.2.0"}),
        DagRun("promote__sales", None),
    ],
    ids=["a note given at trigger stays", "not a promotion", "no version"],
)
def test_other_runs_keep_their_note(run: DagRun) -> None:
    from bundle_promotion.plugin import RunNotes

    before = run.note

    RunNotes().on_dag_run_running(run, msg="started")

    assert run.note == before


@pytest.mark.usefixtures("airflow_db")
def test_the_note_is_kept_in_airflows_database_when_the_scheduler_starts_the_run() -> None:
    """The scheduler calls the plugin's listener inside its session; the note commits with it."""
    from airflow import plugins_manager
    from airflow._shared.timezones import timezone
    from airflow.listeners.listener import get_listener_manager
    from airflow.models import DagRun
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    plugins_manager.integrate_listener_plugins(get_listener_manager())
    with create_session() as session:
        session.merge(DagBundleModel(name="notes-bundle"))
        session.flush()
        session.merge(DagModel(dag_id="promote__notes", bundle_name="notes-bundle"))
        run = DagRun(
            dag_id="promote__notes",
            run_id="manual__notes",
            run_type=DagRunType.MANUAL,
            conf={"version": "v1.2.0"},
            state=DagRunState.RUNNING,
            run_after=timezone.utcnow(),
        )
        session.add(run)
        session.flush()
        run.notify_dagrun_state_changed(msg="started")

    with create_session() as session:
        stored = session.query(DagRun).filter_by(dag_id="promote__notes", run_id="manual__notes").one()
        assert stored.note == "Release v1.2.0 of notes"
