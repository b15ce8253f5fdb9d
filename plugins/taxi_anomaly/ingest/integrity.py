"""Is a downloaded file the real thing? Parquet magic at both ends, a readable footer, the official size and rows."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from taxi_anomaly.ingest.metadata import OfficialFile

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_MAGIC = b"PAR1"
HEAD_BYTES = 64 * 1024  # enough to find the <title> of an error page

# Quarantine reason codes (stable: they appear in reports and outcomes).
EMPTY_FILE = "empty_file"
NOT_PARQUET = "not_parquet"
TRUNCATED_PARQUET = "truncated_parquet"
UNREADABLE_FOOTER = "unreadable_footer"
SIZE_MISMATCH = "size_mismatch"
ROW_COUNT_MISMATCH = "row_count_mismatch"


class IntegrityError(Exception):
    """The file is not what it should be. `reason` is one of the codes above; the message names the file."""

    def __init__(self, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.details = details or {}


@dataclass(frozen=True)
class ParquetFacts:
    """What the footer says about a parquet file."""

    rows: int
    row_groups: int
    columns: tuple[tuple[str, str], ...]
    created_by: str | None
    schema_fingerprint: str


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short stable hash of the column names and types, in order (changes whenever the source schema does)."""
    return columns_fingerprint((f.name, str(f.type)) for f in schema)


def columns_fingerprint(columns: Iterable[Sequence[str]]) -> str:
    """schema_fingerprint of (name, type) pairs, e.g. a CSV header's."""
    text = "\n".join(f"{name}:{kind}" for name, kind in columns)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_parquet(path: Path, name: str | None = None) -> ParquetFacts:
    """Check the magic bytes at both ends and read the footer. Raises IntegrityError with a specific reason."""
    import pyarrow.parquet as pq

    name = name or path.name
    size = path.stat().st_size
    if size == 0:
        raise IntegrityError(EMPTY_FILE, f"{name} is empty (0 bytes)")
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        handle.seek(max(size - 8, 0))
        tail = handle.read(8)
    if not head.startswith(PARQUET_MAGIC):
        kind = describe_bytes(head, size)
        raise IntegrityError(
            NOT_PARQUET,
            f"{name} is not a parquet file: it is {kind} (first bytes {head[:40]!r}, {size} bytes)",
            {"detected": kind, "first_bytes": repr(head[:64]), "bytes": size},
        )
    if size < 12 or tail[-4:] != PARQUET_MAGIC:
        raise IntegrityError(
            TRUNCATED_PARQUET,
            f"{name} is a truncated parquet file: it starts with the PAR1 magic but does not end with it "
            f"(missing footer magic; last bytes {tail[-4:]!r}, {size} bytes)",
            {"last_bytes": repr(tail), "bytes": size},
        )
    try:
        meta = pq.ParquetFile(path).metadata
        schema = meta.schema.to_arrow_schema()
    except Exception as err:  # pyarrow raises OSError/ArrowInvalid and friends for a corrupt footer
        raise IntegrityError(
            UNREADABLE_FOOTER,
            f"{name} has parquet magic at both ends but its footer cannot be read: {err}",
            {"error": str(err), "bytes": size},
        ) from err
    return ParquetFacts(
        rows=meta.num_rows,
        row_groups=meta.num_row_groups,
        columns=tuple((f.name, str(f.type)) for f in schema),
        created_by=meta.created_by,
        schema_fingerprint=schema_fingerprint(schema),
    )


def check_official(name: str, size: int, rows: int, official: OfficialFile | None) -> None:
    """Compare with the TLC's listing, when the listing knows the file."""
    if official is None:
        return
    where = f"the TLC listing {official.listing.name} (file modified {official.modified or 'unknown'})"
    if size != official.size_bytes:
        raise IntegrityError(
            SIZE_MISMATCH,
            f"{name} has {size} bytes but {where} says {official.size_bytes}",
            {"bytes": size, "official_bytes": official.size_bytes},
        )
    if rows != official.rows:
        raise IntegrityError(
            ROW_COUNT_MISMATCH,
            f"{name} has {rows} rows but {where} says {official.rows}",
            {"rows": rows, "official_rows": official.rows},
        )


