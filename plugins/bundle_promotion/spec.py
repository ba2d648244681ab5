"""The promotion spec: which bundle to promote, from where, through which environments.

One spec file (``include/promotions/<name>.yaml``) becomes one DAG, ``promote__<bundle>``.
This module is imported while Airflow parses DAGs, so it never imports Airflow and
keeps its module-level imports light. Every invalid spec raises ``SpecError`` naming
the file, the line, the field and what is expected.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, get_args
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from bundle_promotion.bundle_outline import BundleOutline, read_outline
from bundle_promotion.errors import BundleConfigError, SpecError

try:
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # PyYAML built without libyaml: same behaviour, slower
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

__all__ = [
    "Environment",
    "GitHub",
    "PromotionSpec",
    "Rollback",
    "Source",
    "TestSuite",
    "load_spec",
    "load_specs",
    "spec_json_schema",
]

_Loc = tuple[str | int, ...]

_BUNDLE_NAME = r"^[a-z][a-z0-9_]*$"
_ENVIRONMENT_NAME = r"^[a-z][a-z0-9_-]*$"
_GIT_URL_SCHEMES = ("https", "http", "ssh", "git", "file")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE_URL = re.compile(r"^[\w.-]+@[\w.-]+:")  # git@github.com:org/repo.git
_DURATION = re.compile(r"^(?P<amount>[1-9][0-9]*)\s*(?P<unit>[smh])$")
_SECONDS_PER = {"s": 1, "m": 60, "h": 3600}
# Our own validation errors; their context may carry "at", a loc below the field.
_RULE = "bundle_promotion_rule"


def _rule(message: str, at: _Loc = ()) -> PydanticCustomError:
    # The text goes in through the context so braces in it are never read as a template.
    return PydanticCustomError(_RULE, "{message}", {"message": message, "at": at})


def _named(pattern: str, allowed: str, purpose: str) -> AfterValidator:
    """A string validator for names that end up in Airflow ids."""

    def check(value: str) -> str:
        if re.match(pattern, value):
            return value
        hint = _name_like(value, pattern)
        raise _rule(
            f"must start with a lowercase letter and use only {allowed} ({purpose}); "
            f"got '{value}'" + (f"; try '{hint}'" if hint else "")
        )

    return AfterValidator(check)


def _name_like(value: str, pattern: str) -> str | None:
    candidate = re.sub(r"[^a-z0-9_]+", "_", value.strip().lower()).strip("_")
    return candidate if candidate != value and re.match(pattern, candidate) else None


def _not_empty(value: str) -> str:
    if not value.strip():
        raise _rule("must not be empty")
    return value


NonEmptyStr = Annotated[str, AfterValidator(_not_empty), WithJsonSchema({"type": "string", "minLength": 1})]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Frozen):
    """Where the bundle's source lives."""

    repo: NonEmptyStr = Field(
        description="The git repository: an https://, http://, ssh://, git:// or file:// URL, "
        "a user@host:org/repo.git address, or a local path relative to the spec file's folder."
    )
    path: str = Field(
        default=".",
        description="The bundle's folder (the one holding databricks.yml) inside the repository.",
    )

    @field_validator("repo")
    @classmethod
    def _known_url_scheme(cls, repo: str) -> str:
        url = _URL.match(repo)
        if url and url["scheme"].lower() not in _GIT_URL_SCHEMES:
            schemes = ", ".join(f"{scheme}://" for scheme in _GIT_URL_SCHEMES)
            raise _rule(
                f"unsupported URL scheme '{url['scheme']}://'; use {schemes}, "
                "user@host:org/repo.git or a local path"
            )
        return repo

    @field_validator("path")
    @classmethod
    def _inside_repo(cls, path: str) -> str:
        portable = path.replace("\\", "/")
        normal = posixpath.normpath(portable) if portable else "."
        if portable.startswith("/") or re.match(r"^[A-Za-z]:", portable):
            raise _rule(f"must be relative to the repository root (like . or bundles/sales); got '{path}'")
        if normal == ".." or normal.startswith("../"):
            raise _rule(f"must stay inside the repository, but '{path}' leads out of it")
        return normal


