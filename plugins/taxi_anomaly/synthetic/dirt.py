"""Realistic dirt found in real TLC months, at small configurable shares; dirt is never an anomaly episode."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np

from taxi_anomaly.synthetic.timeline import US_PER_SECOND, month_end, month_start, wall_us
from taxi_anomaly.tlc import YearMonth

ABSURD_MILES = (200_000.0, 350_000.0)  # odometer glitches like green 2024-01's 201,421.68 miles
_NEIGHBOUR_DAYS = 3  # most stray pickups sit just before or after the month
_YEARS_OFF_SHARE = 0.3  # the rest carry a clock reset to the turn of 2008/2009
_YEARS_OFF_WINDOW = (datetime(2008, 12, 31), datetime(2009, 1, 2))


@dataclass(frozen=True)
class DirtOptions:
    """Share of rows carrying each kind of dirt.

    :param out_of_month_share: pickups outside the file's month (a few years off, at 2008/2009).
    :param negative_fare_share: refunds: every money column negative.
    :param zero_distance_share: trips recorded with 0 miles.
    :param absurd_distance_share: trips recorded with 200,000+ miles.
    :param null_block_share: one contiguous block of rows whose trip details are null.
    """

    out_of_month_share: float = 2e-5
    negative_fare_share: float = 1e-3
    zero_distance_share: float = 5e-3
    absurd_distance_share: float = 2e-6
    null_block_share: float = 1e-3

    def __post_init__(self) -> None:
        for name, share in asdict(self).items():
            if not 0.0 <= share <= 0.05:
                raise ValueError(f"dirt: {name} must be between 0 and 0.05, got {share}")

    @classmethod
    def clean(cls) -> DirtOptions:
        return cls(0.0, 0.0, 0.0, 0.0, 0.0)

    def to_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ChunkDirt:
    """How many rows of one chunk carry each kind of dirt; null_block is (first row, length) or None."""

    out_of_month: int = 0
    negative_fares: int = 0
    zero_distances: int = 0
    absurd_distances: int = 0
    null_block: tuple[int, int] | None = None


def out_of_month_wall_us(rng: np.random.Generator, month: YearMonth, n: int) -> np.ndarray:
    """Pickup times outside the month: mostly the days around it, some at the turn of 2008/2009."""
    before = wall_us(month_start(month) - timedelta(days=_NEIGHBOUR_DAYS))
    after = wall_us(month_end(month))
    window_us = _NEIGHBOUR_DAYS * 24 * 3600 * US_PER_SECOND
    neighbour = (
        np.where(rng.random(n) < 0.5, before, after) + rng.integers(0, window_us // US_PER_SECOND, n) * US_PER_SECOND
    )
    years_off_start, years_off_end = (wall_us(moment) for moment in _YEARS_OFF_WINDOW)
    years_off = rng.integers(years_off_start // US_PER_SECOND, years_off_end // US_PER_SECOND, n) * US_PER_SECOND
    return np.where(rng.random(n) < _YEARS_OFF_SHARE, years_off, neighbour)


def split_rows(rng: np.random.Generator, n_rows: int, *counts: int) -> list[np.ndarray]:
    """Disjoint random row indices, one array per requested count."""
    chosen = rng.choice(n_rows, size=min(sum(counts), n_rows), replace=False)
    return np.split(chosen, np.cumsum(counts)[:-1])
