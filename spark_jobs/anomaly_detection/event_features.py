"""Feature sets of per-event models: which record columns an event carries and how they become a model's numeric
inputs, natively in Spark and on the driver. One per kind of event: KDD Cup 99 connections and NYC TLC trips."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from taxi_anomaly import kdd, trip_events

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType


@dataclass(frozen=True)
class FeatureSet:
    """How the records of one kind of event become a per-event model's inputs.

    :param name: the registry's name (its trip_type) of the models on these records.
    :param record_columns: the record columns the inputs are computed from.
    :param required: the record fields an event must carry to be scored (the others may be missing).
    :param inputs: the model inputs in the estimator's column order.
    :param symbolic: the inputs that are record columns of categories: each is encoded by the value's share of the
        training rows (event_models.EventModel.encodings); the other inputs are numeric.
    :param record_schema: the record's fields as they arrive in an event (a Spark StructType).
    :param numeric_columns: native expressions of the numeric inputs, by name, on a frame of records.
    :param numeric_numpy: the same on the driver: pandas records -> numeric input name -> float64 values (NaN where
        missing); equal to the native values.
    """

    name: str
    record_columns: tuple[str, ...]
    required: tuple[str, ...]
    inputs: tuple[str, ...]
    symbolic: tuple[str, ...]
    record_schema: Callable[[], StructType]
    numeric_columns: Callable[[], dict[str, Column]]
    numeric_numpy: Callable[[pd.DataFrame], dict[str, np.ndarray]]

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(c for c in self.inputs if c not in self.symbolic)

    def check_records(self, columns: Iterable[str]) -> None:
        """A ValueError naming the record columns missing from `columns`."""
        present = set(columns)
        missing = [c for c in self.record_columns if c not in present]
        if missing:
            raise ValueError(
                f"records: missing column(s) {', '.join(missing)} (expected the {self.name} record columns)"
            )


def _kdd_numeric_columns() -> dict[str, Column]:
    from pyspark.sql import functions as F

    return {c: F.col(c).cast("double") for c in kdd.NUMERIC}


def _kdd_numeric_numpy(records: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        c: pd.to_numeric(records[c], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan) for c in kdd.NUMERIC
    }


# KDD Cup 99 connection records: the 41 columns are the inputs, in file order, the 3 symbolic ones encoded.
KDD = FeatureSet(
    name=kdd.FEATURE_SET,
    record_columns=kdd.KDD_COLUMNS,
    required=kdd.KDD_COLUMNS,
    inputs=kdd.KDD_COLUMNS,
    symbolic=kdd.SYMBOLIC,
    record_schema=kdd.record_schema,
    numeric_columns=_kdd_numeric_columns,
    numeric_numpy=_kdd_numeric_numpy,
)
# NYC TLC trips (yellow, green, fhvhv): canonical fare, distance, duration, tip and total (taxi_anomaly.trip_events).
TRIPS = FeatureSet(
    name=trip_events.FEATURE_SET,
    record_columns=trip_events.RECORD_COLUMNS,
    required=trip_events.REQUIRED_COLUMNS,
    inputs=trip_events.FEATURES,
    symbolic=(),
    record_schema=trip_events.record_schema,
    numeric_columns=trip_events.feature_columns,
    numeric_numpy=trip_events.features_numpy,
)
FEATURE_SETS: dict[str, FeatureSet] = {feature_set.name: feature_set for feature_set in (KDD, TRIPS)}


def feature_set_named(name: str | FeatureSet) -> FeatureSet:
    if isinstance(name, FeatureSet):
        return name
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise ValueError(f"feature_set must be one of {', '.join(FEATURE_SETS)}, got {name!r}") from None


def read_trip_records(spark: SparkSession, path: str, trip_type: str) -> DataFrame:
    """A raw TLC month's trips as trip-event records (TRIPS.record_columns, canonical names and types), in file order
    for a single file read as it is (no shuffle). fhv is refused, naming the trip type."""
    from anomaly_detection.normalise import read_month

    trip_events.check_trip_type(trip_type)
    return read_month(spark, path, trip_type).select(*TRIPS.record_columns)
