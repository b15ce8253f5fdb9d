"""Benchmark: does scoring several months in one Spark submission scale linearly? One month, then N months, each
in its own process (the job's entry point, as spark-submit runs it), on the months `bench_backfill` landed, with
the model it promoted (city; `--granularity zone --train` trains a zone model on the same history through
tap_weekly_retrain first); and the native floor (scan + 30-minute aggregate, per pickup zone at zone granularity)
of the same files in the same run.

Measured per run: wall seconds of the whole process, and the job's own seconds after the session start
(`total_after_training` of its result line: from the model load on, with the windows, features, scoring and
evaluation-and-writes steps in `timings_s`). The issue's target:
N = 12 months at most 12.5x one month, session start excluded.

    make up
    eval "$(python3 -m local_platform env airflow)"
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_backfill     # lands the months, once
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_month_scaling --months 12
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_month_scaling --granularity zone --months 3 --train
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_backfill import (
    FIRST_MONTH,
    HISTORY_MONTHS,
    PREFIX,
    job_result,
    months_from,
    native_floor,
    run_with_spark,
    train_model,
    write_results,
)

RESULTS = Path(__file__).parent / "results" / "month_scaling.json"
SCALING_NAMESPACE = "bench_scaling"
REPO = Path(__file__).resolve().parents[1]


def run_job(months: list[str], version: str, granularity: str, source: Path = REPO, **fields: Any) -> dict[str, Any]:
    """The job of the checkout `source` in score mode on `months`, in its own process; wall seconds, the job's own
    timings and the oversized-task warnings Spark logged. `fields`: more AnomalyJob fields (e.g. another raw_uri)."""
    from taxi_anomaly.contract import Mode
    from taxi_anomaly.orchestration.locations import Locations

    job = Locations(prefix=PREFIX).job(
        trip_type="fhvhv",
        granularity=granularity,
        mode=Mode.SCORE,
        score_months=tuple(months),
        namespace=SCALING_NAMESPACE,
        run_id=f"bench_scaling_{uuid.uuid4().hex[:8]}",
        model_version=version,
        **fields,
    )
    entry_point = source / "spark_jobs" / "run_anomaly_detection.py"
    what = f"the job of {source} on {months[0]}..{months[-1]}"
    run = run_with_spark([str(entry_point), *job.to_argv()], what, source)
    result = next(found for line in run.stdout.splitlines() if (found := job_result(line)))
    return {
        "months": len(months),
        "wall_s": round(run.seconds, 1),
        "jvm_cpu_s": run.jvm_cpu_s,
        "after_start_s": round(result["timings_s"]["total_after_training"], 1),
        "timings_s": {k: round(v, 1) for k, v in result["timings_s"].items()},
        "windows_scored": result["windows_scored"],
        "oversized_task_warnings": run.stderr.count("contains a task of very large size"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--granularity", choices=("city", "zone"), default="city")
    parser.add_argument("--train", action="store_true", help="train and promote a model of the granularity first")
    parser.add_argument("--out", type=Path, default=None, help="default: results/month_scaling[_zone].json")
    args = parser.parse_args(argv)

    from taxi_anomaly import layout
    from taxi_anomaly.orchestration import demo
    from taxi_anomaly.orchestration.locations import Locations

    history = months_from(FIRST_MONTH, HISTORY_MONTHS)
    months = months_from(FIRST_MONTH, HISTORY_MONTHS + args.months)[HISTORY_MONTHS:]
    if args.train:  # on the history months bench_backfill landed
        train_model(demo.airflow_client(), history, args.granularity)
    version = demo.promoted(PREFIX, "fhvhv", args.granularity)
    if version is None:
        raise SystemExit(
            f"no promoted fhvhv {args.granularity} model under the bench's prefix: run bench_backfill, "
            "and --train for zone"
        )
    raw_uri = Locations(prefix=PREFIX).raw_uri
    one, many = run_job(months[:1], version, args.granularity), run_job(months, version, args.granularity)
    floor_one = native_floor([layout.raw_path(raw_uri, "fhvhv", months[0])], args.granularity)
    floor_many = native_floor([layout.raw_path(raw_uri, "fhvhv", m) for m in months], args.granularity)
    result = {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "granularity": args.granularity,
        "load_1min_at_end": round(os.getloadavg()[0], 2),
        "one_month": one,
        "many_months": many,
        "after_start_ratio": round(many["after_start_s"] / one["after_start_s"], 2),
        "target_ratio": 12.5 * args.months / 12,
        "native_floor": {
            "one_month_s": floor_one["seconds"],
            "many_months_s": floor_many["seconds"],
            "one_month_jvm_cpu_s": floor_one["jvm_cpu_s"],
            "many_months_jvm_cpu_s": floor_many["jvm_cpu_s"],
        },
        "job_over_floor": {
            "one_month": round(one["wall_s"] / floor_one["seconds"], 2),
            "many_months": round(many["wall_s"] / floor_many["seconds"], 2),
        },
    }
    out = args.out or RESULTS.with_name(f"month_scaling{'' if args.granularity == 'city' else '_zone'}.json")
    write_results(out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
