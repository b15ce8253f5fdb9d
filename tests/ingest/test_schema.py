"""Normalisation to one canonical schema per trip type, on every real schema variant in ../shared/data."""

from __future__ import annotations

import csv
import json
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
    VALUE_CODES,
    NormalisationError,
    Normaliser,
    canonical_name,
    canonical_schema,
    fold,
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


COORDINATES = ["pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude"]


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
    assert report.missing == ["cbd_congestion_fee", *COORDINATES]
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


def test_two_filled_spellings_in_one_file_are_refused():
    source = pa.table({"airport_fee": [1.0], "Airport_fee": [2.0]})
    with pytest.raises(NormalisationError, match=r"all map to 'airport_fee' and more than one holds values"):
        normalise_table(source, "yellow")
    with pytest.raises(NormalisationError, match="the plan needs their filled counts"):
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
    assert report.missing == ["cbd_congestion_fee", *COORDINATES]


# Header variants of every era and type beyond the listings: data dictionaries, CSV releases, exports.
HEADER_VARIANTS = json.loads((Path(__file__).parent / "data" / "header_variants.json").read_text())["variants"]


def filled_like_the_source(trip_type: str, columns: list[str], empty: tuple[str, ...] = ()) -> pa.Table:
    """Two rows under the given names, as a CSV reader gives them: text times, numbers, legacy text codes."""
    values = {}
    for name in columns:
        canonical = canonical_name(trip_type, name)
        assert canonical is not None, f"{trip_type}: {name!r} maps to no canonical column"
        target = canonical_schema(trip_type).field(canonical).type
        codes = VALUE_CODES.get(trip_type, {}).get(canonical, {})
        if name in empty:
            values[name] = pa.array([None, None], pa.string())
        elif pa.types.is_timestamp(target):
            values[name] = pa.array(["2014-01-04 02:52:00", " 2014-01-04 03:31:00 "])
        elif codes and name != canonical:  # a legacy spelling carries the legacy text codes
            values[name] = pa.array([next(iter(codes)), None])
        elif pa.types.is_integer(target):
            values[name] = pa.array([1, None], pa.int64())
        elif pa.types.is_floating(target):
            values[name] = pa.array([2.5, None])
        else:
            values[name] = pa.array(["N", None])
    return pa.table(values)


@pytest.mark.parametrize("variant", HEADER_VARIANTS, ids=lambda v: f"{v['trip_type']} {v['era']}")
def test_every_header_variant_maps_with_no_canonical_column_emptied(variant):
    trip_type, columns = variant["trip_type"], variant["columns"]
    empty = tuple(variant.get("empty", ()))
    table, report = normalise_table(filled_like_the_source(trip_type, columns, empty), trip_type)
    assert table.schema.equals(canonical_schema(trip_type)), report
    assert report.extra == []
    filled = [name for name in table.column_names if table[name].null_count < table.num_rows]
    assert len(filled) == len(columns) - len(empty), f"mapped {filled} from {columns}"
    assert set(report.dropped) == set(empty)
    coordinate_note = any(note.startswith("coordinate era") for note in report.notes)
    assert coordinate_note == variant.get("coordinates", False)
    if coordinate_note:
        assert table["PULocationID"].null_count == table.num_rows and table["pickup_longitude"].null_count == 1


def test_spaced_headers_of_2014_find_the_pickup_time():
    table, report = normalise_table(pa.table({" pickup_datetime": ["2014-03-01 00:10:00"]}), "yellow")
    assert table["tpep_pickup_datetime"].to_pylist() == [datetime(2014, 3, 1, 0, 10)]
    assert report.renamed == {" pickup_datetime": "tpep_pickup_datetime"}
    trip_type_column = normalise_table(pa.table({"Trip_type ": [1]}), "green")[0]["trip_type"]
    assert trip_type_column.to_pylist() == [1]


def test_fhv_2018_duplicate_base_number_keeps_the_filled_one():
    source = pa.table({"Dispatching_base_number": ["B00013", "B02510"], "Dispatching_base_num": ["", None]})
    table, report = normalise_table(source, "fhv")
    assert table["dispatching_base_num"].to_pylist() == ["B00013", "B02510"]
    assert "Dispatching_base_num" not in table.column_names
    assert "holds 0" in report.dropped["Dispatching_base_num"]
    # Reversed column order: content decides, not position.
    table, _ = normalise_table(source.select(["Dispatching_base_num", "Dispatching_base_number"]), "fhv")
    assert table["dispatching_base_num"].to_pylist() == ["B00013", "B02510"]


def test_duplicates_in_a_parquet_file_are_resolved_by_content(tmp_path: Path):
    path = tmp_path / "fhv_tripdata_2018-01.parquet"
    pq.write_table(pa.table({"Dispatching_base_num": [None, None], "Dispatching_base_number": ["B1", "B2"]}), path)
    report = normalise_file(path, tmp_path / "out.parquet", "fhv")
    assert pq.read_table(tmp_path / "out.parquet")["dispatching_base_num"].to_pylist() == ["B1", "B2"]
    assert list(report.dropped) == ["Dispatching_base_num"]


def test_sr_flag_letters_follow_the_data_dictionary():
    table, report = normalise_table(pa.table({"SR_Flag": ["N", "Y", None, "N"]}), "fhv")
    assert table["SR_Flag"].to_pylist() == [None, 1, None, None]
    assert report.notes == []  # N is null by rule, not a lost value


def test_a_column_that_loses_every_value_is_refused():
    with pytest.raises(NormalisationError, match=r"'vendor_name' held 2 value\(s\), none survived as 'VendorID'"):
        normalise_table(pa.table({"vendor_name": ["DDS", "DDS"]}), "yellow")


def test_folding_is_unambiguous_for_every_trip_type():
    for trip_type in TRIP_TYPES:
        names = [name for name, _ in CANONICAL_COLUMNS[trip_type]]
        assert len({fold(n) for n in names}) == len(names), trip_type
        for source in RENAMES[trip_type]:
            assert canonical_name(trip_type, fold(source)) == RENAMES[trip_type][source]
