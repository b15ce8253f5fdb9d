"""Data-aware: score the months the daily ingestion announced (Asset events), then refresh the dashboards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task_group

from taxi_anomaly.orchestration import tasks
from taxi_anomaly.orchestration.assets import RAW_ASSETS
from taxi_anomaly.orchestration.backends import TEMPLATE_SEARCHPATH
from taxi_anomaly.orchestration.params import scoring_params
from taxi_anomaly.orchestration.policies import default_args


@dag(
    dag_id="tap_score_landed",
    schedule=(RAW_ASSETS["yellow"] | RAW_ASSETS["green"] | RAW_ASSETS["fhv"] | RAW_ASSETS["fhvhv"]),
    start_date=datetime(2024, 1, 1),  # earliest logical date (tests run the daily DAG as of 2025)
    catchup=False,  # asset-triggered: every event is consumed by the next run, nothing to replay
    max_active_runs=1,
    tags=["taxi-anomaly", "pipeline", "scoring"],
    default_args=default_args(),
    params=scoring_params(),
    template_searchpath=[str(TEMPLATE_SEARCHPATH)],
    doc_md="""
### Score newly landed months
Runs when `tap_daily_ingest` announces landed months (Assets `tap_raw_tlc_<trip type>`). For each announced
trip type × month: model version (the **promoted** one by default); the Spark anomaly job scores the months of
a trip type in one submission; per scored month: Iceberg tables verified in the Hive Metastore → Trino sanity
query (row counts equal what Spark wrote) → run record; then one Superset refresh. Spark runs where the Airflow
Variable `tap_platform` says (`local` or `kubernetes`).

Docs: `docs/orchestration.md`.
""",
)
def tap_score_landed() -> None:
    @task_group(group_id="month")
    def month(target: Any) -> Any:
        return tasks.resolve_model(target)

    tasks.refresh_dashboards(tasks.score_months(month.expand(target=tasks.plan_from_assets())))


tap_score_landed()
