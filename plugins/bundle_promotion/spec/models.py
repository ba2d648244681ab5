"""The promotion spec itself: its source, its environments and their test suites."""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bundle_promotion.bundle.config.outline import BundleOutline, read_outline
from bundle_promotion.spec.base import DurationSeconds, NonEmptyStr, _Frozen, _rule
from bundle_promotion.spec.dag_ids import LONGEST_PREFIX, PROMOTION_PATTERN, promotion_dag_id
from bundle_promotion.spec.drift import DriftCheck, DriftPolicy
from bundle_promotion.spec.gate_entries import GateEntry, GateItem, HoldClearersSpec
from bundle_promotion.spec.github import GitHub
from bundle_promotion.spec.notifications import Notifications
from bundle_promotion.spec.rollback import Rollback

_BUNDLE_NAME = r"^[a-z][a-z0-9_]*$"
_ENVIRONMENT_NAME = r"^[a-z][a-z0-9_-]*$"
_GIT_URL_SCHEMES = ("https", "http", "ssh", "git", "file")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE_URL = re.compile(r"^[\w.-]+@[\w.-]+:")  # git@github.com:org/repo.git
# Airflow ids are at most 250 characters: the longest DAG id prefixes the bundle, and an
# environment's name prefixes task ids such as <env>_rollback.restore_schedules.
_AIRFLOW_ID_LENGTH = 250
_BUNDLE_NAME_LENGTH = _AIRFLOW_ID_LENGTH - LONGEST_PREFIX
_ENVIRONMENT_NAME_LENGTH = 100
# Longer than any git URL or path in use, shorter than what the file system refuses.
_REPO_LENGTH = 1024


def _named(pattern: str, allowed: str, purpose: str, max_length: int) -> AfterValidator:
    """A string validator for names that end up in Airflow ids."""

    def check(value: str) -> str:
        if len(value) > max_length:
            raise _rule(f"must be at most {max_length} characters ({purpose}); got {len(value)}")
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


class Source(_Frozen):
    """Where the bundle's source lives."""

    repo: NonEmptyStr = Field(
        description="The git repository: an https://, http://, ssh://, git:// or file:// URL, "
        "a user@host:org/repo.git address, or a local path: ~ and $VARIABLES are expanded, and a "
        "relative path is relative to the spec file's folder."
    )
    path: str = Field(
        default=".",
        description="The bundle's folder (the one holding databricks.yml) inside the repository.",
    )

    @field_validator("repo")
    @classmethod
    def _known_url_scheme(cls, repo: str) -> str:
        if len(repo) > _REPO_LENGTH:
            raise _rule(
                f"must be at most {_REPO_LENGTH} characters, as any git URL or path is; got {len(repo)}"
            )
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
    timeout: DurationSeconds = Field(
        default=3600, description="How long the run may take: 90s, 30m, 2h, 7d, PT2H, or a number of seconds."
    )
    non_destructive: bool = Field(
        default=False,
        description="The suite changes nothing that matters; only such suites may run in production.",
    )


class Environment(_Frozen):
    """One stop of the promotion: a bundle target deployed through one Airflow connection."""

    name: Annotated[
        str,
        _named(
            _ENVIRONMENT_NAME,
            "a-z, 0-9, _ and -",
            "it becomes the environment's TaskGroup id",
            _ENVIRONMENT_NAME_LENGTH,
        ),
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

    hold_clearers: HoldClearersSpec | None = Field(
        default=None,
        description="Who may clear a rollback's hold on this environment; default: its approval groups.",
    )
    production: bool = Field(
        default=False,
        description="This environment is production: its tests must all be non_destructive.",
    )
    drift: DriftPolicy = Field(
        default=DriftPolicy(), description="Whether drift found here is healed, and how."
    )

    @field_validator("tests")
    @classmethod
    def _each_test_once(cls, tests: tuple[TestSuite, ...]) -> tuple[TestSuite, ...]:
        listed: set[str] = set()
        for index, suite in enumerate(tests):
            if suite.job in listed:
                raise _rule(f"job '{suite.job}' is listed twice; list each test job once", at=(index,))
            listed.add(suite.job)
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
        str,
        _named(
            _BUNDLE_NAME, "a-z, 0-9 and _", f"it becomes the DAG id {PROMOTION_PATTERN}", _BUNDLE_NAME_LENGTH
        ),
    ] = Field(
        description=f"Name of the promotion; the DAG id is {PROMOTION_PATTERN}.",
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
    notifications: Notifications = Field(
        default=Notifications(),
        description="Who is told of which event: Airflow notifiers by import path, or HTTP webhooks.",
    )
    drift: DriftCheck = Field(
        default=DriftCheck(), description="When drift__<bundle> compares each environment with its release."
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
        index_of_name: dict[str, int] = {}
        index_of_place: dict[tuple[str, str], int] = {}
        for index, environment in enumerate(environments):
            place = (environment.target, environment.databricks_conn_id)
            same_name, same_place = index_of_name.get(environment.name), index_of_place.get(place)
            _check_distinct(environments, index, same_name, same_place)
            index_of_name[environment.name] = index
            index_of_place[place] = index
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

    def production_environments(self) -> tuple[Environment, ...]:
        """Where a completed promotion is news: those marked production, else the last environment."""
        marked = tuple(env for env in self.environments if env.production)
        return marked or self.environments[-1:]

    @property
    def dag_id(self) -> str:
        return promotion_dag_id(self.bundle)

    def repo_location(self) -> str:
        """The repository as git understands it: URLs as written; a local path with ``~`` and
        ``$VARIABLES`` expanded, made absolute against the spec file's folder, so it means the same
        from any working directory (``$VARIABLES`` let one spec serve machines that keep it apart)."""
        if self._repo_location is None:
            repo = self.source.repo
            local = Path(os.path.expandvars(repo)).expanduser()
            self._repo_location = repo if _is_url(repo) else str((self.spec_file.parent / local).resolve())
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


def _check_distinct(
    environments: tuple[Environment, ...], index: int, same_name: int | None, same_place: int | None
) -> None:
    """Refuse environment ``index`` when an earlier one has its name, or its target and connection."""
    environment = environments[index]
    if same_name is not None:
        raise _rule(
            f"environment name '{environment.name}' is already used by environments[{same_name}]; "
            "names must be unique",
            at=(index, "name"),
        )
    if same_place is not None:
        raise _rule(
            f"deploys target '{environment.target}' through connection '{environment.databricks_conn_id}', "
            f"exactly like environments[{same_place}] ('{environments[same_place].name}'); give each "
            "environment its own target or its own connection",
            at=(index, "target"),
        )


def _is_url(repo: str) -> bool:
    return bool(_URL.match(repo) or _SCP_LIKE_URL.match(repo))


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a promotion spec, for editors and CI."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **PromotionSpec.model_json_schema()}
