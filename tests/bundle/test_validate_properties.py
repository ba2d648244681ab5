"""Property: whatever a bundle's files hold, `bundle validate` and the DAG-parse outline give a
result or a BundleConfigError, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bundle_promotion.bundle.config.load import validate
from bundle_promotion.bundle.config.outline import BundleOutline, read_outline
from bundle_promotion.errors import BundleConfigError
from tests.bundle.test_bundle_config import EXAMPLE_BUNDLE, USER
from tests.fuzzing import HOSTILE, document, field, listing, mapping, raw_bytes, text

keys = st.sampled_from(["etl", "ingest", "main", "a b", "dev"]) | text
paths = st.sampled_from(["./src/etl.py", "../outside.py", "src/*.whl", "/Workspace/x", "${var.path}"]) | text
references = (
    st.sampled_from(["${var.catalog}", "${bundle.name}", "${workspace.root_path}", "${var.nope}"]) | text
)
task = mapping(
    {"task_key": keys},
    {
        "notebook_task": mapping({"notebook_path": paths}),
        "spark_python_task": mapping({"python_file": paths}),
        "depends_on": listing(mapping({"task_key": keys})),
        "libraries": listing(mapping({}, {"whl": paths, "pypi": mapping({"package": text})})),
        "job_cluster_key": keys,
    },
)
job = mapping(
    {"name": references},
    {
        "tasks": listing(task),
        "job_clusters": listing(
            mapping({"job_cluster_key": keys}, {"new_cluster": field(st.dictionaries(text, text))})
        ),
        "parameters": listing(mapping({"name": keys, "default": references})),
        "schedule": mapping(
            {"quartz_cron_expression": text}, {"pause_status": st.sampled_from(["PAUSED", "UNPAUSED"])}
        ),
        "tags": field(st.dictionaries(text, text, max_size=2)),
        "permissions": listing(
            mapping({"level": st.sampled_from(["CAN_MANAGE", "CAN_VIEW"]), "user_name": text})
        ),
        "run_as": mapping({}, {"service_principal_name": text, "user_name": text}),
    },
)
pipeline = mapping(
    {"name": references},
    {"libraries": listing(mapping({}, {"notebook": mapping({"path": paths})})), "continuous": st.booleans()},
)
resources = mapping(
    {},
    {
        "jobs": field(st.dictionaries(keys, job, max_size=2)),
        "pipelines": field(st.dictionaries(keys, pipeline, max_size=1)),
    },
)
variables = field(
    st.dictionaries(
        st.sampled_from(["catalog", "path", "warehouse"]) | text,
        st.one_of(
            text, mapping({}, {"default": text, "description": text, "lookup": mapping({"warehouse": text})})
        ),
        max_size=2,
    )
)
sections = {
    "workspace": mapping({}, {"root_path": paths, "host": text, "file_path": paths}),
    "resources": resources,
    "variables": variables,
    "run_as": mapping({}, {"service_principal_name": text, "user_name": text}),
    "presets": mapping(
        {},
        {
            "name_prefix": text,
            "tags": field(st.dictionaries(text, text, max_size=2)),
            "trigger_pause_status": text,
        },
    ),
    "permissions": listing(
        mapping({"level": st.sampled_from(["CAN_MANAGE", "CAN_RUN", "CAN_VIEW"]), "group_name": text})
    ),
    "artifacts": field(
        st.dictionaries(keys, mapping({}, {"type": text, "build": text, "path": paths}), max_size=1)
    ),
    "sync": mapping({}, {"exclude": listing(text)}),
}
target = mapping(
    {},
    {"default": st.booleans(), "mode": st.sampled_from(["development", "production"]) | text, **sections},
)
root_document = document(
    {"bundle": mapping({"name": st.sampled_from(["demo", ""]) | text})},
    {
        "include": listing(st.sampled_from(["resources/*.yml", "resources/extra.yml", "../x.yml"]) | text),
        "targets": field(st.dictionaries(st.sampled_from(["dev", "prod"]) | text, target, max_size=2)),
        **sections,
    },
)
# `-t TARGET`: mostly one the documents may define, or none (the default target).
targets = st.sampled_from(["", "dev", "prod"]) | st.sampled_from(["dev", "prod"]) | text
include_document = document(
    {}, {"resources": resources, "targets": field(st.dictionaries(text, target, max_size=1))}
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example bundle, whose root file and one include each example rewrites."""
    folder = tmp_path_factory.mktemp("fuzzed") / "bundle"
    shutil.copytree(EXAMPLE_BUNDLE, folder)
    (folder / "resources").mkdir(exist_ok=True)
    return folder


def assert_validates_or_is_a_bundle_error(bundle: Path, target: str) -> None:
    validation = validate(bundle, target, current_user=USER)
    assert all(isinstance(error, BundleConfigError) for error in validation.errors)
    outline = outline_or_error(bundle)
    assert not isinstance(outline, BundleConfigError) or outline.file.startswith(str(bundle))


def outline_or_error(bundle: Path) -> BundleOutline | BundleConfigError:
    """What DAG parsing reads of the bundle, or our error about it; anything else fails the property."""
    try:
        return read_outline(bundle)
    except BundleConfigError as error:
        return error


@HOSTILE
@given(root=root_document, included=include_document, target=targets)
def test_any_bundle_shaped_config_validates_or_is_a_bundle_error(
    bundle: Path, root: Any, included: Any, target: str
) -> None:
    (bundle / "databricks.yml").write_text(yaml.safe_dump(root, allow_unicode=True))
    (bundle / "resources" / "extra.yml").write_text(yaml.safe_dump(included, allow_unicode=True))

    assert_validates_or_is_a_bundle_error(bundle, target)


@HOSTILE
@given(data=raw_bytes((EXAMPLE_BUNDLE / "databricks.yml").read_bytes()))
def test_any_bytes_in_the_root_file_validate_or_are_a_bundle_error(bundle: Path, data: bytes) -> None:
    (bundle / "databricks.yml").write_bytes(data)
    (bundle / "resources" / "extra.yml").write_text("")

    assert_validates_or_is_a_bundle_error(bundle, "dev")
