"""Property: whatever a spec file holds, loading it gives a spec or a SpecError, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bundle_promotion.errors import SpecError
from bundle_promotion.spec import PromotionSpec, load_spec
from tests.fuzzing import HOSTILE, document, field, listing, mapping, mostly, raw_bytes, text
from tests.spec.test_spec import EXAMPLE_BUNDLE, EXAMPLE_SPEC

# The example spec, pointing at the bundle beside it, so damaged copies still reach the bundle checks.
LOCAL_EXAMPLE_SPEC = EXAMPLE_SPEC.read_bytes().replace(b"../../.demo/example_bundle", b"./bundle")
names = mostly(st.sampled_from(["dev", "staging", "prod", "integration_tests", "etl"]), text | st.just("Dev"))
prose = mostly(st.sampled_from(["Nightly sales ETL", "data-platform", "é → λ"]), text)
durations = mostly(st.sampled_from(["90s", "30m", "2h", 60, "P7D"]), text | st.sampled_from(["0s", "-1h"]))
window_rule = mapping(
    {"duration": durations},
    {
        "cron": mostly(st.just("0 8 * * MON-FRI"), text),
        "rrule": mostly(st.just("FREQ=WEEKLY;BYDAY=MO"), text),
    },
)
gate = st.one_of(
    st.sampled_from(["release_tag", "release_notes", "previous_environment", "approval", "soak"]),
    mapping({"approval": mapping({"groups": listing(mapping({"name": names, "min": st.integers(-1, 3)}))})}),
    mapping({"soak": mapping({"duration": durations})}),
    mapping(
        {
            "window": mapping(
                {"timezone": mostly(st.just("Europe/Paris"), text)}, {"allow": listing(window_rule)}
            )
        }
    ),
    mapping({"release_notes": mapping({"path": prose})}),
    mapping({"checks_passed": mapping({"required": listing(text)})}),
)
test_suite = st.one_of(
    names,
    mapping(
        {"job": names}, {"params": field(st.dictionaries(names, prose, max_size=2)), "timeout": durations}
    ),
)
environment = mapping(
    {
        "name": names,
        "target": names,
        "databricks_conn_id": mostly(st.sampled_from(["databricks_dev", "databricks_prod", "db"]), text),
        "schedules": st.sampled_from(["paused", "unpaused"]),
    },
    {
        "tests": listing(test_suite),
        "gates": listing(gate),
        "production": st.booleans(),
        "rollback": mapping(
            {}, {"tables": listing(prose), "models": listing(mapping({"name": prose, "alias": prose}))}
        ),
    },
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the spec under test, beside a local git checkout of the example bundle."""
    folder = tmp_path_factory.mktemp("specs")
    shutil.copytree(EXAMPLE_BUNDLE, folder / "bundle")
    subprocess.run(["git", "init", "--quiet", str(folder / "bundle")], check=True)
    return folder


def spec_documents() -> st.SearchStrategy[Any]:
    repos = mostly(
        st.sampled_from(["./bundle", "https://github.com/acme/sales.git", "git@github.com:a/b.git"]), text
    )
    return document(
        {
            "bundle": mostly(st.sampled_from(["sales", "example"]), text),
            "source": mapping({"repo": repos}, {"path": mostly(st.just("."), text | st.just(".."))}),
            "environments": listing(environment, min_size=1),
        },
        {
            "description": prose,
            "owner": prose,
            "engine": st.sampled_from(["native", "cli"]),
            "github": mapping({"repo": mostly(st.just("acme/sales"), text)}),
        },
    )


def assert_loads_or_is_a_spec_error(path: Path) -> None:
    outcome = spec_or_error(path)
    assert isinstance(outcome, PromotionSpec) or outcome.file == str(path)


def spec_or_error(path: Path) -> PromotionSpec | SpecError:
    """The spec in ``path`` or our error about it; anything else raised fails the property."""
    try:
        return load_spec(path)
    except SpecError as error:
        return error


@HOSTILE
@given(document=spec_documents())
def test_any_spec_shaped_document_loads_or_is_a_spec_error(folder: Path, document: Any) -> None:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))

    assert_loads_or_is_a_spec_error(path)


@HOSTILE
@given(data=raw_bytes(LOCAL_EXAMPLE_SPEC))
def test_any_bytes_load_or_are_a_spec_error(folder: Path, data: bytes) -> None:
    path = folder / "spec.yaml"
    path.write_bytes(data)

    assert_loads_or_is_a_spec_error(path)
