"""Realistic dirt found in real TLC months, at small configurable shares; dirt is never an anomaly episode.

Every corrupted row is labelled with its fault kind (the trip labels beside the month): a row may carry two kinds
(e.g. a stray pickup that also has zero miles), never two of the kinds drawn by `split_rows`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta

import numpy as np

from taxi_anomaly.synthetic.timeline import US_PER_SECOND, month_end, month_start, wall_us
from taxi_anomaly.tlc import YearMonth

ABSURD_MILES = (200_000.0, 350_000.0)  # odometer glitches like green 2024-01's 201,421.68 miles
_NEIGHBOUR_DAYS = 3  # most stray pickups sit just before or after the month
_YEARS_OFF_SHARE = 0.3  # the rest carry a clock reset to the turn of 2008/2009
_YEARS_OFF_WINDOW = (datetime(2008, 12, 31), datetime(2009, 1, 2))
METER_FAULT_FACTOR = (5.0, 20.0)  # fare (and so fare per mile) times this
GPS_FAULT_MPH = (150.0, 500.0)  # distance recorded as if driven at this speed for the trip's duration
TIP_OVER_FARE_MULTIPLE = (1.5, 5.0)  # tip = fare times this
FARE_WITHOUT_DISTANCE_SECONDS = (10, 90)  # a fare recorded with 0 miles and this duration


@dataclass(frozen=True)
class DirtOptions:
    """Share of rows carrying each kind of dirt.

    :param out_of_month_share: pickups outside the file's month (a few years off, at 2008/2009).
    :param negative_fare_share: refunds: every money column negative.
    :param zero_distance_share: trips recorded with 0 miles.
    :param absurd_distance_share: trips recorded with 200,000+ miles.
    :param null_block_share: one contiguous block of rows whose trip details are null.
    :param meter_fault_share: meter faults: a fare 5-20 times what the distance and time give.
    :param gps_fault_share: GPS faults: a distance impossible for the duration (150-500 mph).
    :param tip_over_fare_share: data-entry faults: a tip 1.5-5 times the fare.
    :param fare_without_distance_share: data-entry faults: a fare recorded with 0 miles and 10-90 seconds.

    Dirt in fares and distances is drawn only for the trip types whose records carry them (not fhv). The four
    per-trip faults are off by default; TRIP_FAULTS has them at 5e-4 each (the dirt stays under 1 % of the rows).
    """

    out_of_month_share: float = 2e-5
    negative_fare_share: float = 1e-3
    zero_distance_share: float = 5e-3
    absurd_distance_share: float = 2e-6
    null_block_share: float = 1e-3
    # Off by default: the months the window detectors are measured on stay as they were (TRIP_FAULTS turns them on).
    meter_fault_share: float = 0.0
    gps_fault_share: float = 0.0
    tip_over_fare_share: float = 0.0
    fare_without_distance_share: float = 0.0

    def __post_init__(self) -> None:
        for name, share in asdict(self).items():
            if not 0.0 <= share <= 0.05:
                raise ValueError(f"dirt: {name} must be between 0 and 0.05, got {share}")

    @classmethod
    def clean(cls) -> DirtOptions:
        return cls(**dict.fromkeys((f.name for f in fields(cls)), 0.0))

    def to_json(self) -> dict[str, float]:
        return asdict(self)


# The default dirt plus the four per-trip faults at 5e-4 each: the months per-trip detection is measured on.
TRIP_FAULTS = DirtOptions(
    meter_fault_share=5e-4, gps_fault_share=5e-4, tip_over_fare_share=5e-4, fare_without_distance_share=5e-4
)

# The fault kind of each kind of dirt, as the trip labels name it (DirtOptions' fields without "_share").
FAULT_KINDS = tuple(f.name.removesuffix("_share") for f in fields(DirtOptions))
# The kinds in fare, distance, duration and tip, which per-trip features see; the others change the pickup date
# (out_of_month) or null columns no trip feature reads (null_block).
TRIP_FEATURE_FAULTS = tuple(kind for kind in FAULT_KINDS if kind not in ("out_of_month", "null_block"))


@dataclass(frozen=True)
class ChunkDirt:
    """How many rows of one chunk carry each kind of dirt; null_block is (first row, length) or None.

    :param faults: rows of each kind drawn by split_rows (FAULT_KINDS but out_of_month and null_block).
    """

    out_of_month: int = 0
    faults: dict[str, int] = field(default_factory=dict)
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
