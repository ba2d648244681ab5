"""Where a promotion keeps what outlives a task: the ledger, built artifacts and git checkouts.

All three are set in the ``[bundle_promotion]`` section of the Airflow config and default to
folders under ``AIRFLOW_HOME``. In a multi-worker deployment the artifact store is an object
store URL (``s3://``, ``gs://``, ``abfs://``) and the ledger connection points at Postgres.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.sdk import ObjectStoragePath, conf

from bundle_promotion.hooks.ledger import LedgerHook

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger
    from bundle_promotion.release.store import ArtifactStore

SECTION = "bundle_promotion"


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")))


def ledger() -> Ledger:
    conn_id = conf.get(SECTION, "ledger_conn_id", fallback=LedgerHook.default_conn_name)
    return LedgerHook(ledger_conn_id=conn_id).get_conn()


def artifact_store() -> ArtifactStore:
    from bundle_promotion.release.store import ArtifactStore

    default = (_airflow_home() / "bundle_promotion" / "artifacts").as_uri()
    return ArtifactStore(ObjectStoragePath(conf.get(SECTION, "artifact_store", fallback=default)))


def checkouts() -> Path:
    default = _airflow_home() / "bundle_promotion" / "checkouts"
    return Path(conf.get(SECTION, "checkout_folder", fallback=str(default)))