def _short_duration(value: Any) -> Any:
    """``90s``, ``30m``, ``2h`` or ``7d``; anything else goes on to pydantic (ISO 8601, seconds)."""
    if isinstance(value, str) and (short := re.fullmatch(r"\s*([0-9]+)\s*([smhd])\s*", value)):
        return timedelta(**{_UNITS[short[2]]: int(short[1])})
    return value


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
Duration = Annotated[
    timedelta,
    BeforeValidator(_short_duration),
    WithJsonSchema({"type": "string", "description": "90s, 30m, 2h, 7d or ISO 8601 (PT2H, P7D)"}),
]


class ApprovalGroupSpec(_Frozen):
    """People of whom at least ``min`` distinct ones must approve."""

    name: NonEmptyStr = Field(description="The group's name, shown in the gate's reason (for example QC).")
    min: int = Field(default=1, ge=1, description="How many distinct people of the group must approve.")
    users: tuple[NonEmptyStr, ...] = Field(
        default=(), description="Airflow user names (ids) who may approve for the group."
    )
    role: NonEmptyStr | None = Field(
        default=None, description="An Airflow role whose members may approve for the group."
    )

    @model_validator(mode="after")
    def _someone_eligible(self) -> ApprovalGroupSpec:
        if not self.users and self.role is None:
            raise _rule("name who may approve: list users, give a role, or both")
        return self


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
        from bundle_promotion.windows import check_expression

        if (self.cron is None) == (self.rrule is None):
            raise _rule("give exactly one of cron and rrule")
        try:
            check_expression(self.cron, self.rrule)
        except ValueError as error:
            raise _rule(str(error), at=("cron" if self.cron else "rrule",)) from None
        if self.duration <= timedelta(0):
            raise _rule("must be longer than zero", at=("duration",))
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


def _duration_seconds(value: Any) -> Any:
    """``90s``, ``30m`` or ``2h`` as seconds; a plain number is seconds already."""
    if not isinstance(value, str):
        return value
    duration = _DURATION.match(value.strip())
    if duration is None:
        raise _rule(f"must be a duration like 90s, 30m or 2h, or a number of seconds; got '{value}'")
    return int(duration["amount"]) * _SECONDS_PER[duration["unit"]]


def _suite_of_job_key(value: Any) -> Any:
    """A bare job key is the shorthand for a suite with that job and the defaults."""
    return {"job": value} if isinstance(value, str) else value


class TestSuite(_Frozen):
    """A job of the bundle run as a test after the deploy, with its parameters and its time limit."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite its name

    job: NonEmptyStr = Field(description="Key of the bundle's job to run (its key under resources.jobs).")
    params: dict[str, str] = Field(
        default_factory=dict, description="Job parameters for the run, overriding the job's defaults."
    )
    timeout: Annotated[int, BeforeValidator(_duration_seconds), Field(gt=0)] = Field(
        default=3600, description="How long the run may take: 90s, 30m, 2h, or a number of seconds."
    )
    non_destructive: bool = Field(
        default=False,
        description="The suite changes nothing that matters; only such suites may run in production.",
    )


_GITHUB_REPO = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


class GitHub(_Frozen):
    """The bundle's repository on GitHub or GitHub Enterprise: checks, reviews and deployments."""

    repo: str = Field(
        description="The repository as owner/name, for example acme/sales-etl.",
        json_schema_extra={"pattern": _GITHUB_REPO},
    )
    github_conn_id: NonEmptyStr = Field(
        default="github_default",
        description="The Airflow github connection; for GitHub Enterprise its host is https://<host>/api/v3.",
    )
    approvals_from_reviews: bool = Field(
        default=False,
        description="Pull-request reviews of the release commit count as approvals, by reviewer login.",
    )
    record_deployments: bool = Field(
        default=True, description="Record a GitHub deployment and its status for each environment deploy."
    )

    @field_validator("repo")
    @classmethod
    def _owner_and_name(cls, repo: str) -> str:
        if not re.match(_GITHUB_REPO, repo):
            raise _rule(f"must be owner/name, like acme/sales-etl (not a URL); got '{repo}'")
        return repo


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


