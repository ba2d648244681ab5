"""A bundle's config, resolved the way the Databricks CLI resolves it.

``load.load_bundle`` runs the named ``steps`` in the CLI's order, as ``load.STEPS`` lists
them (load and include, select the target, merge keyed lists, reject unsupported kinds,
variables, workspace and sync paths, interpolation, modes and presets, path translation,
run_as, permissions, annotations);
``outline`` is the cheap read used at DAG-parse time. Imports ``workspace`` (for variable
lookups) and ``errors``; never ``bundle.resources`` or ``bundle.deploy``.
"""
