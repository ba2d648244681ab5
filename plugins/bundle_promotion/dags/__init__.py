"""Rendering specs into DAGs: ``factory`` makes ``promote__<bundle>`` and
``schedules__<bundle>`` from each spec, ``rollback`` the rollback groups and the manual
``rollback__<bundle>`` DAG. Part of the Airflow layer: imports ``operators``, ``sensors``
and ``spec``, and only what DAG parsing needs at module level.
"""
