"""Loading spec files: YAML composed to nodes, validation, and pydantic errors as file/line/field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bundle_promotion.bundle.config.bounded_yaml import SPEC_BOUNDS, read_bounded, top_level_scalar
from bundle_promotion.errors import FileRefused, SpecError
from bundle_promotion.spec.base import _RULE, _Loc
from bundle_promotion.spec.bundle_checks import _bundle_problems
from bundle_promotion.spec.models import PromotionSpec
from bundle_promotion.spec.problems import _closest, _Document, _Problem

try:
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # PyYAML built without libyaml: same behaviour, slower
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]


def load_spec(path: Path) -> PromotionSpec:
    """Load and validate one spec file. Raises ``SpecError`` listing every problem found."""
    return _load(path)[0]


def load_specs(folder: Path, *, bundle: str | None = None) -> list[PromotionSpec | SpecError]:
    """Load every ``*.yaml`` and ``*.yml`` in ``folder``, sorted by name.

    A bad file gives its ``SpecError`` in place of a spec and the others still load.
    A missing folder holds no specs. With ``bundle``, only the files naming that bundle are
    validated (a task needs one spec, not the fleet's); the others are only read as YAML.
    """
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if bundle is not None:
        files = [file for file in files if _names_bundle(file, bundle)]
    results: list[PromotionSpec | SpecError] = []
    first_file_of: dict[str, Path] = {}
    for file in files:
        try:
            spec, document = _load(file)
        except SpecError as error:
            results.append(error)
            continue
        except Exception as error:  # a defect met by one file must not hide the other specs
            results.append(SpecError(str(file), "", f"cannot be loaded: {type(error).__name__}: {error}"))
            continue
        if spec.bundle in first_file_of:
            results.append(document.error([_duplicate_bundle(spec, first_file_of[spec.bundle])]))
            continue
        first_file_of[spec.bundle] = file
        results.append(spec)
    return results


def _names_bundle(path: Path, bundle: str) -> bool:
    """Whether the file's top-level ``bundle`` is ``bundle``, read no further than that key."""
    try:
        return top_level_scalar(path, "bundle", SPEC_BOUNDS) == bundle
    except (FileRefused, yaml.YAMLError):
        return False


def _duplicate_bundle(spec: PromotionSpec, first_file: Path) -> _Problem:
    return _Problem(
        ("bundle",),
        f"bundle '{spec.bundle}' is already promoted by {first_file}; "
        f"a bundle has exactly one spec, as it becomes the one DAG {spec.dag_id}",
    )


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
        loader = _YamlLoader(read_bounded(path, SPEC_BOUNDS))
    except FileRefused as refused:
        raise SpecError(file, "", refused.problem, refused.line) from None
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
    return f"the text '{_shortened(node.value)}'"


def _shortened(text: str, limit: int = 80) -> str:
    """Text quoted back in a message: enough to find it, never a whole file in an import error."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _fix(kind: str, node: yaml.Node | None) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        return ""
    if kind == "tuple_type":
        return f"; write it as a list: [{_shortened(node.value)}]"
    if kind == "string_type":
        return f"; quote it to keep it text: '{_shortened(node.value)}'"
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
