"""A bundle's config, resolved the way the Databricks CLI resolves it.

``load.load_bundle`` runs the named ``steps`` in the CLI's order (load, include, select
target, variables, interpolation, modes and presets, path translation, permissions);
``outline`` is the cheap read used at DAG-parse time. Imports ``workspace`` (for variable
lookups) and ``errors``; never ``bundle.resources`` or ``bundle.deploy``.
"""
