"""Daily: look for newly published TLC months, land them, and announce them (Asset events) for scoring."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task_group

from taxi_anomaly.orchestration import tasks
from taxi_anomaly.orchestration.params import daily_params
from taxi_anomaly.orchestration.policies import default_args


@dag(
    dag_id="tap_daily_ingest",
    schedule="0 6 * * *",
    start_date=datetime(2024, 1, 1),  # earliest logical date (tests run the daily DAG as of 2025)
    catchup=False,  # each run looks back over the last months itself; missed days need no replay
    max_active_runs=1,
    tags=["taxi-anomaly", "pipeline", "ingest"],
    default_args=default_args(),
    params=daily_params(),
    doc_md="""
### Daily: detect and land newly published months
Every day at 06:00 UTC, for each trip type and each of the last **lookback_months** months: download →
integrity check → Great Expectations validation. The TLC publishes a month about two months late, so most
months answer "not published": those tasks are **skipped**, not failed. An unchanged month already landed is
not downloaded again.

Months that landed (new or republished), or landed but never scored, are announced as events of the Assets
`tap_raw_tlc_<trip type>` (through the alias `tap_raw_landed`); `tap_score_landed` runs on those events.

Docs: `docs/orchestration.md`.
""",
)
def tap_daily_ingest() -> None:
    @task_group(group_id="month")
    def month(target: Any) -> Any:
        return tasks.gx_validation(tasks.integrity_check(tasks.download(target)))

    plan = tasks.plan_daily()
    tasks.zone_lookup() >> plan  # the borough granularity joins the zone lookup
    validated = month.expand(target=plan)
    tasks.announce_landed(validated)
    validated >> tasks.render_data_docs(plan)


tap_daily_ingest()
