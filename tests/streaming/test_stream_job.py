"""The streaming job end to end on the real broker, MinIO, metastore and Spark: a generated month replayed into
Kafka, with bad events, a kill -9 of the job mid-stream, the broker restarted under the running job, a second
replay of the same events and a late event.

One scenario (it costs a model training and two job starts), checked from every side: the enriched table holds
each valid event exactly once, bad events are in the dead-letter topic with their reasons, the stream's window
scores equal the batch job's for the same month and model, alerts are not repeated and name the model.
"""

from __future__ import annotations

import json
import time

import pytest
from pyspark.sql import functions as F

from anomaly_detection import tables
from local_platform.services.stream import status_healthy
from taxi_anomaly.streaming.replay import producer_for, read_table, replay
from tests.streaming.scenario import TARGET, StreamScenario, wait_for

pytestmark = [pytest.mark.platform, pytest.mark.spark]

BAD_EVENTS = [
    b"not json at all",
    b'["an", "array"]',
    json.dumps({"something": "else", "schema": 2}).encode(),  # another schema: no event_id
    json.dumps({"event_id": "other-type", "seq": 1, "trip_type": "yellow", "trip": {}}).encode(),
    json.dumps({"event_id": "no-pickup", "seq": 2, "trip_type": "fhvhv", "trip": {"pickup_datetime": "soon"}}).encode(),
]


@pytest.fixture(scope="module")
def scenario(platform, spark, tmp_path_factory):
    run = StreamScenario(platform, spark, tmp_path_factory.mktemp("stream"))
    try:
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
        wait_for(lambda: (run.progress().get("counters") or {}).get("events_valid", 0) > 0, 300, "a first events batch")
        run.kill_job()  # kill -9 mid-stream: batches may be half done

        run.start_job()
        # The second half; the broker stopped and started again under the running job; then the whole month
        # again (every event a duplicate), then one event far too late.
        rest = replay(table.slice(half), producer, "fhvhv", source, trips_topic, first_row=half)
        wait_for(
            lambda: (run.progress().get("counters") or {}).get("events_valid", 0) > 0, 300, "a batch after restart"
        )
        kafka = platform.service("kafka")
        kafka.stop()
        time.sleep(5)
        kafka.start()
        producer = producer_for(run.roles["replay"])
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
        wait_for(run.caught_up, 600, "the stream job to process every message")
        assert status_healthy(run.status), "the job's status file must read as healthy (what make stream-up waits for)"
        assert rest.failed == 0
        assert run.process is not None and run.process.poll() is None, "the job must survive the broker restart"
        # Hot reload: a newly promoted model scores the next windows, without a restart.
        promoted_at = time.time()
        reloaded = run.promote_copy(version)
        replay(table, producer, "fhvhv", source, trips_topic, loop=True, first_pass=1, limit=table.num_rows)
        wait_for(run.caught_up, 600, "the stream job to process the pass after the promotion")
        yield {
            "run": run,
            "version": version,
            "reloaded": reloaded,
            "promoted_at": promoted_at,
            "table": table,
            "episodes": episodes,
        }
    finally:
        run.cleanup()  # also when the set-up failed half way: no topic or table left behind


def test_every_valid_event_is_stored_exactly_once_across_kill_and_replays(scenario, spark):
    run, table = scenario["run"], scenario["table"]
    stored = spark.table(tables.table_name(run.namespace, tables.STREAM_TRIPS_TABLE))
    counts = stored.agg(F.count(F.lit(1)), F.countDistinct("event_id")).first()
    pickups = table.column("pickup_datetime")
    # The month (replayed in two halves, then again whole: the same ids), the late event, and the pass after
    # the promotion (a later pass of the month: ids of its own).
    valid = 2 * (table.num_rows - pickups.null_count) + 1
    assert counts[0] == counts[1] == valid, f"rows {counts[0]}, distinct ids {counts[1]}, valid events {valid}"
    late = stored.where(F.col("event_id") == "late-one").count()
    assert late == 1, "an event older than the watermark is still kept in the enriched stream"


