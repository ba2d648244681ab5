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
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args
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

from bundle_promotion.errors import BundleConfigError, SpecError

try:
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # PyYAML built without libyaml: same behaviour, slower
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

__all__ = [
    "Environment",
    "PromotionSpec",
    "Rollback",
    "Source",
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


def _not_supported_yet(what: str, empty: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value:
            raise _rule(f"{what} are not supported yet; remove the key or leave it empty ({empty})")
        return value

    return BeforeValidator(check)


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


class Rollback(_Frozen):
    """Rollback policy of an environment. Empty until rollback is supported."""


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
    tests: tuple[NonEmptyStr, ...] = Field(
        default=(),
        description="Keys of the bundle's jobs to run as tests after the deploy.",
        json_schema_extra={"uniqueItems": True},
    )
    gates: Annotated[tuple[()], _not_supported_yet("gates", "gates: []")] = Field(
        default=(), description="Conditions a release must meet first. Not supported yet: leave empty."
    )
    rollback: Annotated[Rollback, _not_supported_yet("rollback policies", "rollback: {}")] = Field(
        default=Rollback(), description="What to do when the environment fails. Not supported yet."
    )

    @field_validator("tests")
    @classmethod
    def _each_test_once(cls, tests: tuple[str, ...]) -> tuple[str, ...]:
        for index, job in enumerate(tests):
            if job in tests[:index]:
                raise _rule(f"job '{job}' is listed twice; list each test job once", at=(index,))
        return tests


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
    environments: tuple[Environment, ...] = Field(
        description="The environments a release moves through, in order.",
        json_schema_extra={"minItems": 1},
    )
    _spec_file: Path = PrivateAttr(default=Path("promotion.yaml"))

    @field_validator("environments")
    @classmethod
    def _distinct_environments(cls, environments: tuple[Environment, ...]) -> tuple[Environment, ...]:
        if not environments:
            raise _rule("needs at least one environment, for example '- name: dev'")
        for index, environment in enumerate(environments):
            for earlier_index, earlier in enumerate(environments[:index]):
                _check_distinct(environment, index, earlier, earlier_index)
        return environments

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
        if _is_url(self.source.repo):
            return self.source.repo
        return str((self.spec_file.parent / Path(self.source.repo).expanduser()).resolve())

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
        model = next((arg for arg in (field.annotation, *get_args(field.annotation)) if _is_model(arg)), None)
    return model


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
    if folder is None:
        return []
    from bundle_promotion import bundle_config  # reads databricks.yml only when there is one to read

    try:
        targets = bundle_config.target_names(folder)
        jobs = bundle_config.job_keys(folder) if any(env.tests for env in spec.environments) else []
    except BundleConfigError as error:
        return [_Problem(("source",), f"cannot read the bundle at {folder}: {error}")]
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
            f"'{job}' is not a job of the bundle at {folder}; "
            f"its jobs are: {', '.join(sorted(jobs)) or 'none'}",
        )
        for index, environment in enumerate(spec.environments)
        for position, job in enumerate(environment.tests)
        if job not in jobs
    ]
