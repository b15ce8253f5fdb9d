"""spark-submit entry point of per-event model training: fit on normal rows, evaluate on the held-out rows, register.

The KDD Cup 99 file is read with pandas on the driver (a local path, or any Hadoop URI such as s3a:// read through
the session's filesystem): the 10% file is 494,021 rows, about 250 MB as a frame, plus the gzip bytes (2.1 MB)
when read from a URI. The model is fitted on `--train-share` of the normal rows only (attacks are 80 % of the file:
a model fitted on all rows would learn smurf and neptune as normal); it is evaluated with sklearn on the driver on
the other normal rows and every attack, and the evaluation goes into the version's metadata.json. With --promote
the registry's promotion pointer then names the new version (no comparison with the promoted one: the operator's
decision).

    spark-submit spark_jobs/run_event_training.py --feature-set kddcup99 --family isolation_forest \\
        --source s3a://tap-raw/kddcup99/kddcup.data_10_percent.gz --models-uri s3a://tap-models/registry --seed 0
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from anomaly_detection.event_models import GRANULARITY, EventFamily  # noqa: E402
from taxi_anomaly.kdd import FEATURE_SET  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("anomaly_detection.event_training")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_event_training.py", description=__doc__.splitlines()[0])
    parser.add_argument("--feature-set", required=True, choices=[FEATURE_SET])
    parser.add_argument("--family", required=True, choices=[f.value for f in EventFamily])
    parser.add_argument("--source", required=True, help="the KDD Cup 99 file: a local path or a Hadoop URI")
    parser.add_argument("--models-uri", required=True, help="the registry root, e.g. s3a://tap-models/registry")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--train-share", type=float, default=0.5, help="share of the normal rows to fit on")
    parser.add_argument("--params", type=json.loads, default={}, help="estimator parameters as JSON")
    parser.add_argument("--promote", action="store_true", help="point the promotion pointer at the new version")
    args = parser.parse_args(argv)
    if not 0.0 < args.train_share < 1.0:
        parser.error(f"--train-share must be between 0 and 1 (exclusive), got {args.train_share}")
    return args


def read_source(spark: SparkSession, source: str) -> Any:
    """The records of the file at `source` (kdd.read_kdd), through the session's Hadoop filesystem for a URI."""
    from anomaly_detection import hadoop_fs
    from taxi_anomaly.kdd import read_kdd

    if "://" not in source or source.startswith("file://"):
        return read_kdd(source.removeprefix("file://"))
    try:
        data = hadoop_fs.read_bytes(spark, source)
    except hadoop_fs.MissingFile:
        raise FileNotFoundError(f"--source {source} does not exist") from None
    return read_kdd(io.BytesIO(data), compression="gzip" if source.endswith(".gz") else None)


def main(spark: SparkSession, args: argparse.Namespace) -> dict[str, Any]:
    """Fit, evaluate, save (and promote); returns the version, its evaluation and the pointer if written."""
    from anomaly_detection.event_models import evaluate, fit_event_model
    from anomaly_detection.registry import ModelRegistry
    from taxi_anomaly.kdd import CATEGORY, LABEL, normal_training_split

    records = read_source(spark, args.source)
    training, evaluation = normal_training_split(records, seed=args.seed, train_share=args.train_share)
    started = time.perf_counter()
    model = fit_event_model(training, EventFamily(args.family), seed=args.seed, params=args.params)
    fit_seconds = time.perf_counter() - started
    scores = model.score_numpy(model.inputs_numpy(evaluation))
    result = evaluate(evaluation[LABEL], evaluation[CATEGORY], scores, model.threshold)
    model.training["evaluation"] = {"rows": "held-out normal rows and every attack", **result}
    model.training["fit_seconds"] = round(fit_seconds, 2)
    source = {"source": args.source, "train_share": args.train_share, "source_rows": len(records)}
    registry = ModelRegistry(spark, args.models_uri)
    version = registry.save(model, args.feature_set, GRANULARITY, {"data": source})
    log.info("saved %s/%s %s: F1 %.3f on held-out rows", args.feature_set, GRANULARITY, version, result["f1"])
    summary: dict[str, Any] = {"version": version, "evaluation": result}
    if args.promote:
        reason = f"run_event_training --promote ({args.family}, seed {args.seed})"
        summary["pointer"] = registry.promote(args.feature_set, GRANULARITY, version, reason, evaluation=result)
    return summary


def run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"event-training-{args.feature_set}-{args.family}").getOrCreate()
    try:
        summary = main(spark, args)
        print(json.dumps({"status": "ok", **summary}, default=str), flush=True)
        return 0
    except Exception:
        logging.getLogger("anomaly_detection").exception("event training failed")
        return 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