# A gate entry is written as the mapping, or as the name of a gate it takes no options from.
GateItem = Annotated[
    GateEntry,
    BeforeValidator(
        _gate_shorthand,
        json_schema_input_type=GateEntry | Literal["release_tag", "release_notes", "previous_environment"],
    ),
]


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


class Environment(_Frozen):
    """One stop of the promotion: a bundle target deployed through one Airflow connection."""

    name: Annotated[
        str, _named(_ENVIRONMENT_NAME, "a-z, 0-9, _ and -", "it becomes the environment's TaskGroup id")
    ] = Field(
        description="Unique name of the environment; it becomes a TaskGroup id.",
        json_schema_extra={"pattern": _ENVIRONMENT_NAME},
    )
    target: NonEmptyStr = Field(
        description="The bundle target to deploy (a key under targets: in databricks.yml)."
    )
    databricks_conn_id: NonEmptyStr = Field(
        description="The Airflow connection to this environment's workspace (one service principal each)."
    )
    schedules: Literal["paused", "unpaused"] = Field(
        description="Pause state of the bundle's job schedules once the release is deployed."
    )
    tests: tuple[Annotated[TestSuite, BeforeValidator(_suite_of_job_key)], ...] = Field(
        default=(),
        description="Suites run after the deploy: a job key, or {job, params, timeout, non_destructive}.",
    )
    gates: tuple[GateItem, ...] = Field(
        default=(), description="Conditions a release must meet before it is deployed here; all must pass."
    )
    rollback: Rollback = Field(
        default=Rollback(), description="What a rollback restores when the environment fails."
    )

    @field_validator("gates")
    @classmethod
    def _each_gate_kind_once(cls, gates: tuple[GateEntry, ...]) -> tuple[GateEntry, ...]:
        kinds = [gate.kind for gate in gates]
        for index, kind in enumerate(kinds):
            if kind in kinds[:index]:
                raise _rule(f"gate '{kind}' is listed twice; merge them into one", at=(index,))
        return gates

    production: bool = Field(
        default=False,
        description="This environment is production: its tests must all be non_destructive.",
    )

    @field_validator("tests")
    @classmethod
    def _each_test_once(cls, tests: tuple[TestSuite, ...]) -> tuple[TestSuite, ...]:
        for index, suite in enumerate(tests):
            if suite.job in [earlier.job for earlier in tests[:index]]:
                raise _rule(f"job '{suite.job}' is listed twice; list each test job once", at=(index,))
        return tests

    @model_validator(mode="after")
    def _production_runs_only_non_destructive_tests(self) -> Environment:
        if not self.production:
            return self
        for index, suite in enumerate(self.tests):
            if not suite.non_destructive:
                raise _rule(
                    f"'{self.name}' is production, where only suites marked non_destructive: true run; "
                    f"mark '{suite.job}' non_destructive: true if it changes nothing, "
                    f"or run it in an earlier environment",
                    at=("tests", index),
                )
        return self


