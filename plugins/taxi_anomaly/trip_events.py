"""The per-trip feature set ("trips"): the canonical trip columns a trip event carries and the features per-event
models read from them, natively in Spark and with numpy on the driver, both from the one set of formulas below.

- log_fare, log_distance, log_duration: slog(x) = sign(x) * ln(1 + |x|) of the fare, the miles and the seconds
  (a refund or a negative duration stays finite, and far from the usual trips);
- log_fare_per_mile = slog(fare / max(miles, 0.1)) and log_speed_mph = slog(miles / max(hours, 1 minute));
- tip_share = tip / max(|fare|, $1) and fees_share = (total - fare - tip) / max(|fare|, $1) (surcharges, taxes,
  tolls; a refund's are negative);
- zero_distance_fare: 1.0 where miles == 0 and fare > 0, else 0.0 (also where either is missing).

The floors keep every ratio finite: no division by zero, and a fare without distance shows as a fare per mile of
at least 10 x its fare. A feature is missing (null in Spark, NaN on the driver) only where one of its inputs is; the
trees route it as sklearn routes NaN (anomaly_detection.compiled_trees does the same natively). Floors rather than
missing ratios, because a tree routes a value missing in training to the larger side, and sees nothing unusual there
(measured on a generated yellow month: a fault-free ranking AUC of 0.63 with missing ratios).

fhv records carry neither fare nor distance: the feature set refuses them (`check_trip_type`). fhvhv records have no
total_amount: their fees_share is always missing, so the trees never split on it for fhvhv.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column
    from pyspark.sql.types import StructType

FEATURE_SET = "trips"  # the registry's name (its trip_type) for per-event models of trips
# The canonical columns (anomaly_detection.normalise) a trip event's record carries; the first three are required.
RECORD_COLUMNS = ("trip_distance", "trip_duration_s", "fare_amount", "tip_amount", "total_amount")
REQUIRED_COLUMNS = RECORD_COLUMNS[:3]
FEATURES = (
    "log_fare", "log_distance", "log_duration", "log_fare_per_mile", "log_speed_mph", "tip_share", "fees_share",
    "zero_distance_fare",
)  # fmt: skip
TRIP_TYPES_WITHOUT_FARES = ("fhv",)


def check_trip_type(trip_type: str) -> str:
    """The trip type if its records carry the fares and distances the features need, else a ValueError naming it."""
    from taxi_anomaly.tlc import TRIP_TYPES

    if trip_type in TRIP_TYPES_WITHOUT_FARES:
        raise ValueError(
            f"trip_type {trip_type}: {trip_type} records carry no fare and no distance, which every {FEATURE_SET} "
            f"feature needs; use one of {', '.join(t for t in TRIP_TYPES if t not in TRIP_TYPES_WITHOUT_FARES)}"
        )
    if trip_type not in TRIP_TYPES:
        raise ValueError(f"trip_type {trip_type!r}: not a TLC trip type ({', '.join(TRIP_TYPES)})")
    return trip_type


MIN_MILES, MIN_SECONDS, MIN_FARE = 0.1, 60.0, 1.0  # the ratios' floors


def _formulas(column: Callable[[str], Any], ops: Any) -> dict[str, Any]:
    """The features from the record columns, with `ops` (_SparkOps or _NumpyOps) for everything but + - * / ."""
    miles, seconds, fare, tip, total = (column(name) for name in RECORD_COLUMNS)
    fare_scale = ops.at_least(ops.abs(fare), MIN_FARE)
    features = {
        "log_fare": ops.slog(fare),
        "log_distance": ops.slog(miles),
        "log_duration": ops.slog(seconds),
        "log_fare_per_mile": ops.slog(fare / ops.at_least(miles, MIN_MILES)),
        "log_speed_mph": ops.slog(miles * 3600.0 / ops.at_least(seconds, MIN_SECONDS)),
        "tip_share": tip / fare_scale,
        "fees_share": (total - fare - tip) / fare_scale,
        "zero_distance_fare": ops.flag((miles == 0.0) & (fare > 0.0)),
    }
    return {name: features[name] for name in FEATURES}


class _SparkOps:
    @staticmethod
    def slog(x: Column) -> Column:
        from pyspark.sql import functions as F

        return F.signum(x) * F.log1p(F.abs(x))

    @staticmethod
    def abs(x: Column) -> Column:
        from pyspark.sql import functions as F

        return F.abs(x)

    @staticmethod
    def at_least(x: Column, floor: float) -> Column:
        from pyspark.sql import functions as F

        return F.when(x < floor, floor).otherwise(x)  # (null stays null: greatest() would skip it)

    @staticmethod
    def flag(condition: Column) -> Column:
        from pyspark.sql import functions as F

        return F.when(condition, 1.0).otherwise(0.0)


class _NumpyOps:
    @staticmethod
    def slog(x: np.ndarray) -> np.ndarray:
        return np.asarray(np.sign(x) * np.log1p(np.abs(x)))

    @staticmethod
    def abs(x: np.ndarray) -> np.ndarray:
        return np.asarray(np.abs(x))

    @staticmethod
    def at_least(x: np.ndarray, floor: float) -> np.ndarray:
        return np.where(x < floor, floor, x)  # (NaN stays NaN)

    @staticmethod
    def flag(condition: np.ndarray) -> np.ndarray:
        return np.where(condition, 1.0, 0.0)


def feature_columns() -> dict[str, Column]:
    """Native expressions of the features (FEATURES order) on a frame with the RECORD_COLUMNS."""
    from pyspark.sql import functions as F

    return _formulas(lambda name: F.col(name).cast("double"), _SparkOps)


def features_numpy(records: pd.DataFrame) -> dict[str, np.ndarray]:
    """The same features on the driver from a pandas frame with the RECORD_COLUMNS (float64, NaN where missing)."""
    import pandas as pd

    def column(name: str) -> np.ndarray:
        try:
            return pd.to_numeric(records[name], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as error:
            raise ValueError(f"records: column {name} is not numeric ({error})") from None

    with np.errstate(invalid="ignore"):  # (comparisons with NaN: False, as Spark's with null)
        return _formulas(column, _NumpyOps)


def record_schema() -> StructType:
    """The fields of one trip as they arrive in a JSON event's `record` object (all nullable doubles)."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    return StructType([StructField(c, DoubleType(), nullable=True) for c in RECORD_COLUMNS])
