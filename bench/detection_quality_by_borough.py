"""Detection quality per granularity on episodes confined to one borough, judged per (key, bucket).

History months carry the default city-wide incidents; the target month carries one episode of each type, each
confined to one borough. The job's own train and score functions run at each granularity asked for (borough,
city, zone), with the job's default contamination for it unless one is given. A flagged (key, bucket) is a true
positive when an episode covering that key covers the bucket (borough: the episode's borough; zone: the zones of
that borough; city: the city); an episode is found when any of its (key, bucket) pairs is flagged.

    PYTHONPATH=plugins:spark_jobs .venv/bin/python -m bench.detection_quality_by_borough --trips 1500000 --seeds 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from anomaly_detection.job import score, train_bundle
from anomaly_detection.windows import CITY_KEY
from bench.detection_quality import HISTORY, TARGET, quality_job_args

ZONES_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "tlc" / "taxi_zone_lookup.csv"
# One episode of each type, each in one borough (Staten Island and EWR are too small to judge at 30 minutes).
BOROUGH_EPISODES = (
    {"type": "drop", "scope": "Brooklyn"},
    {"type": "spike", "scope": "Queens"},
    {"type": "fare_surge", "scope": "Manhattan"},
    {"type": "distance_shift", "scope": "Bronx"},
    {"type": "outage", "scope": "Brooklyn"},
)


def _judge(flagged: set, truth: dict[str, set]) -> dict:
    """flagged: {(key, bucket)}; truth: episode id -> {(key, bucket)} it covers."""
    covered = set().union(*truth.values())
    hits = flagged & covered
    precision = len(hits) / len(flagged) if flagged else 0.0
    recall = len(hits) / len(covered) if covered else 0.0
    found = {e: bool(pairs & flagged) for e, pairs in truth.items()}
    return {
        "pair_precision": round(precision, 3),
        "pair_recall": round(recall, 3),
        "pair_f1": round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0,
        "episodes_found": found,
        "episode_recall": round(sum(found.values()) / len(found), 3),
        "flagged": len(flagged),
    }


def _keys_of(episode, granularity: str) -> list[str]:
    if granularity == "zone":
        return [str(z) for z in episode.zone_ids]
    return [episode.scope] if granularity == "borough" else [CITY_KEY]


def run(
    spark, trips: int, seed: int, zones_csv: Path, granularities: list[str], contamination: float | None = None
) -> dict:
    from taxi_anomaly.synthetic import generate_month

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        for i, month in enumerate(HISTORY):
            generate_month("fhvhv", month, data, trips=trips, seed=seed * 100 + i, anomalies="default")
        target = generate_month(
            "fhvhv", TARGET, data, trips=trips, seed=seed * 100 + 99, anomalies=list(BOROUGH_EPISODES)
        )
        report = {"seed": seed, "episodes": [e.to_json() for e in target.episodes]}
        for granularity in granularities:
            args = quality_job_args(
                data,
                "fhvhv",
                granularity,
                run_id=f"borough-quality-{seed}",
                zones_uri=f"file://{zones_csv}",
                contamination=contamination,
            )
            bundle, _ = train_bundle(spark, args)
            rows = score(spark, args, bundle, "evaluation").where("is_anomaly").select("key", "bucket_start")
            flagged = {(r.key, r.bucket_start) for r in rows.collect()}
            truth = {
                e.episode_id: {(k, b) for k in _keys_of(e, granularity) for b in e.bucket_starts()}
                for e in target.episodes
            }
            report[granularity] = _judge(flagged, truth)
            report[granularity]["contamination"] = args.contamination
            report[granularity]["max_samples"] = bundle.model.params["max_samples"]
            report[granularity]["flagged_by_key"] = dict(Counter(k for k, _ in flagged).most_common(10))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trips", type=int, default=1_500_000, help="trips per generated month")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--zones", default=str(ZONES_CSV), help="taxi_zone_lookup.csv")
    parser.add_argument("--granularities", default="borough,city", help="of borough, city, zone")
    parser.add_argument("--contamination", type=float, default=None, help="default: the job's for each granularity")
    parser.add_argument("--out", default="bench/results/detection_quality_by_borough.json")
    args = parser.parse_args()

    from local_platform.config import load_config
    from local_platform.spark import spark_env

    os.environ.update(spark_env(load_config()))
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("bench-detection-quality-borough").getOrCreate()
    granularities = args.granularities.split(",")
    reports = [
        run(spark, args.trips, int(s), Path(args.zones), granularities, args.contamination)
        for s in args.seeds.split(",")
    ]
    spark.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    report = {"trips_per_month": args.trips, "contamination": args.contamination, "runs": reports}
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    for r in reports:
        for granularity in granularities:
            q = r[granularity]
            print(
                f"seed {r['seed']} {granularity}: precision {q['pair_precision']} recall {q['pair_recall']} "
                f"F1 {q['pair_f1']} episodes {q['episode_recall']} {q['episodes_found']} by key {q['flagged_by_key']}"
            )


if __name__ == "__main__":
    main()
