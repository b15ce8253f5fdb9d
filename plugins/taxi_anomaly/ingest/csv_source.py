"""CSV and gzip-compressed CSV trip files (what the TLC published until 2022, and most archives hold) to canonical
parquet, streamed in blocks so that a multi-GiB month needs one block's memory.

Every value is read as text and converted by the same `Normaliser` as parquet files, so a CSV month lands in the
raw zone exactly like a parquet one: canonical column names and types, the source format in the manifest.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from taxi_anomaly.ingest.integrity import PARQUET_MAGIC
from taxi_anomaly.ingest.schema import NormalisationReport, Normaliser, competing_columns, filled_values

GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 64 * 1024
BLOCK_BYTES = 64 * 1024 * 1024  # pyarrow's CSV reader block: ~0.5 M rows of a yellow month
_HEADER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ :.\-]*$")


class SourceFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    CSV_GZ = "csv.gz"


class CsvError(Exception):
    """The CSV cannot be read (a row with the wrong number of fields, a broken gzip stream); names the file."""


def sniff_format(path: Path) -> SourceFormat | None:
    """What the file is by its content: parquet, CSV or gzip-compressed CSV; None for anything else."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(PARQUET_MAGIC):
        return SourceFormat.PARQUET
    if head.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as unzipped:
                text = unzipped.read(SNIFF_BYTES)
        except (OSError, EOFError):
            return None
        return SourceFormat.CSV_GZ if _looks_like_trip_csv(text) else None
    return SourceFormat.CSV if _looks_like_trip_csv(head) else None


def _looks_like_trip_csv(head: bytes) -> bool:
    """A header of at least three column names (an unnamed index column allowed) and a row after it."""
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    lines = text.splitlines()
    if len(lines) < 2:
        return False
    names = [n.strip() for n in next(csv.reader([lines[0]]))]
    named = [n for n in names if n]
    return len(named) >= 3 and all(_HEADER_NAME.match(n) for n in named)


@dataclass(frozen=True)
class ConvertedCsv:
    rows: int
    header: tuple[str, ...]
    report: NormalisationReport


def csv_to_canonical_parquet(
    source: Path, dest: Path, trip_type: str, source_format: SourceFormat, name: str | None = None
) -> ConvertedCsv:
    """Write the canonical parquet of a CSV month. Raises CsvError or NormalisationError naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = name or source.name
    header = _header(source, source_format, name)
    normaliser = Normaliser(
        _text_schema(header), trip_type, _competing_filled(source, source_format, header, trip_type)
    )
    schema = normaliser.apply(_text_schema(header).empty_table()).schema
    rows = 0
    try:
        with pq.ParquetWriter(dest, schema, compression="zstd") as writer:
            for batch in _batches(source, source_format, header):
                writer.write_table(normaliser.apply(batch))
                rows += batch.num_rows
    except (pa.ArrowInvalid, EOFError, OSError) as err:
        raise CsvError(f"{name}: cannot be read as CSV after {rows} rows: {err}") from err
    normaliser.check_no_column_emptied(name)
    return ConvertedCsv(rows, header, normaliser.report)


def _open(source: Path, source_format: SourceFormat):  # noqa: ANN202 - a pyarrow input stream
    import pyarrow as pa

    stream = pa.OSFile(str(source))
    return pa.CompressedInputStream(stream, "gzip") if source_format is SourceFormat.CSV_GZ else stream


def _header(source: Path, source_format: SourceFormat, name: str) -> tuple[str, ...]:
    opener = gzip.open if source_format is SourceFormat.CSV_GZ else open
    with opener(source, "rb") as handle:
        first = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="").readline()
    names = next(csv.reader([first]), [])
    repeated = [n for n, count in Counter(names).items() if count > 1]
    if repeated:
        raise CsvError(f"{name}: the header repeats column name(s) {repeated}; each column needs its own name")
    return tuple(names)


def _text_schema(header: tuple[str, ...]):  # noqa: ANN202 - a pyarrow schema
    import pyarrow as pa

    return pa.schema([(n, pa.string()) for n in header])


def _batches(source: Path, source_format: SourceFormat, header: tuple[str, ...], columns: list[str] | None = None):  # noqa: ANN202
    """The CSV's record batches, every column as text (the Normaliser converts), blank lines skipped."""
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(
        _open(source, source_format),
        read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, encoding="utf8"),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(
            column_types={n: "string" for n in header},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            include_columns=columns,
        ),
    )
    yield from reader


def _competing_filled(
    source: Path, source_format: SourceFormat, header: tuple[str, ...], trip_type: str
) -> Counter | None:
    """Filled counts of columns that compete for one canonical column (one extra pass over those columns)."""
    competing = competing_columns(_text_schema(header), trip_type)
    if not competing:
        return None
    filled: Counter = Counter()
    for batch in _batches(source, source_format, header, competing):
        filled.update(filled_values(batch))
    return filled
