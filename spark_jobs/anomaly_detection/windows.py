"""Aggregate canonical trips into complete 30-minute windows per city, borough or zone (native Spark)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import reduce
from zoneinfo import ZoneInfo

from pyspark.sql import Column, DataFrame, SparkSession
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


def _ntz(moment: datetime) -> Column:
    return F.lit(moment.isoformat(sep=" ")).cast("timestamp_ntz")


def _dst_exposures(start: datetime, end: datetime, minutes: int) -> dict[datetime, int]:
    """The buckets in [start, end) whose exposure is not 1: 0 if skipped, 2 if repeated by a DST change."""
    exposures = {}
    bucket = start
    while bucket < end:
        earlier = bucket.replace(tzinfo=NEW_YORK, fold=0).utcoffset() or timedelta(0)
        later = bucket.replace(tzinfo=NEW_YORK, fold=1).utcoffset() or timedelta(0)
        if earlier != later:
            exposures[bucket] = 2 if earlier > later else 0
        bucket += timedelta(minutes=minutes)
    return exposures


def bucket_grid(spark: SparkSession, months: list[str], minutes: int = 30) -> DataFrame:
    """Every wall-clock bucket of the months with its exposure: how many real `minutes`-long periods it covers.

    TLC timestamps are New York wall-clock time without zone. On the spring-forward day 02:00–03:00 never
    happens (those buckets are left out); on the fall-back day 01:00–02:00 happens twice (exposure 2), so a
    rate per real half-hour stays comparable across the year. Generated natively (no Python rows, so no
    Python worker next to the raw scan).
    """
    frames = []
    for month in sorted(set(months)):
        start, end = _month_bounds(month)
        step = F.expr(f"INTERVAL {minutes} MINUTES")
        buckets = F.explode(F.sequence(_ntz(start), _ntz(end - timedelta(minutes=minutes)), step))
        exposure = F.lit(1)
        for bucket, value in _dst_exposures(start, end, minutes).items():
            exposure = F.when(F.col("bucket_start") == _ntz(bucket), value).otherwise(exposure)
        frame = spark.range(1).select(buckets.alias("bucket_start"))
        frame = frame.select("bucket_start", F.lit(month).alias("month"), exposure.cast("int").alias("exposure"))
        frames.append(frame.where(F.col("exposure") > 0))
    return reduce(DataFrame.unionByName, frames)


def bucket_start(ts_col: str, minutes: int = 30) -> Column:
    """Start of the `minutes` bucket containing a TIMESTAMP_NTZ column: integer arithmetic on the wall clock,
    no time-zone conversion per row (casting to TIMESTAMP and back cost ~0.25 µs a row)."""
    return F.window(ts_col, f"{minutes} minutes").start


def _trip_values() -> dict[str, Column]:
    """Per-trip values summed and counted per window; null (so ignored) where implausible."""
    fare, pay, distance, duration = (
        F.col(c) for c in ("fare_amount", "driver_pay", "trip_distance", "trip_duration_s")
    )
    return {
        "fare": F.when(fare.between(0, 1000), fare),
        "driver_pay": F.when(pay.between(0, 1000), pay),
        "distance": F.when((distance > 0) & (distance < 200), distance),
        "duration": F.when(duration.between(1, 6 * 3600), duration),
        "airport": F.col("is_airport").cast("int"),
        "shared": F.col("is_shared").cast("int"),
    }


def aggregate_trips(df: DataFrame, group: list[str | Column]) -> DataFrame:
    """Count, and sum + non-null count of every measure, per group (one pass over the trips)."""
    # sum + count is what avg keeps internally: the means computed from them later are the same numbers.
    measures = [
        agg
        for name, value in _trip_values().items()
        for agg in (F.sum(value).alias(f"{name}_sum"), F.count(value).alias(f"{name}_n"))
    ]
    return df.groupBy(*group).agg(F.count(F.lit(1)).alias("trips"), *measures)


def _reaggregate(partial: DataFrame, group: list[str]) -> DataFrame:
    """Merge partial sums and counts into coarser groups (zones into boroughs)."""
    columns = [c for c in partial.columns if c == "trips" or c.endswith(("_sum", "_n"))]
    return partial.groupBy(*group).agg(*[F.sum(c).alias(c) for c in columns])


def keyed_sums(trips: DataFrame, granularity: str, zones: DataFrame | None, minutes: int = 30) -> DataFrame:
    """Sums and counts per (key, bucket_start): 'NYC' for city, the pickup zone id as a string, or the pickup
    borough. The trips are grouped on integers (the zone id), and keys are derived on the small result."""
    bucket = bucket_start("pickup_at", minutes).alias("bucket_start")
    if granularity == "city":
        return aggregate_trips(trips, [bucket]).withColumn("key", F.lit(CITY_KEY))
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    by_zone = aggregate_trips(trips, ["pu_location_id", bucket])
    if granularity == "zone":
        return by_zone.withColumn("key", F.coalesce(F.col("pu_location_id").cast("string"), F.lit("unknown")))
    if zones is None:
        raise ValueError("granularity 'borough' needs the zone lookup")
    lookup = zones.select(F.col("LocationID").cast("int").alias("pu_location_id"), F.col("Borough").alias("borough"))
    joined = by_zone.join(F.broadcast(lookup), "pu_location_id", "left")
    keyed = joined.withColumn("key", F.coalesce(F.col("borough"), F.lit("Unknown")))
    return _reaggregate(keyed, ["key", "bucket_start"])


def all_keys(spark: SparkSession, granularity: str, zones: DataFrame | None) -> DataFrame:
    if granularity == "city":
        return spark.range(1).select(F.lit(CITY_KEY).alias("key"))
    if granularity == "zone" and zones is None:  # the TLC's taxi zones are numbered 1..263
        return spark.range(1, 264).select(F.col("id").cast("string").alias("key"))
    if zones is None:
        raise ValueError(f"granularity {granularity!r} needs the zone lookup")
    if granularity == "borough":
        return zones.select(F.col("Borough").alias("key")).distinct()
    return zones.select(F.col("LocationID").cast("string").alias("key")).distinct()


def _mean(name: str) -> Column:
    return F.when(F.col(f"{name}_n") > 0, F.col(f"{name}_sum") / F.col(f"{name}_n"))


def window_measures(sums: DataFrame, granularity: str) -> DataFrame:
    """The window table's columns from per-(key, bucket) sums and counts (`aggregate_trips`'s output with `key`,
    `bucket_start`, `month` and `exposure`; `trips` null where no trip started). Shared by the batch job and
    the streaming job, so a window's measures are the same numbers in both."""
    trip_count = F.coalesce(F.col("trips"), F.lit(0)).cast("long")
    return sums.select(
        F.lit(granularity).alias("granularity"),
        "key",
        "bucket_start",
        "month",
        "exposure",
        trip_count.alias("trips"),
        (trip_count / F.col("exposure")).alias("rate"),
        _mean("fare").alias("fare_mean"),
        F.coalesce(F.col("fare_sum"), F.lit(0.0)).alias("fare_total"),
        _mean("driver_pay").alias("driver_pay_mean"),
        F.coalesce(F.col("driver_pay_sum"), F.lit(0.0)).alias("driver_pay_total"),
        _mean("distance").alias("distance_mean"),
        _mean("duration").alias("duration_mean"),
        _mean("airport").alias("airport_share"),
        _mean("shared").alias("shared_share"),
    )


