"""Property: whatever the resources of the other kinds hold, `bundle validate` (for either engine)
gives a result or a BundleConfigError, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bundle_promotion.bundle.config.load import validate
from bundle_promotion.errors import BundleConfigError
from tests.fuzzing import HOSTILE, document, field, listing, mapping, text

names = st.sampled_from(["main", "raw", "sales", "${resources.schemas.raw.name}"]) | text
principals = mapping(
    {"level": st.sampled_from(["CAN_MANAGE", "CAN_VIEW", "CAN_RUN", "READ"]), "group_name": text}
)
kinds = {
    "schemas": mapping(
        {"catalog_name": names, "name": names}, {"grants": listing(mapping({"principal": text}))}
    ),
    "volumes": mapping({"catalog_name": names, "schema_name": names, "name": names}, {"volume_type": text}),
    "registered_models": mapping({"catalog_name": names, "schema_name": names, "name": names}),
    "experiments": mapping({"name": names}, {"tags": listing(mapping({"key": text, "value": text}))}),
    "secret_scopes": mapping({"name": names}, {"permissions": listing(principals)}),
    "clusters": mapping(
        {"cluster_name": names}, {"custom_tags": field(st.dictionaries(text, text, max_size=2))}
    ),
    "sql_warehouses": mapping({"name": names}, {"tags": mapping({}, {"custom_tags": listing(text)})}),
    "dashboards": mapping(
        {"display_name": names},
        {"parent_path": text, "file_path": st.sampled_from(["./d.lvdash.json", "../x"]) | text},
    ),
    "model_serving_endpoints": mapping(
        {"name": names},
        {
            "config": mapping(
                {},
                {"served_models": listing(mapping({"model_name": text})), "served_entities": listing(text)},
            )
        },
    ),
    "apps": mapping({"name": names}, {"source_code_path": st.sampled_from(["./app", "../.."]) | text}),
    "quality_monitors": mapping(
        {"table_name": names}, {"output_schema_name": names, "schedule": mapping({}, {"pause_status": text})}
    ),
    "alerts": mapping({"display_name": names}),
    "pipelines": mapping({"name": names}, {"catalog": names, "schema": names}),
}
resources = mapping(
    {}, {kind: field(st.dictionaries(names, resource, max_size=2)) for kind, resource in kinds.items()}
)
root_document = document(
    {"bundle": mapping({"name": st.just("demo")})},
    {
        "workspace": mapping({"root_path": st.just("/Shared/demo")}),
        "resources": resources,
        "presets": mapping({}, {"name_prefix": text, "tags": field(st.dictionaries(text, text, max_size=2))}),
        "permissions": listing(principals),
        "targets": field(
            st.dictionaries(
                st.just("dev"),
                mapping({}, {"mode": st.just("development"), "resources": resources}),
                max_size=1,
            )
        ),
    },
)


@settings(HOSTILE, max_examples=150)
@given(root=root_document, target=st.sampled_from(["", "dev"]), engine=st.sampled_from(["native", "cli"]))
def test_any_resources_of_any_kind_validate_or_are_a_bundle_error(
    tmp_path_factory: pytest.TempPathFactory, root: Any, target: str, engine: str
) -> None:
    folder: Path = tmp_path_factory.mktemp("kinds")
    (folder / "app").mkdir()
    (folder / "d.lvdash.json").write_text("{}")
    (folder / "databricks.yml").write_text(yaml.safe_dump(root, allow_unicode=True))

    validation = validate(folder, target, current_user={"userName": "jane.doe@example.com"}, engine=engine)

    assert all(isinstance(error, BundleConfigError) for error in validation.errors)
