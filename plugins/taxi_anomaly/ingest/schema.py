"""One canonical schema per trip type across all years, and the normalisation of any TLC file to it (pyarrow).

The tables below are plain data (column names, type names, value codes) so that other engines, e.g. the Spark
job, can apply the same mapping. A source column maps to a canonical column by, in order: `RENAMES`, the same
name, then the same *folded* name (case, whitespace and the separators `_ - .` ignored, so `" pickup_datetime"`,
`rate_code_id` and `"Trip_type "` match; listed in the report). When two source columns map to one canonical
column, the one that holds values wins and the other is dropped and reported; if both hold values the file is
refused. Canonical columns missing from a file are filled with nulls; columns that map to nothing are kept after
the canonical ones and reported; only `DROPPED_COLUMNS` and the index columns of spreadsheet exports are dropped,
each with its reason in the report. Text (CSV) values are converted too: blanks are null, "1.0" is a whole number,
spreadsheet times such as `01/01/2021 0:30` are read by `SPREADSHEET_TIME_FORMATS`.
Timestamps become tz-naive New York local time, as the TLC publishes them. A canonical column whose source held
values and lost every one of them in conversion is an error (`Normaliser.check_no_column_emptied`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
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
        # 2013-2016 files have coordinates instead of zone ids.
        ("pickup_longitude", "double"),
        ("pickup_latitude", "double"),
        ("dropoff_longitude", "double"),
        ("dropoff_latitude", "double"),
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

# Source name -> canonical name, for the spellings that folding (see the module docstring) does not cover. The
# folded key of a name here matches too, so one entry covers its case and separator variants.
_ZONE_IDS = {
    # snake_case and camelCase exports (widely used samples and warehouse copies)
    "pickup_location_id": "PULocationID",
    "dropoff_location_id": "DOLocationID",
}
RENAMES: dict[str, dict[str, str]] = {
    "yellow": {
        **_ZONE_IDS,
        # 2009 files
        "vendor_name": "VendorID",
        "Trip_Pickup_DateTime": "tpep_pickup_datetime",
        "Trip_Dropoff_DateTime": "tpep_dropoff_datetime",
        "Start_Lon": "pickup_longitude",
        "Start_Lat": "pickup_latitude",
        "End_Lon": "dropoff_longitude",
        "End_Lat": "dropoff_latitude",
        "Rate_Code": "RatecodeID",
        "store_and_forward": "store_and_fwd_flag",
        "Fare_Amt": "fare_amount",
        "surcharge": "extra",  # 2009-2010 "surcharge" is today's "extra" (rush hour and overnight charges)
        "Tip_Amt": "tip_amount",
        "Tolls_Amt": "tolls_amount",
        "Total_Amt": "total_amount",
        # 2010-2014 files
        "vendor_id": "VendorID",
        "pickup_datetime": "tpep_pickup_datetime",
        "dropoff_datetime": "tpep_dropoff_datetime",
        "rate_code": "RatecodeID",
    },
    "green": {
        **_ZONE_IDS,
        "vendor_id": "VendorID",
        "pickup_datetime": "lpep_pickup_datetime",
        "dropoff_datetime": "lpep_dropoff_datetime",
    },
    "fhv": {
        **_ZONE_IDS,
        # the original 2015-2016 CSV headers
        "Pickup_date": "pickup_datetime",
        "locationID": "PULocationID",
        # 2018 CSVs carry both Dispatching_base_number (filled) and Dispatching_base_num (empty)
        "Dispatching_base_number": "dispatching_base_num",
    },
    "fhvhv": dict(_ZONE_IDS),
}

DROPPED_COLUMNS: dict[str, str] = {
    "__index_level_0__": "a pandas index written into some 2010 files by mistake; it carries no trip data",
}
# Index columns of spreadsheet and pandas exports: "Unnamed: 0", "Unnamed: 0.1" (a repeated one), or no name.
_EXPORT_INDEX = re.compile(r"^\s*(Unnamed: \d+(\.\d+)*)?\s*$")
EXPORT_INDEX_REASON = "an index column of a spreadsheet or pandas export (no name or 'Unnamed: N'); no trip data"
# Text times: ISO (2021-01-01 00:30[:00]) as the TLC writes them; spreadsheet exports rewrite them as US dates
# (01/01/2021 0:30), read by these formats in order when a column is not ISO.
SPREADSHEET_TIME_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")


def dropped_reason(name: str) -> str | None:
    """Why a source column is dropped, or None (it is kept or mapped)."""
    if name in DROPPED_COLUMNS:
        return DROPPED_COLUMNS[name]
    return EXPORT_INDEX_REASON if _EXPORT_INDEX.match(name) else None


# Text codes -> today's codes (matched after trimming and upper-casing); None: null by rule. Integer columns:
# digits are kept as codes, other unmapped text becomes null and is counted in the report. Text columns:
# unmapped values are kept.
VALUE_CODES: dict[str, dict[str, dict[str, int | str | None]]] = {
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
    # The data dictionary: 1 = part of a shared ride chain, null = not shared. Some 2021 files write Y/N.
    "fhv": {"SR_Flag": {"Y": 1, "N": None}},
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


def fold(name: str) -> str:
    """The key of a loose column match: lower case, without whitespace and the separators _ - ."""
    return _SEPARATORS.sub("", name).lower()


_SEPARATORS = re.compile(r"[\s_.\-]+")


@cache
def _folded_names(trip_type: str) -> dict[str, str]:
    """Folded key -> canonical column, from the canonical names and the RENAMES keys of one trip type."""
    keys: dict[str, str] = {}
    for source, canonical in [(n, n) for n, _ in CANONICAL_COLUMNS[trip_type]] + list(RENAMES[trip_type].items()):
        if keys.setdefault(fold(source), canonical) != canonical:
            raise AssertionError(f"{trip_type}: {source!r} folds onto two canonical columns")
    return keys


def canonical_name(trip_type: str, source: str) -> str | None:
    """The canonical column a source column maps to, or None (an extra column)."""
    trip_type = check_trip_type(trip_type)
    if source in RENAMES[trip_type]:
        return RENAMES[trip_type][source]
    folded = _folded_names(trip_type)
    return source if source in folded.values() else folded.get(fold(source))


def candidates(source_schema: pa.Schema, trip_type: str) -> dict[str, list[str]]:
    """Canonical column -> the source columns that map to it, in file order (dropped columns left out)."""
    mapped: dict[str, list[str]] = defaultdict(list)
    for source in source_schema:
        canonical = None if dropped_reason(source.name) else canonical_name(trip_type, source.name)
        if canonical is not None:
            mapped[canonical].append(source.name)
    return dict(mapped)


def competing_columns(source_schema: pa.Schema, trip_type: str) -> list[str]:
    """Source columns that share their canonical column with another one (resolved by content, see Normaliser)."""
    return [n for names in candidates(source_schema, trip_type).values() if len(names) > 1 for n in names]


def filled_values(data: pa.Table | pa.RecordBatch) -> Counter:
    """Values held per column: non-null and, for text, not blank."""
    return Counter({name: _filled(column) for name, column in zip(data.column_names, data.columns, strict=True)})


def _filled(column: pa.Array | pa.ChunkedArray) -> int:
    if _is_text(column.type):
        return pc.sum(pc.greater(pc.binary_length(pc.utf8_trim_whitespace(column)), 0)).as_py() or 0
    return len(column) - column.null_count


def _blank_to_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    trimmed = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)


def _is_text(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type)


def _type(type_name: str) -> pa.DataType:
    if type_name.startswith("timestamp["):
        return pa.timestamp(type_name[len("timestamp[") : -1])
    return pa.type_for_alias(type_name)


@dataclass
class NormalisationReport:
    """What normalisation did to one file (stored in the manifest)."""

    trip_type: str
    renamed: dict[str, str] = field(default_factory=dict)
    folded: list[str] = field(default_factory=list)  # matched only after folding case, whitespace, separators
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
    :param filled: values held per source column (`filled_values`); needed only where two source columns map
        to one canonical column, to keep the one with values (`for_parquet` counts them).
    """

    def __init__(self, source_schema: pa.Schema, trip_type: str, filled: Mapping[str, int] | None = None) -> None:
        self.trip_type = check_trip_type(trip_type)
        self.target = canonical_schema(trip_type)
        self.source_schema = source_schema
        self.sources: dict[str, str] = {}  # canonical -> source column
        self.extras: list[str] = []
        self._report = NormalisationReport(self.trip_type)
        self._planned_notes: list[str] = []
        self._unmapped: dict[str, Counter] = defaultdict(Counter)
        self._tz_converted: set[str] = set()
        self._spreadsheet_formats: dict[str, str] = {}
        self._values_in: Counter = Counter()  # canonical column -> values its source column held
        self._values_out: Counter = Counter()  # ... -> values after conversion (nulls set by a rule counted)
        self._plan(filled)

    @classmethod
    def for_parquet(cls, parquet: pq.ParquetFile, trip_type: str) -> Normaliser:
        """The plan of a parquet file; reads only the columns that compete for one canonical column, if any."""
        competing = competing_columns(parquet.schema_arrow, trip_type)
        filled: Counter = Counter()
        if competing:
            for batch in parquet.iter_batches(columns=competing):
                filled.update(filled_values(batch))
        return cls(parquet.schema_arrow, trip_type, filled)

    def _plan(self, filled: Mapping[str, int] | None) -> None:
        report = self._report
        for source in self.source_schema:
            if reason := dropped_reason(source.name):
                report.dropped[source.name] = reason
            elif canonical_name(self.trip_type, source.name) is None:
                self.extras.append(source.name)
        for canonical, names in candidates(self.source_schema, self.trip_type).items():
            source_name = names[0] if len(names) == 1 else self._choose(canonical, names, filled)
            self.sources[canonical] = source_name
            if canonical != source_name:
                report.renamed[source_name] = canonical
                if source_name not in RENAMES[self.trip_type]:
                    report.folded.append(source_name)
            source_type = self.source_schema.field(source_name).type
            target_type = self.target.field(canonical).type
            if source_type != target_type:
                report.converted[canonical] = f"{source_type} -> {target_type}"
        report.missing = [f.name for f in self.target if f.name not in self.sources]
        report.extra = list(self.extras)
        if "pickup_longitude" in self.sources and "PULocationID" not in self.sources:
            self._planned_notes.append(
                "coordinate era: the file has coordinates and no zone ids; the coordinates are kept, "
                "PULocationID and DOLocationID are null"
            )

    def _choose(self, canonical: str, names: list[str], filled: Mapping[str, int] | None) -> str:
        """Of several source columns for one canonical column, the one that holds values; the others are dropped."""
        listed = " and ".join(repr(n) for n in names)
        if filled is None:
            raise NormalisationError(
                f"{self.trip_type}: source columns {listed} all map to {canonical!r}; which one holds values "
                "decides, so the plan needs their filled counts (Normaliser.for_parquet counts them)"
            )
        holding = [n for n in names if filled.get(n, 0) > 0]
        if len(holding) > 1:
            counts = ", ".join(f"{n!r} {filled[n]}" for n in holding)
            raise NormalisationError(
                f"{self.trip_type}: source columns {listed} all map to {canonical!r} and more than one holds values "
                f"({counts}); add a rule for this file to schema.RENAMES"
            )
        chosen = holding[0] if holding else names[0]
        for name in names:
            if name != chosen:
                self._report.dropped[name] = (
                    f"also maps to {canonical!r}, taken from {chosen!r} ({filled.get(chosen, 0)} values); "
                    f"{name!r} holds {filled.get(name, 0)}"
                )
        return chosen

    def check_no_column_emptied(self, name: str = "the file") -> None:
        """After every batch went through `apply`: refuse a canonical column whose source held values and lost all.

        Raises NormalisationError naming the source column, the canonical column and how many values were lost.
        """
        emptied = [c for c, held in self._values_in.items() if held > 0 and self._values_out[c] == 0]
        if emptied:
            details = "; ".join(
                f"{self.sources[c]!r} held {self._values_in[c]} value(s), none survived as {c!r}" for c in emptied
            )
            raise NormalisationError(
                f"{self.trip_type}: {name}: canonical column(s) emptied by normalisation: {details}"
            )

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
        notes += [
            f"{column}: spreadsheet times read as {time_format!r} (not the TLC's ISO form)"
            for column, time_format in sorted(self._spreadsheet_formats.items())
        ]
        notes += self._planned_notes
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
            if codes and (_is_text(column.type) or pa.types.is_string(target)):
                return self._map_codes(column, name, target, codes)
            if pa.types.is_timestamp(target):
                return self._to_timestamp(column, name, target)
            if _is_text(column.type) and (pa.types.is_integer(target) or pa.types.is_floating(target)):
                return self._to_number(column, name, target)
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
        elif _is_text(column.type):
            column = _blank_to_null(column)
            try:
                converted = column.cast(target, safe=True)
            except pa.ArrowInvalid:
                converted = self._spreadsheet_times(column, name, target)
            self._count(name, column, converted)
            return converted
        return column.cast(target, safe=True)

    def _spreadsheet_times(self, column: pa.ChunkedArray, name: str, target: pa.DataType) -> pa.ChunkedArray:
        """Times a spreadsheet rewrote (SPREADSHEET_TIME_FORMATS); raises ArrowInvalid if none fits every value."""
        for time_format in SPREADSHEET_TIME_FORMATS:
            try:
                parsed = pc.strptime(column, format=time_format, unit=target.unit)
            except pa.ArrowInvalid:
                continue
            self._spreadsheet_formats[name] = time_format
            return parsed.cast(target)
        return column.cast(target, safe=True)  # raises the error that names the first value that does not parse

    def _to_number(self, column: pa.ChunkedArray, name: str, target: pa.DataType) -> pa.ChunkedArray:
        """Text to a number: blanks are null; integer codes written as "1.0" are whole numbers, kept."""
        column = _blank_to_null(column)
        try:
            converted = column.cast(target, safe=True)
        except pa.ArrowInvalid:
            if not pa.types.is_integer(target):
                raise
            converted = column.cast(pa.float64()).cast(target, safe=True)  # a fraction still fails, named
        self._count(name, column, converted)
        return converted

    def _count(self, name: str, source: pa.ChunkedArray, converted: pa.ChunkedArray, ruled_nulls: int = 0) -> None:
        """Values before and after a conversion that can lose some (text codes, text times)."""
        self._values_in[name] += _filled(source)
        self._values_out[name] += len(converted) - converted.null_count + ruled_nulls

    def _map_codes(
        self, column: pa.ChunkedArray, name: str, target: pa.DataType, codes: dict[str, int | str | None]
    ) -> pa.ChunkedArray:
        text = column.cast(pa.string())
        key = pc.utf8_upper(pc.utf8_trim_whitespace(text))
        keys = pa.array(list(codes), pa.string())
        position = pc.index_in(key, value_set=keys)
        mapped = pc.take(pa.array(list(codes.values()), target), position)
        null_by_rule = pc.and_(pc.is_valid(position), pc.is_null(mapped))
        if pa.types.is_integer(target):
            digits = pc.match_substring_regex(key, r"^[0-9]+$")  # already a code: keep it
            mapped = pc.coalesce(mapped, pc.if_else(digits, key, pa.scalar(None, pa.string())).cast(target))
            lost = pc.and_(pc.and_(pc.is_null(mapped), pc.is_null(position)), pc.not_equal(key, ""))
            for entry in pc.value_counts(pc.filter(text, lost)).to_pylist():
                self._unmapped[name][entry["values"]] += entry["counts"]
        else:
            mapped = pc.if_else(pc.is_null(position), text.cast(target), mapped)
        self._count(name, text, mapped, pc.sum(null_by_rule).as_py() or 0)
        return mapped


def normalise_table(table: pa.Table, trip_type: str) -> tuple[pa.Table, NormalisationReport]:
    """Normalise an in-memory table (small files, samples, tests)."""
    normaliser = Normaliser(table.schema, trip_type, filled_values(table))
    normalised = normaliser.apply(table)
    normaliser.check_no_column_emptied()
    return normalised, normaliser.report


def normalise_file(source: Path, dest: Path, trip_type: str, batch_rows: int = 1_000_000) -> NormalisationReport:
    """Write a canonical copy of a parquet file, batch by batch. Raises NormalisationError (after writing `dest`,
    which the caller discards) if a column cannot be converted or was emptied."""
    parquet = pq.ParquetFile(source)
    normaliser = Normaliser.for_parquet(parquet, trip_type)
    schema = normaliser.apply(parquet.schema_arrow.empty_table()).schema
    with pq.ParquetWriter(dest, schema, compression="zstd") as writer:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            writer.write_table(normaliser.apply(batch))
    normaliser.check_no_column_emptied(source.name)
    return normaliser.report
