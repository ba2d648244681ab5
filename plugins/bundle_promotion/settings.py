"""The ``[bundle_promotion]`` settings, each read from Airflow's config when first asked.

This module alone names the config section and its keys, and gives their defaults: the
ledger, built artifacts and git checkouts (folders under ``AIRFLOW_HOME`` unless set), the
folder of promotion specs, the gate sensor's polling period, the signature password check and the
connection holding the identity map.
In a multi-worker deployment the artifact store is an object store URL (``s3://``, ``gs://``,
``abfs://``) and the ledger connection points at Postgres.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from airflow.sdk import ObjectStoragePath, conf

from bundle_promotion.hooks.ledger import LedgerHook, airflow_home

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger
    from bundle_promotion.release.store import ArtifactStore
    from bundle_promotion.spec import ApprovalGateSpec, ConnectionIdentitiesSpec

SECTION = "bundle_promotion"
SPECS_FOLDER_KEY = "specs_folder"
# Beside the DAGs folder, as in the project layout: dags/promotions.py reads include/promotions.
DEFAULT_SPECS_FOLDER = Path("include", "promotions")
DEFAULT_GATE_POLLING_PERIOD_SECONDS = 60.0
DEFAULT_SIGNATURE_ATTEMPT_INTERVAL = 5.0
DEFAULT_SIGNATURE_ADMIN_ROLE = "Admin"  # SimpleAuthManager's admin and FAB's Admin
BOARD_PATH = "/bundle-promotion/ui/"  # the release board's page, served by the plugin in the API server
DEFAULT_BASE_URL = "http://localhost:8080"  # the API server's default, when [api] base_url is unset


def ledger() -> Ledger:
    conn_id = conf.get(SECTION, "ledger_conn_id", fallback=LedgerHook.default_conn_name)
    return LedgerHook(ledger_conn_id=conn_id).get_conn()


def artifact_store() -> ArtifactStore:
    from bundle_promotion.release.store import ArtifactStore

    default = (airflow_home() / SECTION / "artifacts").as_uri()
    return ArtifactStore(ObjectStoragePath(conf.get(SECTION, "artifact_store", fallback=default)))


def checkouts() -> Path:
    default = airflow_home() / SECTION / "checkouts"
    return Path(conf.get(SECTION, "checkout_folder", fallback=str(default)))


def specs_folder() -> Path:
    """The promotion specs, the same folder for the DAG file, the API and the CLI:
    ``[bundle_promotion] specs_folder``, else ``include/promotions`` beside the DAGs folder."""
    default = Path(conf.get("core", "dags_folder")).parent / DEFAULT_SPECS_FOLDER
    return Path(conf.get(SECTION, SPECS_FOLDER_KEY, fallback=str(default)))


def gate_polling_period_seconds() -> float:
    """Seconds between evaluations of a waiting environment's gates, unless its task says."""
    return conf.getfloat(SECTION, "gate_polling_period_seconds", fallback=DEFAULT_GATE_POLLING_PERIOD_SECONDS)


def signature_password_check() -> str | None:
    """The dotted path of a ``PasswordCheck`` for Part 11 signatures; None for the default."""
    return conf.get(SECTION, "signature_password_check", fallback=None)


def signature_admin_role() -> str:
    """The Airflow role whose members may lift a signer's lockout through the API."""
    return conf.get(SECTION, "signature_admin_role", fallback=DEFAULT_SIGNATURE_ADMIN_ROLE)


def signature_attempt_interval() -> float:
    """Seconds a user waits between two Part 11 signature attempts through the API."""
    return conf.getfloat(SECTION, "signature_attempt_interval", fallback=DEFAULT_SIGNATURE_ATTEMPT_INTERVAL)


def approval_identities(gate: ApprovalGateSpec) -> ConnectionIdentitiesSpec | None:
    """The identity map of the connection the approval gate names (``identities_conn_id``), else of
    ``[bundle_promotion] identities_conn_id``; None when neither names one."""
    conn_id = gate.identities_conn_id or conf.get(SECTION, "identities_conn_id", fallback=None)
    if not conn_id:
        return None
    from bundle_promotion.hooks.identities import connection_identities

    return connection_identities(conn_id)


def board_url(bundle: str, environment: str) -> str:
    """The release board at one bundle's environment, under Airflow's ``[api] base_url``."""
    base = conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}{BOARD_PATH}?{urlencode({'bundle': bundle, 'env': environment})}"


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``: whether the waits defer when not told."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)
