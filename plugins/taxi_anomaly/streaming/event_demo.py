"""The per-event part of `make demo`: train and promote a KDD Cup 99 model (unless one is promoted), start the
per-event scoring job, replay connection records into the events topic and print the first alerts with their
latency, from the event's production to the alert's arrival at a reader.

Each demo replays under a source name of its own, so a second demo produces new event ids and new alerts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taxi_anomaly import kdd
from taxi_anomaly.streaming.settings import KafkaSettings
from taxi_anomaly.streaming.topics import EVENT_ALERTS, EVENTS

EVENTS_REPLAYED = 20_000
REPLAY_RATE = 1_000  # events/s: the rate the default (continuous) mode keeps up with (bench/README.md)
ATTACK_SHARE = 0.1
SHOWN = 8
REPLAY_END_WAIT_S = 180.0
WARM_UP_TIMEOUT_S = 300.0  # after the replay, how long to wait for the alerts at most


@dataclass(frozen=True)
class Alert:
    fields: dict[str, Any]
    latency_ms: float


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _read_alerts(stop: threading.Event, sources: tuple[str, ...], received: list[Alert]) -> None:
    """Collect the alerts of this demo's events (their `source`), with the ms from production to arrival here;
    print the first SHOWN of sources[0] as they arrive."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **KafkaSettings.for_role("reader").client_config(),
            "group.id": f"tap-reader-event-demo-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([EVENT_ALERTS.name])
    shown = 0
    try:
        while not stop.is_set():
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            alert = json.loads(message.value())
            if alert.get("source") not in sources:  # an alert of other events (an earlier demo, a benchmark)
                continue
            received.append(Alert(alert, time.time() * 1000 - alert["produced_at_ms"]))
            if alert["source"] == sources[0] and (shown := shown + 1) <= SHOWN:
                _show(received[-1])
    finally:
        consumer.close()


def _show(alert: Alert) -> None:
    fields = alert.fields
    reasons = ", ".join(f"{f['feature']} {f['deviation']:+.1f} sd" for f in fields["top_features"])
    _say(
        f"EVENT ALERT {fields['event_id']}: score {fields['score']:.3f} > {fields['threshold']:.3f} "
        f"({reasons or 'no single feature stands out'}), {alert.latency_ms:.0f} ms after production "
        f"(model {fields['family']} {fields['model_version']})"
    )


def _promoted_version(models_uri: str) -> str | None:
    from taxi_anomaly.ingest import S3Settings
    from taxi_anomaly.ingest.storage import ObjectStore
    from taxi_anomaly.layout import POINTER

    bucket, _, prefix = models_uri.removeprefix("s3a://").partition("/")
    key = "/".join(p for p in (prefix.rstrip("/"), kdd.FEATURE_SET, "event", POINTER) if p)
    store = ObjectStore(S3Settings.from_env())
    return store.get_json(bucket, key)["version"] if store.exists(bucket, key) else None


