"""Benchmark of the real-time path on the local platform: sustained events/s, lag, window latency, memory.

A generated fhvhv month (--trips, default 1.5 M: ~1,000 trips per 30-minute window, so windows close every
second or so at the replay rates measured) is replayed into topics of the run's own, looping, at each rate of
--rates (events/s; `max` = unthrottled) for --seconds, with the streaming job (tests/streaming/scenario.py:
model trained by the batch job on three months and promoted) running as a real process. Per rate:
- produced / processed events per second, the largest lag seen (trips topic end offsets minus the offsets both
  queries have processed, sampled every 2 s) and the time to catch up once the replay stops;
- latency of every window closed during the phase: when it was scored (stream_window_scores.window_closed_at)
  minus when the watermark passed its end (the production time of the first event whose pickup is at least
  the window end + the watermark delay; the replay records pickup and production time every 100 events);
  p50 / p95 / p99;
- peak resident memory of the streaming job's process tree.

    make up
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_streaming --rates 2000,10000,max
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
        queries = (self.run.progress().get("queries") or {}).values()
        totals = []
        for progress in queries:
            if not progress or not progress.get("sources"):
                return None
            end = progress["sources"][0].get("endOffset") or {}
            end = json.loads(end) if isinstance(end, str) else end
            totals.append(sum(int(v) for v in (end.get(self.run.topics["trips"].name) or {}).values()))
        return min(totals) if len(totals) == 2 else None

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


def window_latencies(spark, run, marks: list[tuple[str, float]], since: float, until: float) -> list[float]:
    """Seconds from the watermark passing each window's end to the window being scored, for the windows
    scored between `since` and `until` (wall clock)."""
    from pyspark.sql import functions as F

    from anomaly_detection import tables

    pickups = [datetime.fromisoformat(p) for p, _ in marks]
    walls = [w for _, w in marks]
    scored = spark.table(tables.table_name(run.namespace, tables.STREAM_SCORES_TABLE)).where(
        F.col("window_closed_at").between(datetime.fromtimestamp(since), datetime.fromtimestamp(until))
    )
    latencies = []
    for row in scored.select("bucket_start", "window_closed_at").collect():
        passing = row.bucket_start + WINDOW + WATERMARK
        i = bisect_left(pickups, passing)
        if i < len(pickups):
            latencies.append(row.window_closed_at.timestamp() - walls[i])
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=1_500_000, help="trips per generated month")
    parser.add_argument("--rates", default="2000,10000,max")
    parser.add_argument("--seconds", type=float, default=60.0, help="replay time per rate")
    parser.add_argument("--trigger", default="1 second")
    parser.add_argument("--out", type=Path, default=Path("bench/results/streaming.json"))
    args = parser.parse_args(argv)

    from local_platform.config import load_config
    from local_platform.platform import LocalPlatform
    from local_platform.spark import spark_env

    platform = LocalPlatform(load_config())
    os.environ.update(spark_env(platform.cfg))
    from pyspark.sql import SparkSession

    from taxi_anomaly.streaming.replay import producer_for, read_table, replay
    from tests.streaming.scenario import StreamScenario, wait_for

    spark = SparkSession.builder.appName("bench-streaming").config("spark.sql.shuffle.partitions", "2").getOrCreate()
    tmp = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    run = StreamScenario(platform, spark, tmp, trips_per_month=args.trips, trigger=args.trigger)
    results: dict = {"trips_per_month": args.trips, "trigger": args.trigger, "seconds_per_rate": args.seconds}
    try:
        run.create_topics()
        _version, month_file, _episodes = run.train()
        table = read_table(str(month_file))
        run.start_job()
        wait_for(lambda: run.progress().get("queries"), 300, "the streaming job to start")
        producer = producer_for(run.roles["replay"])
        source, topic, passes = f"bench/{month_file.name}", run.topics["trips"].name, 0
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
            latencies = window_latencies(spark, run, stats.marks, started, caught_up)
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