def aggregate_windows(
    trips: DataFrame, months: list[str], granularity: str, zones: DataFrame | None = None, minutes: int = 30
) -> DataFrame:
    """One row per (key, bucket) over the whole grid of the months, zero-filled where no trip started.

    Trips whose pickup falls outside the months (real files contain some) are not counted. The raw trips are
    read in one aggregation pass; the grid is joined to its small result.
    """
    spark = trips.sparkSession
    first, _ = _month_bounds(min(months))
    _, last = _month_bounds(max(months))
    in_range = trips.where((F.col("pickup_at") >= F.lit(first)) & (F.col("pickup_at") < F.lit(last)))
    sums = keyed_sums(in_range, granularity, zones, minutes)
    grid = all_keys(spark, granularity, zones).crossJoin(F.broadcast(bucket_grid(spark, months, minutes)))
    return window_measures(grid.join(sums, ["key", "bucket_start"], "left"), granularity)


def trip_key(trips: DataFrame, granularity: str, zones: DataFrame | None) -> DataFrame:
    """Each trip with the `key` of its window: the same keys as keyed_sums (which groups zones first, for
    speed, where the data is at rest); used where trips arrive one by one (the stream)."""
    if granularity == "city":
        return trips.withColumn("key", F.lit(CITY_KEY))
    if granularity == "zone":
        return trips.withColumn("key", F.coalesce(F.col("pu_location_id").cast("string"), F.lit("unknown")))
    if granularity != "borough":
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    if zones is None:
        raise ValueError("granularity 'borough' needs the zone lookup")
    lookup = zones.select(F.col("LocationID").cast("int").alias("pu_location_id"), F.col("Borough").alias("borough"))
    joined = trips.join(F.broadcast(lookup), "pu_location_id", "left")
    return joined.withColumn("key", F.coalesce(F.col("borough"), F.lit("Unknown"))).drop("borough")


def dst_exposure(bucket: Column, years: range, minutes: int = 30) -> Column:
    """The exposure of a wall-clock bucket without a grid: 2 in the repeated fall-back hour, 0 in the skipped
    spring-forward hour, else 1 (US rules since 2007: second Sunday of March, first Sunday of November)."""
    repeated: list[str] = []
    skipped: list[str] = []
    for year in years:
        for first_day, last_day in (
            (datetime(year, 3, 8), datetime(year, 3, 15)),
            (datetime(year, 11, 1), datetime(year, 11, 8)),
        ):
            for moment, value in _dst_exposures(first_day, last_day, minutes).items():
                (repeated if value == 2 else skipped).append(moment.isoformat(sep=" "))
    as_text = bucket.cast("string")
    return F.when(as_text.isin(repeated), 2).when(as_text.isin(skipped), 0).otherwise(1).cast("int")
