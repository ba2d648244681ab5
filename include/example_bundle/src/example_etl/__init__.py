"""Example ETL deployed by the example bundle."""
