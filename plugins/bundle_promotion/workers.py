"""What a Celery worker loads once, before it forks, so that no task's process loads it again.

Airflow runs each task in a process forked from the worker. As it starts, that process loads
every Airflow plugin (the Databricks provider's imports its hook and databricks-sdk), parses
the DAG file (which imports this package) and configures the ledger's ORM mappers. Done in
every task, that was the larger part of a task's CPU, and on a fleet of promotions the
workers' CPU is the bottleneck. Loaded once in the worker's main process, before Celery forks
its pool, every task's process inherits it copy-on-write. Only imports and caches that hold
no connection, file or thread are made here; the DAG file is still parsed for every task.

Use it as the worker's Celery configuration::

    [celery]
    celery_config_options = bundle_promotion.workers.CELERY_CONFIG

A worker keeps what it preloaded until it restarts, as it does with any installed provider:
restart the workers when you upgrade bundle-promotion.
"""

from __future__ import annotations

import gc
import importlib
import logging
import pkgutil
import sys
import threading
from types import ModuleType
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

CELERY_CONFIG = DEFAULT_CELERY_CONFIG
log = logging.getLogger(__name__)

# Never run in a task: the API server's app, the command line and the test doubles.
NOT_FOR_TASKS = tuple(f"bundle_promotion.{name}" for name in ("web", "cli", "testing", "demo"))


@worker_init.connect
def preload(**_signal: Any) -> None:
    """Celery sends ``worker_init`` in the worker's main process before it starts the pool."""
    threads = set(threading.enumerate())
    _load_what_tasks_load()
    log.info("Preloaded %d modules for the tasks this worker forks", len(sys.modules))
    if started := sorted(thread.name for thread in set(threading.enumerate()) - threads):
        log.warning(
            "Loading the plugins started threads %s, which no forked task has; if a plugin misbehaves "
            "in tasks, set [celery] celery_config_options back to Airflow's default",
            started,
        )
    # Keep the collector off everything loaded so far: a forked task neither scans it nor, by
    # touching its reference counts' pages, copies it.
    gc.freeze()


def _load_what_tasks_load() -> None:
    from airflow.sdk.execution_time import task_runner  # noqa: F401  # what each task's process runs
    from airflow.sdk.listener import get_listener_manager
    from airflow.sdk.plugins_manager import integrate_macros_plugins
    from sqlalchemy.orm import configure_mappers

    import bundle_promotion

    get_listener_manager()  # loads every plugin, cached for the process and its forks
    integrate_macros_plugins()
    _import_for_tasks(bundle_promotion)
    configure_mappers()


def _import_for_tasks(package: ModuleType) -> None:
    """Import ``package``'s modules and subpackages, except those no task runs (``pkgutil``'s
    ``walk_packages`` would import every subpackage, these too, to look inside)."""
    for found in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
        if not found.name.startswith(NOT_FOR_TASKS):
            module = importlib.import_module(found.name)
            if found.ispkg:
                _import_for_tasks(module)
