"""The streaming job: trip events from Kafka -> validated trips (Iceberg) and 30-minute windows scored with the
promoted model as the watermark closes them -> alerts (Kafka topic + Iceberg table).

Three queries:
- `events` reads the trips topic, parses and validates every event. A malformed event, one of another schema
  or trip type, or one without a usable pickup time goes to the dead-letter topic with its reason; it never
  stops the query. Valid events are merged into stream_trips by event id (insert-only MERGE: a replayed or
  re-run batch adds nothing).
- `windows` reads the trips topic too: valid events, deduplicated by event id within the watermark, aggregated
  per key and event-time window with the batch job's own functions (windows.aggregate_trips / window_measures,
  features.build_features, job.scores_of). An event older than the watermark is not counted in any window
  (Spark drops it; the number is in the query's progress, `numRowsDroppedByWatermark`). Each closed window is
  scored with the model the promotion pointer names at that micro-batch (hot reload: a newly promoted model is
  used from the next batch on, and every alert names its model version). It writes no table: anomalous
  windows go to the alerts topic and every scored window to the window-scores topic, in one Kafka write, so
  that an alert waits for no Iceberg commit.
- `sink` reads the window-scores topic and merges the windows into stream_window_scores and the anomalous
  ones into stream_alerts (insert-only MERGEs on each row's identity).

Exactly once in the tables: Spark's checkpoint replays an unfinished batch with the same offsets and state, and
every table write is an insert-only MERGE on the row's identity, so a replay (or a window published twice)
changes nothing. The two topics the job writes are at least once: a crash after a Kafka write and before the
checkpoint commit publishes that batch again, with the same keys (alert_id; trip type, key and window).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from anomaly_detection import tables
from anomaly_detection.features import HOLIDAY_YEARS, build_features
from anomaly_detection.job import scores_of
from anomaly_detection.model import ModelBundle
from anomaly_detection.normalise import RECORD_FIELDS, normalise_records
from anomaly_detection.registry import ModelRegistry
from anomaly_detection.windows import aggregate_trips, dst_exposure, trip_key, window_measures
from taxi_anomaly.streaming.topics import ALERTS, DEAD_LETTERS, GROUP_PREFIX, QUERY_TOPICS, TRIPS, WINDOW_SCORES

log = logging.getLogger("anomaly_detection.streaming")

WINDOW_MINUTES = 30
PROMOTED = "promoted"

EVENT_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("seq", LongType()),
        StructField("trip_type", StringType()),
        StructField("source", StringType()),
        StructField("row", LongType()),
        StructField("produced_at_ms", LongType()),
        # The row, field names in lower case; fields outside RECORD_FIELDS are ignored. A struct instead of a map
        # with case-insensitive lookups: parse_events 31 k -> 40 k rows/s (2 cores, batch, 300 k fhvhv events).
        StructField("trip", StructType([StructField(name, StringType()) for name in RECORD_FIELDS])),
    ]
)
EVENT_COLUMNS = ("event_id", "seq", "source", "source_row", "kafka_partition", "kafka_offset", "produced_at")


@dataclass(frozen=True)
class StreamArgs:
    """What one streaming job scores and where it reads and writes. Kafka logins are not arguments: they come
    from the `kafka_options` given to start_queries (the streaming role's connection)."""

    trip_type: str
    granularity: str
    models_uri: str
    checkpoint_uri: str
    namespace: str = "taxi"
    zones_uri: str | None = None
    trips_topic: str = TRIPS.name
    alerts_topic: str = ALERTS.name
    dead_letters_topic: str = DEAD_LETTERS.name
    scores_topic: str = WINDOW_SCORES.name
    watermark: str = "10 minutes"
    trigger: str = "1 second"  # the windows query: how soon after the watermark a closed window is scored
    tables_trigger: str = "10 seconds"  # the events and sink queries: larger batches, fewer table commits
    model_version: str = PROMOTED
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = None
    group_id_prefix: str = GROUP_PREFIX["streaming"]


# Parsing and validation ---------------------------------------------------------------------------------------
def parse_events(kafka_rows: DataFrame, trip_type: str) -> DataFrame:
    """Kafka rows -> one row per event: the event's fields, its canonical trip columns, and `error` (null when
    the event is valid, else why not). Stateless: the same function serves the stream and tests on tiny frames."""
    text = F.col("value").cast("string")
    event = F.from_json(text, EVENT_SCHEMA)
    records = kafka_rows.select(
        text.alias("raw_value"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        # An object starts with "{" after any white space (a malformed one that does parses to nulls: "no
        # event_id"). Only the first characters are trimmed: trimming the whole value doubled the parse cost.
        F.ltrim(F.substring(text, 1, 64)).startswith("{").alias("_is_object"),
        event.alias("_e"),
    ).select(
        "raw_value",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "_is_object",
        F.col("_e.event_id").alias("event_id"),
        F.col("_e.seq").alias("seq"),
        F.col("_e.trip_type").alias("event_trip_type"),
        F.col("_e.source").alias("source"),
        F.col("_e.row").alias("source_row"),
        F.timestamp_millis(F.col("_e.produced_at_ms")).alias("produced_at"),
        F.col("_e.trip").alias("_trip"),
    )
    trips = normalise_records(records, "_trip", trip_type)
    error = (
        F.when(~F.col("_is_object"), F.lit("not a JSON object"))
        .when(F.col("event_id").isNull() | (F.length("event_id") == 0), F.lit("no event_id"))
        .when(F.col("event_trip_type").isNull(), F.lit("no trip_type"))
        .when(
            F.col("event_trip_type") != F.lit(trip_type),
            F.concat(F.lit("trip_type "), F.col("event_trip_type"), F.lit(f": this query scores {trip_type}")),
        )
        .when(F.col("raw_value").isNotNull() & F.col("pickup_at").isNull(), F.lit("no pickup time, or not a timestamp"))
    )
    return trips.withColumn("error", error).drop("_is_object")


def dead_letters(parsed: DataFrame) -> DataFrame:
    """Kafka rows (key, value) of the invalid events: the reason, where the event was, and its text."""
    value = F.to_json(
        F.struct(
            F.col("error").alias("reason"),
            "kafka_partition",
            "kafka_offset",
            F.col("kafka_timestamp").cast("string").alias("kafka_timestamp"),
            "event_id",
            F.col("raw_value").alias("value"),
        )
    )
    key = F.concat_ws(":", F.lit("dead"), F.col("kafka_partition"), F.col("kafka_offset"))
    return parsed.where(F.col("error").isNotNull()).select(key.alias("key"), value.alias("value"))


def valid_trips(parsed: DataFrame) -> DataFrame:
    """The valid events' trip rows, with the month of their pickup (stream_trips' columns)."""
    return parsed.where(F.col("error").isNull()).withColumn("month", F.date_format("pickup_at", "yyyy-MM"))


# Windows ------------------------------------------------------------------------------------------------------
def event_time(trips: DataFrame) -> Column:
    """The watermark's column: the pickup wall clock as a TIMESTAMP (the session time zone is UTC, so the cast
    keeps the wall-clock digits, and a window start cast back to TIMESTAMP_NTZ is the batch job's bucket)."""
    return F.col("pickup_at").cast("timestamp")


def window_sums(trips: DataFrame, granularity: str, zones: DataFrame | None, watermark: str) -> DataFrame:
    """Per (key, event-time window): the batch job's sums and counts; late events dropped by the watermark,
    duplicate event ids within it dropped."""
    timed = trips.withColumn("event_time", event_time(trips)).withWatermark("event_time", watermark)
    unique = timed.dropDuplicatesWithinWatermark(["event_id"])
    keyed = trip_key(unique, granularity, zones)
    return aggregate_trips(keyed, ["key", F.window("event_time", f"{WINDOW_MINUTES} minutes").alias("window")])


def closed_windows(sums: DataFrame, granularity: str) -> DataFrame:
    """window_sums rows (closed windows) -> the window table's columns, as the batch job computes them."""
    bucket = F.col("window.start").cast("timestamp_ntz")
    framed = sums.withColumns(
        {
            "bucket_start": bucket,
            "month": F.date_format(bucket, "yyyy-MM"),
            "exposure": dst_exposure(bucket, HOLIDAY_YEARS, WINDOW_MINUTES),
        }
    ).where(F.col("exposure") > 0)
    return window_measures(framed, granularity)


# The model, reloaded when the promotion pointer moves ------------------------------------------------------------
@dataclass
class PromotedModel:
    """The model to score with: a fixed version, or whatever the promotion pointer names at each batch."""

    registry: ModelRegistry
    trip_type: str
    granularity: str
    version: str = PROMOTED
    loaded: dict[str, tuple[ModelBundle, DataFrame]] = field(default_factory=dict)

    def current(self, spark: SparkSession) -> tuple[str, ModelBundle, DataFrame]:
        if self.version == PROMOTED:
            version = self.registry.promoted_version(self.trip_type, self.granularity)
        else:
            version = self.registry.resolve(self.trip_type, self.granularity, self.version)
        if version not in self.loaded:
            bundle, _meta = self.registry.load(self.trip_type, self.granularity, version)
            profile = bundle.profile_frame(spark).cache()
            for old_version, (_bundle, old_profile) in list(self.loaded.items()):
                old_profile.unpersist()
                del self.loaded[old_version]
            self.loaded[version] = (bundle, profile)
            log.info("scoring with model %s/%s %s", self.trip_type, self.granularity, version)
        bundle, profile = self.loaded[version]
        return version, bundle, profile


# What a window-scores message carries beyond stream_window_scores' columns: the threshold and the micro-batch
# (stream_alerts has both).
SCORED_EXTRA = StructType(
    [
        StructField("threshold", DoubleType()),
        StructField("batch_id", LongType()),
    ]
)


# A scored window's identity in stream_window_scores (and its Kafka key on the window-scores topic).
WINDOW_IDENTITY = ("trip_type", "granularity", "key", "bucket_start")


def alert_rows(scored: DataFrame) -> DataFrame:
    """stream_alerts rows of the anomalous scored windows; alert_id is stable for a window and model version,
    alerted_at is when the windows query scored the window."""
    identity = F.concat_ws(
        "|", "trip_type", "granularity", "key", F.col("bucket_start").cast("string"), "model_version"
    )
    return scored.where("is_anomaly").select(
        F.sha2(identity, 256).substr(1, 32).alias("alert_id"),
        "trip_type",
        "granularity",
        "month",
        "key",
        "bucket_start",
        "trips",
        "anomaly_score",
        "threshold",
        "top_features",
        "explanation",
        "model_version",
        "batch_id",
        F.col("window_closed_at").alias("alerted_at"),
    )


def alert_messages(alerts: DataFrame, topic: str) -> DataFrame:
    """The alerts topic's messages: key alert_id, value the alert as JSON (window end included)."""
    window_end = (F.col("bucket_start") + F.expr(f"INTERVAL {WINDOW_MINUTES} MINUTES")).cast("string")
    value = F.to_json(
        F.struct(
            "alert_id",
            "trip_type",
            "granularity",
            "key",
            F.col("bucket_start").cast("string").alias("window_start"),
            window_end.alias("window_end"),
            "trips",
            F.col("anomaly_score").alias("score"),
            "threshold",
            F.lit("anomaly").alias("label"),
            "explanation",
            "top_features",
            "model_version",
            F.col("alerted_at").cast("string").alias("alerted_at"),
        )
    )
    return alerts.select(F.lit(topic).alias("topic"), F.col("alert_id").alias("key"), value.alias("value"))


def score_messages(scored: DataFrame, topic: str) -> DataFrame:
    """The window-scores topic's messages: every scored window with the stream_window_scores columns and
    SCORED_EXTRA, as JSON; read back by `scores_from_messages`."""
    key = F.concat_ws("|", *[F.col(c).cast("string") for c in WINDOW_IDENTITY])
    return scored.select(F.lit(topic).alias("topic"), key.alias("key"), F.to_json(F.struct("*")).alias("value"))


def scores_from_messages(kafka_rows: DataFrame, scores_schema: StructType) -> DataFrame:
    """Window-scores messages -> scored windows (stream_window_scores columns and SCORED_EXTRA). Stateless;
    the sink drops the duplicates of each micro-batch (a window published twice after a crash)."""
    schema = StructType([*scores_schema.fields, *SCORED_EXTRA.fields])
    # The session time zone is UTC: the JSON text of a timestamp parses back to the same instant.
    return kafka_rows.select(F.from_json(F.col("value").cast("string"), schema).alias("w")).select("w.*")


# Table writes -------------------------------------------------------------------------------------------------
def merge_into(
    batch: DataFrame,
    target: str,
    on: tuple[str, ...],
    update: bool,
    prune: str | None = None,
    prune_range: str | None = None,
) -> None:
    """MERGE the batch into an Iceberg table on its identity columns: insert new rows, and (update=True)
    replace matched ones. `prune`: a partition column whose batch values bound the target scan; `prune_range`:
    a timestamp column whose batch min..max bounds it too (data files are skipped by their column statistics).
    Both must be functions of the identity (the same row always has the same values there)."""
    spark = batch.sparkSession
    columns = [f.name for f in spark.table(target).schema.fields]
    view = f"_merge_{abs(hash((target, time.monotonic_ns())))}"
    # A checkpointed (materialised, lineage-free) source: MERGE's rewrite over the batch's full plan trips
    # Spark 4.1's CollapseProject validation ("the plan was previously resolved and now became unresolved").
    source = batch.select(*columns).localCheckpoint(eager=True)
    source.createOrReplaceTempView(view)
    condition = " AND ".join(f"t.`{c}` = s.`{c}`" for c in on)
    if prune:
        values = [r[0] for r in source.select(prune).distinct().collect()]
        listed = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
        condition += f" AND t.`{prune}` IN ({listed})"
    if prune_range:
        bounds = source.agg(F.min(prune_range), F.max(prune_range)).first()
        low, high = (bounds[0], bounds[1]) if bounds is not None else (None, None)
        if low is not None:
            condition += f" AND t.`{prune_range}` BETWEEN TIMESTAMP_NTZ'{low}' AND TIMESTAMP_NTZ'{high}'"
    matched = "WHEN MATCHED THEN UPDATE SET * " if update else ""
    spark.sql(f"MERGE INTO {target} t USING {view} s ON {condition} {matched}WHEN NOT MATCHED THEN INSERT *")
    spark.catalog.dropTempView(view)


@dataclass
class StreamCounters:
    """What the job has done since it started (logged, and written to the status file)."""

    batches: dict[str, int] = field(default_factory=lambda: {"events": 0, "windows": 0, "sink": 0})
    events_valid: int = 0
    dead_letters: int = 0
    windows_scored: int = 0
    alerts: int = 0
    windows_stored: int = 0
    model_versions: list[str] = field(default_factory=list)


class StreamingJob:
    """The two queries and their micro-batch functions."""

    def __init__(self, spark: SparkSession, args: StreamArgs, kafka_options: dict[str, str]) -> None:
        self.spark = spark
        self.args = args
        self.kafka_options = kafka_options
        self.model = PromotedModel(
            ModelRegistry(spark, args.models_uri), args.trip_type, args.granularity, args.model_version
        )
        self.counters = StreamCounters()

    def table(self, name: str) -> str:
        return tables.table_name(self.args.namespace, name)

    def read_topic(self, topic: str) -> DataFrame:
        reader = (
            self.spark.readStream.format("kafka")
            .options(**self.kafka_options)
            .option("subscribe", topic)
            .option("startingOffsets", self.args.starting_offsets)
            .option("groupIdPrefix", self.args.group_id_prefix)
            .option("failOnDataLoss", "false")
        )
        if self.args.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(self.args.max_offsets_per_trigger))
        return reader.load()

    def source(self) -> DataFrame:
        return parse_events(self.read_topic(self.args.trips_topic), self.args.trip_type)

    def source_topics(self) -> dict[str, str]:
        """Query name -> the topic it reads (for its progress and lag): the contract's, as named in the args."""
        named = {TRIPS.name: self.args.trips_topic, WINDOW_SCORES.name: self.args.scores_topic}
        return {query: named[topic] for query, topic in QUERY_TOPICS.items()}

    def zones(self) -> DataFrame | None:
        if not self.args.zones_uri:
            return None
        return self.spark.read.option("header", True).csv(self.args.zones_uri).cache()

    def publish(self, messages: DataFrame) -> None:
        """Write (topic, key, value) rows to Kafka."""
        messages.write.format("kafka").options(**self.kafka_options).save()

    # micro-batches ------------------------------------------------------------------------------------------
    def write_events(self, batch: DataFrame, batch_id: int) -> None:
        batch = batch.persist()
        try:
            counts = {r[0]: r[1] for r in batch.groupBy(F.col("error").isNull()).count().collect()}
            n_valid, n_dead = counts.get(True, 0), counts.get(False, 0)
            if n_dead:
                self.publish(dead_letters(batch).withColumn("topic", F.lit(self.args.dead_letters_topic)))
            if n_valid:
                trips = valid_trips(batch).dropDuplicates(["event_id"]).withColumn("ingested_at", F.current_timestamp())
                merge_into(
                    trips,
                    self.table(tables.STREAM_TRIPS_TABLE),
                    ("event_id",),
                    update=False,
                    prune="month",
                    prune_range="pickup_at",
                )
            self.counters.events_valid += n_valid
            self.counters.dead_letters += n_dead
            self.counters.batches["events"] += 1
            log.info("events batch %d: %d valid, %d dead letters", batch_id, n_valid, n_dead)
        finally:
            batch.unpersist()

    def score_windows(self, sums: DataFrame, batch_id: int) -> None:
        spark = sums.sparkSession
        windows = closed_windows(sums, self.args.granularity).persist()
        try:
            if windows.isEmpty():
                return
            version, bundle, profile = self.model.current(spark)
            features = build_features(windows, profile, with_lags=False)
            features = features.withColumn("trip_type", F.lit(self.args.trip_type))
            scored = scores_of(features, bundle, version, f"stream:{batch_id}").withColumns(
                {
                    "window_closed_at": F.current_timestamp(),
                    "threshold": F.lit(bundle.detector.threshold),
                    "batch_id": F.lit(batch_id).cast("long"),
                }
            )
            scored = scored.localCheckpoint(eager=True)
            alerts = alert_rows(scored)
            self.publish(
                alert_messages(alerts, self.args.alerts_topic).unionByName(
                    score_messages(scored, self.args.scores_topic)
                )
            )
            n_windows, n_alerts = scored.count(), alerts.count()
            self.counters.windows_scored += n_windows
            self.counters.alerts += n_alerts
            self.counters.batches["windows"] += 1
            if version not in self.counters.model_versions:
                self.counters.model_versions.append(version)
            log.info("windows batch %d: %d windows scored, %d alerts, model %s", batch_id, n_windows, n_alerts, version)
        finally:
            windows.unpersist()

    def store_scores(self, batch: DataFrame, batch_id: int) -> None:
        """The sink: scored windows from the window-scores topic into stream_window_scores and stream_alerts."""
        scored = batch.dropDuplicates(list(WINDOW_IDENTITY)).localCheckpoint(eager=True)
        n_windows = scored.count()
        if not n_windows:
            return
        alerts = alert_rows(scored)
        if not alerts.isEmpty():
            merge_into(alerts, self.table(tables.STREAM_ALERTS_TABLE), ("alert_id",), update=False)
        # Insert only: a window closes once, so a row already there is this window's row published again.
        merge_into(scored, self.table(tables.STREAM_SCORES_TABLE), WINDOW_IDENTITY, update=False, prune="month")
        self.counters.windows_stored += n_windows
        self.counters.batches["sink"] += 1
        log.info("sink batch %d: %d windows stored", batch_id, n_windows)

    # queries ------------------------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Create the tables, check a model can be loaded, start the three queries; return them by name."""
        tables.ensure_tables(self.spark, self.args.namespace, tables.STREAM_TABLE_DDL)
        self.model.current(self.spark)  # fail at start, naming the pointer, rather than in the first batch
        checkpoint = self.args.checkpoint_uri.rstrip("/")
        events = self.source()
        queries = {
            "events": events.writeStream.queryName("tap-stream-events")
            .foreachBatch(self.write_events)
            .option("checkpointLocation", f"{checkpoint}/events")
            .trigger(processingTime=self.args.tables_trigger)
            .start(),
            "windows": window_sums(valid_trips(events), self.args.granularity, self.zones(), self.args.watermark)
            .writeStream.queryName("tap-stream-windows")
            .outputMode("append")
            .foreachBatch(self.score_windows)
            .option("checkpointLocation", f"{checkpoint}/windows")
            .trigger(processingTime=self.args.trigger)
            .start(),
            "sink": scores_from_messages(
                self.read_topic(self.args.scores_topic), self.spark.table(self.table(tables.STREAM_SCORES_TABLE)).schema
            )
            .writeStream.queryName("tap-stream-sink")
            .foreachBatch(self.store_scores)
            .option("checkpointLocation", f"{checkpoint}/sink")
            .trigger(processingTime=self.args.tables_trigger)
            .start(),
        }
        return queries
