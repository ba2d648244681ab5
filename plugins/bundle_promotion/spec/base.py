"""What every spec model shares: the frozen base model, non-empty text, and our rule errors."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema
from pydantic_core import PydanticCustomError

_Loc = tuple[str | int, ...]

# Our own validation errors; their context may carry "at", a loc below the field.
_RULE = "bundle_promotion_rule"


def _rule(message: str, at: _Loc = ()) -> PydanticCustomError:
    # The text goes in through the context so braces in it are never read as a template.
    return PydanticCustomError(_RULE, "{message}", {"message": message, "at": at})


def _not_empty(value: str) -> str:
    if not value.strip():
        raise _rule("must not be empty")
    return value


NonEmptyStr = Annotated[str, AfterValidator(_not_empty), WithJsonSchema({"type": "string", "minLength": 1})]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
