"""Hourly compaction of the streamed Iceberg tables (small files rewritten, old snapshots and orphans removed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from taxi_anomaly.orchestration.policies import default_args


@dag(
    dag_id="tap_stream_maintenance",
    schedule=timedelta(hours=1),
    start_date=datetime(2026, 1, 1),
    catchup=False,  # compaction works on the tables as they are now: a missed hour needs no replay
    max_active_runs=1,
    tags=["taxi-anomaly", "streaming", "ops"],
    default_args=default_args(),
    params={"namespace": Param("taxi", type="string", title="Iceberg namespace of the streamed tables")},
    doc_md="""
### Streamed tables: compaction
For each table the streaming job writes (`stream_trips`, `stream_window_scores`, `stream_alerts`), through
Trino as the platform admin: `optimize` (files under 64 MB rewritten), `expire_snapshots` and
`remove_orphan_files` (7 days). Each task returns the data-file and snapshot counts before and after.
""",
)
def tap_stream_maintenance() -> None:
    @task
    def stream_tables() -> list[str]:
        from anomaly_detection import tables

        return list(tables.STREAM_TABLE_DDL)

    @task(execution_timeout=timedelta(minutes=30))
    def compact(table: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow.sdk import BaseHook

        from taxi_anomaly.serving.trino_client import TrinoSettings
        from taxi_anomaly.streaming.maintenance import compact_table

        params = params or {}
        settings = TrinoSettings.from_connection(BaseHook.get_connection("tap_trino"))
        connection: Any = settings.connect()
        try:
            return compact_table(connection, params["namespace"], table).as_dict()
        finally:
            connection.close()

    compact.expand(table=stream_tables())


tap_stream_maintenance()
