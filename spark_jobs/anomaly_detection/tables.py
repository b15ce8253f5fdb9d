"""The job's Iceberg tables (schemas below are the documentation) and their atomic, idempotent writes.

Every write replaces exactly the partitions present in the new data in one Iceberg commit
(`overwritePartitions`): rerunning a month gives the same rows, never duplicates, and a run killed midway
leaves the previous snapshot visible, never half a month.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import reduce
from operator import and_
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from taxi_anomaly.layout import CATALOG, EVALUATIONS_TABLE, SCORES_TABLE, TRIALS_TABLE, TRIPS_TABLE, WINDOWS_TABLE

__all__ = ["CATALOG", "EVALUATIONS_TABLE", "SCORES_TABLE", "TRIALS_TABLE", "TRIPS_TABLE", "WINDOWS_TABLE"]

TABLE_DDL = {
    TRIPS_TABLE: """
        trip_type STRING NOT NULL COMMENT 'yellow | green | fhv | fhvhv',
        month STRING NOT NULL COMMENT 'YYYY-MM of the source file',
        pickup_at TIMESTAMP_NTZ COMMENT 'pickup, New York wall-clock time as published by TLC',
        dropoff_at TIMESTAMP_NTZ,
        pu_location_id INT COMMENT 'pickup taxi zone (taxi_zone_lookup LocationID)',
        do_location_id INT,
        trip_distance DOUBLE COMMENT 'miles',
        trip_duration_s DOUBLE COMMENT 'seconds',
        fare_amount DOUBLE COMMENT 'fare_amount (taxis) or base_passenger_fare (fhvhv)',
        driver_pay DOUBLE COMMENT 'fhvhv only',
        total_amount DOUBLE,
        is_airport BOOLEAN COMMENT 'airport fee charged or an airport zone at either end',
        is_shared BOOLEAN COMMENT 'fhvhv shared_match_flag = Y'
    """,
    WINDOWS_TABLE: """
        trip_type STRING NOT NULL, granularity STRING NOT NULL COMMENT 'city | borough | zone',
        month STRING NOT NULL, key STRING NOT NULL COMMENT 'NYC, a borough, or a zone id',
        bucket_start TIMESTAMP_NTZ NOT NULL COMMENT '30-minute window start, New York wall clock',
        exposure INT COMMENT 'real half-hours in the window (2 in the repeated DST hour)',
        trips BIGINT, rate DOUBLE COMMENT 'trips per real half-hour',
        fare_mean DOUBLE, fare_total DOUBLE, driver_pay_mean DOUBLE, driver_pay_total DOUBLE,
        distance_mean DOUBLE, duration_mean DOUBLE, airport_share DOUBLE, shared_share DOUBLE,
        hour INT, slot INT, weekday INT COMMENT 'Monday = 0', slot_sin DOUBLE, slot_cos DOUBLE,
        weekday_sin DOUBLE, weekday_cos DOUBLE, is_holiday BOOLEAN,
        rate_prev_day DOUBLE, rate_prev_week DOUBLE, rolling_rate_3h DOUBLE,
        d_prev_day DOUBLE, d_prev_week DOUBLE, d_rolling_3h DOUBLE,
        history_windows BIGINT COMMENT 'training windows behind the seasonal profile of this slot',
        z_log_rate DOUBLE COMMENT 'robust z of log trip rate vs the same weekday and slot',
        z_log_fare_per_mile DOUBLE, z_log_distance DOUBLE, z_log_speed DOUBLE, z_pay_share DOUBLE,
        z_airport_share DOUBLE, z_max_abs DOUBLE COMMENT 'largest |z| of the model signals',
        run_id STRING, computed_at TIMESTAMP
    """,
    SCORES_TABLE: """
        trip_type STRING NOT NULL, granularity STRING NOT NULL, month STRING NOT NULL,
        key STRING NOT NULL, bucket_start TIMESTAMP_NTZ NOT NULL,
        trips BIGINT, fare_mean DOUBLE, distance_mean DOUBLE, driver_pay_total DOUBLE,
        anomaly_score DOUBLE COMMENT 'higher = more anomalous (the detector family''s score)',
        is_anomaly BOOLEAN COMMENT 'anomaly_score above the model threshold',
        top_features ARRAY<STRING> COMMENT 'features furthest from normal, most first',
        explanation STRING COMMENT 'why the window was flagged (flagged windows only)',
        model_version STRING NOT NULL, run_id STRING NOT NULL, scored_at TIMESTAMP
    """,
}
# Columns of anomaly_scores copied from the window features (the rest come from scoring and the run).
SCORES_FROM_FEATURES = (
    "trip_type",
    "granularity",
    "month",
    "key",
    "bucket_start",
    "trips",
    "fare_mean",
    "distance_mean",
    "driver_pay_total",
)
# One row per model version, month and run: how the version did on a month it scored (written by score runs).
EVALUATIONS_DDL = """
    model_version STRING NOT NULL, family STRING, detector STRING COMMENT 'the model spec (include/models)',
    trip_type STRING NOT NULL, granularity STRING NOT NULL, month STRING NOT NULL,
    namespace STRING COMMENT 'where the scores were written', run_id STRING NOT NULL, evaluated_at TIMESTAMP,
    windows BIGINT, anomalies BIGINT, flagged_share DOUBLE,
    expected_share DOUBLE COMMENT 'share of its training windows the version flags',
    calibration_error DOUBLE COMMENT '|flagged_share - expected_share|',
    score_p50 DOUBLE, score_p90 DOUBLE, score_p99 DOUBLE, threshold DOUBLE,
    dead_zone_share DOUBLE COMMENT 'windows with every deviation inside the dead zone',
    labelled BOOLEAN COMMENT 'the month has labelled episodes; the fields below are set',
    bucket_precision DOUBLE COMMENT '(key, 30-minute bucket) pairs: flagged and under an episode / flagged',
    bucket_recall DOUBLE, bucket_f1 DOUBLE, episodes INT, episodes_found INT,
    recall_by_type MAP<STRING, DOUBLE> COMMENT 'share of the episodes of each type that were found'
