"""The TLC's official per-file listing (`{trip_type}_tripmetadata_{YYYY}.csv`): expected size, rows and columns."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from taxi_anomaly.tlc import YearMonth, check_trip_type, file_name


@dataclass(frozen=True)
class OfficialFile:
    """One row of the official listing."""

    file_name: str
    rows: int
    size_bytes: int
    columns: tuple[str, ...]
    modified: str
    listing: Path


class OfficialMetadata:
    """Looks files up in a folder of listings; a month that no listing mentions is simply unknown (None).

    :param folder: the folder holding ``*_tripmetadata_YYYY.csv`` files.
    """

    def __init__(self, folder: Path) -> None:
        if not Path(folder).is_dir():
            raise ValueError(f"official metadata folder {folder} does not exist")
        self.folder = Path(folder)

    def lookup(self, trip_type: str, month: YearMonth) -> OfficialFile | None:
        listing = self.folder / f"{check_trip_type(trip_type)}_tripmetadata_{month.year:04d}.csv"
        if not listing.is_file():
            return None
        return _read_listing(listing).get(file_name(trip_type, month))

    def rows(self, trip_type: str, month: YearMonth) -> int | None:
        found = self.lookup(trip_type, month)
        return found.rows if found else None


@lru_cache(maxsize=64)
def _read_listing(listing: Path) -> dict[str, OfficialFile]:
    with listing.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        return {
            row["file_name"]: OfficialFile(
                file_name=row["file_name"],
                rows=int(row["file_num_rows"]),
                size_bytes=int(row["file_size_bytes"]),
                columns=tuple(row["file_column_names"].split(",")),
                modified=row.get("file_modification_time", ""),
                listing=listing,
            )
            for row in rows
        }
    except (KeyError, ValueError) as err:
        raise ValueError(f"official metadata listing {listing} is malformed: {err}") from err
