"""What a rollback restores: Unity Catalog model aliases, Delta tables and pipelines."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from bundle_promotion.spec.base import NonEmptyStr, _Frozen, _rule

_UC_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_-]*\.[A-Za-z0-9_][A-Za-z0-9_-]*\.[A-Za-z0-9_][A-Za-z0-9_-]*$"


def _full_name(kind: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.match(_UC_NAME, value):
            raise _rule(f"must be the {kind}'s three-part name catalog.schema.name; got '{value}'")
        return value

    return AfterValidator(check)


class ModelAlias(_Frozen):
    """A Unity Catalog model alias a rollback moves back to the version it named before the deploy."""

    name: Annotated[str, _full_name("registered model")] = Field(
        description="The registered model's full name, catalog.schema.model."
    )
    alias: NonEmptyStr = Field(description="The alias, for example champion.")


class Rollback(_Frozen):
    """What a rollback of the environment restores besides the code and the schedules."""

    automatic: bool = Field(
        default=True,
        description="Roll back by itself when deploy, verify or tests fail here, then hold the environment.",
    )
    require_approval: bool = Field(
        default=False, description="The manual rollback DAG waits for a person's approval first."
    )
    models: tuple[ModelAlias, ...] = Field(
        default=(), description="Model aliases recorded before each deploy and moved back on rollback."
    )
    tables: tuple[Annotated[str, _full_name("Delta table")], ...] = Field(
        default=(),
        description="Delta tables (catalog.schema.table) whose version is recorded before each deploy "
        "and restored on rollback.",
    )
    warehouse_id: str | None = Field(
        default=None, description="The SQL warehouse that reads table versions and runs RESTORE TABLE."
    )
    pipelines: tuple[NonEmptyStr, ...] = Field(
        default=(),
        description="Keys of the bundle's pipelines (resources.pipelines.<key>) to refresh on rollback.",
    )

    @model_validator(mode="after")
    def _tables_need_a_warehouse(self) -> Rollback:
        if self.tables and not self.warehouse_id:
            raise _rule(
                "tables need a warehouse_id: the SQL warehouse that reads DESCRIBE HISTORY and runs RESTORE",
                at=("warehouse_id",),
            )
        return self
