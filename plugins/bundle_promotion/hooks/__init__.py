"""Airflow hooks: the one transport to Databricks workspaces, and the ledger's database."""
