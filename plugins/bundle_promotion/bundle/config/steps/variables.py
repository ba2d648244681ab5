"""Variables: their values from overrides, targets, defaults and lookups; then `${...}` interpolation."""

from __future__ import annotations

import json
import os
from typing import Any

from bundle_promotion.bundle.config.interpolation import resolve_references, resolve_value
from bundle_promotion.bundle.config.steps.loading import Loading
from bundle_promotion.errors import BundleConfigError, BundlePromotionError, InvalidBundle


def variable_spec(declaration: Any) -> dict[str, Any]:
    """A variable's declaration as a mapping: a bare value is its default."""
    return declaration if isinstance(declaration, dict) else {"default": declaration}


def set_variable_values(loading: Loading) -> None:
    """Give each variable its `value`, from the first that has one, in the CLI's order:

    `--var`, a `value` the declaration gives, `BUNDLE_VAR_<name>`, the `lookup`, the
    variable-overrides file, the default. A complex value must be declared `type: complex`
    only when it comes from the overrides file: elsewhere the CLI takes it as written.
    """
    declared = loading.tree.setdefault("variables", {})
    for name in loading.variable_overrides:
        if name not in declared:
            raise loading.error(f"variables.{name}", f"variable {name} has not been defined")
    from_file = _variable_overrides_file(loading)
    unassigned = []
    for name, declaration in declared.items():
        spec = dict(variable_spec(declaration))
        value = _first_value(
            loading.variable_overrides.get(name), spec.get("value"), os.environ.get(f"BUNDLE_VAR_{name}")
        )
        if value is None and spec.get("lookup"):
            value = _looked_up(loading, name, spec["lookup"])
        read_from_file = value is None and from_file.get(name) is not None
        value = _first_value(value, from_file.get(name), spec.get("default"))
        if value is None:
            unassigned.append(loading.error(f"variables.{name}", _no_value_message(name, loading.target)))
            continue
        if read_from_file and isinstance(value, dict | list) and spec.get("type") != "complex":
            raise loading.error(
                f"variables.{name}",
                f"variable {name} is not of type complex, but the value in the variable is a complex type; "
                "declare it with `type: complex`",
            )
        if spec.get("type") == "complex" and name in loading.variable_overrides:
            raise loading.error(
                f"variables.{name}",
                f"setting variables of complex type via --var flag is not supported: {name}",
            )
        declared[name] = {**spec, "value": value}
    if unassigned:
        raise unassigned[0] if len(unassigned) == 1 else InvalidBundle(unassigned)


def _looked_up(loading: Loading, name: str, lookup: Any) -> str:
    """The id a `lookup: {<kind>: <name>}` names, asked of the workspace.

    References in the name (`${bundle.target} warehouse`) are resolved first; a failure names
    the variable, not the reference it used.
    """
    where = f"variables.{name}.lookup"
    if not isinstance(lookup, dict) or len(lookup) != 1:
        raise loading.error(where, "expected exactly one kind, e.g. `warehouse: Shared`")
    ((kind, wanted),) = lookup.items()
    wanted = resolve_value(loading.tree, wanted, loading.root_file, f"{where}.{kind}")
    if loading.lookup is None:
        raise loading.error(
            where,
            f"resolving {kind} {wanted!r} needs the workspace; validate against a workspace "
            f"or give the value with --var {name}=<id>",
        )
    try:
        return loading.lookup(str(kind), str(wanted))
    except BundlePromotionError as error:
        problem = error.problem if isinstance(error, BundleConfigError) else str(error)
        raise loading.error(where, f"variable {name}: {problem}") from None


def _first_value(*candidates: Any) -> Any:
    return next((value for value in candidates if value is not None), None)


def _variable_overrides_file(loading: Loading) -> dict[str, Any]:
    path = loading.bundle_dir / ".databricks" / "bundle" / loading.target / "variable-overrides.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BundleConfigError(str(path), "", f"invalid JSON: {error}") from error
    if not isinstance(values, dict):
        raise BundleConfigError(str(path), "", "expected a JSON object of variable names to values")
    return values


def _no_value_message(name: str, target: str) -> str:
    return (
        f'no value assigned to required variable {name}. Assignment can be done using "--var", '
        f"by setting the BUNDLE_VAR_{name} environment variable, "
        f"or in .databricks/bundle/{target}/variable-overrides.json file"
    )


def interpolate(loading: Loading) -> None:
    loading.tree = resolve_references(loading.tree, loading.root_file)
