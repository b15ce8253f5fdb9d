"""Hourly check that every platform service answers a real request through its Airflow connection."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

CHECKS = {
    "s3": "tap_s3",
    "metastore": "tap_metastore",
    "trino": "tap_trino",
    "superset": "tap_superset",
}


@dag(
    dag_id="platform_health",
    schedule=timedelta(hours=1),
    start_date=datetime(2026, 1, 1),
    catchup=False,  # only the current state of the services matters
    max_active_runs=1,
    tags=["platform", "ops"],
    default_args={
        "owner": "platform",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=2),
    },
    doc_md="""
### Platform health
One task per service (S3/MinIO, Hive Metastore, Trino, Superset). Each opens the service's Airflow
connection and makes a real request: list buckets, list metastore databases, `SHOW SCHEMAS`, `/health`.
A red task names the service that is down.
""",
)
def platform_health() -> None:
    for name, conn_id in CHECKS.items():

        @task(task_id=f"check_{name}")
        def check(service: str = name, connection_id: str = conn_id) -> Any:  # not dict: no multiple_outputs
            from airflow.sdk import BaseHook

            from taxi_anomaly import health

            endpoint = health.ServiceEndpoint.from_connection(BaseHook.get_connection(connection_id))
            return getattr(health, f"check_{service}")(endpoint)

        check()


platform_health()
