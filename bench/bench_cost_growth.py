"""Benchmark: how the Spark job's cost grows with months, trips per month and keys, each varied alone, beside the
native floor (scan + 30-minute aggregate) of the same input in the same run.

From one base run (one fhvhv month of `bench_backfill`'s size, city granularity):
- months: 1, 3, 6 and 12 months in one submission (city);
- trips per month: the base month sampled to 1/4 and 1/2 of its trips (Spark `sample`, seed 7; every half-hour
  and zone keeps its share), written beside the raw zone under `bench-growth/`;
- keys: city (1 window a half-hour), borough (~8) and zone (~263) on the base month, with models of each
  granularity trained and promoted through tap_weekly_retrain on the backfill's history (`--train`).

Each job runs in its own process, as spark-submit runs it (bench_month_scaling.run_job); each floor too.

    make up
    eval "$(python3 -m local_platform env airflow)"
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_backfill     # lands the months, once
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_cost_growth --train
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from bench.bench_backfill import (
    FIRST_MONTH,
    HISTORY_MONTHS,
    PREFIX,
    months_from,
    native_floor,
    run_with_spark,
    train_model,
    write_results,
)
from bench.bench_month_scaling import run_job

RESULTS = Path(__file__).parent / "results" / "cost_growth.json"
MONTH_COUNTS = (1, 3, 6, 12)
TRIP_SHARES = (0.25, 0.5, 1.0)
GRANULARITIES = ("city", "borough", "zone")
SAMPLE_ROOT = "bench-growth"

SAMPLE_SCRIPT = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("bench-growth-sample").getOrCreate()
source, share, target = sys.argv[1], float(sys.argv[2]), sys.argv[3]
spark.read.parquet(source).sample(fraction=share, seed=7).coalesce(1).write.mode("overwrite").parquet(target)
spark.stop()
"""


def sampled_raw_uri(share: float) -> str:
    """The raw zone root that holds the base month sampled to `share` of its trips (the landed zone's layout)."""
    from taxi_anomaly.orchestration.locations import Locations

    return Locations(prefix=f"{SAMPLE_ROOT}/trips-{round(share * 100)}pct/").raw_uri


def with_native_floor(run: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    return run | {
        "floor_s": floor["seconds"],
        "floor_jvm_cpu_s": floor["jvm_cpu_s"],
        "job_over_floor": round(run["wall_s"] / floor["seconds"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train and promote borough and zone models first")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from taxi_anomaly import layout
    from taxi_anomaly.orchestration import demo
    from taxi_anomaly.orchestration.locations import Locations

    history = months_from(FIRST_MONTH, HISTORY_MONTHS)
    months = months_from(FIRST_MONTH, HISTORY_MONTHS + max(MONTH_COUNTS))[HISTORY_MONTHS:]
    if args.train:
        for granularity in GRANULARITIES[1:]:
            train_model(demo.airflow_client(), history, granularity)
    promoted = {g: demo.promoted(PREFIX, "fhvhv", g) for g in GRANULARITIES}
    versions = {g: v for g, v in promoted.items() if v is not None}
    if missing := sorted(set(GRANULARITIES) - set(versions)):
        raise SystemExit(f"no promoted fhvhv model for {', '.join(missing)}: run bench_backfill, then --train")
    raw_uri = Locations(prefix=PREFIX).raw_uri

    base_file = layout.raw_path(raw_uri, "fhvhv", months[0])
    runs: dict[str, list[dict[str, Any]]] = {"months": [], "trips": [], "keys": []}
    # A warm-up run, not kept: the base run is shared by the three series, so a cold first run would skew all three.
    run_job(months[:1], versions["city"], "city")
    base = with_native_floor(run_job(months[:1], versions["city"], "city"), native_floor([base_file]))
    for count in MONTH_COUNTS:
        run = (
            base
            if count == 1
            else with_native_floor(
                run_job(months[:count], versions["city"], "city"),
                native_floor([layout.raw_path(raw_uri, "fhvhv", m) for m in months[:count]]),
            )
        )
        runs["months"].append({"months": count, **run})
        print(json.dumps(runs["months"][-1]), flush=True)
    for share in TRIP_SHARES:
        if share == 1.0:
            run = base
        else:
            sample_uri = sampled_raw_uri(share)
            sample_file = layout.raw_path(sample_uri, "fhvhv", months[0])
            run_with_spark(
                ["-c", SAMPLE_SCRIPT, base_file, str(share), sample_file], f"sampling {share:g} of {base_file}"
            )
            run = with_native_floor(
                run_job(months[:1], versions["city"], "city", raw_uri=sample_uri), native_floor([sample_file])
            )
        runs["trips"].append({"trip_share": share, **run})
        print(json.dumps(runs["trips"][-1]), flush=True)
    for granularity in GRANULARITIES:
        run = (
            base
            if granularity == "city"
            else with_native_floor(
                run_job(months[:1], versions[granularity], granularity), native_floor([base_file], granularity)
            )
        )
        runs["keys"].append({"granularity": granularity, **run})
        print(json.dumps(runs["keys"][-1]), flush=True)
    result = {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_1min_at_end": round(os.getloadavg()[0], 2),
        "models": versions,
        **runs,
    }
    write_results(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