_LFS = re.compile(rb"^version https://git-lfs\.github\.com/spec/v\d+\s+oid (\S+)\s+size (\d+)")
_TITLE = re.compile(rb"<title[^>]*>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)
_XML_CODE = re.compile(rb"<Code>(.*?)</Code>")


def describe_bytes(head: bytes, size: int) -> str:
    """Say what a non-parquet body most likely is, from its first bytes (error pages are the usual suspects)."""
    text = head.lstrip()
    lower = text[:64].lower()
    if match := _LFS.match(text):
        return (
            f"a git-lfs pointer file (oid {match.group(1).decode()}, {int(match.group(2))} bytes of real data "
            "never fetched from LFS)"
        )
    if lower.startswith((b"<!doctype html", b"<html")):
        title = _TITLE.search(head)
        return "an HTML page" + (f" titled {title.group(1)[:80].decode(errors='replace')!r}" if title else "")
    if lower.startswith(b"<?xml") or lower.startswith(b"<error"):
        code = _XML_CODE.search(head)
        return "an XML document" + (f" (S3 error code {code.group(1).decode(errors='replace')})" if code else "")
    if lower.startswith((b"{", b"[")):
        return "a JSON document" + _json_summary(head, size)
    if head.startswith(PARQUET_MAGIC):
        return "a parquet file"
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    if _looks_like_text(head):
        first_line = text.split(b"\n", 1)[0][:80].decode(errors="replace")
        return f"plain text (first line {first_line!r})"
    return "binary data of an unknown kind"


def _json_summary(head: bytes, size: int) -> str:
    if size > len(head):
        return ""
    try:
        document = json.loads(head)
    except ValueError:
        return ""
    if isinstance(document, dict):
        detail = document.get("message") or document.get("error") or document.get("code")
        if detail:
            return f" (an error body: {str(detail)[:120]!r})"
    return ""


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(b >= 32 or b in (9, 10, 13) for b in head)


ZONE_LOOKUP_HEADER = ("LocationID", "Borough", "Zone", "service_zone")
# The lookup as the TLC publishes it since 2017: zones 1-263 of the shapefile, 264 "Unknown" / "N/A" and 265
# "Outside of NYC" (borough "N/A" in the current file, "Unknown" in earlier copies).
ZONE_COUNT = 265
BOROUGHS = frozenset({"Bronx", "Brooklyn", "EWR", "Manhattan", "Queens", "Staten Island", "Unknown", "N/A"})
UNEXPECTED_CONTENT = "unexpected_content"
INCOMPLETE_ZONE_LOOKUP = "incomplete_zone_lookup"
# Every reason above: what the integrity step reports (the others are validation's, docs/ingestion.md).
INTEGRITY_REASONS = frozenset(
    {
        EMPTY_FILE,
        NOT_PARQUET,
        TRUNCATED_PARQUET,
        UNREADABLE_FOOTER,
        SIZE_MISMATCH,
        ROW_COUNT_MISMATCH,
        UNEXPECTED_CONTENT,
        INCOMPLETE_ZONE_LOOKUP,
    }
)


def check_zone_lookup(path: Path, name: str | None = None) -> int:
    """The zone lookup must be the TLC's CSV: its header, zones 1-265 once each, known boroughs. Returns 265."""
    import csv

    name = name or path.name
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if size == 0:
        raise IntegrityError(EMPTY_FILE, f"{name} is empty (0 bytes)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error):
        rows = []
    header = tuple(c.strip() for c in rows[0]) if rows else ()
    if header != ZONE_LOOKUP_HEADER:
        kind = describe_bytes(head, size)
        raise IntegrityError(
            UNEXPECTED_CONTENT,
            f"{name} is not the TLC zone lookup (expected a CSV with header {','.join(ZONE_LOOKUP_HEADER)}): "
            f"it is {kind} (first bytes {head[:40]!r}, {size} bytes)",
            {"detected": kind, "first_bytes": repr(head[:64]), "bytes": size},
        )
    problems = _zone_problems(rows[1:])
    if problems:
        raise IntegrityError(
            INCOMPLETE_ZONE_LOOKUP,
            f"{name} is not a complete TLC zone lookup ({len(rows) - 1} rows): {'; '.join(problems)}",
            {"rows": len(rows) - 1, "problems": problems, "bytes": size},
        )
    return len(rows) - 1


def _zone_problems(rows: list[list[str]]) -> list[str]:
    """What is wrong with the lookup's rows (line numbers count the header as line 1), at most a few of each."""
    problems = []
    cut = [f"line {n} has {len(row)} fields" for n, row in enumerate(rows, 2) if len(row) != len(ZONE_LOOKUP_HEADER)]
    if cut:
        problems.append(f"rows cut short or malformed ({', '.join(cut[:3])})")
    ids = [row[0].strip() for row in rows if row]
    not_ids = [i for i in ids if not i.isdigit()]
    if not_ids:
        problems.append(f"zone ids that are not numbers: {not_ids[:5]}")
    numbers = [int(i) for i in ids if i.isdigit()]
    repeated = sorted({i for i in numbers if numbers.count(i) > 1})
    if repeated:
        problems.append(f"zone ids repeated: {repeated[:10]}")
    missing = sorted(set(range(1, ZONE_COUNT + 1)) - set(numbers))
    if missing:
        shown = f"{missing[:10]}" + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        problems.append(f"zone ids missing of 1-{ZONE_COUNT}: {shown}")
    beyond = sorted(i for i in set(numbers) if not 1 <= i <= ZONE_COUNT)
    if beyond:
        problems.append(f"zone ids outside 1-{ZONE_COUNT}: {beyond[:10]}")
    boroughs = sorted({row[1].strip() for row in rows if len(row) > 1} - BOROUGHS)
    if boroughs:
        problems.append(f"unknown boroughs: {boroughs[:5]}")
    return problems
