"""Per-event scoring: each event of the events topic scored as it arrives by a per-event model (trained in batch,
from the registry) -> one alert per anomalous event on the event-alerts topic; a malformed event -> the dead-letter
topic with its reason.

One stateless Kafka-to-Kafka query whose every output row is a (topic, key, value) message, run in one of three
modes (ScoringMode, one setting):
- real-time: Spark 4.1's real-time mode (long-running tasks, rows written as they arrive; reached through the
  JVM trigger, PySpark 4.1 has no argument for it); the model runs as native expressions (compiled trees);
- continuous: the older continuous-processing trigger, same native expressions;
- micro-batch: the fallback, micro-batches and the model in a pandas UDF (real-time mode refuses Python UDFs).
The model version is fixed for the life of the query and named in every alert; a newly promoted model is used
from the job's next start.

Guarantees: the source offsets are checkpointed, so a restart (kill -9 included) resumes where the last committed
batch or epoch ended: no event is lost. The Kafka sink is at least once: events of an uncommitted batch are scored
again after a crash and their alerts published again, with the same key (the event id) and the same content, so a
consumer that keeps one alert per key (EventAlertReader, the bench, the tests) sees each anomalous event once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import LongType, StringType, StructField, StructType

from anomaly_detection.event_features import FEATURE_SETS, feature_set_named
from anomaly_detection.event_models import EventModel
from taxi_anomaly.streaming.topics import DEAD_LETTERS, EVENT_ALERTS, EVENTS, GROUP_PREFIX

PROMOTED = "promoted"


class ScoringMode(str, Enum):
    REAL_TIME = "real-time"
    CONTINUOUS = "continuous"
    MICRO_BATCH = "micro-batch"

    @property
    def native(self) -> bool:
        """Whether the model runs as native expressions (else a pandas UDF)."""
        return self is not ScoringMode.MICRO_BATCH


# Measured lowest latency at 1 k events/s: continuous p50 0.18 s, real-time 2.0 s (its every batch plans the
# forest's expression again), micro-batch 2.1 s (bench/README.md "Per-event scoring latency").
DEFAULT_MODE = ScoringMode.CONTINUOUS

# The fields of one record of each feature set, as they arrive in an event's `record` object.
RECORD_SCHEMAS: dict[str, Callable[[], StructType]] = {name: fs.record_schema for name, fs in FEATURE_SETS.items()}


def record_schema_of(feature_set: str) -> StructType:
    try:
        return RECORD_SCHEMAS[feature_set]()
    except KeyError:
        raise ValueError(f"feature set {feature_set!r} has no event schema; known: {sorted(RECORD_SCHEMAS)}") from None


@dataclass(frozen=True)
class EventStreamArgs:
    """What one per-event scoring query reads, scores with and writes. Kafka logins come from the `kafka_options`
    given to start_query (the streaming role's connection)."""

    feature_set: str
    models_uri: str
    checkpoint_uri: str
    mode: ScoringMode = DEFAULT_MODE
    model_version: str = PROMOTED
    events_topic: str = EVENTS.name
    alerts_topic: str = EVENT_ALERTS.name
    dead_letters_topic: str = DEAD_LETTERS.name
    starting_offsets: str = "earliest"
    # Real-time mode: how long each batch runs before its checkpoint (Spark's minimum is 5 s); continuous: the
    # epoch interval; micro-batch: the trigger interval ("0 seconds": as fast as batches complete).
    interval: str = "10 seconds"
    group_id_prefix: str = GROUP_PREFIX["streaming"]


# parse_events' columns besides the record's fields.
ENVELOPE_COLUMNS = (
    "raw_value", "kafka_partition", "kafka_offset", "event_id", "seq", "source", "row", "produced_at_ms", "error",
)  # fmt: skip


def envelope_schema(record: StructType) -> StructType:
    return StructType(
        [
            StructField("event_id", StringType()),
            StructField("seq", LongType()),
            StructField("source", StringType()),
            StructField("row", LongType()),
            StructField("produced_at_ms", LongType()),
            StructField("record", record),
        ]
    )


def parse_events(kafka_rows: DataFrame, record: StructType, required: Sequence[str] | None = None) -> DataFrame:
    """Kafka rows -> one row per event: its envelope fields, its record's fields as columns, and `error` (null when
    the event is valid, else why not: not a JSON object, not an event, no event_id, no record, or which `required`
    record fields (default: all) are missing or not of their type). Stateless and UDF-free (allowed in real-time
    and continuous mode)."""
    required = [f.name for f in record.fields] if required is None else list(required)
    text = F.col("value").cast("string")
    parsed = kafka_rows.select(
        text.alias("raw_value"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.ltrim(F.substring(text, 1, 64)).startswith("{").alias("_is_object"),
        F.from_json(text, envelope_schema(record)).alias("_e"),
    ).select(
        "raw_value",
        "kafka_partition",
        "kafka_offset",
        "_is_object",
        *[F.col(f"_e.{name}").alias(name) for name in ("event_id", "seq", "source", "row", "produced_at_ms")],
        F.col("_e.record").isNull().alias("_no_record"),
        *[F.col(f"_e.record.{field.name}").alias(field.name) for field in record.fields],
    )
    # A field of the wrong type parses to null like a missing one: both are named.
    missing = F.concat_ws(", ", *[F.when(F.col(name).isNull(), F.lit(name)) for name in required])
    error = (
        F.when(~F.col("_is_object") | F.col("_is_object").isNull(), F.lit("not a JSON object"))
        .when(
            F.col("event_id").isNull() & F.col("seq").isNull() & F.col("produced_at_ms").isNull() & F.col("_no_record"),
            F.lit("not a JSON event: unparseable, or none of the event fields"),
        )
        .when(F.col("event_id").isNull() | (F.length("event_id") == 0), F.lit("no event_id"))
        .when(F.col("_no_record"), F.lit("no record object"))
        .when(missing != F.lit(""), F.concat(F.lit("record fields missing or not of their type: "), missing))
    )
    return parsed.withColumn("error", error).drop("_is_object", "_no_record")


def alert_value(model: EventModel, version: str, score: Column, top_features: Column) -> Column:
    """An alert as JSON: the event, its score against the model's threshold, the top features, the model."""
    return F.to_json(
        F.struct(
            "event_id",
            "source",
            "seq",
            "produced_at_ms",
            score.alias("score"),
            F.lit(float(model.threshold)).alias("threshold"),
            top_features.alias("top_features"),
            F.lit(model.feature_set).alias("feature_set"),
            F.lit(str(model.family.value)).alias("family"),
            F.lit(version).alias("model_version"),
            "kafka_partition",
            "kafka_offset",
        )
    )


def dead_letter_value() -> Column:
    """A dead letter as JSON: the reason, where the event was, and its text (as the trip stream writes them)."""
    return F.to_json(
        F.struct(
            F.col("error").alias("reason"),
            F.lit("event-scoring").alias("query"),
            "kafka_partition",
            "kafka_offset",
            "event_id",
            F.col("raw_value").alias("value"),
        )
    )


def filter_computed(frame: DataFrame, condition: Column) -> DataFrame:
    """`frame` where `condition`, evaluated on frame's computed columns. Spark's optimizer pushes a filter below a
    projection by substituting the projected expressions into it, unless one of them is non-deterministic: here
    that put the forest in the plan twice and a from_json call per record field (106 in all), and scoring ran at
    a third of its speed. The task's partition id is that non-deterministic column (a Generate would also stop
    it, but continuous processing refuses Generate)."""
    barrier = "_filter_barrier"
    guarded = frame.withColumn(barrier, F.spark_partition_id())
    return guarded.where((F.col(barrier) >= 0) & condition).drop(barrier)


def scored_messages(
    parsed: DataFrame, model: EventModel, version: str, alerts_topic: str, dead_letters_topic: str, native: bool
) -> DataFrame:
    """The query's output: (topic, key, value) for every anomalous valid event (the alert, key = event id) and
    every invalid one (the dead letter, key = dead:partition:offset); normal events write nothing."""
    # The inputs become plain columns first: an expression passed to the compiled trees is repeated at every split.
    envelope = [c for c in parsed.columns if c in ENVELOPE_COLUMNS]
    inputs = parsed.select(*envelope, *model.input_columns(parsed))
    features = list(model.features)
    score = model.score_column(features) if native else model.score_udf_column(features)
    invalid = F.col("error").isNotNull()
    scored = filter_computed(
        inputs.withColumn("_score", score), invalid | (F.col("_score") > F.lit(float(model.threshold)))
    )
    message = scored.select(
        F.when(invalid, F.lit(dead_letters_topic)).otherwise(F.lit(alerts_topic)).alias("topic"),
        F.when(invalid, F.concat_ws(":", F.lit("dead"), F.col("kafka_partition"), F.col("kafka_offset")))
        .otherwise(F.col("event_id"))
        .alias("key"),
        F.when(invalid, dead_letter_value())
        .otherwise(alert_value(model, version, F.col("_score"), model.top_features_column(features)))
        .alias("value"),
    )
    return message


def read_events(spark: SparkSession, args: EventStreamArgs, kafka_options: dict[str, str]) -> DataFrame:
    return (
        spark.readStream.format("kafka")
        .options(**kafka_options)
        .option("subscribe", args.events_topic)
        .option("startingOffsets", args.starting_offsets)
        .option("groupIdPrefix", args.group_id_prefix)
        .load()  # failOnDataLoss stays true: offsets gone (retention passed while the job was down) stop the query
    )


def start_query(
    spark: SparkSession, args: EventStreamArgs, kafka_options: dict[str, str], model: EventModel, version: str
) -> StreamingQuery:
    """Start the scoring query in `args.mode` from its checkpoint (a new one starts at `starting_offsets`)."""
    if model.feature_set != args.feature_set:
        raise ValueError(f"the model scores {model.feature_set!r} events, the query reads {args.feature_set!r}")
    # Compiled forests are slower with whole-stage code generation (compiled_trees: JIT and 64 KB limits).
    spark.conf.set("spark.sql.codegen.wholeStage", "false")
    required = feature_set_named(args.feature_set).required
    parsed = parse_events(read_events(spark, args, kafka_options), record_schema_of(args.feature_set), required)
    messages = scored_messages(
        parsed, model, version, args.alerts_topic, args.dead_letters_topic, native=args.mode.native
    )
    writer = (
        messages.writeStream.queryName(f"tap-event-scoring-{args.feature_set}")
        .format("kafka")
        .options(**kafka_options)
        .option("checkpointLocation", args.checkpoint_uri)
        .outputMode("update")
    )
    if args.mode is ScoringMode.REAL_TIME:
        jvm: Any = spark.sparkContext._jvm
        writer._jwrite.trigger(jvm.org.apache.spark.sql.streaming.Trigger.RealTime(args.interval))
        return writer._sq(writer._jwrite.start())
    if args.mode is ScoringMode.CONTINUOUS:
        return writer.trigger(continuous=args.interval).start()
    return writer.trigger(processingTime=args.interval).start()
