"""The manifest stored next to each landed file: where it came from, what it is, and how it was checked.

It is written last, after the data file and its reports, so it also marks a landing as complete: a data file
without a manifest is treated as absent and downloaded again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MANIFEST_VERSION = 1


@dataclass
class Manifest:
    """One landed file. `bytes`/`sha256` are of the file exactly as downloaded. A parquet source lands unchanged;
    a CSV source (`source_format` csv or csv.gz) lands as canonical parquet, whose size and hash are `landed_*`."""

    file_name: str
    source_url: str
    bucket: str
    key: str
    bytes: int
    sha256: str
    rows: int | None
    schema_fingerprint: str | None
    content_length: int | None = None
    source_format: str = "parquet"
    landed_bytes: int | None = None
    landed_sha256: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    trip_type: str | None = None
    month: str | None = None
    row_groups: int | None = None
    created_by: str | None = None
    columns: list[list[str]] = field(default_factory=list)
    normalisation: dict | None = None
    official: dict | None = None
    validation: dict | None = None
    download_seconds: float | None = None
    attempts: int | None = None
    ingested_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    manifest_version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Manifest:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in document.items() if k in known})
