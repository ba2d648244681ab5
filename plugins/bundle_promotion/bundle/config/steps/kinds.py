"""Resource kinds: the native engine deploys jobs and pipelines; any other kind fails validation."""

from __future__ import annotations

from bundle_promotion.bundle.config.steps.loading import Loading

# Resource kinds the native engine deploys; any other kind fails validation.
SUPPORTED_KINDS = ("jobs", "pipelines")


def reject_unsupported(loading: Loading) -> None:
    """A resource kind the native engine does not deploy fails validation, naming kind and key."""
    for kind, resources in (loading.tree.get("resources") or {}).items():
        if kind in SUPPORTED_KINDS:
            continue
        key = next(iter(resources or {}), "")
        raise loading.error(
            f"resources.{kind}.{key}".rstrip("."),
            f"resource kind {kind} ({key}) is not supported by the native engine, which deploys "
            f"{' and '.join(SUPPORTED_KINDS)}; deploy this bundle with `engine: cli`",
        )