class PromotionSpec(_Frozen):
    """A bundle, its source, and the environments a release moves through, in order.

    ``spec_file`` is the file the spec was loaded from; relative paths in the spec are
    relative to its folder. ``load_spec`` sets it; to build a spec in code, pass it as
    ``PromotionSpec.model_validate(data, context={"spec_file": path})``.
    """

    bundle: Annotated[
        str, _named(_BUNDLE_NAME, "a-z, 0-9 and _", "it becomes the DAG id promote__<bundle>")
    ] = Field(
        description="Name of the promotion; the DAG id is promote__<bundle>.",
        json_schema_extra={"pattern": _BUNDLE_NAME},
    )
    description: str | None = Field(default=None, description="Free text shown in the DAG's docs.")
    owner: NonEmptyStr = Field(default="bundle-promotion", description="Airflow owner of the tasks.")
    source: Source = Field(description="Where the bundle's source lives.")
    engine: Literal["native", "cli"] = Field(
        default="native",
        description="Who deploys: the native engine (REST) or the official `databricks bundle` CLI.",
    )
    github: GitHub | None = Field(
        default=None, description="The bundle's GitHub repository, for checks, reviews and deployments."
    )
    environments: tuple[Environment, ...] = Field(
        description="The environments a release moves through, in order.",
        json_schema_extra={"minItems": 1},
    )
    _spec_file: Path = PrivateAttr(default=Path("promotion.yaml"))
    # Worked out once: the DAG factory asks for them for every task it renders.
    _repo_location: str | None = PrivateAttr(default=None)
    _bundle_outline: BundleOutline | None = PrivateAttr(default=None)

    @field_validator("environments")
    @classmethod
    def _distinct_environments(cls, environments: tuple[Environment, ...]) -> tuple[Environment, ...]:
        if not environments:
            raise _rule("needs at least one environment, for example '- name: dev'")
        for index, environment in enumerate(environments):
            for earlier_index, earlier in enumerate(environments[:index]):
                _check_distinct(environment, index, earlier, earlier_index)
        return environments

    @field_validator("environments")
    @classmethod
    def _first_has_no_previous(cls, environments: tuple[Environment, ...]) -> tuple[Environment, ...]:
        for index, gate in enumerate(environments[0].gates if environments else ()):
            if gate.kind in ("soak", "previous_environment"):
                raise _rule(
                    f"the first environment has no previous one, so a '{gate.kind}' gate can never pass; "
                    "move it to a later environment",
                    at=(0, "gates", index),
                )
        return environments

    @model_validator(mode="after")
    def _github_for_checks(self) -> PromotionSpec:
        if self.github is not None:
            return self
        for index, environment in enumerate(self.environments):
            for position, gate in enumerate(environment.gates):
                if gate.kind == "checks_passed":
                    raise _rule(
                        "a checks_passed gate reads GitHub check runs; add a top-level "
                        "'github: {repo: owner/name}' section or remove the gate",
                        at=("environments", index, "gates", position),
                    )
        return self

    @model_validator(mode="after")
    def _remember_spec_file(self, info: ValidationInfo) -> PromotionSpec:
        if info.context and "spec_file" in info.context:
            self._spec_file = Path(info.context["spec_file"])
        return self

    @property
    def spec_file(self) -> Path:
        return self._spec_file

    @property
    def dag_id(self) -> str:
        return f"promote__{self.bundle}"

    def repo_location(self) -> str:
        """The repository as git understands it: URLs as written, local paths made absolute."""
        if self._repo_location is None:
            repo = self.source.repo
            self._repo_location = (
                repo if _is_url(repo) else str((self.spec_file.parent / Path(repo).expanduser()).resolve())
            )
        return self._repo_location

    def bundle_outline(self) -> BundleOutline | None:
        """The local bundle's targets and job keys, or None when the bundle is not on this machine."""
        if self._bundle_outline is None and (folder := self.bundle_dir()) is not None:
            self._bundle_outline = read_outline(folder)
        return self._bundle_outline

    def bundle_dir(self) -> Path | None:
        """The bundle's folder in a local git working tree, or None if there is no such folder."""
        repo = self.repo_location()
        if repo.startswith("file://"):
            repo = unquote(urlsplit(repo).path)
        elif _is_url(repo):
            return None
        root = Path(repo)
        folder = root / self.source.path
        return folder if (root / ".git").exists() and folder.is_dir() else None


