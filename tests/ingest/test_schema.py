"""Normalisation to one canonical schema per trip type, on every real schema variant in ../shared/data."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from taxi_anomaly.ingest.schema import (
    CANONICAL_COLUMNS,
    DROPPED_COLUMNS,
    RENAMES,
    NormalisationError,
    Normaliser,
    canonical_schema,
    normalise_file,
    normalise_table,
)
from taxi_anomaly.tlc import TRIP_TYPES


def official_variants(metadata_dir: Path) -> dict[tuple[str, str], str]:
    """Every distinct (trip type, column list) in the TLC listings, with one file that has it."""
    variants: dict[tuple[str, str], str] = {}
    for listing in sorted(metadata_dir.glob("*_tripmetadata_*.csv")):
        with listing.open(newline="") as handle:
            for row in csv.DictReader(handle):
                variants.setdefault((row["file_record_type"], row["file_column_names"]), row["file_name"])
    return variants


def table_with_columns(columns: list[str]) -> pa.Table:
    """Two rows under the given names, typed as the TLC wrote them: text times and codes before 2011."""
    legacy = "vendor_name" in columns or "vendor_id" in columns
    values = {}
    for name in columns:
        lowered = name.lower()
        if "datetime" in lowered:
            values[name] = pa.array(["2009-01-04 02:52:00", "2009-01-04 03:31:00"])
        elif name in ("vendor_name", "vendor_id"):
            values[name] = pa.array(["VTS", "CMT"])
        elif lowered == "payment_type" and legacy:
            values[name] = pa.array(["CASH", "Credit"])
        elif "locationid" in lowered or name in ("VendorID", "RatecodeID", "trip_type", "trip_time", "SR_Flag"):
            values[name] = pa.array([1, None], pa.int64())
        elif "base_num" in lowered or "license" in lowered or "flag" in lowered or name == "store_and_forward":
            values[name] = pa.array(["B00001", None])
        else:
            values[name] = pa.array([2.0, None], pa.float64())
    return pa.table(values)


@pytest.fixture(scope="module")
def variants(tlc_data: Path) -> dict[tuple[str, str], str]:
    return official_variants(tlc_data / "metadata")


def test_every_official_column_variant_maps_completely(variants):
    assert len(variants) >= 7, "the listings hold at least 7 column variants (3 yellow eras, Airport_fee, ...)"
    seen_types = set()
    for (trip_type, names), example in variants.items():
        columns = names.split(",")
        table, report = normalise_table(table_with_columns(columns), trip_type)
        canonical = canonical_schema(trip_type)
        assert table.schema.equals(canonical), f"{example}: {table.schema}"
        assert report.extra == [], f"{example}: unmapped source columns {report.extra}"
        assert set(report.dropped) <= set(DROPPED_COLUMNS)
        mapped = len(columns) - len(report.dropped)
        assert len(canonical) - len(report.missing) == mapped, f"{example}: a source column went missing"
        seen_types.add(trip_type)
    assert seen_types == set(TRIP_TYPES)


def test_2009_and_2010_yellow_names_values_and_index_column(variants):
    names_2009 = next(names for (t, names), f in variants.items() if f == "yellow_tripdata_2009-01.parquet")
    table, report = normalise_table(table_with_columns(names_2009.split(",")), "yellow")
    assert report.renamed["Trip_Pickup_DateTime"] == "tpep_pickup_datetime"
    assert report.renamed["Start_Lon"] == "pickup_longitude"
    assert report.renamed["surcharge"] == "extra"
    assert table["tpep_pickup_datetime"].to_pylist() == [datetime(2009, 1, 4, 2, 52), datetime(2009, 1, 4, 3, 31)]
    assert table["VendorID"].to_pylist() == [2, 1]  # VTS, CMT
    assert table["payment_type"].to_pylist() == [2, 1]  # CASH, Credit
    assert table["pickup_longitude"].to_pylist() == [2.0, None]
    assert "PULocationID" in report.missing

    with_index = next(names for (t, names), f in variants.items() if "__index_level_0__" in names)
    table, report = normalise_table(table_with_columns(with_index.split(",")), "yellow")
    assert "__index_level_0__" not in table.column_names
    assert report.dropped == {"__index_level_0__": DROPPED_COLUMNS["__index_level_0__"]}


@pytest.mark.parametrize("spelling", ["airport_fee", "Airport_fee"])
def test_airport_fee_spellings_become_one_column(spelling):
    source = pa.table({"tpep_pickup_datetime": pa.array([datetime(2023, 2, 1)]), spelling: [1.25]})
    table, _ = normalise_table(source, "yellow")
    assert table["airport_fee"].to_pylist() == [1.25]
    assert "Airport_fee" not in table.column_names


@pytest.mark.parametrize("trip_type", TRIP_TYPES)
def test_real_samples_normalise_with_values_kept(tlc_data: Path, trip_type: str):
    sample = tlc_data / "samples" / f"{trip_type}_tripdata_2020-04_sample1000.csv"
    source = pacsv.read_csv(sample)
    table, report = normalise_table(source, trip_type)
    assert table.schema.equals(canonical_schema(trip_type))
    assert table.num_rows == source.num_rows == 1000
    assert report.extra == [] and report.dropped == {}
    for source_name, canonical in report.renamed.items():
        before = source[source_name].cast(table[canonical].type).to_pylist()
        assert table[canonical].to_pylist() == before, f"{source_name} -> {canonical} changed values"
    pickup = "tpep_pickup_datetime" if trip_type == "yellow" else "lpep_pickup_datetime"
    pickup = pickup if pickup in table.column_names else "pickup_datetime"
    assert table[pickup].null_count == 0
    assert pc.min(table[pickup]).as_py() >= datetime(2008, 1, 1)  # real dirt (green has 2009 pickups), parsed


def test_fhv_sample_renames_mixed_case_columns(tlc_data: Path):
    source = pacsv.read_csv(tlc_data / "samples" / "fhv_tripdata_2020-04_sample1000.csv")
    table, report = normalise_table(source, "fhv")
    assert report.renamed == {
        "dropOff_datetime": "dropoff_datetime",
        "PUlocationID": "PULocationID",
        "DOlocationID": "DOLocationID",
    }
    assert table["PULocationID"].type == pa.int32()
    assert table["PULocationID"].null_count == source["PUlocationID"].null_count > 0


def test_real_green_month(tlc_data: Path):
    source = pq.read_table(tlc_data / "green_tripdata_2024-01.parquet")
    table, report = normalise_table(source, "green")
    assert table.schema.equals(canonical_schema("green"))
    assert report.missing == ["cbd_congestion_fee"]
    assert report.converted == {"store_and_fwd_flag": "large_string -> string"}
    assert table.num_rows == 56_551


def test_2025_columns_are_canonical_not_extra():
    source = pa.table({"tpep_pickup_datetime": pa.array([datetime(2025, 1, 5)]), "cbd_congestion_fee": [0.75]})
    table, report = normalise_table(source, "yellow")
    assert table["cbd_congestion_fee"].to_pylist() == [0.75]
    assert report.extra == [] and "cbd_congestion_fee" not in report.missing


def test_unknown_columns_are_kept_at_the_end_and_reported():
    source = pa.table({"surprise_fee": [2.5, 3.5], "lpep_pickup_datetime": pa.array([datetime(2024, 1, 1)] * 2)})
    table, report = normalise_table(source, "green")
    assert table.column_names[-1] == "surprise_fee"
    assert table["surprise_fee"].to_pylist() == [2.5, 3.5]
    assert report.extra == ["surprise_fee"]


def test_timezone_aware_times_become_new_york_local_time():
    utc = pa.array([datetime(2024, 1, 1, 5, 0)], pa.timestamp("ns", tz="UTC"))
    table, report = normalise_table(pa.table({"lpep_pickup_datetime": utc}), "green")
    assert table["lpep_pickup_datetime"].type == pa.timestamp("us")
    assert table["lpep_pickup_datetime"].to_pylist() == [datetime(2024, 1, 1, 0, 0)]
    assert any("America/New_York" in note for note in report.notes)


def test_integer_widths_and_float_codes_are_cast_safely():
    source = pa.table(
        {
            "PULocationID": pa.array([132, None], pa.int64()),
            "RatecodeID": pa.array([1.0, float("nan")]),
            "passenger_count": pa.array([2.0, None]),
        }
    )
    table, _ = normalise_table(source, "yellow")
    assert table["PULocationID"].type == pa.int32() and table["PULocationID"].to_pylist() == [132, None]
    assert table["RatecodeID"].to_pylist() == [1, None]
    assert table["passenger_count"].to_pylist() == [2, None]


def test_a_value_that_does_not_fit_names_the_column():
    source = pa.table({"PULocationID": pa.array([2**40], pa.int64())})
    with pytest.raises(NormalisationError, match=r"'PULocationID' \(int64\) cannot become 'PULocationID' \(int32\)"):
        normalise_table(source, "green")


def test_two_spellings_in_one_file_are_refused():
    source = pa.table({"airport_fee": [1.0], "Airport_fee": [2.0]})
    with pytest.raises(NormalisationError, match="both map to 'airport_fee'"):
        Normaliser(source.schema, "yellow")


def test_unmapped_legacy_codes_become_null_with_a_note():
    source = pa.table({"vendor_name": ["CMT", "DDS", "DDS", None, " 2 "]})
    table, report = normalise_table(source, "yellow")
    assert table["VendorID"].to_pylist() == [1, None, None, None, 2]
    assert report.notes == ["VendorID: 2 value(s) without a code became null: 'DDS' x2"]


def test_rename_maps_are_plain_data_pointing_at_canonical_columns():
    for trip_type, renames in RENAMES.items():
        names = {name for name, _ in CANONICAL_COLUMNS[trip_type]}
        assert set(renames.values()) <= names, trip_type
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in renames.items())


def test_normalise_file_streams_in_batches(tlc_data: Path, tmp_path: Path):
    dest = tmp_path / "canonical.parquet"
    report = normalise_file(tlc_data / "green_tripdata_2024-01.parquet", dest, "green", batch_rows=10_000)
    written = pq.ParquetFile(dest)
    assert written.metadata.num_rows == 56_551
    assert written.schema_arrow.equals(canonical_schema("green"))
    assert report.missing == ["cbd_congestion_fee"]
