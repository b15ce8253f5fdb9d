"""spark-submit entry point of the streaming job: parses arguments, starts its queries, reports their progress.

Kafka login: the streaming role's connection JSON in AIRFLOW_CONN_TAP_KAFKA_STREAMING (the same variable the
Airflow workers get; a Secret on Kubernetes). Catalog and S3 settings come from the Spark configuration.
Progress of the queries is written every few seconds to --status-file (JSON) if given. Exits non-zero when
a query fails, so that a supervisor (the local service, or restartPolicy Always) restarts it from its checkpoint.
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

from anomaly_detection.streaming import PROMOTED, StreamArgs  # noqa: E402
from anomaly_detection.windows import GRANULARITIES  # noqa: E402


def parse_args(argv: list[str]) -> tuple[StreamArgs, str | None]:
    defaults = {f.name: f.default for f in fields(StreamArgs)}
    parser = argparse.ArgumentParser(prog="run_stream_scoring.py", description=__doc__)
    parser.add_argument("--trip-type", required=True, choices=["yellow", "green", "fhv", "fhvhv"])
    parser.add_argument("--granularity", default="city", choices=GRANULARITIES)
    parser.add_argument("--models-uri", required=True)
    parser.add_argument("--checkpoint-uri", required=True, help="one directory per query is kept below it")
    parser.add_argument("--namespace", default=defaults["namespace"])
    parser.add_argument("--zones-uri", help="the zone lookup CSV (needed for --granularity borough)")
    parser.add_argument("--trips-topic", default=defaults["trips_topic"])
    parser.add_argument("--alerts-topic", default=defaults["alerts_topic"])
    parser.add_argument("--dead-letters-topic", default=defaults["dead_letters_topic"])
    parser.add_argument("--scores-topic", default=defaults["scores_topic"], help="every scored window (to the sink)")
    parser.add_argument("--watermark", default=defaults["watermark"], help="lateness allowed, e.g. '10 minutes'")
    parser.add_argument("--trigger", default=defaults["trigger"], help="windows query micro-batch interval")
    parser.add_argument(
        "--tables-trigger",
        default=defaults["tables_trigger"],
        help="interval of the queries writing tables (events, sink)",
    )
    parser.add_argument("--model-version", default=PROMOTED, help="'promoted' (follow the pointer) or a version")
    parser.add_argument("--starting-offsets", default=defaults["starting_offsets"], choices=["earliest", "latest"])
    parser.add_argument("--max-offsets-per-trigger", type=int)
    parser.add_argument("--status-file")
    ns = parser.parse_args(argv)
    if ns.granularity == "borough" and not ns.zones_uri:
        parser.error("--zones-uri is required with --granularity borough")
    status = ns.status_file
    values = {k: v for k, v in vars(ns).items() if k != "status_file"}
    return StreamArgs(**values), status


PROGRESS_COMMIT_S = 10.0
# A failed query (the broker restarting, a write timing out) is restarted in the same session from its
# checkpoint, after a pause that doubles each time; more failures than this in RESTART_WINDOW_S end the job
# (exit 1), and its supervisor (the local service, restartPolicy Always on Kubernetes) starts it again.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 600.0


def _progress(query: Any) -> dict[str, Any] | None:
    """The query's last progress as plain JSON data (PySpark's progress object renders nested values as text)."""
    progress = query.lastProgress
    if not progress:
        return None
    document: dict[str, Any] = json.loads(progress.json) if hasattr(progress, "json") else dict(progress)
    return document


def run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("anomaly_detection.streaming")
    args, status_file = parse_args(argv)
    from pyspark.sql import SparkSession

    from anomaly_detection.streaming import StreamingJob
    from taxi_anomaly.streaming.progress import commit_progress, processed_offsets, progress_group
    from taxi_anomaly.streaming.settings import KafkaSettings

    kafka = KafkaSettings.for_role("streaming")
    spark = SparkSession.builder.appName(f"stream-scoring-{args.trip_type}-{args.granularity}").getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    job = StreamingJob(spark, args, kafka.spark_options())
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        queries = job.start()
        log.info("streaming queries started: %s", ", ".join(q.name for q in queries.values()))
        next_commit = 0.0
        restarts: list[float] = []
        while not stopping:
            failed = [q for q in queries.values() if not q.isActive]
            if failed:
                for q in failed:
                    log.error("query %s stopped: %s", q.name, q.exception())
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(restarts) > MAX_RESTARTS:
                    log.error("%d query failures within %.0f s: giving up", len(restarts), RESTART_WINDOW_S)
                    return 1
                for q in queries.values():
                    q.stop()
                time.sleep(5 * 2 ** (len(restarts) - 1))
                queries = job.start()
                log.info("queries restarted from their checkpoints (restart %d)", len(restarts))
                continue
            if status_file:
                document = {
                    "updated_at": time.time(),
                    "args": asdict(args),
                    "counters": asdict(job.counters),
                    "queries": {name: _progress(q) for name, q in queries.items()},
                }
                partial = f"{status_file}.part"
                with open(partial, "w") as fh:
                    json.dump(document, fh, default=str)
                os.replace(partial, status_file)
            if time.monotonic() >= next_commit:
                for name, query in queries.items():
                    offsets = processed_offsets(_progress(query), job.source_topics()[name])
                    if offsets is not None:
                        group = progress_group(args.trip_type, args.granularity, name)
                        try:
                            commit_progress(kafka, group, job.source_topics()[name], offsets, {"query": query.name})
                        except Exception as exc:  # the broker may be restarting: try again next round
                            log.warning("could not commit the progress of %s: %s", name, exc)
                next_commit = time.monotonic() + PROGRESS_COMMIT_S
            time.sleep(2)
        for q in queries.values():
            q.stop()
        return 0
    except Exception:
        log.exception("streaming job failed")
        return 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
