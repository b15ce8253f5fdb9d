"""Weekly: train a candidate model per trip type on a trailing window, evaluate, promote only if not worse."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task_group

from taxi_anomaly.orchestration import tasks
from taxi_anomaly.orchestration.backends import TEMPLATE_SEARCHPATH
from taxi_anomaly.orchestration.params import retrain_params
from taxi_anomaly.orchestration.policies import default_args


@dag(
    dag_id="tap_weekly_retrain",
    schedule="0 3 * * 1",
    start_date=datetime(2024, 1, 1),  # earliest logical date (tests run the daily DAG as of 2025)
    catchup=False,  # a retraining uses the data there is now; replaying missed weeks would train the same model
    max_active_runs=1,
    tags=["taxi-anomaly", "pipeline", "training"],
    default_args=default_args(),
    params=retrain_params(),
    template_searchpath=[str(TEMPLATE_SEARCHPATH)],
    doc_md="""
### Weekly retraining with promotion
Mondays 03:00 UTC, per trip type: the evaluation month (**holdout_month**, default the newest landed month)
and the **train_window_months** landed months before it → Spark trains a candidate version and scores the
evaluation month (namespace `<namespace>_candidate`) → the promoted model scores the same month
(`<namespace>_incumbent`) → both are compared on calibration (flagged share vs. their contamination) → the
candidate becomes `promoted.json` only if it is not worse (within **tolerance**). The evaluation report goes to
`tap-reports/pipeline/evaluations/`. Scoring DAGs use the promoted version.

Docs: `docs/orchestration.md`.
""",
)
def tap_weekly_retrain() -> None:
    @task_group(group_id="model")
    def model(trip_type: Any) -> None:
        plan = tasks.plan_retraining(trip_type)
        candidate = tasks.train_candidate(plan)
        incumbent = tasks.score_incumbent(plan)
        candidate >> incumbent  # one Spark job at a time on a small machine
        tasks.evaluate_and_promote(candidate, incumbent)

    model.expand(trip_type=tasks.trip_types())


tap_weekly_retrain()
