"""Backfill: a month range, per trip type, through the whole pipeline (manual trigger)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task_group

from taxi_anomaly.orchestration import tasks
from taxi_anomaly.orchestration.backends import TEMPLATE_SEARCHPATH
from taxi_anomaly.orchestration.outcome import require_a_published_month
from taxi_anomaly.orchestration.params import backfill_params
from taxi_anomaly.orchestration.policies import default_args


@dag(
    dag_id="tap_backfill",
    schedule=None,
    start_date=datetime(2024, 1, 1),  # earliest logical date (tests run the daily DAG as of 2025)
    catchup=False,  # triggered by hand with a month range; nothing to catch up
    max_active_runs=2,
    tags=["taxi-anomaly", "pipeline", "backfill"],
    default_args=default_args(),
    params=backfill_params(),
    template_searchpath=[str(TEMPLATE_SEARCHPATH)],
    doc_md="""
### Backfill a month range
For every trip type × month of **first_month..last_month** (one mapped task group per pair, labelled
`green 2024-01`): download → integrity check → Great Expectations validation → model version; then the Spark
anomaly job scores every resolved month of a trip type in **one submission**; per scored month (group `scored`):
Iceberg tables verified in the Hive Metastore → Trino sanity query → run record; then one Superset refresh.

* A month the TLC has not published is **skipped**, not failed; a run in which **no** month was published fails
  (`require_a_published_month`). A rejected file fails `integrity_check` or
  `gx_validation` with the reason (quarantine report in `tap-raw/quarantine/...`); the other months are
  still scored.
* **Idempotent**: an unchanged file is not downloaded again (`force_download` to insist); the job replaces the
  month's partitions, so a rerun gives the same rows.
* **score off** lands and validates only (load the history a first training needs).
* Scores with the **promoted** model by default (see `tap_weekly_retrain`).
* Spark runs where the Airflow Variable `tap_platform` says (`local` spark-submit or `kubernetes`).

Docs: `docs/orchestration.md`.
""",
)
def tap_backfill() -> None:
    plan = tasks.plan_backfill()
    data_docs = tasks.render_data_docs(plan)  # once per run, after every month's validation

    @task_group(group_id="month")
    def month(target: Any) -> Any:
        checked = tasks.gx_validation(tasks.integrity_check(tasks.download(target)))
        checked >> data_docs
        return tasks.resolve_model(checked)

    tasks.zone_lookup() >> plan  # the borough granularity joins the zone lookup
    refreshed = tasks.refresh_dashboards(tasks.score_months(month.expand(target=plan)))
    refreshed >> require_a_published_month()  # every month "not published" is not a success (runs ALL_DONE)


tap_backfill()
