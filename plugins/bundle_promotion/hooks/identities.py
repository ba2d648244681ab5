"""The identity map kept in an Airflow connection's extra, for every spec that names the connection.

The extra holds ``{"identities": {"alice": {"github": ["alice-acme"], "emails": ["alice@acme.example"]}}}``,
the shape of an approval gate's ``identities``, checked the same way. Reading it at each evaluation
means a change to the connection counts from the next look, with no DAG to re-parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from pydantic import ValidationError

from bundle_promotion.errors import SpecError

if TYPE_CHECKING:
    from bundle_promotion.spec import ConnectionIdentitiesSpec

_EXAMPLE = '{"identities": {"alice": {"github": ["alice-acme"], "emails": ["alice@acme.example"]}}}'


def connection_identities(conn_id: str) -> ConnectionIdentitiesSpec:
    """The identities in the connection's extra; ``SpecError`` naming the connection and the field."""
    from bundle_promotion.spec import ConnectionIdentitiesSpec

    where = f"Airflow connection {conn_id}"
    try:
        extra = BaseHook.get_connection(conn_id).extra_dejson
    except AirflowNotFoundException:
        raise SpecError(
            where,
            "",
            f"not found; create it with the extra {_EXAMPLE}, or stop naming it as identities_conn_id",
        ) from None
    try:
        return ConnectionIdentitiesSpec.model_validate({"identities": extra.get("identities")})
    except ValidationError as invalid:
        first = invalid.errors()[0]
        field = ".".join(["extra", *(str(part) for part in first["loc"])])
        raise SpecError(where, field, f"{first['msg']}; the extra looks like {_EXAMPLE}") from None
