"""The real-time path's pieces on tiny inputs: replay pacing and events, the stream's parsing and windows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from taxi_anomaly.streaming.progress import LagReport, check_stream
from taxi_anomaly.streaming.replay import ReplayError, TokenBucket, event_id, pickup_column, replay, trip_events
from taxi_anomaly.streaming.topics import EVENT_FIELDS


def _trips(n: int = 5) -> pa.Table:
    start = datetime(2024, 4, 1, 8, 0)
    pickups = [start + timedelta(minutes=7 * ((i * 3) % n)) for i in range(n)]  # not in order
    return pa.table(
        {
            "hvfhs_license_num": ["HV0003"] * n,
            "pickup_datetime": pa.array(pickups, pa.timestamp("us")),
            "PULocationID": list(range(1, n + 1)),
            "trip_miles": [1.5] * n,
            "base_passenger_fare": [12.0] * n,
        }
    ).sort_by([("pickup_datetime", "ascending")])


class RecordingProducer:
    """Stands in for confluent_kafka.Producer in unit tests (the real broker is used in test_stream_job.py)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.callbacks = []

    def produce(self, topic, key, value, on_delivery=None):
        self.messages.append((topic, key, value))
        self.callbacks.append(on_delivery)

    def poll(self, _timeout=0):
        for callback in self.callbacks:
            callback(None, None)
        self.callbacks.clear()

    def flush(self, _timeout=0):
        self.poll()
        return 0


def test_token_bucket_paces_to_the_rate():
    now = [0.0]
    bucket = TokenBucket(100.0, burst=10, clock=lambda: now[0])
    waited = 0.0
    for _ in range(1000):
        pause = bucket.wait_time()
        waited += pause
        now[0] += pause
    # 1000 events at 100/s, the first 10 from the initial burst: 9.9 s of waiting.
    assert waited == pytest.approx(9.9, abs=0.02)
    with pytest.raises(ValueError, match="rate must be > 0"):
        TokenBucket(0)


def test_event_ids_are_stable_for_a_row_and_differ_across_loop_passes():
    assert event_id("s3://b/k.parquet", 7) == event_id("s3://b/k.parquet", 7)
    assert event_id("s3://b/k.parquet", 7) != event_id("s3://b/k.parquet", 8)
    assert event_id("s3://b/k.parquet", 7, loop_pass=1) != event_id("s3://b/k.parquet", 7)


def test_trip_events_carry_the_contract_fields_in_pickup_order():
    events = list(trip_events(_trips(), "fhvhv", "src"))
    assert [seq for _id, seq, _e, _p in events] == [0, 1, 2, 3, 4]
    pickups = [p for *_rest, p in events]
    assert pickups == sorted(pickups) and pickups[0] == "2024-04-01 08:00:00.000000"
    _id, _seq, event, _pickup = events[0]
    assert tuple(event) == EVENT_FIELDS
    assert event["trip"]["pulocationid"] in range(1, 6) and event["trip"]["trip_miles"] == 1.5
    assert event["source"] == "src" and event["row"] == 0


def test_replay_produces_every_row_once_per_pass_keyed_by_event_id():
    producer = RecordingProducer()
    stats = replay(_trips(), producer, "fhvhv", "src", "topic-x")
    assert stats.produced == 5 and stats.failed == 0
    keys = [key.decode() for _t, key, _v in producer.messages]
    assert keys == [json.loads(v)["event_id"] for _t, _k, v in producer.messages]
    assert len(set(keys)) == 5 and {t for t, _k, _v in producer.messages} == {"topic-x"}

    looped = RecordingProducer()
    stats = replay(_trips(), looped, "fhvhv", "src", "topic-x", loop=True, limit=12)
    assert stats.produced == 12 and stats.passes == 3
    events = [json.loads(v) for _t, _k, v in looped.messages]
    assert len({e["event_id"] for e in events}) == 12, "each pass has ids of its own"
    # The second pass is shifted by whole weeks: same weekday and time of day, later date.
    first, second = events[0]["trip"]["pickup_datetime"], events[5]["trip"]["pickup_datetime"]
    shift = datetime.fromisoformat(second) - datetime.fromisoformat(first)
    assert shift.days % 7 == 0 and shift.days > 0 and shift.seconds == 0


def test_a_file_without_a_pickup_column_is_refused_by_name():
    with pytest.raises(ReplayError, match="no pickup timestamp column"):
        pickup_column(["fare", "distance"])
    assert pickup_column(["VendorID", "tpep_pickup_datetime"]) == "tpep_pickup_datetime"
    assert pickup_column(["Trip_Pickup_DateTime"]) == "Trip_Pickup_DateTime"


def test_stream_health_fails_on_silence_and_on_lag():
    now = datetime.now().timestamp()
    fresh = LagReport("g", "t", {0: 100, 1: 50}, {0: 90, 1: 50}, now - 5)
    assert fresh.lag == 10
    assert "10 events behind" in check_stream(fresh, max_lag=100, max_silence_s=60)
    with pytest.raises(RuntimeError, match="10 events behind"):
        check_stream(fresh, max_lag=5, max_silence_s=60)
    with pytest.raises(RuntimeError, match="s ago"):
        check_stream(LagReport("g", "t", {0: 1}, {0: 1}, now - 600), max_lag=100, max_silence_s=60)
    with pytest.raises(RuntimeError, match="no progress ever committed"):
        check_stream(LagReport("g", "t", {0: 1}, {}, None), max_lag=100, max_silence_s=60)


