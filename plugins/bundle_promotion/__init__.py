"""Promote Databricks bundles through environments with Apache Airflow 3."""
