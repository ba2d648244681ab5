"""The workspace: how the core talks to a Databricks workspace.

``api.WorkspaceApi`` is the one protocol every workspace call of the core goes through
(``hooks.workspace.WorkspaceHook`` implements it over the Databricks provider);
``files`` holds the Workspace API's file calls. Imports only ``errors``; never Airflow.
"""
