"""GitHub as the core sees it: the ``GitHubFacts`` protocol of one repository's facts
(``facts``), and the mirror of each environment deploy as a GitHub deployment
(``deployments``). The transport is ``hooks.github``. Imports ``ledger`` and ``errors``.
"""
