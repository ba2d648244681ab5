"""What every spec model shares: the frozen base model, non-empty text, and our rule errors."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
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


def _short_duration(value: Any) -> Any:
    """``90s``, ``30m``, ``2h`` or ``7d``; a number is seconds; else pydantic reads it (ISO 8601)."""
    if isinstance(value, bool):
        raise _rule(f"{_DURATION_FORMS}; got {str(value).lower()}")
    if not isinstance(value, str) or re.fullmatch(r"\s*[+-]?P\S+\s*", value):
        return value
    if short := re.fullmatch(r"\s*([0-9]+)\s*([smhd])\s*", value):
        return timedelta(**{_UNITS[short[2]]: int(short[1])})
    raise _rule(f"{_DURATION_FORMS}; got '{value}'")


def _positive(duration: timedelta) -> timedelta:
    if duration <= timedelta(0):
        raise _rule(f"must be longer than zero; got {duration}")
    return duration


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION_FORMS = "must be a duration like 90s, 30m, 2h, 7d or ISO 8601 (PT2H, P7D), or a number of seconds"
# The one duration of a spec: gates, lockouts and test-suite timeouts alike.
Duration = Annotated[
    timedelta,
    BeforeValidator(_short_duration),
    AfterValidator(_positive),
    WithJsonSchema({"type": "string", "description": "90s, 30m, 2h, 7d or ISO 8601 (PT2H, P7D)"}),
]


def _seconds(value: Any) -> int:
    try:
        return int(_DURATION.validate_python(value).total_seconds())
    except ValidationError as error:
        problem = error.errors()[0]
        raise _rule(problem["ctx"]["message"] if problem["type"] == _RULE else problem["msg"]) from None


_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)
# A Duration kept as whole seconds, for fields that hand seconds on (a test suite's timeout).
DurationSeconds = Annotated[
    int,
    BeforeValidator(_seconds),
    WithJsonSchema({"type": "string", "description": "90s, 30m, 2h, 7d, PT2H"}),
]


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
