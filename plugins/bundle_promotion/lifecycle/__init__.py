"""What happens to a release in an environment: the steps of a promotion (``promotion``),
schedule states (``schedules``), installation verification (``verification``), rollback
(``rollback``) and the data restores behind it (``data_restores``); what a notification says and
the interface it is sent through (``notifications``). Imports ``bundle``,
``spec``, ``ledger``, ``release`` and ``workspace``; never ``gates`` or Airflow.
"""
