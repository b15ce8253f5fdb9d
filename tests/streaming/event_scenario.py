"""A per-event scoring scenario on the real platform, shared by the end-to-end test and the latency benchmark:
topics of its own, a KDD Cup 99 model trained on normal records and promoted in the registry (MinIO), the
scoring job as a real process (killable with -9), the replay producing events and a reader of the alerts."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_platform.config import REPO_ROOT
from local_platform.spark import spark_env
from taxi_anomaly import kdd, layout
from taxi_anomaly.streaming.event_replay import kdd_events, prepared_events, replay_events
from taxi_anomaly.streaming.replay import ReplayStats, producer_for
from tests.streaming.scenario_base import ScenarioBase

SOURCE = kdd.FILE_NAME


@dataclass
class AlertLog:
    """Every message read from a topic, in order: (key, raw value, time received by the reader). Values are
    parsed when asked for, not as they arrive: the reader shares the machine with the job it measures."""

    raw: list[tuple[str, bytes, float]] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)

    def add(self, key: str, value: bytes, received: float) -> None:
        self.raw.append((key, value, received))
        self._keys.add(key)

    def keys(self) -> set[str]:
        return set(self._keys)

    @property
    def messages(self) -> list[tuple[str, dict[str, Any], float]]:
        return [(key, json.loads(value), received) for key, value, received in list(self.raw)]

    def by_key(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for key, value, _ in self.messages:
            grouped.setdefault(key, []).append(value)
        return grouped


class EventScenario(ScenarioBase):
    """Topics of its own, a promoted per-event model, the scoring job as a process, and the replay."""

    def __init__(self, platform: Any, spark: Any, tmp: Path) -> None:
        super().__init__(platform, tmp / "event-scoring.log")
        self.spark, self.tmp = spark, tmp
        self.prefix = f"event-it-{self.suffix}"
        self.topics = self.test_topics(("events", "event-alerts", "dead-letters"), partitioned="events")
        self.models_uri = f"s3a://{platform.cfg.models_bucket}/{self.prefix}"
        self.checkpoint = tmp / "checkpoint"
        self.status = tmp / "status.json"
        self.alerts = AlertLog()
        self.dead_letters = AlertLog()
        self._readers: list[threading.Thread] = []
        self._stop_reading = threading.Event()

    # set-up ----------------------------------------------------------------------------------------------
    def create_topics(self) -> None:
        self.create_topics_granting(
            {
                "replay": {"events": ("WRITE",)},
                "streaming": {"events": ("READ",), "event-alerts": ("WRITE",), "dead-letters": ("WRITE",)},
            }
        )

    def save_and_promote(self, model: Any) -> str:
        """Store the model in the registry under this scenario's prefix and point the promotion pointer at it."""
        from minio import Minio

        from anomaly_detection.event_models import GRANULARITY
        from anomaly_detection.registry import ModelRegistry

        registry = ModelRegistry(self.spark, self.models_uri)
        version = registry.save(model, model.feature_set, GRANULARITY, {"scenario": self.prefix})
        cfg, creds = self.platform.cfg, self.platform.creds
        client = Minio(
            f"127.0.0.1:{cfg.minio_port}",
            access_key=creds.minio_root_user,
            secret_key=creds.minio_root_password,
            secure=False,
        )
        pointer = json.dumps({"version": version}).encode()
        key = f"{self.prefix}/{model.feature_set}/{GRANULARITY}/{layout.POINTER}"
        client.put_object(cfg.models_bucket, key, io.BytesIO(pointer), len(pointer))
        return version

    # the job ---------------------------------------------------------------------------------------------
    def start_job(self, mode: str, interval: str = "5 seconds") -> None:
        cfg = self.platform.cfg
        env = {**os.environ, **spark_env(cfg), "AIRFLOW_CONN_TAP_KAFKA_STREAMING": self.streaming_conn}
        argv = [
            str(cfg.python), str(REPO_ROOT / "spark_jobs" / "run_event_scoring.py"),
            "--feature-set", kdd.FEATURE_SET, "--models-uri", self.models_uri, "--mode", mode,
            "--checkpoint-uri", (self.checkpoint / mode).as_uri(), "--interval", interval,
            "--events-topic", self.topics["events"].name, "--alerts-topic", self.topics["event-alerts"].name,
            "--dead-letters-topic", self.topics["dead-letters"].name, "--status-file", str(self.status),
        ]  # fmt: skip
        self.status.unlink(missing_ok=True)
        self.launch(argv, env)

    def wait_running(self, timeout: float = 180.0) -> None:
        """Until the job reports its query past initialising its source (continuous mode reports no progress, only
        a status)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, f"job died:\n{self.log_tail()}"
            try:
                document = json.loads(self.status.read_text())
                if document["queries"]["event-scoring"] or not document["status"]["message"].startswith("Initializing"):
                    return
            except (OSError, ValueError, KeyError, TypeError):
                pass
            time.sleep(1)
        raise AssertionError(f"the scoring job reported no progress in {timeout:.0f} s:\n{self.log_tail()}")

    # events in, alerts out -------------------------------------------------------------------------------
    def replay(self, frame: Any, rows: Any, rate: float | None = None, on_produced: Any = None) -> ReplayStats:
        producer = producer_for(self.roles["replay"], **{"linger.ms": 1})
        events = prepared_events(kdd_events(frame, SOURCE, rows))
        return replay_events(events, producer, self.topics["events"].name, rate=rate, on_produced=on_produced)

    def produce_raw(self, messages: list[tuple[str, bytes]]) -> None:
        producer = producer_for(self.roles["replay"])
        for key, value in messages:
            producer.produce(self.topics["events"].name, key=key.encode(), value=value)
        assert producer.flush(30) == 0

    def start_reading(self) -> None:
        """Read the alerts and dead-letter topics from their start, in background threads, until cleanup."""
        for name, log in (("event-alerts", self.alerts), ("dead-letters", self.dead_letters)):
            thread = threading.Thread(target=self._read, args=(self.topics[name].name, log), daemon=True)
            thread.start()
            self._readers.append(thread)

    def _read(self, topic: str, log: AlertLog) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                **self.roles["reader"].client_config(),
                "group.id": f"tap-reader-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
            }
        )
        consumer.subscribe([topic])
        try:
            while not self._stop_reading.is_set():
                message = consumer.poll(0.05)
                if message is None or message.error():
                    continue
                log.add(message.key().decode(), message.value(), time.time())
        finally:
            consumer.close()

    def wait_for_keys(self, log: AlertLog, expected: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expected <= log._keys:
                return
            if self.process is not None:
                assert self.process.poll() is None, f"job died:\n{self.log_tail()}"
            time.sleep(0.5)
        missing = sorted(expected - log.keys())
        raise AssertionError(f"{len(missing)} of {len(expected)} keys never arrived, e.g. {missing[:5]}:\n"
                             f"{self.log_tail()}")  # fmt: skip

    def cleanup(self) -> None:
        self.stop_job()
        self._stop_reading.set()
        for thread in self._readers:
            thread.join(10)
        self.delete_topics()
