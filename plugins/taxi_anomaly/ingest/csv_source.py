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
    beyond = _fields_beyond_header(source, source_format, header, name)
    normaliser = Normaliser(
        _text_schema(header), trip_type, _competing_filled(source, source_format, header, trip_type, beyond)
    )
    schema = normaliser.apply(_text_schema(header).empty_table()).schema
    rows = 0
    try:
        with pq.ParquetWriter(dest, schema, compression="zstd") as writer:
            for batch in _batches(source, source_format, header, beyond=beyond):
                writer.write_table(normaliser.apply(_without_empty_beyond(batch, header, name, rows)))
                rows += batch.num_rows
    except (pa.ArrowInvalid, EOFError, OSError) as err:
        raise CsvError(f"{name}: cannot be read as CSV after {rows} rows: {err}") from err
    normaliser.check_no_column_emptied(name)
    report = normaliser.report
    if beyond:
        report.notes.append(
            f"every row has {beyond} empty field(s) after the header's {len(header)} names (as the green 2013-2014 "
            "CSV releases): dropped"
        )
    return ConvertedCsv(rows, header, report)


def _fields_beyond_header(source: Path, source_format: SourceFormat, header: tuple[str, ...], name: str) -> int:
    """How many fields the first data row has beyond the header's names, if they are all empty; else 0.

    The green 2013-2014 CSV releases name 20 columns and end every row with two empty fields; those rows are read
    with placeholder names and the placeholders dropped once checked empty. Values there are an error.
    """
    opener = gzip.open if source_format is SourceFormat.CSV_GZ else open
    with opener(source, "rb") as handle:
        lines = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        lines.readline()
        first = next((line for line in lines if line.strip()), "")
    fields = next(csv.reader([first]), [])
    extra = fields[len(header) :]
    if extra and any(value.strip() for value in extra):
        raise CsvError(
            f"{name}: the first row has {len(fields)} fields for {len(header)} column names, and the fields beyond "
            f"the header hold values ({extra[:3]}): which column they belong to is unknown"
        )
    return len(extra)


def _placeholders(count: int) -> list[str]:
    return [f"_beyond_header_{i}" for i in range(1, count + 1)]


def _without_empty_beyond(batch, header: tuple[str, ...], name: str, offset: int):  # noqa: ANN001, ANN202
    """The batch without the placeholder columns, once checked empty (a value there is a CsvError)."""
    import pyarrow.compute as pc

    for column in batch.schema.names[len(header) :]:
        values = pc.utf8_trim_whitespace(batch[column])
        filled = pc.fill_null(pc.not_equal(values, ""), False)
        if pc.any(filled).as_py():
            row = offset + pc.index(filled, True).as_py() + 1
            raise CsvError(
                f"{name}: data row {row} has a value beyond the header's {len(header)} column names "
                f"({batch[column][row - offset - 1].as_py()!r}): which column it belongs to is unknown"
            )
    return batch.select(list(header)) if batch.num_columns > len(header) else batch


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


def _batches(  # noqa: ANN202
    source: Path,
    source_format: SourceFormat,
    header: tuple[str, ...],
    columns: list[str] | None = None,
    beyond: int = 0,
):
    """The CSV's record batches, every column as text (the Normaliser converts), blank lines skipped.

    `beyond`: empty fields every row has after the header's names, read as placeholder columns.
    """
    import pyarrow.csv as pacsv

    names = list(header) + _placeholders(beyond)
    reader = pacsv.open_csv(
        _open(source, source_format),
        read_options=pacsv.ReadOptions(
            block_size=BLOCK_BYTES, encoding="utf8", column_names=names if beyond else None, skip_rows=int(bool(beyond))
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(
            column_types={n: "string" for n in names},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            include_columns=columns,
        ),
    )
    yield from reader


def _competing_filled(
    source: Path, source_format: SourceFormat, header: tuple[str, ...], trip_type: str, beyond: int = 0
) -> Counter | None:
    """Filled counts of columns that compete for one canonical column (one extra pass over those columns)."""
    competing = competing_columns(_text_schema(header), trip_type)
    if not competing:
        return None
    filled: Counter = Counter()
    for batch in _batches(source, source_format, header, competing, beyond):
        filled.update(filled_values(batch))
    return filled
