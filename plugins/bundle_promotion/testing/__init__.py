"""Local emulators of the services bundle-promotion talks to, for tests, the demo and offline dry runs.

- ``bundle_promotion.testing.workspace``: Databricks workspaces (``WorkspaceEmulator``, ``serve``).
- ``bundle_promotion.testing.github``: GitHub Enterprise's REST API (``GitHubEmulator``).
- ``bundle_promotion.testing.webhook_sink``: a webhook receiver recording the notifications it gets.
"""
