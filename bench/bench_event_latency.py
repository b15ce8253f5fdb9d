"""Benchmark of per-event scoring on the local platform: latency from production to alert and the highest
sustainable rate, for each scoring mode (real-time, continuous, micro-batch with the pandas UDF) in the same run.

Per mode, a scenario of its own (tests/streaming/event_scenario.py: topics, a KDD Cup 99 model fitted on half of
the normal records and promoted, the scoring job as a real process). After a warm-up, KDD records (--attack-share of
them attacks, the rest normal traffic; serialised before the clock runs) are replayed at each rate of --rates
(events/s; `max` = unthrottled) for --seconds (at most --max-events), each phase with event ids of its own. Per
phase:
- latency of every alert: when the alerts reader received it minus the event's production time (the replay
  stamps produced_at_ms as it hands the event to the producer); p50 / p95 / p99;
- achieved replay rate; catch-up: from the end of the replay until the last expected alert arrived (a mode
  sustains a rate when it keeps up: catch-up under 2 s);
- the alerts are exactly the events the same model flags in batch (sklearn on the driver): none missing, none
  extra; alerts published more than once (none expected without a crash);
- peak resident memory of the scoring job's process tree.

    make up
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_event_latency --rates 1000,5000,20000,max
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

RESULTS = Path(__file__).parent / "results" / "event_latency.json"
WARM_UP_EVENTS = 3_000


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    q = np.percentile(np.array(values) * 1000, [50, 95, 99])
    return {"p50": round(float(q[0]), 1), "p95": round(float(q[1]), 1), "p99": round(float(q[2]), 1), "n": len(values)}


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of a process (and its descendants)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *(root.children(recursive=True) if children else [])]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class MemorySampler:
    """Peak resident memory of a process tree, sampled every second."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                root = psutil.Process(self.pid)
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            except psutil.Error:
                continue
            self.peak = max(self.peak, rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def run_phase(scenario: Any, frame: Any, model: Any, rows: np.ndarray, source: str, rate: float | None) -> dict:
    """Replay `rows` under ids of `source`, wait for every expected alert; the phase's figures."""
    from taxi_anomaly.streaming.event_replay import kdd_events, prepared_events, replay_events
    from taxi_anomaly.streaming.replay import event_id, producer_for

    scores = model.score_numpy(model.inputs_numpy(frame.iloc[rows]))
    ids = [event_id(source, int(frame.index[r])) for r in rows]
    expected = {eid for eid, s in zip(ids, scores, strict=True) if s > model.threshold}
    producer = producer_for(scenario.roles["replay"], **{"linger.ms": 1})
    events = list(prepared_events(kdd_events(frame, source, rows)))  # serialised before the clock runs
    cpu_before = {"bench": cpu_seconds(os.getpid(), children=False), "job": cpu_seconds(scenario.process.pid)}
    started = time.time()
    stats = replay_events(events, producer, scenario.topics["events"].name, rate=rate)
    replay_end = time.time()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not expected <= scenario.alerts.keys():
        time.sleep(0.2)
    cpu = {name: round(cpu_seconds(pid, children=name == "job") - cpu_before[name], 1)
           for name, pid in (("bench", os.getpid()), ("job", scenario.process.pid))}  # fmt: skip
    phase_ids = set(ids)
    first_arrival: dict[str, float] = {}
    copies: dict[str, int] = {}
    for key, value, received in list(scenario.alerts.messages):
        if key in phase_ids:
            copies[key] = copies.get(key, 0) + 1
            if key not in first_arrival:
                first_arrival[key] = received - value["produced_at_ms"] / 1000
    arrived = [t for key, t in first_arrival.items()]
    last = max((received for key, _, received in scenario.alerts.messages if key in phase_ids), default=replay_end)
    return {
        "rate_asked": rate or "max",
        "events": stats.produced,
        "replay_rate": round(stats.produced / max(replay_end - started, 1e-9)),
        "alerts_expected": len(expected),
        "alerts_missing": len(expected - set(first_arrival)),
        "alerts_not_flagged_in_batch": len(set(first_arrival) - expected),
        "alerts_published_again": sum(n - 1 for n in copies.values()),
        "catch_up_s": round(max(0.0, last - replay_end), 2),
        "latency_ms": percentiles(arrived),
        # CPU seconds from the start of the replay to the last alert: this process (the replay and the alerts
        # reader) and the scoring job's process tree; the machine has 2 cores.
        "cpu_s": cpu,
        "wall_s": round(max(last, replay_end) - started, 1),
    }


def bench_mode(platform: Any, spark: Any, model: Any, frame: Any, mode: str, args: argparse.Namespace) -> dict:
    from taxi_anomaly import kdd
    from tests.streaming.event_scenario import EventScenario

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-event-{mode}-"))
    scenario = EventScenario(platform, spark, tmp)
    scenario.create_topics()
    rng = np.random.default_rng(7)
    is_normal = (frame[kdd.LABEL] == kdd.NORMAL).to_numpy()
    normal, attacks = np.flatnonzero(is_normal), np.flatnonzero(~is_normal)

    def draw(count: int) -> np.ndarray:
        """`count` distinct records, an `attack_share` of them attacks, in random order."""
        n_attacks = int(round(count * args.attack_share))
        picked = np.concatenate(
            [rng.choice(attacks, n_attacks, replace=False), rng.choice(normal, count - n_attacks, replace=False)]
        )
        return rng.permutation(picked)

    try:
        version = scenario.save_and_promote(model)
        scenario.start_reading()
        scenario.start_job(mode, interval=args.interval if mode != "micro-batch" else args.micro_batch_interval)
        assert scenario.process is not None
        memory = MemorySampler(scenario.process.pid)
        t0 = time.monotonic()
        scenario.wait_running()
        warm = run_phase(scenario, frame, model, draw(WARM_UP_EVENTS), "warm-up", 1000.0)
        result: dict[str, Any] = {"mode": mode, "model_version": version, "start_s": round(time.monotonic() - t0, 1)}
        result["warm_up"] = warm
        phases = []
        for i, rate_text in enumerate(args.rates.split(",")):
            rate = None if rate_text == "max" else float(rate_text)
            count = args.max_events if rate is None else min(int(rate * args.seconds), args.max_events)
            rows = draw(count)
            phase = run_phase(scenario, frame, model, rows, f"phase-{i}-{rate_text}", rate)
            phases.append(phase)
            print(json.dumps({"mode": mode, **phase}), flush=True)
        result["phases"] = phases
        result["peak_rss_mib"] = round(memory.stop() / 2**20)
        return result
    finally:
        scenario.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="real-time,continuous,micro-batch")
    parser.add_argument("--rates", default="1000,5000,20000,max")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-events", type=int, default=90_000, help="events of the unthrottled phase")
    # The 10% file is 80 % attacks; a monitored network sees mostly normal traffic.
    parser.add_argument("--attack-share", type=float, default=0.1, help="share of attack records replayed")
    parser.add_argument("--family", default="unsupervised_forest")
    parser.add_argument("--interval", default="10 seconds", help="real-time batch length / continuous epoch")
    parser.add_argument("--micro-batch-interval", default="0 seconds")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    from local_platform.config import load_config
    from local_platform.platform import LocalPlatform
    from local_platform.spark import spark_env

    platform = LocalPlatform(load_config())
    os.environ.update(spark_env(platform.cfg))
    from pyspark.sql import SparkSession

    from anomaly_detection.event_models import EventFamily, fit_event_model
    from taxi_anomaly import kdd

    frame = kdd.read_kdd(kdd.default_file())
    training, _ = kdd.normal_training_split(frame, seed=0)
    fit_started = time.monotonic()
    model = fit_event_model(training, EventFamily(args.family), seed=0)
    fit_s = time.monotonic() - fit_started
    spark = SparkSession.builder.appName("bench-event-latency").master("local[1]").getOrCreate()
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "load_1m_at_start": os.getloadavg()[0]},
        "model": {"family": args.family, "fit_s": round(fit_s, 1), "threshold": model.threshold, **model.training},
        "args": vars(args),
        "modes": [],
    }
    for mode in args.modes.split(","):
        results["modes"].append(bench_mode(platform, spark, model, frame, mode, args))
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    spark.stop()
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
