"""Detection quality on generated months: IsolationForest pipeline vs the seasonal robust z-score baseline.

Generates clean history months and one month with labelled episodes, runs the job's own train and score
functions (city granularity, 30-minute windows), and scores both detectors against the labels.

    PYTHONPATH=plugins:spark_jobs .venv/bin/python -m bench.detection_quality --trips 3000000 --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from anomaly_detection.evaluation import Episode, Quality, evaluate, seasonal_zscore_baseline
from anomaly_detection.job import score, train_bundle, window_table
from taxi_anomaly.contract import AnomalyJob

HISTORY = ("2024-01", "2024-02", "2024-03")
TARGET = "2024-04"


@dataclass
class QualityRun:
    seed: int
    forest: Quality
    baseline: Quality
    episodes: list[Episode]

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "isolation_forest": self.forest.as_dict(),
            "baseline": self.baseline.as_dict(),
            "episodes": [
                {"id": e.episode_id, "type": e.kind, "start": e.start.isoformat(), "end": e.end.isoformat()}
                for e in self.episodes
            ],
        }


def generate(out_dir: Path, trip_type: str, trips: int, seed: int, clean_history: bool = False) -> list[Episode]:
    """History months and one target month, each with the default episode mix (real history has incidents too;
    clean_history=True generates spotless history instead). Returns the target month's city-wide episodes."""
    from taxi_anomaly.synthetic import generate_month

    for i, month in enumerate(HISTORY):
        anomalies = "none" if clean_history else "default"
        generate_month(trip_type, month, out_dir, trips=trips, seed=seed * 100 + i, anomalies=anomalies)
    result = generate_month(trip_type, TARGET, out_dir, trips=trips, seed=seed * 100 + 99, anomalies="default")
    return [Episode(e.episode_id, e.type, e.start, e.end) for e in result.episodes if e.scope == "city"]


def quality_job_args(data: Path, trip_type: str, granularity: str = "city", **options) -> AnomalyJob:
    """Train on HISTORY and score TARGET, all read from the flat folder `data` (models kept there too)."""
    options.setdefault("run_id", "quality")
    return AnomalyJob(
        trip_type=trip_type,
        granularity=granularity,
        mode="train-and-score",
        train_months=HISTORY,
        score_months=(TARGET,),
        raw_uri=f"file://{data}",
        models_uri=f"file://{data}/models",
        namespace="unused",
        input_layout="flat",
        **options,
    )


def run_quality(
    spark, trip_type: str = "fhvhv", trips: int = 1_500_000, seed: int = 1, work_dir: Path | None = None
) -> QualityRun:
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        data = Path(tmp)
        episodes = generate(data, trip_type, trips, seed)
        args = quality_job_args(data, trip_type, run_id=f"quality-{seed}")
        bundle, _ = train_bundle(spark, args)
        scored = score(spark, args, bundle, "evaluation").select("bucket_start", "trips", "is_anomaly").toPandas()
        history = window_table(spark, args, HISTORY).select("bucket_start", "trips").toPandas()
    flagged_forest = set(scored.loc[scored["is_anomaly"], "bucket_start"].astype(object))
    flagged_baseline = seasonal_zscore_baseline(history, scored[["bucket_start", "trips"]])
    return QualityRun(seed, evaluate(flagged_forest, episodes), evaluate(flagged_baseline, episodes), episodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trip-type", default="fhvhv")
    parser.add_argument("--trips", type=int, default=3_000_000, help="trips per generated month")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out", default="bench/results/detection_quality.json")
    args = parser.parse_args()

    from local_platform.config import load_config
    from local_platform.spark import spark_env

    os.environ.update(spark_env(load_config()))
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("bench-detection-quality").getOrCreate()
    runs = [run_quality(spark, args.trip_type, args.trips, int(s)) for s in args.seeds.split(",")]
    spark.stop()
    report = {
        "trip_type": args.trip_type,
        "trips_per_month": args.trips,
        "history": HISTORY,
        "target": TARGET,
        "runs": [r.as_dict() for r in runs],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for r in runs:
        f, b = r.forest, r.baseline
        print(
            f"seed {r.seed}: IF precision {f.bucket_precision:.3f} recall {f.bucket_recall:.3f} "
            f"F1 {f.bucket_f1:.3f} episodes {f.episode_recall:.2f} {f.recall_by_kind} | baseline "
            f"precision {b.bucket_precision:.3f} recall {b.bucket_recall:.3f} F1 {b.bucket_f1:.3f} "
            f"episodes {b.episode_recall:.2f} {b.recall_by_kind}"
        )


if __name__ == "__main__":
    main()
