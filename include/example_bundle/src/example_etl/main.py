"""Entry points of the example wheel; they run as Databricks python_wheel_task tasks."""

import argparse


def ingest() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--schema", required=True)
    args = parser.parse_args()
    print(f"ingesting into {args.catalog}.{args.schema}")


def integration_tests() -> None:
    print("checking the ETL outputs")
