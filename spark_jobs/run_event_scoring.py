"""spark-submit entry point of per-event scoring: loads the per-event model from the registry, starts the scoring
query (anomaly_detection.event_stream), writes its progress to --status-file, and exits non-zero when the query
fails so that a supervisor (a local service, restartPolicy Always on Kubernetes) restarts it from its checkpoint.

Kafka login: the streaming role's connection JSON in AIRFLOW_CONN_TAP_KAFKA_STREAMING.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, fields
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from anomaly_detection.event_stream import PROMOTED, EventStreamArgs, ScoringMode  # noqa: E402


def parse_args(argv: list[str]) -> tuple[EventStreamArgs, str | None]:
    defaults = {f.name: f.default for f in fields(EventStreamArgs)}
    parser = argparse.ArgumentParser(prog="run_event_scoring.py", description=__doc__)
    parser.add_argument("--feature-set", required=True, help="the events' feature set, e.g. kddcup99")
    parser.add_argument("--models-uri", required=True)
    parser.add_argument("--checkpoint-uri", required=True)
    parser.add_argument("--mode", default=defaults["mode"].value, choices=[m.value for m in ScoringMode])
    parser.add_argument("--model-version", default=PROMOTED, help="'promoted' (the pointer) or a version")
    parser.add_argument("--events-topic", default=defaults["events_topic"])
    parser.add_argument("--alerts-topic", default=defaults["alerts_topic"])
    parser.add_argument("--dead-letters-topic", default=defaults["dead_letters_topic"])
    parser.add_argument("--starting-offsets", default=defaults["starting_offsets"], choices=["earliest", "latest"])
    parser.add_argument("--interval", default=defaults["interval"], help="batch length / epoch / trigger interval")
    parser.add_argument("--status-file")
    ns = parser.parse_args(argv)
    values = {k: v for k, v in vars(ns).items() if k != "status_file"}
    values["mode"] = ScoringMode(ns.mode)
    return EventStreamArgs(**values), ns.status_file


def _write_status(status_file: str, document: dict[str, Any]) -> None:
    partial = f"{status_file}.part"
    with open(partial, "w") as fh:
        json.dump(document, fh, default=str)
    os.replace(partial, status_file)


def run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("anomaly_detection.event_stream")
    args, status_file = parse_args(argv)
    from pyspark.sql import SparkSession

    from anomaly_detection.event_models import GRANULARITY, EventModel
    from anomaly_detection.event_stream import start_query
    from anomaly_detection.registry import ModelRegistry
    from taxi_anomaly.streaming.settings import KafkaSettings

    kafka = KafkaSettings.for_role("streaming")
    spark = SparkSession.builder.appName(f"event-scoring-{args.feature_set}").getOrCreate()
    registry = ModelRegistry(spark, args.models_uri)
    if args.model_version == PROMOTED:
        version = registry.promoted_version(args.feature_set, GRANULARITY)
    else:
        version = registry.resolve(args.feature_set, GRANULARITY, args.model_version)
    model, _meta = registry.load(args.feature_set, GRANULARITY, version, kind=EventModel)
    query = start_query(spark, args, kafka.spark_options(), model, version)
    log.info("event scoring: %s, model %s %s, %s mode", args.feature_set, model.family.value, version, args.mode.value)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        if not query.isActive:
            log.error("event scoring query stopped: %s", query.exception())
            return 1
        if status_file:
            progress = query.lastProgress
            _write_status(
                status_file,
                {
                    "updated_at": time.time(),
                    "args": {**asdict(args), "mode": args.mode.value},
                    "model_version": version,
                    # Continuous mode reports no progress, only its status.
                    "status": query.status,
                    "queries": {"event-scoring": json.loads(progress.json) if progress else None},
                },
            )
        time.sleep(2)
    query.stop()
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
