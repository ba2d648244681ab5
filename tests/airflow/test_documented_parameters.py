"""Every constructor parameter of a public operator, sensor or trigger is documented with
``:param name:`` in its class docstring or in the docstring of the base that takes it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

import pytest
from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger

import bundle_promotion.operators
import bundle_promotion.sensors
import bundle_promotion.triggers

AIRFLOW_BASES = (BaseOperator, BaseTrigger)


def public_classes() -> Iterator[type]:
    for package in (bundle_promotion.operators, bundle_promotion.sensors, bundle_promotion.triggers):
        for module_info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{module_info.name}")
            for name, cls in vars(module).items():
                if (
                    inspect.isclass(cls)
                    and issubclass(cls, AIRFLOW_BASES)
                    and cls.__module__ == module.__name__
                    and not name.startswith("_")
                ):
                    yield cls


def undocumented(cls: type) -> list[str]:
    """Parameters of the class's own ``__init__`` and its bases' (up to Airflow's) left undocumented."""
    documented = "".join(inspect.getdoc(base) or "" for base in cls.__mro__)
    missing = []
    for owner in cls.__mro__:
        init = vars(owner).get("__init__")
        if owner is object or owner.__module__.startswith("airflow.") or init is None:
            continue
        for name, parameter in inspect.signature(init).parameters.items():
            if parameter.kind is parameter.KEYWORD_ONLY and f":param {name}:" not in documented:
                missing.append(f"{owner.__name__}.{name}")
    return missing


CLASSES = sorted(public_classes(), key=lambda cls: cls.__name__)


def test_the_public_classes_are_found() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"BundleDeployOperator", "GateSensor", "PipelineUpdateTrigger"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_constructor_parameter_is_documented(cls: type) -> None:
    assert undocumented(cls) == []