def test_bad_events_go_to_the_dead_letter_topic_with_their_reason(scenario):
    run, table = scenario["run"], scenario["table"]
    letters = run.read_topic("dead-letters")
    reasons = [letter["reason"] for _key, letter in letters]
    # A row without a pickup time is a dead letter each time it is replayed (the month goes in three times:
    # two halves, whole, and the pass after the promotion).
    no_pickup_rows = table.column("pickup_datetime").null_count
    assert reasons.count("not a JSON object") == 2
    assert reasons.count("no event_id") == 1
    assert reasons.count("trip_type yellow: this query scores fhvhv") == 1
    assert reasons.count("no pickup time, or not a timestamp") == 1 + 3 * no_pickup_rows
    assert len({key for key, _ in letters}) == len(letters), "a dead letter was published twice"


def test_stream_window_scores_equal_the_batch_job_for_the_same_month_and_model(scenario, spark):
    run, version = scenario["run"], scenario["version"]
    stream = spark.table(tables.table_name(run.namespace, tables.STREAM_SCORES_TABLE)).where(F.col("month") == TARGET)
    batch = spark.table(tables.table_name(run.namespace, tables.SCORES_TABLE)).where(
        (F.col("month") == TARGET) & (F.col("trips") > 0)
    )
    assert {r[0] for r in stream.select("model_version").distinct().collect()} == {version}
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
    assert {a.model_version for a in alerts if a.month == TARGET} == {version}
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


def test_a_newly_promoted_model_scores_the_next_windows_without_a_restart(scenario, spark):
    from datetime import UTC, datetime

    run, reloaded = scenario["run"], scenario["reloaded"]
    scores = spark.table(tables.table_name(run.namespace, tables.STREAM_SCORES_TABLE))
    # The job reads the pointer between micro-batches: windows closed in the first seconds after the promotion
    # (the next pass is replayed at once) may still be scored by the old model; later ones may not.
    seen = datetime.fromtimestamp(scenario["promoted_at"] + 5, tz=UTC)
    after = scores.where(F.col("window_closed_at") > seen)
    versions = {r[0] for r in after.select("model_version").distinct().collect()}
    assert after.count() > 100 and versions == {reloaded}, f"windows scored after the promotion: {versions}"
    alerts = spark.table(tables.table_name(run.namespace, tables.STREAM_ALERTS_TABLE))
    alerts = alerts.where((F.col("month") != TARGET) & (F.col("alerted_at") > seen))
    assert {r[0] for r in alerts.select("model_version").distinct().collect()} <= {reloaded}


def test_compaction_through_trino_bounds_the_file_count_of_a_streamed_table(scenario, spark):
    from taxi_anomaly.serving.trino_client import TrinoSettings
    from taxi_anomaly.streaming.maintenance import compact_table

    run = scenario["run"]
    platform = run.platform
    settings = TrinoSettings(
        host="127.0.0.1",
        port=platform.cfg.trino_port,
        user=platform.creds.trino_admin_user,
        password=platform.creds.trino_admin_password,
        verify=str(platform.service("trino").ca_file),
    )
    stored = spark.table(tables.table_name(run.namespace, tables.STREAM_TRIPS_TABLE))
    rows_before = stored.count()
    partitions = stored.select("trip_type", "month").distinct().count()
    connection = settings.connect()
    try:
        report = compact_table(connection, run.namespace, tables.STREAM_TRIPS_TABLE)
    finally:
        connection.close()
    print(f"compaction: {report.as_dict()}")
    assert report.files_before > partitions, "the stream should have left several small files per partition"
    assert report.files_after == partitions, "one file per partition after optimize"
    spark.sql(f"REFRESH TABLE {tables.table_name(run.namespace, tables.STREAM_TRIPS_TABLE)}")
    assert spark.table(tables.table_name(run.namespace, tables.STREAM_TRIPS_TABLE)).count() == rows_before