"""
TABLE_DDL[EVALUATIONS_TABLE] = EVALUATIONS_DDL
# One row per tuning run, trial and fold (mode tune): what a (fit, threshold) of a spec's search space scored.
TRIALS_DDL = """
    run_id STRING NOT NULL, detector STRING NOT NULL, trip_type STRING NOT NULL, granularity STRING NOT NULL,
    trial INT NOT NULL, overrides STRING COMMENT 'the spec overrides of the trial (JSON)',
    month STRING NOT NULL COMMENT 'the fold: the labelled month scored',
    bucket_precision DOUBLE, bucket_recall DOUBLE, bucket_f1 DOUBLE, episodes INT, episodes_found INT,
    flagged INT, mean_bucket_f1 DOUBLE COMMENT 'over the run''s folds', every_episode_found BOOLEAN,
    fit_seconds DOUBLE, tuned_at TIMESTAMP
"""
PARTITIONS = {
    TRIPS_TABLE: "trip_type, month",
    WINDOWS_TABLE: "trip_type, granularity, month",
    SCORES_TABLE: "trip_type, granularity, month",
    EVALUATIONS_TABLE: "trip_type, granularity",
    TRIALS_TABLE: "trip_type, granularity",
}


# The streaming job's tables. stream_window_scores has anomaly_scores' columns (run_id is `stream:<batch id>`)
# plus when the window closed; the lag columns of window_features are not kept for the stream (they need the
# windows before each one, which a micro-batch does not hold; they are not model inputs).
STREAM_TRIPS_TABLE = "stream_trips"
STREAM_SCORES_TABLE = "stream_window_scores"
STREAM_ALERTS_TABLE = "stream_alerts"
STREAM_TABLE_DDL = {
    STREAM_TRIPS_TABLE: """
        event_id STRING NOT NULL COMMENT 'id given by the replay: source file and row (a second replay gives the same)',
        seq BIGINT COMMENT 'order of production within one replay',
        source STRING COMMENT 'file the event was replayed from', source_row BIGINT,
        kafka_partition INT, kafka_offset BIGINT,
        produced_at TIMESTAMP COMMENT 'when the replay produced the event', ingested_at TIMESTAMP,
    """
    + TABLE_DDL[TRIPS_TABLE],
    STREAM_SCORES_TABLE: TABLE_DDL[SCORES_TABLE] + ", window_closed_at TIMESTAMP COMMENT 'when the watermark passed'",
    STREAM_ALERTS_TABLE: """
        alert_id STRING NOT NULL COMMENT 'trip type, granularity, key, window and model version, hashed',
        trip_type STRING NOT NULL, granularity STRING NOT NULL, month STRING NOT NULL, key STRING NOT NULL,
        bucket_start TIMESTAMP_NTZ NOT NULL, trips BIGINT,
        anomaly_score DOUBLE, threshold DOUBLE, top_features ARRAY<STRING>, explanation STRING,
        model_version STRING NOT NULL, batch_id BIGINT, alerted_at TIMESTAMP
    """,
}
PARTITIONS.update(
    {
        STREAM_TRIPS_TABLE: "trip_type, month",
        STREAM_SCORES_TABLE: "trip_type, granularity, month",
        STREAM_ALERTS_TABLE: "trip_type, granularity",
    }
)
# What the batch job creates: its own tables and stream_alerts, which the dashboard reads (empty until the
# stream runs), so that the dashboard refresh after a batch run finds every table it shows.
SERVED_TABLE_DDL = {**TABLE_DDL, STREAM_ALERTS_TABLE: STREAM_TABLE_DDL[STREAM_ALERTS_TABLE]}


# Properties of every table ensure_tables creates. Parquet's dictionary of a column chunk stops at 64 KiB instead of
# Iceberg's 2 MiB: measures, features and scores are nearly all distinct doubles, whose dictionary was built up to
# 2 MiB and then dropped (measured: writing three months of zone window_features 7.2 -> 4.9 s, files 4 % smaller);
# keys, months and flags keep theirs.
TABLE_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "write.parquet.dict-size-bytes": str(64 * 1024),
}


def table_name(namespace: str, table: str) -> str:
    return f"{CATALOG}.{namespace}.{table}"


def ensure_tables(spark: SparkSession, namespace: str, ddl: dict[str, str] = TABLE_DDL) -> None:
    """Create the namespace and the tables of `ddl` (the batch job's by default) where missing, with
    TABLE_PROPERTIES; a table created before one of them was added gets it. The namespace is listed first:
    CREATE TABLE IF NOT EXISTS loads an existing table's metadata from the object store."""
    if namespace_exists(spark, namespace):
        existing = {row.tableName for row in spark.sql(f"SHOW TABLES IN {CATALOG}.{namespace}").collect()}
    else:
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{namespace}")
        existing = set()
    for table, columns in ddl.items():
        name = table_name(namespace, table)
        if table in existing:
            set_write_properties(spark, name)
            continue
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING iceberg PARTITIONED BY ({PARTITIONS[table]}) "
            f"TBLPROPERTIES ({_properties_sql(TABLE_PROPERTIES)})"
        )


