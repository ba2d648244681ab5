"""A Celery worker configured with ``bundle_promotion.workers.CELERY_CONFIG`` loads, before it forks,
what each task's process would otherwise load again, and nothing a task never uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

# Run in a fresh interpreter: preloading imports most of the package and freezes the collector.
PROBE = textwrap.dedent(
    """
    import gc, json, sys, threading
    from celery.signals import worker_init
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from bundle_promotion import workers

    before, threads = set(sys.modules), threading.active_count()
    worker_init.send(sender=None)  # as Celery does in the worker's main process
    from airflow.sdk.listener import get_listener_manager
    print(json.dumps({
        "config_is_airflows": workers.CELERY_CONFIG is DEFAULT_CELERY_CONFIG,
        "loaded": sorted(set(sys.modules) - before),
        "after": sorted(sys.modules),
        "plugins_cached": get_listener_manager.cache_info().currsize,
        "frozen": gc.get_freeze_count(),
        "threads_started": threading.active_count() - threads,
    }))
    """
)


def preloaded() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_the_worker_preloads_the_tasks_modules_and_plugins_before_it_forks() -> None:
    probe = preloaded()
    loaded = set(probe["loaded"])  # type: ignore[arg-type]

    assert probe["config_is_airflows"] is True
    assert "airflow.sdk.execution_time.task_runner" in probe["after"]  # type: ignore[operator]
    assert {
        "bundle_promotion.dags.factory",
        "bundle_promotion.operators.deploy",
        "bundle_promotion.sensors.gate",
        "bundle_promotion.ledger.models",
        "bundle_promotion.lifecycle.promotion",
        "airflow.providers.databricks.hooks.databricks",  # through the provider's plugin
    } <= loaded
    assert probe["plugins_cached"] == 1
    assert int(probe["frozen"]) > 0  # type: ignore[call-overload]
    assert probe["threads_started"] == 0  # a forked task would have none of them


def test_what_no_task_runs_is_not_preloaded() -> None:
    loaded = set(preloaded()["loaded"])  # type: ignore[arg-type]

    never = [name for name in loaded if name.startswith(("bundle_promotion.web", "bundle_promotion.cli"))]
    assert never == []
    assert "bundle_promotion.testing.workspace" not in loaded
