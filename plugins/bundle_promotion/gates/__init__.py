"""Gates: the conditions a release must meet before it enters an environment.

``contract`` defines a gate (facts in, passed / waiting / failed out), ``builtin`` the
simple gates, ``approvals`` human approval quorums and signatures, ``github`` the GitHub
checks and reviews, ``check`` turns a spec's entries into gates and records one
evaluation. Gates are pure evaluation and never wait; the Airflow layer waits between
evaluations. Imports ``spec``, ``ledger``, ``release``, ``github`` and ``errors``; never
``lifecycle`` or Airflow.
"""
