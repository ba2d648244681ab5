"""What the plugin's triggers share: one way to serialize, and the workspace they poll."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger

if TYPE_CHECKING:
    from bundle_promotion.hooks.workspace import WorkspaceHook


class PromotionTrigger(BaseTrigger):
    """A trigger whose state is its constructor's parameters, each kept in the attribute of the
    same name: ``serialize`` returns them all, so a parameter added later is never left out."""

    def serialize(self) -> tuple[str, dict[str, Any]]:
        parameters = inspect.signature(type(self).__init__).parameters.values()
        names = [p.name for p in parameters if p.name != "self" and p.kind is not p.VAR_KEYWORD]
        return f"{type(self).__module__}.{type(self).__qualname__}", {n: getattr(self, n) for n in names}


class WorkspaceTrigger(PromotionTrigger):
    """A trigger that polls a Databricks workspace through the Airflow connection ``databricks_conn_id``.

    :param databricks_conn_id: the Airflow connection to the workspace
    """

    def __init__(self, *, databricks_conn_id: str) -> None:
        super().__init__()
        self.databricks_conn_id = databricks_conn_id

    def workspace(self) -> WorkspaceHook:
        from bundle_promotion.hooks.workspace import WorkspaceHook

        return WorkspaceHook(databricks_conn_id=self.databricks_conn_id, caller=type(self).__name__)