def _check_distinct(environment: Environment, index: int, earlier: Environment, earlier_index: int) -> None:
    if environment.name == earlier.name:
        raise _rule(
            f"environment name '{environment.name}' is already used by environments[{earlier_index}]; "
            "names must be unique",
            at=(index, "name"),
        )
    if (environment.target, environment.databricks_conn_id) == (earlier.target, earlier.databricks_conn_id):
        raise _rule(
            f"deploys target '{environment.target}' through connection '{environment.databricks_conn_id}', "
            f"exactly like environments[{earlier_index}] ('{earlier.name}'); give each environment "
            "its own target or its own connection",
            at=(index, "target"),
        )


def _is_url(repo: str) -> bool:
    return bool(_URL.match(repo) or _SCP_LIKE_URL.match(repo))


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a promotion spec, for editors and CI."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **PromotionSpec.model_json_schema()}


def load_spec(path: Path) -> PromotionSpec:
    """Load and validate one spec file. Raises ``SpecError`` listing every problem found."""
    return _load(path)[0]


def load_specs(folder: Path) -> list[PromotionSpec | SpecError]:
    """Load every ``*.yaml`` and ``*.yml`` in ``folder``, sorted by name.

    A bad file gives its ``SpecError`` in place of a spec and the others still load.
    A missing folder holds no specs.
    """
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    results: list[PromotionSpec | SpecError] = []
    first_file_of: dict[str, Path] = {}
    for file in files:
        try:
            spec, document = _load(file)
        except SpecError as error:
            results.append(error)
            continue
        if spec.bundle in first_file_of:
            results.append(document.error([_duplicate_bundle(spec, first_file_of[spec.bundle])]))
            continue
        first_file_of[spec.bundle] = file
        results.append(spec)
    return results


def _duplicate_bundle(spec: PromotionSpec, first_file: Path) -> _Problem:
    return _Problem(
        ("bundle",),
        f"bundle '{spec.bundle}' is already promoted by {first_file}; "
        f"a bundle has exactly one spec, as it becomes the one DAG {spec.dag_id}",
    )


class _Problem(NamedTuple):
    loc: _Loc
    text: str
    line: int | None = None  # when None, the line of ``loc`` in the file


class _Document:
    """A spec file composed to YAML nodes, which know their lines."""

    def __init__(self, file: Path, root: yaml.Node) -> None:
        self.file = file
        self.root = root

    def locate(self, loc: _Loc) -> tuple[int, yaml.Node | None]:
        """The line of the deepest node on ``loc`` (1-based) and the node at ``loc``, if there is one."""
        node, line = self.root, self.root.start_mark.line
        for part in loc:
            key, value = _child(node, part)
            if value is None:
                return line + 1, None
            node, line = value, (key or value).start_mark.line
        return line + 1, node

    def error(self, problems: Sequence[_Problem]) -> SpecError:
        """One ``SpecError`` for all problems; its field and line are those of the first in the file."""
        located = sorted(
            (
                (problem.line or self.locate(problem.loc)[0], _dotted(problem.loc), problem.text)
                for problem in problems
            ),
            key=lambda item: item[0],
        )
        line, field, text = located[0]
        more = "".join(f"\n{self.file}:{line}: {field}: {text}" for line, field, text in located[1:])
        return SpecError(str(self.file), field, text + more, line)


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node | None]:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        matches = [(key, value) for key, value in node.value if key.value == part]
        return matches[-1] if matches else (None, None)  # YAML keeps the last of duplicate keys
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None, None


