"""Databricks bundles, with the Databricks CLI's semantics.

- ``config``: load ``databricks.yml`` and its includes and resolve it for one target,
  as ``databricks bundle validate`` does (named steps, like the CLI's mutators).
- ``resources``: each resource kind's REST calls (jobs, pipelines, permissions).
- ``deploy``: the engines, plan, direct-engine state and deploy lock.

Imports ``workspace`` and ``errors`` only; knows nothing of promotions, the ledger or Airflow.
"""