def _wait_running(process: subprocess.Popen[bytes], status: Path, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the per-event scoring job exited ({process.returncode}); see {log}")
        try:
            document = json.loads(status.read_text())
            if document["queries"]["event-scoring"] or not document["status"]["message"].startswith("Initializing"):
                return
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(1)
    raise RuntimeError(f"the per-event scoring job did not start within {timeout:.0f} s; see {log}")


def _wait_quiet(received: list[Any], timeout: float, quiet: float = 10.0) -> None:
    """Return once alerts have arrived and none came for `quiet` s, or after `timeout` s (the job's first epoch can
    start well after its status reads Running)."""
    deadline = time.monotonic() + timeout
    quiet_since, last = time.monotonic(), 0
    while time.monotonic() < deadline and not (last and time.monotonic() - quiet_since >= quiet):
        time.sleep(1)
        if len(received) != last:
            quiet_since, last = time.monotonic(), len(received)


def run_event_demo(repo_root: Path, state_dir: Path, models_uri: str) -> int:
    """Train if needed, start the job, replay, print the first alerts and the latency; return the alerts seen."""
    import numpy as np

    from taxi_anomaly.streaming.event_replay import kdd_events, prepared_events, replay_events
    from taxi_anomaly.streaming.replay import producer_for

    python = sys.executable
    version = _promoted_version(models_uri)
    if version is None:
        _say(f"training a per-event model on the KDD Cup 99 normal records ({models_uri})")
        train = [
            python, str(repo_root / "spark_jobs" / "run_event_training.py"), "--feature-set", kdd.FEATURE_SET,
            "--family", "unsupervised_forest", "--source", str(kdd.default_file()), "--models-uri", models_uri,
            "--seed", "0", "--promote",
        ]  # fmt: skip
        subprocess.run(train, check=True, stdout=subprocess.DEVNULL)
        version = _promoted_version(models_uri)
    _say(f"per-event model {version} promoted; starting the per-event scoring job (continuous mode)")
    state_dir.mkdir(parents=True, exist_ok=True)
    status, log = state_dir / "event-scoring-status.json", state_dir / "event-scoring.log"
    status.unlink(missing_ok=True)
    job = [
        python, str(repo_root / "spark_jobs" / "run_event_scoring.py"), "--feature-set", kdd.FEATURE_SET,
        "--models-uri", models_uri, "--checkpoint-uri", (state_dir / "event-checkpoint").as_uri(),
        "--status-file", str(status), "--starting-offsets", "latest",  # live events only, not the topic's history
    ]  # fmt: skip
    with open(log, "ab") as log_file:
        process = subprocess.Popen(job, env=dict(os.environ), stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _wait_running(process, status, log)
        frame = kdd.read_kdd(kdd.default_file())
        rng = np.random.default_rng()
        is_normal = (frame[kdd.LABEL] == kdd.NORMAL).to_numpy()
        attack_rows, normal_rows = np.flatnonzero(~is_normal), np.flatnonzero(is_normal)
        attacks = int(EVENTS_REPLAYED * ATTACK_SHARE)
        rows = rng.permutation(
            np.concatenate(
                [
                    rng.choice(attack_rows, attacks, replace=False),
                    rng.choice(normal_rows, EVENTS_REPLAYED - attacks, replace=False),
                ]
            )
        )
        stop, received = threading.Event(), []
        source = f"demo-{uuid.uuid4().hex[:8]}"
        warm_up = f"{source}-warm-up"
        reader = threading.Thread(target=_read_alerts, args=(stop, (source, warm_up), received), daemon=True)
        reader.start()
        producer = producer_for(KafkaSettings.for_role("replay"), **{"linger.ms": 1})
        # The job's first epoch starts a while after its status reads Running: attack records at a trickle until
        # their first alert is back, so that the replay below measures the live path, not the start-up.
        _say("waiting for the job's first alert (attack records at 20 events/s)")
        deadline = time.monotonic() + WARM_UP_TIMEOUT_S
        while not received and time.monotonic() < deadline:
            trickle = prepared_events(kdd_events(frame, warm_up, rng.choice(attack_rows, 20)))
            replay_events(trickle, producer, EVENTS.name, rate=20)
        if not received:
            raise RuntimeError(f"no alert within {WARM_UP_TIMEOUT_S:.0f} s of warm-up events; see {log}")
        _say(
            f"replaying {EVENTS_REPLAYED:,} connection records ({ATTACK_SHARE:.0%} attacks) into {EVENTS.name} "
            f"at {REPLAY_RATE:,} events/s"
        )
        replay_events(list(prepared_events(kdd_events(frame, source, rows))), producer, EVENTS.name, rate=REPLAY_RATE)
        _wait_quiet(received, REPLAY_END_WAIT_S)
        stop.set()
        reader.join(10)
    finally:
        process.terminate()
        process.wait(60)
    live = [alert for alert in received if alert.fields["source"] == source]
    if not live:
        _say(f"no per-event alert arrived for the replayed records; see {log}")
        return 0
    p50, p99 = np.percentile([alert.latency_ms for alert in live], [50, 99])
    _say(f"{len(live):,} per-event alerts; latency from production p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    return len(live)