def set_write_properties(spark: SparkSession, name: str) -> None:
    """Give an existing table the TABLE_PROPERTIES it lacks (one metadata commit, the first time only); the
    format version of a table is not changed."""
    current = {row.key: row.value for row in spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
    lacking = {k: v for k, v in TABLE_PROPERTIES.items() if k != "format-version" and current.get(k) != v}
    if lacking:
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ({_properties_sql(lacking)})")


def _properties_sql(properties: Mapping[str, str]) -> str:
    return ", ".join(f"'{key}'='{value}'" for key, value in properties.items())


def namespace_exists(spark: SparkSession, namespace: str) -> bool:
    return bool(spark.sql(f"SHOW NAMESPACES IN {CATALOG} LIKE '{namespace}'").take(1))


def drop_namespace(spark: SparkSession, namespace: str) -> None:
    """Drop the namespace with every table in it, their files purged (tests and benchmarks clean up with it)."""
    if not namespace_exists(spark, namespace):
        return
    for row in spark.sql(f"SHOW TABLES IN {CATALOG}.{namespace}").collect():
        spark.sql(f"DROP TABLE IF EXISTS {table_name(namespace, row.tableName)} PURGE")
    spark.sql(f"DROP NAMESPACE IF EXISTS {CATALOG}.{namespace}")


def upsert(
    spark: SparkSession,
    namespace: str,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    keys: tuple[str, ...],
    stamped: str,
) -> None:
    """Insert rows (column name -> value; missing columns null) with the commit time in column `stamped`,
    replacing rows with the same keys (one commit: a rerun leaves one row per key).

    Where no row of the table can share a key (the usual case: a run's keys include its run_id), the rows are
    appended: the check reads only the files whose partition and column bounds could hold the keys (Iceberg
    prunes the rest), where a MERGE scans the whole target (one-month city run, the bench's model_evaluations
    table of ~40 files: 2.6 s for check and append, 5.0 s for the MERGE). Only one writer writes a run's keys,
    so nothing can append the same keys between the check and the append."""
    if not rows:
        return
    target = table_name(namespace, table)
    existing = spark.table(target)
    schema = existing.schema
    frame = spark.createDataFrame([tuple(row.get(f.name) for f in schema.fields) for row in rows], schema)
    frame = frame.withColumn(stamped, F.current_timestamp())
    could_match = reduce(and_, [F.col(k).isin(sorted({row[k] for row in rows})) for k in keys])
    if not existing.where(could_match).take(1):
        frame.writeTo(target).append()
        return
    view = f"_upsert_{table}"
    frame.createOrReplaceTempView(view)
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    spark.sql(
        f"MERGE INTO {target} t USING {view} s ON {on} WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )


def replace_partitions(df: DataFrame, namespace: str, table: str) -> None:
    """Write df into the table, replacing the partitions it covers, atomically (one commit)."""
    target = table_name(namespace, table)
    columns = [f.name for f in df.sparkSession.table(target).schema.fields]
    df.select(*[F.col(c) for c in columns]).writeTo(target).overwritePartitions()
