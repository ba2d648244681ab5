"""The plugin's web surface inside Airflow's API server: the approvals API (``api``) and
its HTTP client (``client``) used by the CLI and the demo. Part of the Airflow layer:
identity comes from Airflow's auth manager, never from a request body.
"""
