"""The gates of an environment: approval, window, soak, release tag and notes, checks, previous."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, field_validator, model_validator

from bundle_promotion.errors import IdentityRefused
from bundle_promotion.identity import canonical_identity
from bundle_promotion.spec.base import Duration, NonEmptyStr, _Frozen, _rule


class ApprovalGroupSpec(_Frozen):
    """People of whom at least ``min`` distinct ones must approve."""

    name: NonEmptyStr = Field(description="The group's name, shown in the gate's reason (for example QC).")
    min: int = Field(
        default=1, ge=1, strict=True, description="How many distinct people of the group must approve."
    )
    users: tuple[NonEmptyStr, ...] = Field(
        default=(), description="Airflow user names (ids) who may approve for the group."
    )
    role: NonEmptyStr | None = Field(
        default=None, description="An Airflow role whose members may approve for the group."
    )

    @field_validator("users")
    @classmethod
    def _real_identities(cls, users: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_identity(user, at=(index,)) for index, user in enumerate(users))

    @model_validator(mode="after")
    def _someone_eligible(self) -> ApprovalGroupSpec:
        if not self.users and self.role is None:
            raise _rule("name who may approve: list users, give a role, or both")
        return self


def _identity(name: str, at: tuple[int | str, ...] = ()) -> str:
    try:
        return canonical_identity(name)
    except IdentityRefused as refused:
        raise _rule(str(refused), at=at) from None


class HoldClearersSpec(_Frozen):
    """Who may clear the hold a rollback put on an environment, through the API."""

    users: tuple[NonEmptyStr, ...] = Field(default=(), description="Airflow user names (ids).")
    role: NonEmptyStr | None = Field(default=None, description="An Airflow role whose members may clear it.")

    @field_validator("users")
    @classmethod
    def _real_identities(cls, users: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_identity(user, at=(index,)) for index, user in enumerate(users))

    @model_validator(mode="after")
    def _someone(self) -> HoldClearersSpec:
        if not self.users and self.role is None:
            raise _rule("name who may clear a hold: list users, give a role, or both")
        return self


class OtherIdentitiesSpec(_Frozen):
    """A person's identities outside Airflow; only these count as theirs."""

    github: tuple[NonEmptyStr, ...] = Field(
        default=(), description="GitHub logins whose pull-request reviews count as this user's approvals."
    )
    emails: tuple[NonEmptyStr, ...] = Field(
        default=(), description="Commit e-mail addresses: a release with their commits excludes this user."
    )

    @field_validator("github", "emails")
    @classmethod
    def _real_identities(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_identity(name, at=(index,)) for index, name in enumerate(names))


class ConnectionIdentitiesSpec(_Frozen):
    """An identity map kept in an Airflow connection's extra, shared by every spec that names it."""

    identities: dict[NonEmptyStr, OtherIdentitiesSpec] = Field(
        description="Airflow user -> their GitHub logins and commit e-mail addresses, as in an approval gate."
    )

    @field_validator("identities")
    @classmethod
    def _one_owner_each(cls, identities: dict[str, OtherIdentitiesSpec]) -> dict[str, OtherIdentitiesSpec]:
        return _one_owner_each(identities)


def _one_owner_each(identities: dict[str, OtherIdentitiesSpec]) -> dict[str, OtherIdentitiesSpec]:
    owners: dict[str, str] = {}
    for user, other in identities.items():
        _identity(user, at=(user,))
        for name in (*other.github, *other.emails):
            if owners.setdefault(name, user) != user:
                raise _rule(
                    f"'{name}' is given to both {owners[name]} and {user}; give it to one", at=(user,)
                )
    return identities


class SignatureLockoutSpec(_Frozen):
    """21 CFR 11.300(d): repeated failed signatures lock the signer out until an administrator lifts it."""

    attempts: int = Field(default=3, ge=1, strict=True, description="Failed attempts that lock a signer out.")
    within: Duration = Field(default=timedelta(minutes=15), description="The window the attempts count in.")


