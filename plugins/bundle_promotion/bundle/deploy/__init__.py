"""Deploying a resolved bundle: the native engine and the CLI engine, the plan, the
direct-engine state (``resources.json``) and the deploy lock, all in the CLI's formats so
the CLI and this engine can take turns on one target. Imports ``bundle.config``,
``bundle.resources``, ``workspace`` and ``errors``.
"""
