"""Registers the bundle-promotion plugin when the package is used from this plugins folder.

When the package is installed (``pip install bundle-promotion``), its ``airflow.plugins``
entry point registers the same plugin; Airflow would then report this file as a duplicate,
so it registers nothing.
"""

from importlib.metadata import entry_points

if not entry_points(group="airflow.plugins", name="bundle_promotion"):
    from bundle_promotion.plugin import BundlePromotionPlugin

    __all__ = ["BundlePromotionPlugin"]
