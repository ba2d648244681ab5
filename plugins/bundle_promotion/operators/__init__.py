"""Operators of a promotion: thin adapters from Airflow's context to the core steps in ``lifecycle``."""

from bundle_promotion.operators.bundle import (
    BundleDestroyOperator,
    BundlePlanOperator,
    BundleValidateOperator,
)
from bundle_promotion.operators.deploy import BundleDeployOperator
from bundle_promotion.operators.record import RecordDeploymentOperator
from bundle_promotion.operators.release import BuildReleaseOperator
from bundle_promotion.operators.run_job import RunBundleJobOperator
from bundle_promotion.operators.schedules import ApplySchedulePolicyOperator

__all__ = [
    "ApplySchedulePolicyOperator",
    "BuildReleaseOperator",
    "BundleDeployOperator",
    "BundleDestroyOperator",
    "BundlePlanOperator",
    "BundleValidateOperator",
    "RecordDeploymentOperator",
    "RunBundleJobOperator",
]
