"""What every spec model shares: the frozen base model, non-empty text, and our rule errors."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema, model_validator
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


# Text in a spec ends up in paths, ids and commands: NUL and other control characters never belong.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _control_character_at(value: Any, loc: _Loc = ()) -> tuple[_Loc, str] | None:
    """Where in ``value`` (text, or lists and mappings of it) a control character is, and which."""
    if isinstance(value, str):
        found = _CONTROL.search(value)
        return (loc, found.group()) if found else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str | int) and (found_at := _control_character_at(item, (*loc, key))):
            return found_at
    return None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        if isinstance(data, dict) and (found := _control_character_at(data)):
            loc, character = found
            raise _rule(
                f"contains the control character {character!r}; remove it "
                "(text in a spec becomes names, paths and URLs, where it cannot appear)",
                at=loc,
            )
        return data
