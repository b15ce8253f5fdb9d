"""The stream part of `make demo`: start the streaming job, replay the demo's fhvhv month into Kafka at speed,
and print the alerts as they arrive on the alerts topic.

Each demo replays the month as a new loop pass (shifted by whole weeks, ids of its own), so a second demo
produces new windows and new alerts instead of duplicates that the stream would drop.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

from taxi_anomaly.streaming.settings import KafkaSettings
from taxi_anomaly.streaming.topics import ALERTS, TRIPS

REPLAY_RATE = 5_000  # events/s: a 300 k-trip month in a minute


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _print_alerts(stop: threading.Event, since_ms: int, seen: list[dict]) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **KafkaSettings.for_role("reader").client_config(),
            "group.id": f"tap-reader-demo-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([ALERTS.name])
    try:
        while not stop.is_set():
            message = consumer.poll(1)
            if message is None or message.error():
                continue
            if message.timestamp()[1] < since_ms:  # an alert of an earlier demo
                continue
            alert = json.loads(message.value())
            seen.append(alert)
            _say(
                f"ALERT {alert['window_start']} to {alert['window_end'][11:16]} {alert['key']}: score "
                f"{alert['score']:.3f}, {alert['trips']} trips. {alert.get('explanation') or ''} "
                f"(model {alert['model_version']})"
            )
    finally:
        consumer.close()


def run_stream_demo(month_file: Path, repo_root: Path, state_dir: Path, wait_s: float = 180.0) -> int:
    """Start the job, replay `month_file`, print alerts until the stream is quiet (or `wait_s` after the replay);
    return the alerts seen."""
    from taxi_anomaly.streaming.replay import producer_for, read_table, replay

    _say("starting the streaming job (make stream-up)")
    subprocess.run(["python3", "-m", "local_platform", "stream-up"], cwd=repo_root, check=True)
    passes_file = state_dir / "stream-demo-passes"
    first_pass = int(passes_file.read_text()) if passes_file.exists() else 0
    table = read_table(str(month_file))
    stop, seen = threading.Event(), []
    printer = threading.Thread(target=_print_alerts, args=(stop, int(time.time() * 1000), seen), daemon=True)
    printer.start()
    _say(f"replaying {table.num_rows:,} trips of {month_file.name} into {TRIPS.name} at {REPLAY_RATE:,} events/s")
    stats = replay(
        table,
        producer_for(KafkaSettings.for_role("replay")),
        "fhvhv",
        f"demo/{month_file.name}",
        rate=REPLAY_RATE,
        loop=True,
        limit=table.num_rows,
        first_pass=first_pass,
    )
    passes_file.write_text(str(first_pass + 1))
    _say(f"replayed {stats.produced:,} events ({stats.failed} failed); waiting for the last windows to close")
    # Quiet = 30 s without a new alert, counted from the first one: on a loaded machine the stream's first
    # batches take a minute or more (measured: 78 s), and no alert yet means the stream is behind, not quiet.
    quiet_since, last = None, 0
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (quiet_since is None or time.monotonic() - quiet_since < 30):
        time.sleep(2)
        if len(seen) != last:
            quiet_since, last = time.monotonic(), len(seen)
    stop.set()
    printer.join(10)
    _say(f"{len(seen)} alerts from the stream; tables iceberg.taxi.stream_alerts, stream_window_scores, stream_trips")
    _say("the dashboard's 'Live alerts from the stream' panel shows them, refreshed every 10 s")
    _say("the streaming job keeps running: `make stream-down` stops it")
    return len(seen)
