"""The steps that turn bundle files into the config of one target.

Each step is a small function over a `Loading`, named after what it does, in the spirit of
the CLI's mutators, one module per step or per few: `files` (load and include), `target`
(select and merge the target, keyed lists), `kinds`, `variables` (values, interpolation),
`workspace_paths`, `paths` (translate paths), `access` (run_as, permissions, annotations).
`load.STEPS` applies them in order; the order matters and is the one
`databricks bundle validate` uses.
"""

from bundle_promotion.bundle.config.steps.access import (
    PRINCIPAL_FIELDS,
    annotate_resources,
    apply_permissions,
    apply_run_as,
)
from bundle_promotion.bundle.config.steps.checks import (
    check_auth_interpolation,
    check_deployment_fields,
    check_engine,
    check_enums,
    check_root_path,
)
from bundle_promotion.bundle.config.steps.defaults import set_resource_defaults
from bundle_promotion.bundle.config.steps.files import load_files
from bundle_promotion.bundle.config.steps.git import load_git_details
from bundle_promotion.bundle.config.steps.kinds import (
    apply_kind_defaults,
    apply_kind_presets,
    capture_uc_dependencies,
    check_kinds,
    reject_undeployable,
)
from bundle_promotion.bundle.config.steps.loading import WORKSPACE_SUBPATHS, Loading, Lookup, resources_of
from bundle_promotion.bundle.config.steps.paths import translate_paths
from bundle_promotion.bundle.config.steps.target import merge_keyed_lists, select_target
from bundle_promotion.bundle.config.steps.variables import interpolate, set_variable_values
from bundle_promotion.bundle.config.steps.workspace_paths import (
    default_sync_paths,
    default_workspace_paths,
    is_service_principal,
)

__all__ = [
    "PRINCIPAL_FIELDS",
    "WORKSPACE_SUBPATHS",
    "Loading",
    "Lookup",
    "annotate_resources",
    "apply_kind_defaults",
    "apply_kind_presets",
    "apply_permissions",
    "apply_run_as",
    "capture_uc_dependencies",
    "check_auth_interpolation",
    "check_deployment_fields",
    "check_engine",
    "check_enums",
    "check_kinds",
    "check_root_path",
    "default_sync_paths",
    "default_workspace_paths",
    "interpolate",
    "is_service_principal",
    "load_files",
    "load_git_details",
    "merge_keyed_lists",
    "reject_undeployable",
    "resources_of",
    "select_target",
    "set_resource_defaults",
    "set_variable_values",
    "translate_paths",
]
