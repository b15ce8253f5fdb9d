"""spark-submit entry point of the anomaly-detection job: builds the session, runs main, exits non-zero on error.

Catalog, S3 and Hive settings come from the Spark configuration (spark-defaults.conf locally, the
SparkApplication's sparkConf on Kubernetes), never from this code.
"""

from __future__ import annotations

import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from anomaly_detection.job import main  # noqa: E402
from taxi_anomaly.contract import AnomalyJob  # noqa: E402
from taxi_anomaly.detectors import SpecError, resolve_spec  # noqa: E402


def run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = AnomalyJob.from_argv(argv)
    try:  # a wrong detector or detector parameter is an argument error too: exit 2 before Spark starts
        resolve_spec(args.detector, args.granularity, args.detector_params)
    except SpecError as err:
        print(f"run_anomaly_detection: error: {err}", file=sys.stderr)
        return 2
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"anomaly-detection-{args.trip_type}-{args.granularity}").getOrCreate()
    try:
        result = main(spark, args)
        print(json.dumps({"status": "ok", **result.__dict__}, default=str), flush=True)
        return 0
    except Exception:
        # A swallowed error would make the SparkApplication end COMPLETED: log it and exit non-zero.
        logging.getLogger("anomaly_detection").exception("job failed")
        return 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
