"""Which months a run works on: the daily look-back, backfill targets and the retraining window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from taxi_anomaly.contract import Granularity
from taxi_anomaly.orchestration.params import Sandbox, check_month_range
from taxi_anomaly.orchestration.payloads import MonthRun


def shift_month(month: str, delta: int) -> str:
    year, mm = map(int, month.split("-"))
    index = year * 12 + (mm - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def candidate_months(today: date, lookback: int) -> list[str]:
    """The `lookback` months before today's month, oldest first: where a newly published TLC file can appear."""
    if lookback < 1:
        raise ValueError(f"lookback must be at least 1, got {lookback}")
    current = f"{today.year:04d}-{today.month:02d}"
    return [shift_month(current, -n) for n in range(lookback, 0, -1)]


def month_runs(
    trip_types: Sequence[str], months: Sequence[str], sandbox: Sandbox, granularity: str = "city"
) -> list[MonthRun]:
    """One unit of work of the mapped tasks per (trip type, month), each checked (MonthRun names a wrong value)."""
    if not trip_types:
        raise ValueError("trip_types is empty: choose at least one of yellow, green, fhv, fhvhv")
    return [MonthRun(t, m, sandbox, Granularity(granularity)) for t in trip_types for m in months]


def backfill_runs(
    trip_types: Sequence[str], first: str, last: str, sandbox: Sandbox, granularity: str = "city"
) -> list[MonthRun]:
    """Every (trip type, month) of the range; raises ValueError naming the parameters if the range is wrong."""
    return month_runs(trip_types, check_month_range(first, last), sandbox, granularity)


def training_window(landed: list[str], size: int, holdout: str | None = None) -> dict[str, Any]:
    """The evaluation month (given, else the newest landed) and the up to `size` landed months before it.

    Raises ValueError when there is nothing to train on, naming what was found.
    """
    months = sorted(set(landed))
    if holdout is None:
        if len(months) < 2:
            raise ValueError(
                f"need at least two landed months (training + evaluation), found {months or 'none'}: "
                "backfill the history first (tap_backfill with score off)"
            )
        holdout = months[-1]
    if holdout not in months:
        raise ValueError(f"evaluation month {holdout} has not landed; landed months: {', '.join(months) or 'none'}")
    before = [m for m in months if m < holdout and m >= shift_month(holdout, -size)]
    if not before:
        raise ValueError(f"no landed month in the {size} months before {holdout}; landed: {', '.join(months)}")
    return {"train_months": before, "holdout_month": holdout}
