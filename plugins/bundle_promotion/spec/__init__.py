"""The promotion spec: which bundle to promote, from where, through which environments.

One spec file (``include/promotions/<name>.yaml``) becomes one DAG, ``promote__<bundle>``.
This module is imported while Airflow parses DAGs, so it never imports Airflow and
keeps its module-level imports light. Every invalid spec raises ``SpecError`` naming
the file, the line, the field and what is expected.
"""

from __future__ import annotations

from bundle_promotion.spec.gate_entries import (
    ApprovalGateSpec,
    ConnectionIdentitiesSpec,
    GateEntry,
    WindowRuleSpec,
)
from bundle_promotion.spec.github import GitHub
from bundle_promotion.spec.loading import load_spec, load_specs
from bundle_promotion.spec.models import Environment, PromotionSpec, Source, TestSuite, spec_json_schema
from bundle_promotion.spec.rollback import ModelAlias, Rollback

__all__ = [
    "ApprovalGateSpec",
    "ConnectionIdentitiesSpec",
    "Environment",
    "GateEntry",
    "GitHub",
    "ModelAlias",
    "PromotionSpec",
    "Rollback",
    "Source",
    "TestSuite",
    "WindowRuleSpec",
    "load_spec",
    "load_specs",
    "spec_json_schema",
]
