"""Benchmark of the real-time path on the local platform: sustained events/s, lag, window latency, memory.

A generated fhvhv month (--trips, default 1.5 M: ~1,000 trips per 30-minute window, so windows close every
second or so at the replay rates measured) is replayed into topics of the run's own, looping, at each rate of
--rates (events/s; `max` = unthrottled) for --seconds, with the streaming job (tests/streaming/scenario.py:
model trained by the batch job on three months and promoted) running as a real process. Per rate:
- produced / processed events per second, the largest lag seen (trips topic end offsets minus the offsets both
  queries have processed, sampled every 2 s) and the time to catch up once the replay stops;
- latency of every window closed during the phase: when it was published (the Kafka timestamp of its message
  on the window-scores topic, written together with the alerts) minus when the watermark passed its end (the
  production time of the first event whose pickup is at least the window end + the watermark delay; the
  replay records pickup and production time every 100 events); p50 / p95 / p99;
- peak resident memory of the streaming job's process tree.

    make up
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_streaming --rates 2000,10000,max

Two parts alone, on the file of an earlier run (--month-file) or a fresh 1.5 M-trip month:
    ... -m bench.bench_streaming --only producer   # replay -> broker, acks=all, by linger.ms
    ... -m bench.bench_streaming --only parse      # Spark batch over the events: parse_events and its parts
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from bisect import bisect_left
from datetime import datetime, timedelta
from pathlib import Path

import psutil

from taxi_anomaly.streaming.progress import processed_offsets

WATERMARK = timedelta(minutes=10)  # the job's default --watermark
WINDOW = timedelta(minutes=30)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "n": len(ordered)}


class Sampler:
    """Every 2 s: the lag of the slower query and the streaming job's resident memory."""

    def __init__(self, run) -> None:
        self.run, self.lags, self.peak_rss = run, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def processed(self) -> int | None:
        """Trips processed by the slower of the two queries reading the trips topic."""
        queries = self.run.progress().get("queries") or {}
        offsets = [processed_offsets(queries.get(q), self.run.topics["trips"].name) for q in ("events", "windows")]
        if None in offsets:
            return None
        return min(sum(o.values()) for o in offsets)

    def lag(self) -> int | None:
        done = self.processed()
        return None if done is None else sum(self.run.end_offsets().values()) - done

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                lag = self.lag()
                if lag is not None:
                    self.lags.append((time.time(), lag))
                root = psutil.Process(self.run.process.pid)
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                self.peak_rss = max(self.peak_rss, rss)
            except Exception:  # noqa: S110 - a sample missed while the job writes its status file
                pass
            self._stop.wait(2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def published_windows(run) -> list[tuple[datetime, float]]:
    """(window start, when it was published) of every scored window on the run's window-scores topic: the
    Kafka timestamp of the windows query's write, the same write that publishes the alerts."""
    return [
        (datetime.fromisoformat(value["bucket_start"]), timestamp_ms / 1000)
        for _key, value, timestamp_ms in run.topic_messages("window-scores")
    ]


def window_latencies(
    windows: list[tuple[datetime, float]], marks: list[tuple[str, float]], since: float, until: float
) -> list[float]:
    """Seconds from the watermark passing each window's end to the window being published, for the windows
    published between `since` and `until` (wall clock)."""
    pickups = [datetime.fromisoformat(p) for p, _ in marks]
    walls = [w for _, w in marks]
    latencies = []
    for bucket_start, published in windows:
        if not since <= published <= until:
            continue
        passing = bucket_start + WINDOW + WATERMARK
        i = bisect_left(pickups, passing)
        if i < len(pickups):
            latencies.append(published - walls[i])
    return latencies


def _month_file(args) -> Path:
    if args.month_file:
        return args.month_file
    from taxi_anomaly.synthetic import generate_month

    out = Path(tempfile.mkdtemp(prefix="bench-streaming-month-"))
    return generate_month("fhvhv", "2024-04", out, trips=args.trips, seed=43).data_path


def producer_only(platform, args) -> dict:
    """Replay 200 k events into a topic of its own at each linger.ms; acknowledged events/s."""
    import uuid

    from local_platform.connections import connection_definitions
    from local_platform.services.kafka import KAFKA_PRINCIPALS
    from taxi_anomaly.streaming import provision
    from taxi_anomaly.streaming.replay import producer_for, read_table, replay
    from taxi_anomaly.streaming.settings import KafkaSettings
    from taxi_anomaly.streaming.topics import Topic

    cfg, creds = platform.cfg, platform.creds
    admin = provision.admin_client(
        KafkaSettings(cfg.kafka_bootstrap, KAFKA_PRINCIPALS["admin"], creds.kafka_admin_password)
    )
    topic = f"tap.test-producer-{uuid.uuid4().hex[:6]}"
    provision.ensure_topics(admin, (Topic(topic, 2, 3600_000, 1 << 28),))
    provision.ensure_acls(admin, KAFKA_PRINCIPALS, {"replay": {topic: ("WRITE",)}})
    replay_role = KafkaSettings.from_connection_json(json.dumps(connection_definitions(cfg, creds)["tap_kafka_replay"]))
    table = read_table(str(_month_file(args))).slice(0, 200_000)
    results = {}

    class Dropping:
        def produce(self, *_args, **_kwargs) -> None:
            pass

        def poll(self, _timeout: float = 0) -> None:
            pass

        def flush(self, _timeout: float = 0) -> int:
            return 0

    try:
        started = time.perf_counter()
        replay(table, Dropping(), "fhvhv", "bench", topic)
        results["no_broker_events_per_s"] = round(table.num_rows / (time.perf_counter() - started))
        for linger in (5, 20, 100):
            started = time.perf_counter()
            stats = replay(table, producer_for(replay_role, **{"linger.ms": linger}), "fhvhv", "bench", topic)
            results[f"linger_{linger}ms_events_per_s"] = round(stats.produced / (time.perf_counter() - started))
    finally:
        for future in admin.delete_topics([topic]).values():
            future.result()
    return results


def parse_only(spark, args) -> dict:
    """Spark batch over 300 k events read from parquet: the stream's parsing and its parts, rows/s."""
    import orjson
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from anomaly_detection.streaming import EVENT_SCHEMA, event_time, parse_events, valid_trips
    from anomaly_detection.windows import aggregate_trips, trip_key
    from taxi_anomaly.streaming.replay import read_table, trip_events

    table = read_table(str(_month_file(args))).slice(0, 300_000)
    values = [orjson.dumps(event, default=str) for _id, _seq, event, _pickup in trip_events(table, "fhvhv", "bench")]
    path = Path(tempfile.mkdtemp(prefix="bench-streaming-events-")) / "events.parquet"
    pq.write_table(
        pa.table(
            {
                "value": pa.array(values, pa.binary()),
                "partition": pa.array([0] * len(values), pa.int32()),
                "offset": pa.array(range(len(values)), pa.int64()),
                "timestamp": pa.array([0] * len(values), pa.timestamp("us")),
            }
        ),
        path,
    )
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    raw = spark.read.parquet(str(path)).repartition(2).cache()
    raw.count()
    text = F.col("value").cast("string")
    parsed = parse_events(raw, "fhvhv")
    steps = {
        "from_json_struct": lambda: raw.select(F.from_json(text, EVENT_SCHEMA).alias("e"))
        .where("e.event_id is not null")
        .count(),
        "parse_events_pickup_only": lambda: parsed.select("pickup_at").where("pickup_at is not null").count(),
        "parse_events": lambda: parsed.where("error is null").count(),
        "parse_and_aggregate": lambda: aggregate_trips(
            trip_key(valid_trips(parsed).withColumn("event_time", event_time(parsed)), "city", None),
            ["key", F.window("event_time", "30 minutes")],
        ).count(),
    }
    results = {}
    for name, step in steps.items():
        step()  # warm-up
        started = time.perf_counter()
        step()
        results[f"{name}_rows_per_s"] = round(len(values) / (time.perf_counter() - started))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=1_500_000, help="trips per generated month")
    parser.add_argument("--rates", default="2000,10000,max")
    parser.add_argument("--seconds", type=float, default=60.0, help="replay time per rate")
    parser.add_argument("--trigger", default="1 second", help="the windows query's trigger")
    parser.add_argument("--tables-trigger", default="10 seconds", help="the events and sink queries' trigger")
    parser.add_argument("--warmup-events", type=int, default=50_000, help="replayed before the measured phases")
    parser.add_argument("--out", type=Path, default=Path("bench/results/streaming.json"))
    parser.add_argument("--only", choices=["producer", "parse"], help="measure one part alone")
    parser.add_argument("--month-file", type=Path, help="a generated fhvhv month to use (--only)")
    args = parser.parse_args(argv)

    from local_platform.config import load_config
    from local_platform.platform import LocalPlatform
    from local_platform.spark import spark_env

    platform = LocalPlatform(load_config())
    os.environ.update(spark_env(platform.cfg))
    if args.only == "producer":
        print(json.dumps(producer_only(platform, args), indent=2), flush=True)
        return 0
    from pyspark.sql import SparkSession

    from taxi_anomaly.streaming.replay import producer_for, read_table, replay
    from tests.streaming.scenario import StreamScenario, wait_for

    spark = SparkSession.builder.appName("bench-streaming").config("spark.sql.shuffle.partitions", "2").getOrCreate()
    if args.only == "parse":
        print(json.dumps(parse_only(spark, args), indent=2), flush=True)
        spark.stop()
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    run = StreamScenario(
        platform, spark, tmp, trips_per_month=args.trips, trigger=args.trigger, tables_trigger=args.tables_trigger
    )
    results: dict = {
        "trips_per_month": args.trips,
        "trigger": args.trigger,
        "tables_trigger": args.tables_trigger,
        "seconds_per_rate": args.seconds,
    }
    try:
        run.create_topics()
        _version, month_file, _episodes = run.train()
        table = read_table(str(month_file))
        run.start_job()
        wait_for(lambda: run.progress().get("queries"), 300, "the streaming job to start")
        producer = producer_for(run.roles["replay"])
        source, topic = f"bench/{month_file.name}", run.topics["trips"].name
        # Warm-up (not measured): the first batches start the Python workers and compile the plans.
        warm = replay(table, producer, "fhvhv", source, topic, limit=args.warmup_events)
        with Sampler(run) as sampler:
            wait_for(lambda s=sampler: s.lag() == 0, 900, "the job to take the warm-up events", interval=1.0)
        passes = warm.passes
        phases = []
        for rate_text in args.rates.split(","):
            rate = None if rate_text == "max" else float(rate_text)
            limit = int((rate or 50_000) * args.seconds)
            print(f"bench: replaying {limit:,} events at {rate_text} events/s", flush=True)
            with Sampler(run) as sampler:
                started = time.time()
                stats = replay(
                    table,
                    producer,
                    "fhvhv",
                    source,
                    topic,
                    rate=rate,
                    loop=True,
                    limit=limit,
                    mark_every=100,
                    first_pass=passes,
                )
                produced_s = time.time() - started
                wait_for(lambda s=sampler: s.lag() == 0, 900, "the job to catch up", interval=1.0)
                caught_up = time.time()
            latencies = window_latencies(published_windows(run), stats.marks, started, caught_up)
            phase = {
                "rate": rate_text,
                "events": stats.produced,
                "produce_events_per_s": round(stats.produced / produced_s),
                "processed_events_per_s": round(stats.produced / (caught_up - started)),
                "max_lag_events": max((lag for _, lag in sampler.lags), default=None),
                "catch_up_s_after_replay": round(caught_up - started - produced_s, 1),
                "window_latency_s": _percentiles(latencies),
                "peak_rss_gib": round(sampler.peak_rss / 2**30, 2),
            }
            print(f"bench: {json.dumps(phase)}", flush=True)
            phases.append(phase)
            results["phases"] = phases  # written after every phase: a long phase can be stopped with Ctrl-C
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            # The next phase goes on where this one stopped in event time (later passes: new ids, later times).
            passes += stats.passes
        results["phases"] = phases
        results["load_avg_1m_end"] = os.getloadavg()[0]
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"bench: written {args.out}", flush=True)
    finally:
        run.cleanup()
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
