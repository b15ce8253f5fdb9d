"""One canonical schema per trip type across all years, and the normalisation of any TLC file to it (pyarrow).

The tables below are plain data (column names, type names, value codes) so that other engines, e.g. the Spark
job, can apply the same mapping. A source column maps to a canonical column by, in order: `RENAMES`, the same
name, a case-insensitive match (reported). Canonical columns missing from a file are filled with nulls;
columns that map to nothing are kept after the canonical ones and reported; only `DROPPED_COLUMNS` are dropped,
each with its reason in the report. Timestamps become tz-naive New York local time, as the TLC publishes them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_anomaly.tlc import check_trip_type

TIMEZONE = "America/New_York"

# Types are pyarrow type names; the newest TLC files use exactly these (2024: int32 ids, timestamp[us]).
_TAXI_MONEY = (
    ("fare_amount", "double"),
    ("extra", "double"),
    ("mta_tax", "double"),
    ("tip_amount", "double"),
    ("tolls_amount", "double"),
)
CANONICAL_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "yellow": (
        ("VendorID", "int32"),
        ("tpep_pickup_datetime", "timestamp[us]"),
        ("tpep_dropoff_datetime", "timestamp[us]"),
        ("passenger_count", "int64"),
        ("trip_distance", "double"),
        ("RatecodeID", "int64"),
        ("store_and_fwd_flag", "string"),
        ("PULocationID", "int32"),
        ("DOLocationID", "int32"),
        ("payment_type", "int64"),
        *_TAXI_MONEY,
        ("improvement_surcharge", "double"),
        ("total_amount", "double"),
        ("congestion_surcharge", "double"),
        ("airport_fee", "double"),
        ("cbd_congestion_fee", "double"),  # from 2025-01
        # 2009-2010 files have coordinates instead of zone ids.
        ("pickup_longitude", "double"),
        ("pickup_latitude", "double"),
        ("dropoff_longitude", "double"),
        ("dropoff_latitude", "double"),
    ),
    "green": (
        ("VendorID", "int32"),
        ("lpep_pickup_datetime", "timestamp[us]"),
        ("lpep_dropoff_datetime", "timestamp[us]"),
        ("store_and_fwd_flag", "string"),
        ("RatecodeID", "int64"),
        ("PULocationID", "int32"),
        ("DOLocationID", "int32"),
        ("passenger_count", "int64"),
        ("trip_distance", "double"),
        *_TAXI_MONEY,
        ("ehail_fee", "double"),
        ("improvement_surcharge", "double"),
        ("total_amount", "double"),
        ("payment_type", "int64"),
        ("trip_type", "int64"),
        ("congestion_surcharge", "double"),
        ("cbd_congestion_fee", "double"),  # from 2025-01
    ),
    "fhv": (
        ("dispatching_base_num", "string"),
        ("pickup_datetime", "timestamp[us]"),
        ("dropoff_datetime", "timestamp[us]"),
        ("PULocationID", "int32"),
        ("DOLocationID", "int32"),
        ("SR_Flag", "int32"),
        ("Affiliated_base_number", "string"),
    ),
    "fhvhv": (
        ("hvfhs_license_num", "string"),
        ("dispatching_base_num", "string"),
        ("originating_base_num", "string"),
        ("request_datetime", "timestamp[us]"),
        ("on_scene_datetime", "timestamp[us]"),
        ("pickup_datetime", "timestamp[us]"),
        ("dropoff_datetime", "timestamp[us]"),
        ("PULocationID", "int32"),
        ("DOLocationID", "int32"),
        ("trip_miles", "double"),
        ("trip_time", "int64"),
        ("base_passenger_fare", "double"),
        ("tolls", "double"),
        ("bcf", "double"),
        ("sales_tax", "double"),
        ("congestion_surcharge", "double"),
        ("airport_fee", "double"),
        ("tips", "double"),
        ("driver_pay", "double"),
        ("shared_request_flag", "string"),
        ("shared_match_flag", "string"),
        ("access_a_ride_flag", "string"),
        ("wav_request_flag", "string"),
        ("wav_match_flag", "string"),
        ("cbd_congestion_fee", "double"),  # from 2025-01
    ),
}

# Source name -> canonical name, for every spelling seen in TLC files (case variants included, so that a
# consumer needs no case-insensitive fallback of its own).
RENAMES: dict[str, dict[str, str]] = {
    "yellow": {
        # 2009 files
        "vendor_name": "VendorID",
        "Trip_Pickup_DateTime": "tpep_pickup_datetime",
        "Trip_Dropoff_DateTime": "tpep_dropoff_datetime",
        "Passenger_Count": "passenger_count",
        "Trip_Distance": "trip_distance",
        "Start_Lon": "pickup_longitude",
        "Start_Lat": "pickup_latitude",
        "End_Lon": "dropoff_longitude",
        "End_Lat": "dropoff_latitude",
        "Rate_Code": "RatecodeID",
        "store_and_forward": "store_and_fwd_flag",
        "Payment_Type": "payment_type",
        "Fare_Amt": "fare_amount",
        "surcharge": "extra",  # 2009-2010 "surcharge" is today's "extra" (rush hour and overnight charges)
        "Tip_Amt": "tip_amount",
        "Tolls_Amt": "tolls_amount",
        "Total_Amt": "total_amount",
        # 2010 files
        "vendor_id": "VendorID",
        "pickup_datetime": "tpep_pickup_datetime",
        "dropoff_datetime": "tpep_dropoff_datetime",
        "rate_code": "RatecodeID",
        # 2023-02 onwards
        "Airport_fee": "airport_fee",
    },
    "green": {},
    "fhv": {
        "dropOff_datetime": "dropoff_datetime",
        "PUlocationID": "PULocationID",
        "DOlocationID": "DOLocationID",
        # the original 2015-2016 CSV headers
        "Dispatching_base_num": "dispatching_base_num",
        "Pickup_date": "pickup_datetime",
        "locationID": "PULocationID",
    },
    "fhvhv": {"Airport_fee": "airport_fee"},
}

DROPPED_COLUMNS: dict[str, str] = {
    "__index_level_0__": "a pandas index written into some 2010 files by mistake; it carries no trip data",
}

# Text codes of 2009-2010 yellow files -> today's codes (matched after trimming and upper-casing). Integer
# columns: digits are kept as codes, other unmapped text becomes null and is counted in the report. Text columns:
# unmapped values are kept.
VALUE_CODES: dict[str, dict[str, dict[str, int | str]]] = {
    "yellow": {
        # CMT = Creative Mobile Technologies (1), VTS = VeriFone (2); DDS (Digital Dispatch Systems, 2009-2010
        # only) has no code in the data dictionary.
        "VendorID": {"CMT": 1, "VTS": 2},
        "payment_type": {
            "CREDIT": 1,
            "CRE": 1,
            "CRD": 1,
            "CASH": 2,
            "CAS": 2,
            "CSH": 2,
            "NO CHARGE": 3,
            "NOC": 3,
            "DISPUTE": 4,
            "DIS": 4,
            "UNK": 5,
            "NA": 5,
        },
        "store_and_fwd_flag": {"0": "N", "1": "Y", "0.0": "N", "1.0": "Y"},
    },
}

PICKUP_COLUMN = {
    "yellow": "tpep_pickup_datetime",
    "green": "lpep_pickup_datetime",
    "fhv": "pickup_datetime",
    "fhvhv": "pickup_datetime",
}
DROPOFF_COLUMN = {
    "yellow": "tpep_dropoff_datetime",
    "green": "lpep_dropoff_datetime",
    "fhv": "dropoff_datetime",
    "fhvhv": "dropoff_datetime",
}


class NormalisationError(Exception):
    """A column cannot be brought to the canonical schema (names the column, the types and the reason)."""


def canonical_schema(trip_type: str) -> pa.Schema:
    return pa.schema([(name, _type(type_name)) for name, type_name in CANONICAL_COLUMNS[check_trip_type(trip_type)]])


def canonical_name(trip_type: str, source: str) -> str | None:
    """The canonical column a source column maps to, or None (an extra column)."""
    names = [name for name, _ in CANONICAL_COLUMNS[check_trip_type(trip_type)]]
    if source in RENAMES[trip_type]:
        return RENAMES[trip_type][source]
    if source in names:
        return source
    folded = {name.lower(): name for name in names}
    return folded.get(source.lower())


def _type(type_name: str) -> pa.DataType:
    if type_name.startswith("timestamp["):
        return pa.timestamp(type_name[len("timestamp[") : -1])
    return pa.type_for_alias(type_name)


@dataclass
class NormalisationReport:
    """What normalisation did to one file (stored in the manifest)."""

    trip_type: str
    renamed: dict[str, str] = field(default_factory=dict)
    case_matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    converted: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class Normaliser:
    """The normalisation plan of one source schema, applied batch by batch (bounded memory on big files).

    :param source_schema: the file's arrow schema.
    :param trip_type: which canonical schema to map to.
    """

    def __init__(self, source_schema: pa.Schema, trip_type: str) -> None:
        self.trip_type = check_trip_type(trip_type)
        self.target = canonical_schema(trip_type)
        self.source_schema = source_schema
        self.sources: dict[str, str] = {}  # canonical -> source column
        self.extras: list[str] = []
        self._report = NormalisationReport(self.trip_type)
        self._unmapped: dict[str, Counter] = defaultdict(Counter)
        self._tz_converted: set[str] = set()
        self._plan()

    def _plan(self) -> None:
        report = self._report
        for source in self.source_schema:
            if source.name in DROPPED_COLUMNS:
                report.dropped[source.name] = DROPPED_COLUMNS[source.name]
                continue
            canonical = canonical_name(self.trip_type, source.name)
            if canonical is None:
                self.extras.append(source.name)
                continue
            if canonical in self.sources:
                raise NormalisationError(
                    f"{self.trip_type}: source columns {self.sources[canonical]!r} and {source.name!r} both map to "
                    f"{canonical!r}; add a rule for this file to schema.RENAMES"
                )
            self.sources[canonical] = source.name
            if canonical != source.name:
                report.renamed[source.name] = canonical
                if source.name not in RENAMES[self.trip_type]:
                    report.case_matched.append(source.name)
            target_type = self.target.field(canonical).type
            if source.type != target_type:
                report.converted[canonical] = f"{source.type} -> {target_type}"
        report.missing = [f.name for f in self.target if f.name not in self.sources]
        report.extra = list(self.extras)

    @property
    def report(self) -> NormalisationReport:
        notes = [
            f"{column}: {sum(values.values())} value(s) without a code became null: "
            + ", ".join(f"{value!r} x{count}" for value, count in values.most_common(5))
            for column, values in self._unmapped.items()
        ]
        notes += [
            f"{column}: time-zone-aware timestamps converted to {TIMEZONE} local time"
            for column in sorted(self._tz_converted)
        ]
        return NormalisationReport(**{**asdict(self._report), "notes": notes})

    def source_columns(self, canonical: Iterable[str]) -> list[str]:
        """The source columns to read for these canonical columns (those the file has)."""
        return [self.sources[name] for name in canonical if name in self.sources]

    def apply(
        self, data: pa.Table | pa.RecordBatch, columns: Iterable[str] | None = None, fill_missing: bool = True
    ) -> pa.Table:
        """Normalise a table or batch. `columns`: only these canonical columns (no extras); else all + extras.

        `fill_missing=False` leaves canonical columns the file lacks out instead of filling them with nulls.
        """
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        wanted = list(columns) if columns is not None else [f.name for f in self.target]
        arrays: list[pa.ChunkedArray] = []
        fields: list[pa.Field] = []
        for name in wanted:
            target_type = self.target.field(name).type
            if name in self.sources:
                arrays.append(self._convert(table.column(self.sources[name]), name, target_type))
            elif fill_missing:
                arrays.append(pa.chunked_array([pa.nulls(table.num_rows, target_type)]))
            else:
                continue
            fields.append(pa.field(name, target_type))
        if columns is None:
            for name in self.extras:
                arrays.append(table.column(name))
                fields.append(table.schema.field(name))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def _convert(self, column: pa.ChunkedArray, name: str, target: pa.DataType) -> pa.ChunkedArray:
        source_type = column.type
        try:
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            if pa.types.is_floating(column.type):
                column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
            if pa.types.is_null(column.type):
                return pa.chunked_array([pa.nulls(len(column), target)])
            codes = VALUE_CODES.get(self.trip_type, {}).get(name)
            if codes and (
                pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_string(target)
            ):
                return self._map_codes(column, name, target, codes)
            if pa.types.is_timestamp(target):
                return self._to_timestamp(column, name, target)
            return column.cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise NormalisationError(
                f"{self.trip_type}: column {self.sources.get(name, name)!r} ({source_type}) cannot become "
                f"{name!r} ({target}): {err}"
            ) from err

    def _to_timestamp(self, column: pa.ChunkedArray, name: str, target: pa.DataType) -> pa.ChunkedArray:
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            self._tz_converted.add(name)
            column = pc.local_timestamp(column.cast(pa.timestamp(column.type.unit, TIMEZONE)))
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.utf8_trim_whitespace(column)
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
        return column.cast(target, safe=True)

    def _map_codes(
        self, column: pa.ChunkedArray, name: str, target: pa.DataType, codes: dict[str, int | str]
    ) -> pa.ChunkedArray:
        text = column.cast(pa.string())
        key = pc.utf8_upper(pc.utf8_trim_whitespace(text))
        keys = pa.array(list(codes), pa.string())
        position = pc.index_in(key, value_set=keys)
        mapped = pc.take(pa.array(list(codes.values()), target), position)
        if pa.types.is_integer(target):
            digits = pc.match_substring_regex(key, r"^[0-9]+$")  # already a code: keep it
            mapped = pc.coalesce(mapped, pc.if_else(digits, key, pa.scalar(None, pa.string())).cast(target))
            lost = pc.and_(pc.is_null(mapped), pc.is_valid(text))
            for entry in pc.value_counts(pc.filter(text, lost)).to_pylist():
                self._unmapped[name][entry["values"]] += entry["counts"]
            return mapped
        return pc.if_else(pc.is_null(position), text.cast(target), mapped)


def normalise_table(table: pa.Table, trip_type: str) -> tuple[pa.Table, NormalisationReport]:
    """Normalise an in-memory table (small files, samples, tests)."""
    normaliser = Normaliser(table.schema, trip_type)
    return normaliser.apply(table), normaliser.report


def normalise_file(source: Path, dest: Path, trip_type: str, batch_rows: int = 1_000_000) -> NormalisationReport:
    """Write a canonical copy of a parquet file, batch by batch."""
    parquet = pq.ParquetFile(source)
    normaliser = Normaliser(parquet.schema_arrow, trip_type)
    schema = normaliser.apply(parquet.schema_arrow.empty_table()).schema
    with pq.ParquetWriter(dest, schema, compression="zstd") as writer:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            writer.write_table(normaliser.apply(batch))
    return normaliser.report
