"""The emulator's pipelines, Unity Catalog models and SQL statements, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bundle_promotion.testing.workspace import WorkspaceEmulator

TABLE = "main.sales.orders"


@pytest.fixture
def http(workspaces: WorkspaceEmulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {workspaces.token('dev')}"}
    with httpx.Client(base_url=f"{workspaces.base_url('dev')}/api", headers=headers) as client:
        yield client


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def sql(http: httpx.Client, statement: str, **extra: str) -> dict[str, Any]:
    answer: dict[str, Any] = ok(
        http.post("/2.0/sql/statements", json={"statement": statement, "warehouse_id": "wh1", **extra})
    )
    return answer


def rows(answer: dict[str, Any]) -> list[dict[str, str]]:
    columns = [column["name"] for column in answer["manifest"]["schema"]["columns"]]
    return [dict(zip(columns, row, strict=True)) for row in answer.get("result", {}).get("data_array", [])]


def create_pipeline(http: httpx.Client, **configuration: str) -> str:
    body = {"name": "orders", "catalog": "main", "target": "sales", "configuration": configuration}
    return str(ok(http.post("/2.0/pipelines", json=body))["pipeline_id"])


def finished_update(http: httpx.Client, pipeline_id: str, update_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        update: dict[str, Any] = ok(http.get(f"/2.0/pipelines/{pipeline_id}/updates/{update_id}"))["update"]
        if update["state"] in ("COMPLETED", "FAILED", "CANCELED"):
            return update
        time.sleep(0.05)
    raise AssertionError(f"update {update_id} did not finish")


def test_a_created_pipeline_reads_back_with_its_spec(http: httpx.Client) -> None:
    pipeline_id = create_pipeline(http)

    pipeline = ok(http.get(f"/2.0/pipelines/{pipeline_id}"))

    assert pipeline["spec"] == {
        "id": pipeline_id,
        "name": "orders",
        "catalog": "main",
        "target": "sales",
        "configuration": {},
    }
    assert (pipeline["state"], pipeline["name"]) == ("IDLE", "orders")


def test_editing_a_pipeline_replaces_its_whole_spec(http: httpx.Client) -> None:
    pipeline_id = create_pipeline(http)

    ok(
        http.put(
            f"/2.0/pipelines/{pipeline_id}", json={"id": pipeline_id, "name": "orders", "catalog": "dev"}
        )
    )

    assert ok(http.get(f"/2.0/pipelines/{pipeline_id}"))["spec"] == {
        "id": pipeline_id,
        "name": "orders",
        "catalog": "dev",
    }


def test_a_deleted_pipeline_is_gone(http: httpx.Client) -> None:
    pipeline_id = create_pipeline(http)

    ok(http.delete(f"/2.0/pipelines/{pipeline_id}"))
    missing = http.get(f"/2.0/pipelines/{pipeline_id}")

    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_second_pipeline_with_the_same_name_is_refused(http: httpx.Client) -> None:
    create_pipeline(http)

    duplicate = http.post("/2.0/pipelines", json={"name": "orders"})

    assert (duplicate.status_code, duplicate.json()["error_code"]) == (400, "RESOURCE_CONFLICT")


def test_pipelines_list_shows_their_states(http: httpx.Client) -> None:
    pipeline_id = create_pipeline(http)

    statuses = ok(http.get("/2.0/pipelines"))["statuses"]

    assert [(s["pipeline_id"], s["state"]) for s in statuses] == [(pipeline_id, "IDLE")]


def test_a_full_refresh_runs_then_completes(http: httpx.Client) -> None:
    pipeline_id = create_pipeline(http, **{"emulator.update_seconds": "0.3"})

    update_id = ok(http.post(f"/2.0/pipelines/{pipeline_id}/updates", json={"full_refresh": True}))[
        "update_id"
    ]
    running = ok(http.get(f"/2.0/pipelines/{pipeline_id}/updates/{update_id}"))["update"]

    assert (running["state"], running["full_refresh"]) == ("RUNNING", True)
    assert ok(http.get(f"/2.0/pipelines/{pipeline_id}"))["state"] == "RUNNING"
    assert finished_update(http, pipeline_id, update_id)["state"] == "COMPLETED"


def test_a_second_update_while_one_runs_is_a_conflict(http: httpx.Client) -> None:
    pipeline_id = create_pipeline(http, **{"emulator.update_seconds": "5"})
    ok(http.post(f"/2.0/pipelines/{pipeline_id}/updates", json={}))

    second = http.post(f"/2.0/pipelines/{pipeline_id}/updates", json={"full_refresh": True})

    assert (second.status_code, second.json()["error_code"]) == (409, "RESOURCE_CONFLICT")


def test_a_failing_refresh_ends_failed_with_an_error_event(http: httpx.Client) -> None:
    pipeline_id = create_pipeline(
        http, **{"emulator.update_result": "FAILED", "emulator.update_error": "orders_clean: schema mismatch"}
    )

    body = {"full_refresh_selection": ["orders_clean"]}
    update_id = ok(http.post(f"/2.0/pipelines/{pipeline_id}/updates", json=body))["update_id"]
    update = finished_update(http, pipeline_id, update_id)
    events = ok(http.get(f"/2.0/pipelines/{pipeline_id}/events"))["events"]

    assert (update["state"], update["full_refresh_selection"]) == ("FAILED", ["orders_clean"])
    assert [(e["level"], e["origin"]["update_id"], e["message"]) for e in events] == [
        ("ERROR", update_id, "orders_clean: schema mismatch")
    ]


def test_a_model_alias_points_at_the_version_it_was_set_to(http: httpx.Client) -> None:
    ok(
        http.post(
            "/2.1/unity-catalog/models", json={"catalog_name": "main", "schema_name": "ml", "name": "churn"}
        )
    )
    for _ in range(2):
        ok(
            http.post(
                "/2.0/mlflow/unity-catalog/model-versions/create",
                json={"name": "main.ml.churn", "source": "s"},
            )
        )

    alias = ok(http.put("/2.1/unity-catalog/models/main.ml.churn/aliases/champion", json={"version_num": 2}))
    version = ok(http.get("/2.1/unity-catalog/models/main.ml.churn/aliases/champion"))
    model = ok(http.get("/2.1/unity-catalog/models/main.ml.churn"))

    assert alias == {"alias_name": "champion", "version_num": 2}
    assert (version["version"], version["model_name"]) == (2, "churn")
    assert model["aliases"] == [{"alias_name": "champion", "version_num": 2}]


def test_an_alias_to_a_missing_version_or_model_is_not_found(http: httpx.Client) -> None:
    ok(
        http.post(
            "/2.1/unity-catalog/models", json={"catalog_name": "main", "schema_name": "ml", "name": "churn"}
        )
    )

    to_missing_version = http.put(
        "/2.1/unity-catalog/models/main.ml.churn/aliases/champion", json={"version_num": 7}
    )
    on_missing_model = http.get("/2.1/unity-catalog/models/main.ml.nope/aliases/champion")

    assert (to_missing_version.status_code, on_missing_model.status_code) == (404, 404)
    assert on_missing_model.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_deleted_alias_is_gone(http: httpx.Client) -> None:
    ok(
        http.post(
            "/2.1/unity-catalog/models", json={"catalog_name": "main", "schema_name": "ml", "name": "churn"}
        )
    )
    ok(
        http.post(
            "/2.0/mlflow/unity-catalog/model-versions/create", json={"name": "main.ml.churn", "source": "s"}
        )
    )
    ok(http.put("/2.1/unity-catalog/models/main.ml.churn/aliases/champion", json={"version_num": 1}))

    ok(http.delete("/2.1/unity-catalog/models/main.ml.churn/aliases/champion"))

    assert http.get("/2.1/unity-catalog/models/main.ml.churn/aliases/champion").status_code == 404


def test_each_write_to_a_table_is_a_version_in_its_history(http: httpx.Client) -> None:
    sql(http, f"CREATE TABLE {TABLE} (id INT, amount DOUBLE)")
    sql(http, f"INSERT INTO {TABLE} VALUES (1, 9.5), (2, 3.0)")

    history = rows(sql(http, f"DESCRIBE HISTORY {TABLE}"))

    assert [(h["version"], h["operation"]) for h in history] == [("1", "WRITE"), ("0", "CREATE TABLE")]
    assert rows(sql(http, f"SELECT * FROM {TABLE}")) == [
        {"id": "1", "amount": "9.5"},
        {"id": "2", "amount": "3.0"},
    ]


def test_restore_brings_back_the_rows_of_a_version_as_a_new_version(http: httpx.Client) -> None:
    sql(http, f"CREATE TABLE {TABLE} (id INT)")
    sql(http, f"INSERT INTO {TABLE} VALUES (1)")
    sql(http, f"INSERT INTO {TABLE} VALUES (2)")

    restored = sql(http, f"RESTORE TABLE {TABLE} TO VERSION AS OF 1")

    assert restored["status"]["state"] == "SUCCEEDED"
    assert rows(sql(http, f"SELECT * FROM {TABLE}")) == [{"id": "1"}]
    newest = rows(sql(http, f"DESCRIBE HISTORY {TABLE}"))[0]
    assert (newest["version"], newest["operation"], newest["operationParameters"]) == (
        "3",
        "RESTORE",
        '{"version": "1"}',
    )


def test_a_failed_statement_is_http_200_with_state_failed(http: httpx.Client) -> None:
    sql(http, f"CREATE TABLE {TABLE} (id INT)")

    missing_table = sql(http, "DESCRIBE HISTORY main.sales.nope")
    missing_version = sql(http, f"RESTORE TABLE {TABLE} TO VERSION AS OF 5")

    assert missing_table["status"]["state"] == "FAILED"
    assert "TABLE_OR_VIEW_NOT_FOUND" in missing_table["status"]["error"]["message"]
    assert "Available versions: [0, 0]" in missing_version["status"]["error"]["message"]


def test_a_statement_sent_with_no_wait_is_pending_until_read_back(http: httpx.Client) -> None:
    first = sql(http, f"CREATE TABLE {TABLE} (id INT)", wait_timeout="0s")

    read_back = ok(http.get(f"/2.0/sql/statements/{first['statement_id']}"))

    assert first["status"] == {"state": "PENDING"}
    assert read_back["status"]["state"] == "SUCCEEDED"
