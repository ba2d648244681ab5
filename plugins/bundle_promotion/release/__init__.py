"""The release: one version of a bundle, resolved to a commit and built once.

``git`` resolves a tag and checks a commit out, ``build`` builds the artifacts and the
config digest, ``store`` keeps the built files by release digest where every worker can
fetch them. The release record itself is the ledger's (``ledger.records.Release``).
Imports ``ledger`` and ``errors``; never gates, lifecycle or Airflow.
"""
