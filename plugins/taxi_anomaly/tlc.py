"""TLC trip-record facts shared by every stage: trip types, months and source URLs (keys: taxi_anomaly.layout)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TripType = Literal["yellow", "green", "fhv", "fhvhv"]
TRIP_TYPES: tuple[TripType, ...] = ("yellow", "green", "fhv", "fhvhv")

# The TLC's CDN. Every download goes through a configurable base URL (tests and the demo use a local mirror).
DEFAULT_BASE_URL = "https://d37ci6vzurychx.cloudfront.net"

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class YearMonth:
    """A calendar month, written YYYY-MM."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError(f"month must be 1..12, got {self.month} in {self.year}-{self.month:02d}")
        if not 2009 <= self.year <= 2100:
            raise ValueError(f"year {self.year} is outside the TLC record range (2009 onwards)")

    @classmethod
    def parse(cls, text: str) -> YearMonth:
        match = _MONTH.match(text.strip())
        if not match:
            raise ValueError(f"expected a month as YYYY-MM, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> YearMonth:
        return YearMonth(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> YearMonth:
        return YearMonth(self.year - (self.month == 1), (self.month - 2) % 12 + 1)


FIRST_MONTH = YearMonth(2009, 1)  # the first month of TLC trip records (yellow)


def month_range(first: str | YearMonth, last: str | YearMonth) -> list[YearMonth]:
    """Every month from first to last, inclusive."""
    start = first if isinstance(first, YearMonth) else YearMonth.parse(first)
    end = last if isinstance(last, YearMonth) else YearMonth.parse(last)
    if end < start:
        raise ValueError(f"month range ends ({end}) before it starts ({start})")
    months = [start]
    while months[-1] < end:
        months.append(months[-1].next())
    return months


def check_trip_type(trip_type: str) -> TripType:
    if trip_type not in TRIP_TYPES:
        raise ValueError(f"unknown trip type {trip_type!r}; expected one of {', '.join(TRIP_TYPES)}")
    return trip_type


def file_name(trip_type: str, month: YearMonth, suffix: str = ".parquet") -> str:
    return f"{check_trip_type(trip_type)}_tripdata_{month}{suffix}"


def source_url(base_url: str, trip_type: str, month: YearMonth, suffix: str = ".parquet") -> str:
    """`{base_url}/trip-data/{trip_type}_tripdata_{YYYY-MM}.parquet`, as on the TLC's CDN (or another suffix,
    e.g. `.csv.gz` on an archive of the CSV releases)."""
    return f"{base_url.rstrip('/')}/trip-data/{file_name(trip_type, month, suffix)}"


def zone_lookup_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/misc/taxi_zone_lookup.csv"