# Spark: parsing and windows on tiny frames ------------------------------------------------------------------
@pytest.mark.spark
def test_parse_events_names_what_is_wrong_with_each_bad_event(spark):
    from anomaly_detection.streaming import dead_letters, parse_events

    good = {"event_id": "a", "seq": 0, "trip_type": "fhvhv", "source": "s", "row": 0, "produced_at_ms": 1}
    values = [
        json.dumps({**good, "trip": {"pickup_datetime": "2024-04-01 08:00:00", "pulocationid": "5"}}),
        "not json",
        json.dumps({"other": "schema"}),
        json.dumps({**good, "event_id": "b", "trip_type": "green", "trip": {}}),
        json.dumps({**good, "event_id": "c", "trip": {"pickup_datetime": "soon"}}),
    ]
    rows = [(v.encode(), 0, i, datetime(2026, 1, 1)) for i, v in enumerate(values)]
    kafka = spark.createDataFrame(rows, "value binary, partition int, offset long, timestamp timestamp")
    parsed = {r.kafka_offset: r for r in parse_events(kafka, "fhvhv").collect()}
    assert parsed[0].error is None and parsed[0].pu_location_id == 5
    assert parsed[0].pickup_at == datetime(2024, 4, 1, 8, 0)
    assert parsed[1].error == "not a JSON object"
    assert parsed[2].error == "no event_id"
    assert parsed[3].error == "trip_type green: this query scores fhvhv"
    assert parsed[4].error == "no pickup time, or not a timestamp"
    letters = [json.loads(r.value) for r in dead_letters(parse_events(kafka, "fhvhv")).collect()]
    assert sorted(letter["kafka_offset"] for letter in letters) == [1, 2, 3, 4]
    assert {letter["value"] for letter in letters} >= {"not json"}


@pytest.mark.spark
def test_dst_exposure_matches_the_batch_grid(spark):
    from pyspark.sql import functions as F

    from anomaly_detection.windows import bucket_grid, dst_exposure

    grid = bucket_grid(spark, ["2024-03", "2024-11"])
    compared = grid.select("exposure", dst_exposure(F.col("bucket_start"), range(2024, 2025)).alias("derived"))
    assert compared.where("exposure != derived").count() == 0
    skipped = spark.sql("SELECT TIMESTAMP_NTZ'2024-03-10 02:30:00' AS b").select(
        dst_exposure(F.col("b"), range(2024, 2025))
    )
    assert skipped.first()[0] == 0


@pytest.mark.spark
def test_stream_windows_equal_the_batch_windows_of_the_same_trips(spark):
    from pyspark.sql import functions as F

    from anomaly_detection.streaming import closed_windows
    from anomaly_detection.windows import aggregate_trips, aggregate_windows, trip_key

    rows = [
        (datetime(2024, 11, 3, 1, 10), 3.0, 600.0, 20.0, 15.0, 132, False),
        (datetime(2024, 11, 3, 1, 20), 1.0, 300.0, 9.0, 7.0, 5, False),
        (datetime(2024, 11, 3, 9, 0), 2.0, 400.0, 11.0, 8.0, 5, True),
    ]
    schema = (
        "pickup_at timestamp_ntz, trip_distance double, trip_duration_s double, fare_amount double, "
        "driver_pay double, pu_location_id int, is_shared boolean"
    )
    trips = spark.createDataFrame(rows, schema).withColumn("is_airport", F.col("pu_location_id") == 132)
    batch = aggregate_windows(trips, ["2024-11"], "city").where("trips > 0")
    timed = trip_key(trips.withColumn("event_time", F.col("pickup_at").cast("timestamp")), "city", None)
    sums = aggregate_trips(timed, ["key", F.window("event_time", "30 minutes").alias("window")])
    stream = closed_windows(sums, "city")
    assert sorted(stream.columns) == sorted(batch.columns)
    left = sorted(tuple(r) for r in batch.select(*sorted(batch.columns)).collect())
    right = sorted(tuple(r) for r in stream.select(*sorted(batch.columns)).collect())
    assert left == right
    assert [r.exposure for r in stream.orderBy("bucket_start").collect()] == [2, 1]


def test_a_replay_in_slices_gives_the_ids_of_the_whole_file():
    table = _trips(6)
    whole, parts = RecordingProducer(), RecordingProducer()
    replay(table, whole, "fhvhv", "src", "t")
    replay(table.slice(0, 4), parts, "fhvhv", "src", "t")
    replay(table.slice(4), parts, "fhvhv", "src", "t", first_row=4)
    assert [k for _t, k, _v in whole.messages] == [k for _t, k, _v in parts.messages]


def test_the_stream_service_reads_the_demo_registry():
    from local_platform.config import PlatformConfig
    from taxi_anomaly.orchestration.locations import Locations

    cfg = PlatformConfig()
    assert cfg.stream_models_uri == Locations(prefix=cfg.stream_key_prefix).models_uri


def test_processed_offsets_read_the_query_progress_in_either_rendering():
    from taxi_anomaly.streaming.progress import processed_offsets

    progress = {"sources": [{"endOffset": {"tap.trips": {"0": 12, "1": 7}}}]}
    assert processed_offsets(progress, "tap.trips") == {0: 12, 1: 7}
    as_text = {"sources": [{"endOffset": json.dumps({"tap.trips": {"0": 3}})}]}
    assert processed_offsets(as_text, "tap.trips") == {0: 3}
    assert processed_offsets(None, "tap.trips") is None
    assert processed_offsets(progress, "other") is None
