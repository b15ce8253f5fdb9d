"""A streaming scenario on the real platform, shared by the end-to-end test and the streaming benchmark: topics
of its own, generated months landed in MinIO, a model trained with the batch job and promoted, and the
streaming job as a real process (killable with -9)."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from pathlib import Path

from anomaly_detection import tables
from anomaly_detection.job import main as batch_main
from local_platform.config import REPO_ROOT
from local_platform.spark import spark_env
from taxi_anomaly import layout
from taxi_anomaly.contract import AnomalyJob
from taxi_anomaly.streaming.progress import processed_offsets
from tests.streaming.scenario_base import ScenarioBase

HISTORY = ["2024-01", "2024-02", "2024-03"]
TARGET = "2024-04"


def wait_for(check, timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class StreamScenario(ScenarioBase):
    """Topics of its own, a trained and promoted model, and the streaming job as a real process."""

    def __init__(
        self,
        platform,
        spark,
        tmp: Path,
        trips_per_month: int = 60_000,
        trigger: str = "1 second",
        tables_trigger: str = "2 seconds",
    ) -> None:
        super().__init__(platform, tmp / "stream.log")
        self.spark, self.tmp = spark, tmp
        self.trips_per_month, self.trigger, self.tables_trigger = trips_per_month, trigger, tables_trigger
        self.prefix = f"stream-it-{self.suffix}"
        self.namespace = f"stream_{self.suffix}"
        self.topics = self.test_topics(("trips", "alerts", "dead-letters", "window-scores"), partitioned="trips")
        self.checkpoint = tmp / "checkpoint"
        self.status = tmp / "status.json"

    # set-up ----------------------------------------------------------------------------------------------
    def create_topics(self) -> None:
        self.create_topics_granting(
            {
                "replay": {"trips": ("WRITE",)},
                "streaming": {
                    "trips": ("READ",),
                    "alerts": ("WRITE",),
                    "dead-letters": ("WRITE",),
                    "window-scores": ("READ", "WRITE"),
                },
            }
        )

    def train(self) -> tuple[str, Path, list]:
        """Generate and land four months, train on three and score the fourth with the batch job, promote."""
        from minio import Minio

        from taxi_anomaly.synthetic import generate_month

        cfg, creds = self.platform.cfg, self.platform.creds
        client = Minio(
            f"127.0.0.1:{cfg.minio_port}",
            access_key=creds.minio_root_user,
            secret_key=creds.minio_root_password,
            secure=False,
        )
        out = self.tmp / "raw"
        target = None
        for i, month in enumerate([*HISTORY, TARGET]):
            result = generate_month(
                "fhvhv",
                month,
                out,
                trips=self.trips_per_month,
                seed=40 + i,
                anomalies="none" if month != TARGET else "default",
            )
            year, mm = month.split("-")
            key = f"{self.prefix}/tlc/fhvhv/year={year}/month={mm}/{result.data_path.name}"
            client.fput_object(cfg.raw_bucket, key, str(result.data_path))
            target = result if month == TARGET else target
        args = AnomalyJob.from_argv(
            [
                "--trip-type", "fhvhv", "--granularity", "city",
                "--raw-uri", f"s3a://{cfg.raw_bucket}/{self.prefix}/tlc",
                "--models-uri", f"s3a://{cfg.models_bucket}/{self.prefix}",
                "--namespace", self.namespace, "--mode", "train-and-score",
                "--train-months", ",".join(HISTORY), "--score-months", TARGET,
            ]
        )  # fmt: skip
        version = batch_main(self.spark, args).model_version
        pointer = json.dumps({"version": version}).encode()
        client.put_object(
            cfg.models_bucket, f"{self.prefix}/fhvhv/city/{layout.POINTER}", io.BytesIO(pointer), len(pointer)
        )
        return version, target.data_path, target.episodes

    def promote_copy(self, version: str) -> str:
        """Save the model `version` again as a new version and point the promotion pointer at it (as the
        retraining DAG does after a promotion); return the new version."""
        from minio import Minio

        from anomaly_detection.registry import ModelRegistry

        cfg, creds = self.platform.cfg, self.platform.creds
        registry = ModelRegistry(self.spark, f"s3a://{cfg.models_bucket}/{self.prefix}")
        bundle, meta = registry.load("fhvhv", "city", version)
        new_version = registry.save(bundle, "fhvhv", "city", {"copied_from": version, "run_id": meta["run_id"]})
        pointer = json.dumps({"version": new_version}).encode()
        client = Minio(
            f"127.0.0.1:{cfg.minio_port}",
            access_key=creds.minio_root_user,
            secret_key=creds.minio_root_password,
            secure=False,
        )
        client.put_object(
            cfg.models_bucket, f"{self.prefix}/fhvhv/city/{layout.POINTER}", io.BytesIO(pointer), len(pointer)
        )
        return new_version

    # the job ---------------------------------------------------------------------------------------------
    def start_job(self) -> None:
        cfg = self.platform.cfg
        env = {**os.environ, **spark_env(cfg), "AIRFLOW_CONN_TAP_KAFKA_STREAMING": self.streaming_conn}
        argv = [
            str(cfg.python), str(REPO_ROOT / "spark_jobs" / "run_stream_scoring.py"),
            "--trip-type", "fhvhv", "--granularity", "city",
            "--models-uri", f"s3a://{cfg.models_bucket}/{self.prefix}",
            "--checkpoint-uri", self.checkpoint.as_uri(), "--namespace", self.namespace,
            "--trips-topic", self.topics["trips"].name, "--alerts-topic", self.topics["alerts"].name,
            "--dead-letters-topic", self.topics["dead-letters"].name,
            "--scores-topic", self.topics["window-scores"].name,
            "--trigger", self.trigger, "--tables-trigger", self.tables_trigger, "--status-file", str(self.status),
        ]  # fmt: skip
        self.status.unlink(missing_ok=True)
        self.launch(argv, env)

    def progress(self) -> dict:
        assert self.process is not None and self.process.poll() is None, f"stream job died:\n{self.log_tail()}"
        try:
            return json.loads(self.status.read_text())
        except (OSError, ValueError):
            return {}

    def end_offsets(self, name: str = "trips") -> dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({**self.roles["reader"].client_config(), "group.id": f"tap-reader-{self.suffix}"})
        try:
            topic = self.topics[name]
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)[1]
                for p in range(topic.partitions)
            }
        finally:
            consumer.close()

    def caught_up(self) -> bool:
        """Every query has processed every message now in the topic it reads (the sink last: it reads what the
        windows query wrote)."""
        queries = self.progress().get("queries") or {}
        if set(queries) != {"events", "windows", "sink"}:
            return False
        trips = self.end_offsets()
        if not all(processed_offsets(queries[q], self.topics["trips"].name) == trips for q in ("events", "windows")):
            return False
        return processed_offsets(queries["sink"], self.topics["window-scores"].name) == self.end_offsets(
            "window-scores"
        )

    def read_topic(self, name: str) -> list[tuple[str, dict]]:
        """(key, JSON value) of every message in one of the scenario's topics."""
        return [(key, value) for key, value, _timestamp_ms in self.topic_messages(name)]

    def topic_messages(self, name: str) -> list[tuple[str, dict, int]]:
        """(key, JSON value, Kafka timestamp in ms) of every message in one of the scenario's topics, read as
        the reader role until the topic has been quiet for 8 s."""
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                **self.roles["reader"].client_config(),
                "group.id": f"tap-reader-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.topics[name].name])
        messages, idle_since = [], time.monotonic()
        try:
            while time.monotonic() - idle_since < 8:
                message = consumer.poll(1)
                if message is None or message.error():
                    continue
                messages.append((message.key().decode(), json.loads(message.value()), message.timestamp()[1]))
                idle_since = time.monotonic()
        finally:
            consumer.close()
        return messages

    def cleanup(self) -> None:
        """Stop the job, delete the topics and drop the scenario's namespace."""
        self.stop_job()
        self.delete_topics()
        tables.drop_namespace(self.spark, self.namespace)
