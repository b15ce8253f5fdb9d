"""Per-trip detection on generated months: for each trip type, both per-event families fitted on one generated month
(every row, labels unused) and evaluated on another against its trip labels (precision, recall, F1 of the faults a
per-trip feature can see, recall per fault kind), and scored in Spark natively (compiled trees) in rows/s.

    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_trip_event_detection [--trips 500000]

Scoring: `score_events(...)` (score, flag, top features) aggregated over the cached evaluation records, whole-stage
codegen off (compiled_trees); the first query and the best of `--repeat` more, each a new DataFrame.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from bench.bench_event_detection import scoring, timed

TRAIN_MONTH, EVALUATION_MONTH = "2024-03", "2024-04"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trip-types", nargs="+", default=["fhvhv", "yellow"])
    parser.add_argument("--trips", type=int, default=500_000, help="rows of each generated month")
    parser.add_argument("--seed", type=int, default=0, help="model seed; the months use seeds 1 (fit) and 2 (evaluate)")
    parser.add_argument("--threshold-quantile", type=float, default=0.99)
    parser.add_argument("--train-on", choices=["all", "unlabelled"], default="all")
    parser.add_argument("--repeat", type=int, default=1, help="full scans after the first (the best is kept)")
    parser.add_argument("--no-spark-scoring", action="store_true", help="measure quality only")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--out", default="bench/results/trip_event_detection.json")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    from local_platform.config import load_config
    from local_platform.spark import spark_env

    os.environ.update(spark_env(load_config()))
    from pyspark.sql import SparkSession

    from anomaly_detection.event_features import TRIPS

    spark = (
        SparkSession.builder.appName("bench-trip-event-detection")
        .master("local[2]")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "cpu_count": os.cpu_count(),
        "load_1min_at_start": round(os.getloadavg()[0], 1),
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "spark": {"version": spark.version, "master": "local[2]", "driver_memory": args.driver_memory},
        "setup": {
            "months": {"fit": f"{TRAIN_MONTH}, seed 1", "evaluate": f"{EVALUATION_MONTH}, seed 2"},
            "trips_per_month": args.trips,
            "dirt": "TRIP_FAULTS (default dirt, the four per-trip faults at 5e-4 each); default anomaly episodes",
            "train_on": args.train_on,
            "threshold": f"training scores' q{args.threshold_quantile}",
            "features": list(TRIPS.inputs),
        },
        "trip_types": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-trip-events-") as temporary:
        for trip_type in args.trip_types:
            measure_trip_type(spark, args, Path(temporary), trip_type, results, out)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M")
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    spark.stop()


def measure_trip_type(
    spark: Any, args: argparse.Namespace, folder: Path, trip_type: str, results: dict[str, Any], out: Path
) -> None:
    """Generate the two months of one trip type (deleted with the folder), fit both families, evaluate, score."""
    from sklearn.metrics import roc_auc_score

    from anomaly_detection.event_features import TRIPS, read_trip_records
    from anomaly_detection.event_models import EventFamily, fit_event_model
    from taxi_anomaly.synthetic import (
        FARE_COLUMN,
        TRIP_FAULTS,
        faulty_rows,
        generate_month,
        load_trip_labels,
        score_trip_faults,
    )

    print(f"=== {trip_type}", file=sys.stderr, flush=True)
    entry: dict[str, Any] = {"families": {}}
    months = {}
    for role, month, seed in (("fit", TRAIN_MONTH, 1), ("evaluate", EVALUATION_MONTH, 2)):
        generate = partial(
            generate_month, trip_type, month, folder / role, trips=args.trips, seed=seed, dirt=TRIP_FAULTS
        )
        entry[f"generate_{role}"], result = timed(generate)
        read = partial(read_trip_records, spark, str(result.data_path), trip_type)
        entry[f"read_{role}"], records = timed(lambda read=read: read().toPandas())
        raw_fares = pq.read_table(result.data_path, columns=[FARE_COLUMN[trip_type]]).column(0).to_numpy()
        np.testing.assert_array_equal(records["fare_amount"].to_numpy(), raw_fares)  # file order kept
        months[role] = (records, load_trip_labels(result.trip_labels_path))
    training, training_labels = months["fit"]
    if args.train_on == "unlabelled":
        training = training[~faulty_rows(training_labels, len(training), kinds=training_labels.fault.unique())]
    evaluation, labels = months["evaluate"]
    entry["rows"] = {"fit": len(training), "evaluate": len(evaluation)}
    entry["faults_evaluated"] = labels.fault.value_counts().to_dict()
    cached = None
    if not args.no_spark_scoring:
        cached = spark.createDataFrame(evaluation).repartition(2).cache()
        entry["cache_rows"], _ = timed(cached.count)
    for family in EventFamily:
        print(f"--- {trip_type} {family.value}", file=sys.stderr, flush=True)
        result_entry: dict[str, Any] = {}
        fit = partial(
            fit_event_model,
            training,
            family,
            seed=args.seed,
            threshold_quantile=args.threshold_quantile,
            feature_set=TRIPS,
        )
        result_entry["fit"], model = timed(fit)
        result_entry["training"] = model.training
        scores_started = time.perf_counter()
        scores = model.score_numpy(model.inputs_numpy(evaluation))
        result_entry["driver_scoring_rows_per_s"] = round(len(evaluation) / (time.perf_counter() - scores_started))
        flagged = scores > model.threshold
        quality = score_trip_faults(labels, flagged)
        quality["roc_auc"] = float(roc_auc_score(faulty_rows(labels, len(evaluation)), scores))
        result_entry["evaluation"] = quality
        summary = {k: round(quality[k], 3) for k in ("precision", "recall", "f1", "roc_auc")}
        print(json.dumps(summary), json.dumps(quality["recall_by_fault"]), file=sys.stderr, flush=True)
        if cached is not None:
            result_entry["native"] = scoring(cached, model, True, len(evaluation), args.repeat)
            assert result_entry["native"]["flagged"] == int(flagged.sum()), "native and sklearn flags differ"
        entry["families"][family.value] = result_entry
        results["trip_types"][trip_type] = entry
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if cached is not None:
        cached.unpersist()


if __name__ == "__main__":
    main()
