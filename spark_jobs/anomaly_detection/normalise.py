"""Read raw TLC monthly parquet files and project them onto the job's canonical trip columns (native Spark)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from taxi_anomaly.ingest.schema import canonical_name, fold
from taxi_anomaly.tlc import TRIP_TYPES

# Airports in the zone lookup: Newark (1), JFK (132), LaGuardia (138).
AIRPORT_ZONES = (1, 132, 138)

# Canonical column -> raw names seen across trip types and years, first match wins (case-insensitive).
RAW_NAMES: dict[str, tuple[str, ...]] = {
    "pickup_at": ("pickup_datetime", "tpep_pickup_datetime", "lpep_pickup_datetime", "trip_pickup_datetime"),
    "dropoff_at": (
        "dropoff_datetime",
        "tpep_dropoff_datetime",
        "lpep_dropoff_datetime",
        "trip_dropoff_datetime",
        "dropoff_datetime",
    ),
    "pu_location_id": ("pulocationid",),
    "do_location_id": ("dolocationid",),
    "trip_distance": ("trip_distance", "trip_miles"),
    "trip_time_s": ("trip_time",),
    "fare_amount": ("fare_amount", "base_passenger_fare", "fare_amt"),
    "driver_pay": ("driver_pay",),
    "total_amount": ("total_amount", "total_amt"),
    "tip_amount": ("tip_amount", "tips", "tip_amt"),
    "airport_fee": ("airport_fee",),
    "shared_match_flag": ("shared_match_flag",),
}

CANONICAL_COLUMNS = (
    "trip_type",
    "pickup_at",
    "dropoff_at",
    "pu_location_id",
    "do_location_id",
    "trip_distance",
    "trip_duration_s",
    "fare_amount",
    "driver_pay",
    "total_amount",
    "is_airport",
    "is_shared",
    "tip_amount",
)


class InputDataError(ValueError):
    """Raw input that the job cannot use; the message names the file and the problem."""


def _find(df: DataFrame, canonical: str, trip_type: str) -> str | None:
    """The raw column of a job field: a RAW_NAMES name up to case, whitespace and separators, else a column the
    ingest normalisation maps to the same TLC column (snake_case zone ids, other spellings it knows)."""
    by_folded = {fold(c): c for c in df.columns}
    found = next((by_folded[fold(name)] for name in RAW_NAMES[canonical] if fold(name) in by_folded), None)
    if found is None and trip_type in TRIP_TYPES:
        wanted = {canonical_name(trip_type, name) for name in RAW_NAMES[canonical]} - {None}
        found = next((c for c in df.columns if canonical_name(trip_type, c) in wanted), None)
    return found


def _col_or_null(df: DataFrame, canonical: str, dtype: str, trip_type: str) -> Column:
    name = _find(df, canonical, trip_type)
    # try_cast: a value that does not parse (text in a typed column, a malformed timestamp in an event) is
    # null, so the row is judged like any other missing value instead of failing the whole job or stream.
    return F.col(f"`{name}`").try_cast(dtype) if name else F.lit(None).cast(dtype)


def normalise_trips(raw: DataFrame, trip_type: str, source: str = "input", keep: tuple[str, ...] = ()) -> DataFrame:
    """Project one raw monthly file onto CANONICAL_COLUMNS (after the `keep` columns, passed through as they
    are). Timestamps are tz-naive (TIMESTAMP_NTZ), as TLC's."""
    if _find(raw, "pickup_at", trip_type) is None:
        raise InputDataError(f"{source}: no pickup timestamp column among {sorted(raw.columns)}")
    pickup = _col_or_null(raw, "pickup_at", "timestamp_ntz", trip_type)
    dropoff = _col_or_null(raw, "dropoff_at", "timestamp_ntz", trip_type)
    pu = _col_or_null(raw, "pu_location_id", "int", trip_type)
    do = _col_or_null(raw, "do_location_id", "int", trip_type)
    # fhvhv publishes trip_time (dropoff - pickup to the second, never null in the published files); using it
    # alone spares the window aggregation a scan of the dropoff column. The other types take the difference.
    if _find(raw, "trip_time_s", trip_type):
        duration = _col_or_null(raw, "trip_time_s", "double", trip_type)
    else:
        duration = (F.unix_timestamp(dropoff.cast("timestamp")) - F.unix_timestamp(pickup.cast("timestamp"))).cast(
            "double"
        )
    airport_fee = _col_or_null(raw, "airport_fee", "double", trip_type)
    shared = _col_or_null(raw, "shared_match_flag", "string", trip_type)
    return raw.select(
        *[F.col(f"`{c}`") for c in keep],
        F.lit(trip_type).alias("trip_type"),
        pickup.alias("pickup_at"),
        dropoff.alias("dropoff_at"),
        pu.alias("pu_location_id"),
        do.alias("do_location_id"),
        _col_or_null(raw, "trip_distance", "double", trip_type).alias("trip_distance"),
        duration.alias("trip_duration_s"),
        _col_or_null(raw, "fare_amount", "double", trip_type).alias("fare_amount"),
        _col_or_null(raw, "driver_pay", "double", trip_type).alias("driver_pay"),
        _col_or_null(raw, "total_amount", "double", trip_type).alias("total_amount"),
        (F.coalesce(airport_fee, F.lit(0.0)) > 0) | pu.isin(*AIRPORT_ZONES) | do.isin(*AIRPORT_ZONES),
        F.coalesce(shared == F.lit("Y"), F.lit(False)),
        _col_or_null(raw, "tip_amount", "double", trip_type),
    ).toDF(*keep, *CANONICAL_COLUMNS)


# Every raw name a record may carry (the stream's `trip` struct has one text field per name).
RECORD_FIELDS = tuple(dict.fromkeys(name for names in RAW_NAMES.values() for name in names))


def normalise_records(records: DataFrame, struct_column: str, trip_type: str) -> DataFrame:
    """normalise_trips for rows that arrive as a struct of text fields named by the raw columns in lower case
    (the stream's `trip`, parsed with RECORD_FIELDS): one raw column per canonical field, the first of its raw
    names that is set; the other columns of `records` are kept beside the canonical ones. fhvhv is the only
    trip type that publishes trip_time, so only its records read a duration from it (the others take dropoff
    - pickup)."""
    kept = tuple(c for c in records.columns if c != struct_column)
    raw_columns = {}
    for canonical, names in RAW_NAMES.items():
        if canonical == "trip_time_s" and trip_type != "fhvhv":
            continue
        raw_columns[names[0]] = F.coalesce(*[F.col(f"{struct_column}.{name}") for name in names])
    raw = records.select(*kept, *[value.alias(name) for name, value in raw_columns.items()])
    return normalise_trips(raw, trip_type, source=f"events ({trip_type})", keep=kept)


def read_month(spark: SparkSession, path: str, trip_type: str) -> DataFrame:
    """Read one raw monthly parquet file and normalise it; a missing or unreadable file names its path."""
    try:
        raw = spark.read.parquet(path)
    except Exception as exc:  # Spark raises AnalysisException for missing paths, others for corrupt files
        raise InputDataError(f"{path}: cannot read as parquet ({type(exc).__name__}: {str(exc)[:300]})") from exc
    return normalise_trips(raw, trip_type, source=path)
