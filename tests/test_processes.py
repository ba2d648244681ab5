"""A child process sees an allow-listed environment; its output leaves without secrets."""

from __future__ import annotations

from bundle_promotion.processes import child_environment, scrub, secrets_in


def test_a_child_gets_what_any_process_needs_and_the_prefixes_asked_for() -> None:
    worker = {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://proxy:3128",
        "UV_CACHE_DIR": "/cache/uv",
        "AIRFLOW_CONN_DATABRICKS_PROD": "databricks://:token@prod",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
    }

    assert child_environment(prefixes=("UV_",), source=worker) == {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://proxy:3128",
        "UV_CACHE_DIR": "/cache/uv",
    }


def test_scrub_replaces_whole_secrets_and_url_credentials() -> None:
    secrets = secrets_in({"DATABRICKS_TOKEN": "dapi-1", "EXTRA_TOKEN": "dapi-1-long", "UV_INDEX_URL": "x"})

    text = scrub("dapi-1-long then dapi-1 then https://bot:pw@pypi.example.com/simple", secrets)

    assert text == "*** then *** then https://pypi.example.com/simple"