class ApprovalGateSpec(_Frozen):
    """Human approval: a quorum per group, segregation of duties, bound to the release digest."""

    groups: tuple[ApprovalGroupSpec, ...] = Field(
        description="Every group must reach its quorum.", json_schema_extra={"minItems": 1}
    )
    expires_after: Duration | None = Field(default=None, description="How long an approval counts.")
    allow_same_person_in_groups: bool = Field(
        default=False, description="Whether one person may count for several groups."
    )
    signature: Literal["none", "part11"] = Field(
        default="none",
        description="part11: every approval records its meaning and the signer re-enters their password.",
    )
    signature_lockout: SignatureLockoutSpec = Field(
        default_factory=SignatureLockoutSpec,
        description="Part 11: how many failed signatures, within how long, lock a signer out.",
    )
    identities: dict[NonEmptyStr, OtherIdentitiesSpec] = Field(
        default_factory=dict,
        description="Airflow user -> their GitHub logins and commit e-mail addresses; none is inferred.",
    )

    identities_conn_id: NonEmptyStr | None = Field(
        default=None,
        description='An Airflow connection whose extra holds more of this map as {"identities": {...}}; '
        "for a user both map, the spec's entry wins. By default [bundle_promotion] identities_conn_id.",
    )

    @field_validator("identities")
    @classmethod
    def _one_owner_each(cls, identities: dict[str, OtherIdentitiesSpec]) -> dict[str, OtherIdentitiesSpec]:
        return _one_owner_each(identities)

    @field_validator("groups")
    @classmethod
    def _named_groups(cls, groups: tuple[ApprovalGroupSpec, ...]) -> tuple[ApprovalGroupSpec, ...]:
        if not groups:
            raise _rule("needs at least one group, for example '- {name: qc, min: 2, role: Op}'")
        names = [group.name for group in groups]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise _rule(f"group '{name}' is defined twice; give each group its own name", at=(index,))
        return groups


class WindowRuleSpec(_Frozen):
    """A recurring period: a cron expression or an RRULE for its starts, and how long it lasts."""

    name: str | None = Field(default=None, description="Shown in the gate's reason, e.g. 'year-end freeze'.")
    cron: NonEmptyStr | None = Field(default=None, description="When it starts, as cron: '0 8 * * MON-FRI'.")
    rrule: NonEmptyStr | None = Field(
        default=None,
        description="When it starts, as an RFC 5545 RRULE: 'FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=20'.",
    )
    duration: Duration = Field(description="How long each occurrence lasts.")

    @model_validator(mode="after")
    def _one_valid_expression(self) -> WindowRuleSpec:
        from bundle_promotion.spec.windows import check_expression

        if (self.cron is None) == (self.rrule is None):
            raise _rule("give exactly one of cron and rrule")
        try:
            check_expression(self.cron, self.rrule)
        except ValueError as error:
            raise _rule(str(error), at=("cron" if self.cron else "rrule",)) from None
        return self


class WindowGateSpec(_Frozen):
    """When deploys may happen: inside an allow window (if any) and outside every freeze."""

    timezone: NonEmptyStr = Field(
        default="UTC", description="IANA time zone of the rules, e.g. Europe/Amsterdam."
    )
    allow: tuple[WindowRuleSpec, ...] = Field(default=(), description="Deploy only inside one of these.")
    deny: tuple[WindowRuleSpec, ...] = Field(
        default=(), description="Freezes: never deploy inside one, even inside an allow window."
    )
    overrides_needed: int = Field(
        default=2,
        ge=1,
        strict=True,
        description="How many distinct people's approvals with overrides_freeze lift a freeze for a release.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        import pendulum

        try:
            pendulum.timezone(timezone)
        except Exception:
            raise _rule(f"unknown time zone '{timezone}'; use an IANA name like Europe/Amsterdam") from None
        return timezone


class SoakGateSpec(_Frozen):
    duration: Duration = Field(
        description="How long the release must run healthy in the previous environment."
    )


class ReleaseNotesGateSpec(_Frozen):
    path: NonEmptyStr = Field(
        default="documentation/releases/{version}.md",
        description="Relative to the bundle folder; {version} is the tag without a leading v, {tag} the tag.",
    )


class ChecksPassedGateSpec(_Frozen):
    required: tuple[NonEmptyStr, ...] = Field(
        default=(), description="Check-run names that must exist and succeed; every check run must succeed."
    )


class _NoOptions(_Frozen):
    """A gate with nothing to configure: write it as `- release_tag` or `- release_tag: {}`."""


def _gate_shorthand(value: Any) -> Any:
    """`- release_tag` means `- release_tag: {}`, and so does a key with no value."""
    if isinstance(value, str):
        return {value: {}}
    if isinstance(value, dict):
        return {key: {} if options is None else options for key, options in value.items()}
    return value


class GateEntry(_Frozen):
    """One gate of an environment: a mapping with exactly one key, the gate's kind."""

    approval: ApprovalGateSpec | None = None
    window: WindowGateSpec | None = None
    soak: SoakGateSpec | None = None
    release_tag: _NoOptions | None = None
    release_notes: ReleaseNotesGateSpec | None = None
    checks_passed: ChecksPassedGateSpec | None = None
    previous_environment: _NoOptions | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> GateEntry:
        kinds = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise _rule(
                f"each gate is a mapping with exactly one of {', '.join(type(self).model_fields)}; "
                f"got {', '.join(kinds) or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @property
    def options(self) -> BaseModel:
        return getattr(self, self.kind)


# A gate entry is written as the mapping, or as the name of a gate it takes no options from.
GateItem = Annotated[
    GateEntry,
    BeforeValidator(
        _gate_shorthand,
        json_schema_input_type=GateEntry | Literal["release_tag", "release_notes", "previous_environment"],
    ),
]