def _dotted(loc: _Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _load(path: Path) -> tuple[PromotionSpec, _Document]:
    document, data = _parse(path)
    problems = _duplicate_keys(document.root)
    try:
        spec = PromotionSpec.model_validate(data, context={"spec_file": path})
    except ValidationError as invalid:
        problems += _pydantic_problems(invalid.errors(), document)
        raise document.error(problems) from None
    problems += _bundle_problems(spec)
    if problems:
        raise document.error(problems)
    return spec, document


def _parse(path: Path) -> tuple[_Document, Any]:
    """Read the file once into nodes (for lines) and data (for validation)."""
    file = str(path)
    try:
        loader = _YamlLoader(path.read_bytes())
    except OSError as error:
        raise SpecError(file, "", f"cannot read the file: {error.strerror}") from error
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as error:
        raise _yaml_syntax_error(file, error) from error
    except yaml.YAMLError as error:
        raise SpecError(file, "", f"is not valid YAML: {error}") from error
    finally:
        loader.dispose()
    if root is None:
        raise SpecError(
            file,
            "",
            "the file is empty (or only comments); a promotion spec needs bundle, source and environments",
        )
    if not isinstance(data, dict):
        expected = "the top level must be a mapping with the keys bundle, source and environments"
        raise SpecError(file, "", f"{expected}; got {_describe(root)}", root.start_mark.line + 1)
    return _Document(path, root), data


def _yaml_syntax_error(file: str, error: yaml.MarkedYAMLError) -> SpecError:
    # PyYAML's own wording, reordered: where the construct began, then what went wrong where.
    began = f"{error.context} on line {error.context_mark.line + 1}, " if error.context_mark else ""
    mark = error.problem_mark or error.context_mark
    column = f" at column {mark.column + 1}" if mark else ""
    problem = f"invalid YAML: {began}{error.problem or error.context}{column}"
    if isinstance(error, yaml.scanner.ScannerError | yaml.parser.ParserError):
        problem += "; check the indentation and quoting"
    return SpecError(file, "", problem, mark.line + 1 if mark else None)


def _duplicate_keys(root: yaml.Node) -> list[_Problem]:
    """PyYAML silently keeps the last of two equal keys; a spec author never means that."""
    problems: list[_Problem] = []
    pending: list[tuple[_Loc, yaml.Node]] = [((), root)]
    visited: set[int] = set()  # aliases share nodes, and may even form cycles
    while pending:
        loc, node = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending += [((*loc, index), item) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue  # a complex key is no spec key; validation reports it
                line = key.start_mark.line + 1
                if key.value in first_line:
                    problems.append(
                        _Problem(
                            (*loc, key.value),
                            f"appears twice (also on line {first_line[key.value]}); keep one of them",
                            line,
                        )
                    )
                first_line.setdefault(key.value, line)
                pending.append(((*loc, key.value), value))
    return problems


def _pydantic_problems(errors: list[ErrorDetails], document: _Document) -> list[_Problem]:
    # A misspelt key fails twice: as an unknown key and as the missing key it was meant to be.
    meant = {
        (*error["loc"][:-1], closest)
        for error in errors
        if error["type"] == "extra_forbidden"
        and (closest := _closest(str(error["loc"][-1]), _keys_at(error["loc"])))
    }
    return [
        _from_pydantic(error, document)
        for error in errors
        if not (error["type"] == "missing" and tuple(error["loc"]) in meant)
    ]


def _from_pydantic(error: ErrorDetails, document: _Document) -> _Problem:
    loc: _Loc = (*error["loc"], *error.get("ctx", {}).get("at", ()))
    return _Problem(loc, _explain(error, loc, document.locate(loc)[1]))


def _explain(error: ErrorDetails, loc: _Loc, node: yaml.Node | None) -> str:
    kind = error["type"]
    if kind == _RULE:
        return error["msg"]
    if kind == "missing":
        return f"is required but missing. Expected: {_field_description(loc)}"
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    given = _describe(node, error["input"]) if node is not None else repr(error["input"])
    return f"{_expected(error)}; got {given}{_fix(kind, node)}"


_EXPECTED = {
    "string_type": "expected text",
    "tuple_type": "expected a list",
    "model_type": "expected a mapping",
    "dict_type": "expected a mapping",
}


def _expected(error: ErrorDetails) -> str:
    return _EXPECTED.get(error["type"]) or error["msg"].replace("Input should be", "expected")


_YAML_READS_AS = {
    "tag:yaml.org,2002:bool": "the boolean",
    "tag:yaml.org,2002:int": "the number",
    "tag:yaml.org,2002:float": "the number",
    "tag:yaml.org,2002:timestamp": "the date",
}


def _describe(node: yaml.Node, value: Any = None) -> str:
    """What the author wrote, and what YAML made of it when that differs."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "no value" if node.value in ("", "~") else f"{node.value}, which YAML reads as no value"
    reads_as = _YAML_READS_AS.get(node.tag)
    if reads_as and value is not None:
        shown = str(value).lower() if isinstance(value, bool) else value
        return f"{node.value}, which YAML reads as {reads_as} {shown}"
    return f"the text '{node.value}'"


def _fix(kind: str, node: yaml.Node | None) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        return ""
    if kind == "tuple_type":
        return f"; write it as a list: [{node.value}]"
    if kind == "string_type":
        return f"; quote it to keep it text: '{node.value}'"
    return ""


def _model_at(loc: _Loc) -> type[BaseModel] | None:
    """The spec model that validates the mapping at ``loc``."""
    model: type[BaseModel] | None = PromotionSpec
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a tuple of models: still that model
        field = model.model_fields.get(part) if model else None
        if field is None:
            return None
        model = next((arg for arg in _inner_types(field.annotation) if _is_model(arg)), None)
    return model


def _inner_types(annotation: Any) -> list[Any]:
    """The annotation and what it wraps: ``X | None``, ``tuple[X, ...]`` and ``Annotated[X, ...]`` give X."""
    args = get_args(annotation)
    return [annotation, *(inner for arg in args for inner in (arg, *get_args(arg)[:1]))]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_description(loc: _Loc) -> str:
    model = _model_at(loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model else None
    return (field.description if field else None) or "a value"


def _keys_at(loc: _Loc) -> list[str]:
    """The keys the spec allows in the mapping holding ``loc``."""
    model = _model_at(loc[:-1])
    return list(model.model_fields) if model else []


def _unknown_key(loc: _Loc) -> str:
    key, valid = str(loc[-1]), _keys_at(loc)
    closest = _closest(key, valid)
    hint = f"did you mean '{closest}'? " if closest else ""
    return f"unknown key '{key}'; {hint}The valid keys here are: {', '.join(valid)}"


def _closest(word: str, options: Sequence[str]) -> str | None:
    import difflib  # only ever needed to explain an error

    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _bundle_problems(spec: PromotionSpec) -> list[_Problem]:
    """Check targets and test jobs against the bundle, when its folder is on this machine."""
    folder = spec.bundle_dir()
    try:
        outline = spec.bundle_outline()
    except BundleConfigError as error:
        return [_Problem(("source",), f"cannot read the bundle at {folder}: {error}")]
    if folder is None or outline is None:
        return []
    targets, jobs = list(outline.targets), list(outline.job_keys)
    return [*_unknown_targets(spec, folder, targets), *_unknown_test_jobs(spec, folder, jobs)]


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    closest = _closest(word, options)
    return f"; did you mean '{closest}'?" if closest else ""


def _unknown_targets(spec: PromotionSpec, folder: Path, targets: list[str]) -> list[_Problem]:
    return [
        _Problem(
            ("environments", index, "target"),
            f"unknown target '{environment.target}'; the bundle at {folder} defines: "
            f"{', '.join(sorted(targets))}{_did_you_mean(environment.target, targets)}",
        )
        for index, environment in enumerate(spec.environments)
        if environment.target not in targets
    ]


def _unknown_test_jobs(spec: PromotionSpec, folder: Path, jobs: list[str]) -> list[_Problem]:
    return [
        _Problem(
            ("environments", index, "tests", position),
            f"'{suite.job}' is not a job of the bundle at {folder}; "
            f"its jobs are: {', '.join(sorted(jobs)) or 'none'}",
        )
        for index, environment in enumerate(spec.environments)
        for position, suite in enumerate(environment.tests)
        if suite.job not in jobs
    ]
