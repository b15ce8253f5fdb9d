"""Tune a detector's spec on labelled months (manual trigger): search, K folds over months, a candidate spec."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from taxi_anomaly.orchestration import tasks
from taxi_anomaly.orchestration.backends import TEMPLATE_SEARCHPATH
from taxi_anomaly.orchestration.params import tuning_params
from taxi_anomaly.orchestration.policies import default_args


@dag(
    dag_id="tap_tune",
    schedule=None,
    start_date=datetime(2024, 1, 1),  # earliest logical date
    catchup=False,  # triggered by hand over a month range; nothing to catch up
    max_active_runs=1,
    tags=["taxi-anomaly", "training", "tuning"],
    default_args=default_args(),
    params=tuning_params(),
    template_searchpath=[str(TEMPLATE_SEARCHPATH)],
    doc_md="""
### Tune a detector
For **trip_type** and **granularity**, the Spark job in tune mode tries the **detector** spec's search space
(`search:` in `include/models/<detector>.yaml`; at most **max_trials** fit × threshold pairs): every labelled month
of **first_month..last_month** (a labels file in the raw bucket's `labels/` tree, e.g. generated months) is scored
by a model trained on the **history_months** before it. Each trial's figures go to the Iceberg table
`tuning_trials`; the best one (every episode found, then the highest mean bucket F1) is written as a candidate
spec under `tap-models/registry/<trip type>/<granularity>/candidates/`. Nothing is promoted: using a candidate is
a reviewed change to `include/models/`.

Docs: `docs/detectors.md`.
""",
)
def tap_tune() -> None:
    tasks.tune()


tap_tune()
