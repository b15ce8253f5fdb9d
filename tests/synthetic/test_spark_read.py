"""Spark reads the generated files like the real TLC ones: same Spark types, every row, tz-naive timestamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxi_anomaly.synthetic import PICKUP_COLUMN, generate_month
from taxi_anomaly.tlc import TRIP_TYPES

pytestmark = pytest.mark.spark

REAL_GREEN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tlc" / "green_tripdata_2024-01.parquet"


@pytest.mark.parametrize("trip_type", TRIP_TYPES)
def test_spark_reads_every_trip_type(spark, tmp_path: Path, trip_type: str):
    result = generate_month(trip_type, "2024-03", tmp_path, trips=20_000, chunk_rows=8_000)
    frame = spark.read.parquet(str(result.data_path))
    assert frame.count() == 20_000
    pickup_type = dict(frame.dtypes)[PICKUP_COLUMN[trip_type]]
    assert pickup_type == "timestamp_ntz"
    in_month = frame.where(f"{PICKUP_COLUMN[trip_type]} >= '2024-03-01' AND {PICKUP_COLUMN[trip_type]} < '2024-04-01'")
    assert in_month.count() == 20_000 - result.dirt["out_of_month_rows"]


def test_spark_sees_the_same_types_as_in_the_real_green_file(spark, tmp_path: Path):
    result = generate_month("green", "2024-03", tmp_path, trips=5_000)
    assert spark.read.parquet(str(result.data_path)).dtypes == spark.read.parquet(str(REAL_GREEN)).dtypes
