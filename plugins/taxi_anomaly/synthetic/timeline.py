"""A month's 30-minute slots on the New York wall clock, and real time → tz-naive wall-clock conversion (DST-safe)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from taxi_anomaly.tlc import YearMonth

NEW_YORK = "America/New_York"
SLOT_MINUTES = 30
US_PER_SECOND = 1_000_000
SLOT_US = SLOT_MINUTES * 60 * US_PER_SECOND
_US_PER_HOUR = 3600 * US_PER_SECOND
_US_PER_DAY = 24 * _US_PER_HOUR
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0
# Trips that start in the month can end (and requests can start) a little outside it.
_CONVERSION_MARGIN = timedelta(days=3)


def month_start(month: YearMonth) -> datetime:
    return datetime(month.year, month.month, 1)


def month_end(month: YearMonth) -> datetime:
    """Exclusive: midnight at the start of the next month."""
    return month_start(month.next())


def wall_us(moment: datetime) -> int:
    """A tz-naive wall-clock datetime as microseconds since 1970-01-01 00:00 (the TLC's tz-naive encoding)."""
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)


@dataclass(frozen=True)
class MonthTimeline:
    """Every real 30-minute slot whose wall-clock start lies in the month.

    Slots are real (UTC) half hours. On the New York wall clock the spring-forward night therefore has no
    02:00-03:00 slots and the fall-back night has two 01:00-02:00 hours, as in the real TLC records.

    :param month: the calendar month.
    :param slot_utc_us: start of each slot in real time (µs since the epoch, UTC).
    :param slot_wall_us: the same instants on the New York wall clock (tz-naive µs).
    :param transitions_utc_us: UTC instants, near the month, where New York's UTC offset changes.
    :param offsets_us: New York's UTC offset before the first transition and after each one.
    """

    month: YearMonth
    slot_utc_us: np.ndarray
    slot_wall_us: np.ndarray
    transitions_utc_us: np.ndarray
    offsets_us: np.ndarray

    @classmethod
    def for_month(cls, month: YearMonth) -> MonthTimeline:
        first = pd.Timestamp(month_start(month) - _CONVERSION_MARGIN, tz=NEW_YORK)
        last = pd.Timestamp(month_end(month) + _CONVERSION_MARGIN, tz=NEW_YORK)
        instants = pd.date_range(first.tz_convert("UTC"), last.tz_convert("UTC"), freq=f"{SLOT_MINUTES}min")
        utc = instants.tz_localize(None).asi8 // 1000
        wall = instants.tz_convert(NEW_YORK).tz_localize(None).asi8 // 1000
        offsets = wall - utc
        # New York's offset only changes on whole hours, so a change shows exactly at a slot boundary.
        changes = np.flatnonzero(np.diff(offsets)) + 1
        in_month = (wall >= wall_us(month_start(month))) & (wall < wall_us(month_end(month)))
        return cls(
            month=month,
            slot_utc_us=utc[in_month],
            slot_wall_us=wall[in_month],
            transitions_utc_us=utc[changes],
            offsets_us=np.concatenate([offsets[:1], offsets[changes]]),
        )

    @property
    def slot_count(self) -> int:
        return len(self.slot_utc_us)

    def to_wall(self, utc_us: np.ndarray) -> np.ndarray:
        """Real instants (UTC µs) as New York wall-clock µs, tz-naive like the TLC timestamps."""
        if len(utc_us) == 0:
            return utc_us + self.offsets_us[0]
        # Usually no change of offset lies between the earliest and latest instant: one offset for all.
        first, last = np.searchsorted(self.transitions_utc_us, [utc_us.min(), utc_us.max()], side="right")
        if first == last:
            return utc_us + self.offsets_us[first]
        return utc_us + self.offsets_us[np.searchsorted(self.transitions_utc_us, utc_us, side="right")]

    def slot_hour_of_week(self) -> np.ndarray:
        """Hour of the week of each slot's wall-clock start, Monday 00:00-01:00 = 0."""
        days = self.slot_wall_us // _US_PER_DAY
        hour = (self.slot_wall_us // _US_PER_HOUR) % 24
        return ((days + _EPOCH_WEEKDAY) % 7) * 24 + hour

    def slot_day(self) -> np.ndarray:
        """Day of the month of each slot's wall-clock start, 0 = the 1st."""
        return self.slot_wall_us // _US_PER_DAY - wall_us(month_start(self.month)) // _US_PER_DAY

    def dst_change_days(self) -> set[int]:
        """Days of the month (0 = the 1st) on which the wall clock jumps; episodes stay clear of them."""
        wall_at_change = self.transitions_utc_us + self.offsets_us[:-1]
        days = wall_at_change // _US_PER_DAY - wall_us(month_start(self.month)) // _US_PER_DAY
        return {int(day) for day in days}
