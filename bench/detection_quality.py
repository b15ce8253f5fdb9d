"""Detection quality of every detector family on generated fhvhv months, side by side with the seasonal baseline.

Per seed: three history months with the generator's default incidents (real history has incidents too), a
target month with city-wide episodes (one of each type at a random time, plus a spike and a drop at night) and a
target month with borough-wide episodes (one of each type, each in one borough). Settings, each judged per (key,
30-minute bucket) against the labels (anomaly_detection.evaluation.judge):

    city, 3 months of history -> the city target        city, 1 month of history -> the city target
    borough, 3 months -> the borough target             zone, 3 months -> the borough target

Every family runs with its spec from include/models (or `--spec-dir`, e.g. a tuned candidate), through the job's
own functions (windows, seasonal profile, features, fit, score). The baseline is the seasonal robust z-score on
the trip count: the same key, weekday and half-hour slot of the history months, median and 1.4826 x MAD, a fixed
|z| > 8 (the threshold of the issue that set the targets).

    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.detection_quality --trips 12000000 --seeds 11,12,13
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from anomaly_detection.evaluation import LabelledQuality, judge, seasonal_zscore_baseline
from anomaly_detection.features import MODEL_FEATURES, build_features, seasonal_profile
from anomaly_detection.job import window_table
from anomaly_detection.model import fit_detector, score_windows
from taxi_anomaly.contract import AnomalyJob
from taxi_anomaly.detectors import resolve_spec, spec_names
from taxi_anomaly.detectors.spec import load_spec

HISTORY = ("2024-01", "2024-02", "2024-03")
CITY_TARGET, BOROUGH_TARGET = "2024-04", "2024-05"
ZONES_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "tlc" / "taxi_zone_lookup.csv"
BASELINE_Z = 8.0
# One of each type at a random time, and a spike and a drop at night (where a fixed share of flags falls short).
CITY_EPISODES: tuple[Any, ...] = (
    "drop",
    "spike",
    "fare_surge",
    "distance_shift",
    "outage",
    {"type": "spike", "start": f"{CITY_TARGET}-10T02:00", "hours": 2},
    {"type": "drop", "start": f"{CITY_TARGET}-23T01:00", "hours": 3},
)
# One episode of each type, each in one borough (Staten Island and EWR are too small to judge at 30 minutes).
BOROUGH_EPISODES = (
    {"type": "drop", "scope": "Brooklyn"},
    {"type": "spike", "scope": "Queens"},
    {"type": "fare_surge", "scope": "Manhattan"},
    {"type": "distance_shift", "scope": "Bronx"},
    {"type": "outage", "scope": "Brooklyn"},
)


@dataclass(frozen=True)
class Setting:
    name: str
    granularity: str
    history: tuple[str, ...]
    target: str


SETTINGS = (
    Setting("city, 3 months", "city", HISTORY, CITY_TARGET),
    Setting("city, 1 month", "city", HISTORY[-1:], CITY_TARGET),
    Setting("borough, 3 months", "borough", HISTORY, BOROUGH_TARGET),
    Setting("zone, 3 months", "zone", HISTORY, BOROUGH_TARGET),
)


@dataclass
class SeedData:
    folder: Path
    episodes: dict[str, list[Any]] = field(default_factory=dict)  # month -> labelled episodes


def generate(folder: Path, trips: int, seed: int) -> SeedData:
    from taxi_anomaly.synthetic import generate_month

    data = SeedData(folder)
    for i, month in enumerate(HISTORY):
        generate_month("fhvhv", month, folder, trips=trips, seed=seed * 100 + i, anomalies="default")
    for month, requests, offset in ((CITY_TARGET, CITY_EPISODES, 98), (BOROUGH_TARGET, BOROUGH_EPISODES, 99)):
        result = generate_month("fhvhv", month, folder, trips=trips, seed=seed * 100 + offset, anomalies=list(requests))
        data.episodes[month] = list(result.episodes)
    return data


def job_for(folder: Path, granularity: str, zones: Path) -> AnomalyJob:
    return AnomalyJob(
        trip_type="fhvhv",
        raw_uri=f"file://{folder}",
        models_uri=f"file://{folder}/models",
        run_id="bench",
        granularity=granularity,
        mode="train",
        train_months=(*HISTORY, CITY_TARGET, BOROUGH_TARGET),
        input_layout="flat",
        zones_uri=f"file://{zones}" if granularity != "city" else None,
    )


def run_setting(
    spark: SparkSession,
    windows: DataFrame,
    setting: Setting,
    episodes: list[Any],
    families: list[str],
    spec_dir: Path | None,
) -> dict[str, Any]:
    """Every family and the baseline on one setting; windows: the window table of every month (cached)."""
    history = windows.where(F.col("month").isin(*setting.history))
    target = windows.where(F.col("month") == setting.target)
    profile = seasonal_profile(history).cache()
    training = build_features(history, profile).select(*MODEL_FEATURES).cache()
    scoring = build_features(target, profile).select("key", "bucket_start", *MODEL_FEATURES).cache()
    keys = [r[0] for r in scoring.select("key").distinct().collect()]
    report: dict[str, Any] = {}
    try:
        for name in families:
            started = time.monotonic()
            spec = (
                load_spec(name, setting.granularity, spec_dir=spec_dir)
                if spec_dir
                else resolve_spec(name, setting.granularity)
            )
            detector = fit_detector(training, spec, MODEL_FEATURES)
            flagged = score_windows(scoring, detector).where("is_anomaly").select("key", "bucket_start").collect()
            quality = judge([(r[0], r[1]) for r in flagged], episodes, setting.granularity, keys)
            report[name] = {
                **quality.as_dict(),
                "threshold": spec.threshold.as_dict(),
                "seconds": round(time.monotonic() - started, 1),
            }
        counts = ["key", "bucket_start", "trips"]
        baseline = seasonal_zscore_baseline(
            history.select(*counts).toPandas(), target.select(*counts).toPandas(), BASELINE_Z
        )
        report["baseline"] = judge(baseline, episodes, setting.granularity, keys).as_dict()
    finally:
        scoring.unpersist()
        training.unpersist()
        profile.unpersist()
    return report


def run_seed(
    spark: SparkSession,
    trips: int,
    seed: int,
    families: list[str],
    settings: tuple[Setting, ...] = SETTINGS,
    spec_dir: Path | None = None,
    zones: Path = ZONES_CSV,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    results: dict[str, Any] = {"seed": seed, "settings": {}}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        data = generate(Path(tmp), trips, seed)
        results["episodes"] = {m: [e.to_json() for e in eps] for m, eps in data.episodes.items()}
        for granularity in sorted({s.granularity for s in settings}):
            job = job_for(data.folder, granularity, zones)
            windows = window_table(spark, job, job.train_months).cache()
            try:
                for setting in (s for s in settings if s.granularity == granularity):
                    episodes = data.episodes[setting.target]
                    results["settings"][setting.name] = run_setting(
                        spark, windows, setting, episodes, families, spec_dir
                    )
            finally:
                windows.unpersist()
    return results


def table(runs: list[dict[str, Any]], families: list[str]) -> str:
    """Markdown: per setting and detector, mean over seeds of bucket precision / recall / F1, episodes found."""
    lines = [
        "| setting | detector | bucket precision | bucket recall | bucket F1 (min) | episodes found | recall by type |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for setting in runs[0]["settings"]:
        for name in [*families, "baseline"]:
            qs = [run["settings"][setting][name] for run in runs]
            mean = {k: sum(q[k] for q in qs) / len(qs) for k in ("bucket_precision", "bucket_recall", "bucket_f1")}
            found = f"{sum(q['episodes_found'] for q in qs)} / {sum(q['episodes'] for q in qs)}"
            types: dict[str, list[float]] = {}
            for q in qs:
                for kind, value in q["recall_by_type"].items():
                    types.setdefault(kind, []).append(value)
            by_type = ", ".join(f"{k} {sum(v) / len(v):.2f}" for k, v in sorted(types.items()))
            lines.append(
                f"| {setting} | {name} | {mean['bucket_precision']:.3f} | {mean['bucket_recall']:.3f} | "
                f"{mean['bucket_f1']:.3f} ({min(q['bucket_f1'] for q in qs):.3f}) | {found} | {by_type} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trips", type=int, default=12_000_000, help="trips per generated month")
    parser.add_argument("--seeds", default="11,12,13", help="seeds (not those the tuning used)")
    parser.add_argument("--families", default=",".join(spec_names()), help="spec names to run")
    parser.add_argument("--spec-dir", type=Path, default=None, help="read the specs from here (e.g. a candidate)")
    names = "; ".join(s.name for s in SETTINGS)
    parser.add_argument("--settings", default=names, help=f"';'-separated, of: {names}")
    parser.add_argument("--out", default="bench/results/detection_quality.json")
    args = parser.parse_args()

    from local_platform.config import load_config
    from local_platform.spark import spark_env

    os.environ.update(spark_env(load_config()))
    spark = SparkSession.builder.appName("bench-detection-quality").getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    families = [f for f in args.families.split(",") if f]
    chosen = tuple(s for s in SETTINGS if s.name in {n.strip() for n in args.settings.split(";")})
    started = time.monotonic()
    runs = [run_seed(spark, args.trips, int(s), families, chosen, args.spec_dir) for s in args.seeds.split(",")]
    spark.stop()
    report = {
        "trips_per_month": args.trips,
        "seeds": args.seeds,
        "families": families,
        "spec_dir": str(args.spec_dir) if args.spec_dir else "include/models",
        "baseline": f"seasonal robust z-score on trips, |z| > {BASELINE_Z}",
        "seconds": round(time.monotonic() - started),
        "load_avg": os.getloadavg(),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(table(runs, families))


if __name__ == "__main__":
    main()


__all__ = ["LabelledQuality", "run_seed", "run_setting", "table"]
