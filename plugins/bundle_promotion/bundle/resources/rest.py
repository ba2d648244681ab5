"""A resource kind described as data: where its REST API creates, reads, updates and deletes one.

Most kinds the CLI's direct engine deploys differ only in paths, where the id travels,
what a request carries and which fields the service cannot change in place. `RestKind`
holds that; `kinds.py` has one per kind. An `Endpoint`'s path may name `{id}` (the
resource's id) or any top-level field of the settings (`{table_name}`); with `id_param`,
the id travels as that query parameter (GET) or body field (any other method) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bundle_promotion.errors import DeployError, WorkspaceApiError
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

Settings = Mapping[str, Any]
Body = Callable[[Settings], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # after `/api/`, e.g. "2.1/unity-catalog/schemas/{id}"
    id_param: str | None = None

    def call(
        self,
        api: WorkspaceApi,
        resource_id: str,
        body: dict[str, Any] | None = None,
        settings: Settings | None = None,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        path = self.path.format_map({**(settings or {}), "id": resource_id})
        carried = {self.id_param: resource_id} if self.id_param else {}
        if self.method == "GET":
            return api.call("GET", path, query=carried or None)
        return api.call(self.method, path, body={**carried, **(body or {})}, idempotent=idempotent)


def sent_as(
    renames: Mapping[str, str], *, only: tuple[str, ...] | None = None, without: tuple[str, ...] = ()
) -> Body:
    """A request body from the settings: the fields in `only` (default all) but those `without`,
    some under another name."""

    def body(settings: Settings) -> dict[str, Any]:
        return {
            renames.get(name, name): value
            for name, value in settings.items()
            if (only is None or name in only) and name not in without
        }

    return body


SENT_AS_IS = sent_as({})


@dataclass(frozen=True)
class RestKind:
    """One kind of resource behind a REST API, as the native engine deploys it."""

    name: str  # the config's kind, e.g. "schemas"
    create: Endpoint
    read: Endpoint | Callable[[WorkspaceApi, str], dict[str, Any] | None]
    # None: the service changes nothing in place, any change recreates; a function: several calls
    update: Endpoint | Callable[[WorkspaceApi, str, dict[str, Any]], None] | None
    delete: Endpoint
    id_field: str  # where a create's answer (or, when absent there, the settings) holds the new id
    recreate_on: tuple[str, ...] = ()  # dotted fields whose change needs a new resource
    # Config fields the API does not take (sent elsewhere, or the config's own): never sent, never drift.
    not_sent: tuple[str, ...] = ()
    ignore_remote: tuple[str, ...] = ()  # fields the server answers differently from what was sent
    create_body: Body = SENT_AS_IS
    update_body: Body = SENT_AS_IS
    read_key: str | None = None  # the answer's field holding the resource, e.g. "experiment"
    gone_when: Mapping[str, str] = field(default_factory=dict)  # a read answer with these is deleted
    # The id a create gives, known from the settings alone (a Unity Catalog full name, a name
    # unique in the workspace): a create whose answer was lost is found by reading it.
    natural_id: Callable[[Settings], str] | None = None
    # How to find what these settings created when its id does not follow from them: the ids of
    # the resources of that name, oldest first (the engine takes the first no state records).
    lookup: Callable[[WorkspaceApi, Settings], list[str]] | None = None
    caseless: tuple[str, ...] = ()  # names the service stores in lower case (Unity Catalog's)
    url: Callable[[str], str] | None = None  # the resource's page under the host, from its id
    after_write: Callable[[WorkspaceApi, str, Settings], None] | None = None  # e.g. publish

    def read_one(self, api: WorkspaceApi, resource_id: str) -> dict[str, Any] | None:
        """The resource's settings on the server, or None when it is gone."""
        if not isinstance(self.read, Endpoint):
            return self.read(api, resource_id)
        try:
            answer = self.read.call(api, resource_id)
        except WorkspaceApiError as error:
            if is_missing(error):
                return None
            raise
        resource = answer.get(self.read_key) or {} if self.read_key else answer
        if any(resource.get(name) == value for name, value in self.gone_when.items()):
            return None
        return dict(resource)

    def create_one(self, api: WorkspaceApi, settings: dict[str, Any]) -> str:
        body = self.create_body(self._sent(settings))
        answer = self.create.call(api, "", body, settings, idempotent=False)
        created = answer.get(self.id_field) or settings.get(self.id_field)
        if not created:
            raise DeployError(f"creating a {self.name} answered no {self.id_field}")
        if self.after_write:
            self.after_write(api, str(created), settings)
        return str(created)

    def update_one(self, api: WorkspaceApi, resource_id: str, settings: dict[str, Any]) -> str:
        """Update in place; return the id the resource has afterwards (a renamed volume's changes)."""
        if self.update is None:
            raise DeployError(f"a {self.name} cannot be updated in place; it is recreated")
        body = self.update_body(self._sent(settings))
        if isinstance(self.update, Endpoint):
            self.update.call(api, resource_id, body, settings)
        else:
            self.update(api, resource_id, body)
        after = self.natural_id(settings) if self.natural_id else resource_id
        if self.after_write:
            self.after_write(api, after, settings)
        return after

    def delete_one(self, api: WorkspaceApi, resource_id: str) -> None:
        """Delete the resource; one that is already gone is fine."""
        try:
            self.delete.call(api, resource_id)
        except WorkspaceApiError as error:
            if not is_missing(error):
                raise

    def find_created(self, api: WorkspaceApi, settings: Settings) -> list[str]:
        """What these settings may have created: by natural id, else the lookup's candidates."""
        if self.lookup is not None:
            return self.lookup(api, settings)
        assert self.natural_id is not None
        wanted = self.natural_id(settings)
        return [wanted] if self.read_one(api, wanted) is not None else []

    @property
    def findable(self) -> bool:
        """Whether a create whose answer was lost can be found out (else it fails, never resent)."""
        return self.natural_id is not None or self.lookup is not None

    def page(self, host: str, resource_id: str) -> str:
        assert self.url is not None
        return f"{host}/{self.url(resource_id)}"

    def _sent(self, settings: Settings) -> dict[str, Any]:
        return {name: value for name, value in settings.items() if name not in self.not_sent}


def is_missing(error: WorkspaceApiError) -> bool:
    """404s, and the 400 `... does not exist` some older APIs (clusters, jobs) answer instead."""
    unknown_id = error.error_code == "INVALID_PARAMETER_VALUE" and "does not exist" in str(error)
    return unknown_id or workspace_files.is_missing(error)


def listed(
    path: str, items: str, id_field: str, matches: Callable[[Settings, Mapping[str, Any]], bool]
) -> Callable[[WorkspaceApi, Settings], list[str]]:
    """A lookup through a list endpoint (paged by `page_token`): the ids of the items that match."""

    def lookup(api: WorkspaceApi, settings: Settings) -> list[str]:
        found: list[str] = []
        query: dict[str, Any] = {}
        while True:
            answer = api.call("GET", path, query=query or None)
            found += [str(item[id_field]) for item in answer.get(items) or [] if matches(settings, item)]
            if not answer.get("next_page_token"):
                return found
            query = {"page_token": answer["next_page_token"]}

    return lookup


def full_name(*fields: str) -> Callable[[Settings], str]:
    """A Unity Catalog object's full name from its settings, e.g. `catalog.schema.name`, in lower
    case as Unity Catalog stores and answers it."""

    def name(settings: Settings) -> str:
        return ".".join(str(settings.get(part, "")) for part in fields).lower()

    return name
