"""Aggregate canonical trips into complete 30-minute windows per city, borough or zone (native Spark)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

GRANULARITIES = ("city", "borough", "zone")
CITY_KEY = "NYC"
NEW_YORK = ZoneInfo("America/New_York")

# Per-window measures. Money, distance and duration means ignore the obvious dirt (negative or absurd values).
MEASURES = (
    "trips",
    "rate",
    "fare_mean",
    "fare_total",
    "driver_pay_mean",
    "driver_pay_total",
    "distance_mean",
    "duration_mean",
    "airport_share",
    "shared_share",
)


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    start = datetime.strptime(month, "%Y-%m")
    end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, end


def bucket_grid(spark: SparkSession, months: list[str], minutes: int = 30) -> DataFrame:
    """Every wall-clock bucket of the months with its exposure: how many real `minutes`-long periods it covers.

    TLC timestamps are New York wall-clock time without zone. On the spring-forward day 02:00–03:00 never
    happens (those buckets are left out); on the fall-back day 01:00–02:00 happens twice (exposure 2), so a
    rate per real half-hour stays comparable across the year.
    """
    rows = []
    for month in sorted(set(months)):
        start, end = _month_bounds(month)
        bucket = start
        while bucket < end:
            earlier = bucket.replace(tzinfo=NEW_YORK, fold=0).utcoffset()
            later = bucket.replace(tzinfo=NEW_YORK, fold=1).utcoffset()
            exposure = 2 if earlier > later else (0 if earlier < later else 1)  # repeated / skipped / normal
            if exposure:
                rows.append((bucket, month, exposure))
            bucket += timedelta(minutes=minutes)
    return spark.createDataFrame(rows, "bucket_start TIMESTAMP_NTZ, month STRING, exposure INT")


def bucket_of(ts_col: str, minutes: int = 30):
    """Start of the `minutes` bucket containing a TIMESTAMP_NTZ column (wall-clock arithmetic)."""
    seconds = minutes * 60
    epoch = F.unix_timestamp(F.col(ts_col).cast("timestamp"))  # session time zone is UTC: wall clock preserved
    return F.timestamp_seconds(F.floor(epoch / seconds) * seconds).cast("timestamp_ntz")


def window_key(trips: DataFrame, granularity: str, zones: DataFrame | None) -> DataFrame:
    """Add the `key` column: 'NYC' for city, the pickup borough, or the pickup zone id as a string."""
    if granularity == "city":
        return trips.withColumn("key", F.lit(CITY_KEY))
    if granularity == "zone":
        return trips.withColumn("key", F.coalesce(F.col("pu_location_id").cast("string"), F.lit("unknown")))
    if granularity == "borough":
        if zones is None:
            raise ValueError("granularity 'borough' needs the zone lookup")
        lookup = zones.select(
            F.col("LocationID").cast("int").alias("pu_location_id"), F.col("Borough").alias("borough")
        )
        joined = trips.join(F.broadcast(lookup), "pu_location_id", "left")
        return joined.withColumn("key", F.coalesce(F.col("borough"), F.lit("Unknown"))).drop("borough")
    raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")


def all_keys(spark: SparkSession, granularity: str, zones: DataFrame | None) -> DataFrame:
    if granularity == "city":
        return spark.createDataFrame([(CITY_KEY,)], "key STRING")
    if granularity == "zone" and zones is None:  # the TLC's taxi zones are numbered 1..263
        return spark.range(1, 264).select(F.col("id").cast("string").alias("key"))
    if zones is None:
        raise ValueError(f"granularity {granularity!r} needs the zone lookup")
    if granularity == "borough":
        return zones.select(F.col("Borough").alias("key")).distinct()
    return zones.select(F.col("LocationID").cast("string").alias("key")).distinct()


def aggregate_windows(
    trips: DataFrame, months: list[str], granularity: str, zones: DataFrame | None = None, minutes: int = 30
) -> DataFrame:
    """One row per (key, bucket) over the whole grid of the months, zero-filled where no trip started.

    Trips whose pickup falls outside the months (real files contain some) are not counted.
    """
    spark = trips.sparkSession
    grid = bucket_grid(spark, months, minutes)
    first, _ = _month_bounds(min(months))
    _, last = _month_bounds(max(months))
    in_range = trips.where((F.col("pickup_at") >= F.lit(first)) & (F.col("pickup_at") < F.lit(last)))
    keyed = window_key(in_range, granularity, zones).withColumn("bucket_start", bucket_of("pickup_at", minutes))

    fare_ok = F.when(F.col("fare_amount").between(0, 1000), F.col("fare_amount"))
    pay_ok = F.when(F.col("driver_pay").between(0, 1000), F.col("driver_pay"))
    dist_ok = F.when((F.col("trip_distance") > 0) & (F.col("trip_distance") < 200), F.col("trip_distance"))
    dur_ok = F.when(F.col("trip_duration_s").between(1, 6 * 3600), F.col("trip_duration_s"))
    aggregated = keyed.groupBy("key", "bucket_start").agg(
        F.count(F.lit(1)).alias("trips"),
        F.avg(fare_ok).alias("fare_mean"),
        F.sum(fare_ok).alias("fare_total"),
        F.avg(pay_ok).alias("driver_pay_mean"),
        F.sum(pay_ok).alias("driver_pay_total"),
        F.avg(dist_ok).alias("distance_mean"),
        F.avg(dur_ok).alias("duration_mean"),
        F.avg(F.col("is_airport").cast("double")).alias("airport_share"),
        F.avg(F.col("is_shared").cast("double")).alias("shared_share"),
    )
    full = all_keys(spark, granularity, zones).crossJoin(F.broadcast(grid))
    return (
        full.join(aggregated, ["key", "bucket_start"], "left")
        .withColumn("trips", F.coalesce(F.col("trips"), F.lit(0)).cast("long"))
        .withColumn("fare_total", F.coalesce(F.col("fare_total"), F.lit(0.0)))
        .withColumn("driver_pay_total", F.coalesce(F.col("driver_pay_total"), F.lit(0.0)))
        .withColumn("rate", F.col("trips") / F.col("exposure"))
        .withColumn("granularity", F.lit(granularity))
        .select("granularity", "key", "bucket_start", "month", "exposure", *MEASURES)
    )
