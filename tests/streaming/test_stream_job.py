"""The streaming job end to end on the real broker, MinIO, metastore and Spark: a generated month replayed into
Kafka, with bad events, a kill -9 of the job mid-stream, a second replay of the same events and a late event.

One scenario (it costs a model training and two job starts), checked from every side: the enriched table holds
each valid event exactly once, bad events are in the dead-letter topic with their reasons, the stream's window
scores equal the batch job's for the same month and model, alerts are not repeated and name the model.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from anomaly_detection import tables
from anomaly_detection.args import parse_args
from anomaly_detection.job import main as batch_main
from local_platform.config import REPO_ROOT
from local_platform.connections import connection_definitions
from local_platform.services.kafka import KAFKA_PRINCIPALS
from local_platform.spark import spark_env
from taxi_anomaly.streaming import provision
from taxi_anomaly.streaming.replay import producer_for, read_table, replay
from taxi_anomaly.streaming.settings import KafkaSettings
from taxi_anomaly.streaming.topics import Topic

pytestmark = [pytest.mark.platform, pytest.mark.spark]

HISTORY = ["2024-01", "2024-02", "2024-03"]
TARGET = "2024-04"
TRIPS_PER_MONTH = 60_000
BAD_EVENTS = [
    b"not json at all",
    b'["an", "array"]',
    json.dumps({"something": "else", "schema": 2}).encode(),  # another schema: no event_id
    json.dumps({"event_id": "other-type", "seq": 1, "trip_type": "yellow", "trip": {}}).encode(),
    json.dumps({"event_id": "no-pickup", "seq": 2, "trip_type": "fhvhv", "trip": {"pickup_datetime": "soon"}}).encode(),
]


def _wait(check, timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class StreamScenario:
    """Topics of its own, a trained and promoted model, and the streaming job as a real process."""

    def __init__(self, platform, spark, tmp: Path) -> None:
        self.platform, self.spark, self.tmp = platform, spark, tmp
        self.suffix = uuid.uuid4().hex[:8]
        self.prefix = f"stream-it-{self.suffix}"
        self.namespace = f"stream_{self.suffix}"
        self.topics = {
            name: Topic(
                f"tap.test-{self.suffix}.{name}",
                partitions=2 if name == "trips" else 1,
                retention_ms=3600_000,
                retention_bytes=1 << 28,
            )
            for name in ("trips", "alerts", "dead-letters")
        }
        cfg, creds = platform.cfg, platform.creds
        self.admin_settings = KafkaSettings(cfg.kafka_bootstrap, KAFKA_PRINCIPALS["admin"], creds.kafka_admin_password)
        conns = connection_definitions(cfg, creds)
        self.roles = {
            r: KafkaSettings.from_connection_json(json.dumps(conns[f"tap_kafka_{r}"]))
            for r in ("replay", "streaming", "reader")
        }
        self.streaming_conn = json.dumps(conns["tap_kafka_streaming"])
        self.checkpoint = tmp / "checkpoint"
        self.status = tmp / "status.json"
        self.process: subprocess.Popen | None = None
        self.log = tmp / "stream.log"

    # set-up ----------------------------------------------------------------------------------------------
    def create_topics(self) -> None:
        admin = provision.admin_client(self.admin_settings)
        provision.ensure_topics(admin, tuple(self.topics.values()))
        t = {k: v.name for k, v in self.topics.items()}
        grants = {
            "replay": {t["trips"]: ("WRITE",)},
            "streaming": {t["trips"]: ("READ",), t["alerts"]: ("WRITE",), t["dead-letters"]: ("WRITE",)},
            "reader": {t["trips"]: ("READ",), t["alerts"]: ("READ",), t["dead-letters"]: ("READ",)},
        }
        provision.ensure_acls(admin, KAFKA_PRINCIPALS, grants)

    def delete_topics(self) -> None:
        admin = provision.admin_client(self.admin_settings)
        for future in admin.delete_topics([t.name for t in self.topics.values()]).values():
            future.result()

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
                trips=TRIPS_PER_MONTH,
                seed=40 + i,
                anomalies="none" if month != TARGET else "default",
            )
            year, mm = month.split("-")
            key = f"{self.prefix}/tlc/fhvhv/year={year}/month={mm}/{result.data_path.name}"
            client.fput_object(cfg.raw_bucket, key, str(result.data_path))
            target = result if month == TARGET else target
        args = parse_args(
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
            cfg.models_bucket, f"{self.prefix}/fhvhv/city/promoted.json", io.BytesIO(pointer), len(pointer)
        )
        return version, target.data_path, target.episodes

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
            "--trigger", "2 seconds", "--status-file", str(self.status),
        ]  # fmt: skip
        self.status.unlink(missing_ok=True)
        log = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_job(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def stop_job(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None

    def progress(self) -> dict:
        assert self.process is not None and self.process.poll() is None, f"stream job died:\n{self.log_tail()}"
        try:
            return json.loads(self.status.read_text())
        except (OSError, ValueError):
            return {}

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def end_offsets(self) -> dict[str, int]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({**self.roles["reader"].client_config(), "group.id": f"tap-reader-{self.suffix}"})
        try:
            topic = self.topics["trips"]
            return {
                str(p): consumer.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)[1]
                for p in range(topic.partitions)
            }
        finally:
            consumer.close()

    def caught_up(self) -> bool:
        """Both queries have processed every message now in the trips topic."""
        queries = self.progress().get("queries") or {}
        want = self.end_offsets()
        if set(queries) != {"events", "windows"}:
            return False
        for progress in queries.values():
            if not progress or not progress.get("sources"):
                return False
            end = progress["sources"][0].get("endOffset") or {}
            if isinstance(end, str):
                end = json.loads(end)
            if end.get(self.topics["trips"].name) != want:
                return False
        return True

    def read_topic(self, name: str) -> list[tuple[str, dict]]:
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
                messages.append((message.key().decode(), json.loads(message.value())))
                idle_since = time.monotonic()
        finally:
            consumer.close()
        return messages


@pytest.fixture(scope="module")
def scenario(platform, spark, tmp_path_factory):
    run = StreamScenario(platform, spark, tmp_path_factory.mktemp("stream"))
    run.create_topics()
    version, month_file, episodes = run.train()
    table = read_table(str(month_file))
    half = table.num_rows // 2
    producer = producer_for(run.roles["replay"])
    trips_topic = run.topics["trips"].name
    source = f"s3://tap-raw/{run.prefix}/{month_file.name}"

    run.start_job()
    # First half of the month, and the bad events in the middle of it.
    replay(table.slice(0, half), producer, "fhvhv", source, trips_topic)
    for value in BAD_EVENTS:
        producer.produce(trips_topic, key=b"bad", value=value)
    producer.flush(30)
    _wait(lambda: (run.progress().get("counters") or {}).get("events_valid", 0) > 0, 300, "a first events batch")
    run.kill_job()  # kill -9 mid-stream: batches may be half done

    run.start_job()
    # The second half, then the whole month again (every event a duplicate), then one event far too late.
    rest = replay(table.slice(half), producer, "fhvhv", source, trips_topic, first_row=half)
    replay(table, producer, "fhvhv", source, trips_topic)
    late = json.dumps(
        {
            "event_id": "late-one",
            "seq": 0,
            "trip_type": "fhvhv",
            "source": "test",
            "row": 0,
            "produced_at_ms": 0,
            "trip": {"pickup_datetime": "2024-04-01 00:05:00", "trip_miles": 1.0, "base_passenger_fare": 10.0},
        }
    ).encode()
    producer.produce(trips_topic, key=b"late-one", value=late)
    producer.flush(30)
    _wait(run.caught_up, 600, "the stream job to process every message")
    assert rest.failed == 0
    yield {"run": run, "version": version, "table": table, "episodes": episodes, "source": source}
    run.stop_job()
    run.delete_topics()
    for name in (*tables.STREAM_TABLE_DDL, *tables.TABLE_DDL):
        spark.sql(f"DROP TABLE IF EXISTS {tables.table_name(run.namespace, name)} PURGE")


def test_every_valid_event_is_stored_exactly_once_across_kill_and_replays(scenario, spark):
    run, table = scenario["run"], scenario["table"]
    stored = spark.table(tables.table_name(run.namespace, tables.STREAM_TRIPS_TABLE))
    counts = stored.agg(F.count(F.lit(1)), F.countDistinct("event_id")).first()
    pickups = table.column("pickup_datetime")
    valid = table.num_rows - pickups.null_count + 1  # + the late event
    assert counts[0] == counts[1] == valid, f"rows {counts[0]}, distinct ids {counts[1]}, valid events {valid}"
    late = stored.where(F.col("event_id") == "late-one").count()
    assert late == 1, "an event older than the watermark is still kept in the enriched stream"


def test_bad_events_go_to_the_dead_letter_topic_with_their_reason(scenario):
    run, table = scenario["run"], scenario["table"]
    letters = run.read_topic("dead-letters")
    reasons = [letter["reason"] for _key, letter in letters]
    # The generator's dirt includes trips without a pickup time; each copy of them is a dead letter.
    no_pickup_rows = table.column("pickup_datetime").null_count
    assert reasons.count("not a JSON object") == 2
    assert reasons.count("no event_id") == 1
    assert reasons.count("trip_type yellow: this query scores fhvhv") == 1
    assert reasons.count("no pickup time, or not a timestamp") == 1 + 2 * no_pickup_rows
    assert len({key for key, _ in letters}) == len(letters), "a dead letter was published twice"


def test_stream_window_scores_equal_the_batch_job_for_the_same_month_and_model(scenario, spark):
    run, version = scenario["run"], scenario["version"]
    stream = spark.table(tables.table_name(run.namespace, tables.STREAM_SCORES_TABLE)).where(F.col("month") == TARGET)
    batch = spark.table(tables.table_name(run.namespace, tables.SCORES_TABLE)).where(
        (F.col("month") == TARGET) & (F.col("trips") > 0)
    )
    assert stream.select("model_version").distinct().collect()[0][0] == version
    keys = ["granularity", "key", "bucket_start"]
    joined = batch.alias("b").join(stream.alias("s"), keys, "left")
    rows = joined.select(
        F.col("b.trips").alias("batch_trips"),
        F.col("s.trips").alias("stream_trips"),
        F.col("b.anomaly_score").alias("batch_score"),
        F.col("s.anomaly_score").alias("stream_score"),
        F.col("b.is_anomaly").alias("batch_flag"),
        F.col("s.is_anomaly").alias("stream_flag"),
    ).collect()
    missing = [r for r in rows if r.stream_score is None]
    # Only the windows the final watermark has not passed yet may be missing (the last half hour or so).
    assert len(missing) <= 2, f"{len(missing)} batch windows have no stream score"
    compared = [r for r in rows if r.stream_score is not None]
    assert len(compared) >= 1400
    assert all(r.batch_trips == r.stream_trips for r in compared)
    assert max(abs(r.batch_score - r.stream_score) for r in compared) < 1e-9
    assert [r.batch_flag for r in compared] == [r.stream_flag for r in compared]


def test_alerts_are_published_once_per_window_and_cover_the_labelled_episodes(scenario, spark):
    run, version, episodes = scenario["run"], scenario["version"], scenario["episodes"]
    alerts = spark.table(tables.table_name(run.namespace, tables.STREAM_ALERTS_TABLE)).collect()
    ids = [a.alert_id for a in alerts]
    assert ids and len(ids) == len(set(ids)), "an alert is repeated in stream_alerts"
    assert {a.model_version for a in alerts} == {version}
    published = run.read_topic("alerts")
    assert {key for key, _ in published} == set(ids)
    duplicates = len(published) - len({key for key, _ in published})
    print(f"alerts topic: {len(published)} messages, {len(set(ids))} alerts, {duplicates} republished after kill -9")
    sample = published[0][1]
    assert {"window_start", "window_end", "key", "score", "label", "explanation", "model_version"} <= set(sample)
    flagged = {a.bucket_start for a in alerts}
    batch_flags = {
        r.bucket_start
        for r in spark.table(tables.table_name(run.namespace, tables.SCORES_TABLE))
        .where("is_anomaly AND trips > 0")
        .select("bucket_start")
        .collect()
    }
    for episode in episodes:
        buckets = set(episode.bucket_starts(30))
        if buckets & batch_flags:  # the batch job found it: the stream must too
            assert buckets & flagged, f"episode {episode} was found by the batch job but not alerted"
    found = sum(1 for e in episodes if set(e.bucket_starts(30)) & flagged)
    print(f"episodes alerted: {found} of {len(episodes)}")
    assert found >= 1
