"""Triggers: the waits of bundle-promotion, run in Airflow's triggerer so they hold no worker slot."""
