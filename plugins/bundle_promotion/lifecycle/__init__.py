"""What happens to a release in an environment: the steps of a promotion (``promotion``),
schedule states (``schedules``), installation verification (``verification``), rollback
(``rollback``) and the data restores behind it (``data_restores``). Imports ``bundle``,
``spec``, ``ledger``, ``release`` and ``workspace``; never ``gates`` or Airflow.
"""
