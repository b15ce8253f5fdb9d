"""Draw one chunk of a planned month, fully vectorised: slots → zones → miles → seconds → fares → times → dirt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from taxi_anomaly.synthetic.dirt import (
    ABSURD_MILES,
    FARE_WITHOUT_DISTANCE_SECONDS,
    GPS_FAULT_MPH,
    METER_FAULT_FACTOR,
    TIP_OVER_FARE_MULTIPLE,
    out_of_month_wall_us,
    split_rows,
)
from taxi_anomaly.synthetic.plan import ChunkPlan, MonthPlan
from taxi_anomaly.synthetic.tables import Trips, build_table
from taxi_anomaly.synthetic.timeline import SLOT_MINUTES, US_PER_SECOND

_SLOT_SECONDS = SLOT_MINUTES * 60
_WAIT_MEDIAN_SECONDS = 300.0  # request to pickup, for-hire trips
_WAIT_SIGMA = 0.5


@dataclass(frozen=True)
class DrawnChunk:
    """One chunk's rows in the trip type's TLC schema, and which of them carry each fault kind (chunk row indices)."""

    table: pa.Table
    faults: dict[str, np.ndarray]


def draw_chunk(plan: MonthPlan, chunk: ChunkPlan) -> DrawnChunk:
    """All rows of one chunk and their fault labels; the chunk's own seed makes it repeatable."""
    rng = np.random.default_rng(chunk.seed)
    rows = _ChunkRows.draw(plan, chunk, rng)
    sampler = plan.sampler
    hour_of_week = plan.slot_hour_of_week  # by slot: rows.per_row gives each row its slot's value
    hour = hour_of_week % 24

    pickup = _pickup_zones(plan, chunk, rows, rng)
    dropoff = sampler.dropoff_zones(rng, pickup)
    routes = sampler.routes(pickup, dropoff)
    miles = sampler.miles(rng, routes.kind, rows.per_row(sampler.log_miles_scale_by_hour[hour]))
    for scoped_rows, magnitude in _episode_rows(plan, chunk, rows, pickup, "distance"):
        miles[scoped_rows] *= magnitude
    seconds = sampler.seconds(rng, miles, rows.per_row(sampler.profile.speed_mph_by_hour[hour]))
    fare = sampler.base_fare(rng, miles, seconds)
    fare_factor = np.ones(rows.n)
    for scoped_rows, magnitude in _episode_rows(plan, chunk, rows, pickup, "fare"):
        fare[scoped_rows] *= magnitude
        fare_factor[scoped_rows] = magnitude

    dirt = chunk.dirt
    faults = dict(zip(dirt.faults, split_rows(rng, rows.n, *dirt.faults.values()), strict=True))
    miles[faults["zero_distance"]] = 0.0
    absurd = faults["absurd_distance"]
    miles[absurd] = rng.uniform(*ABSURD_MILES, len(absurd))
    meter = faults["meter_fault"]
    factor = rng.uniform(*METER_FAULT_FACTOR, len(meter))
    fare[meter] *= factor
    fare_factor[meter] *= factor  # flat fares too
    gps = faults["gps_fault"]
    miles[gps] = seconds[gps] * rng.uniform(*GPS_FAULT_MPH, len(gps)) / 3600.0
    without_distance = faults["fare_without_distance"]
    miles[without_distance] = 0.0
    seconds[without_distance] = rng.integers(*FARE_WITHOUT_DISTANCE_SECONDS, len(without_distance), endpoint=True)
    overtipped = faults["tip_over_fare"]
    tip_multiples = rng.uniform(*TIP_OVER_FARE_MULTIPLE, len(overtipped))
    pickup_us, dropoff_us, request_us = _wall_clock_times(plan, rows, seconds, rng)
    trips = Trips(
        pickup_us=pickup_us,
        dropoff_us=dropoff_us,
        request_us=request_us,
        pickup=pickup,
        dropoff=dropoff,
        miles=miles,
        seconds=seconds,
        fare=fare,
        fare_factor=fare_factor,
        hour_of_week=rows.per_row(hour_of_week),
        long_trip=routes.long_trip,
        airport=routes.airport,
        congestion_zone=routes.congestion_zone,
    )
    null_rows = _null_rows(rows.n, dirt.null_block)
    table = build_table(
        plan.trip_type,
        rng,
        trips,
        null_rows=null_rows,
        refund_rows=faults["negative_fare"],
        overtipped=(overtipped, tip_multiples),
    )
    faults["out_of_month"] = np.arange(rows.in_month, rows.n)
    faults["null_block"] = np.flatnonzero(null_rows) if null_rows is not None else np.empty(0, dtype=np.intp)
    return DrawnChunk(table, faults)


@dataclass(frozen=True)
class _ChunkRows:
    """Which slot each row of a chunk belongs to, as runs: the planned trips slot by slot, then the strays.

    Rows are in slot order, so a row's slot-level values (start time, hour) come from one np.repeat.

    :param runs: slot of each run: the chunk's slots in order, then one borrowed slot per stray row.
    :param counts: rows in each run.
    :param in_month: rows before the strays.
    :param first_rows: first row of each of the chunk's slots, and the in-month row count at the end.
    """

    first_slot: int
    stop_slot: int
    runs: np.ndarray
    counts: np.ndarray
    in_month: int
    first_rows: np.ndarray

    @classmethod
    def draw(cls, plan: MonthPlan, chunk: ChunkPlan, rng: np.random.Generator) -> _ChunkRows:
        """Strays borrow a random slot of the chunk (its context), but lie outside the month and every episode."""
        counts = plan.slot_counts[chunk.first_slot : chunk.stop_slot]
        strays = rng.integers(chunk.first_slot, chunk.stop_slot, chunk.dirt.out_of_month)
        first_rows = np.concatenate([[0], np.cumsum(counts)])
        return cls(
            first_slot=chunk.first_slot,
            stop_slot=chunk.stop_slot,
            runs=np.concatenate([np.arange(chunk.first_slot, chunk.stop_slot), strays]),
            counts=np.concatenate([counts, np.ones(len(strays), dtype=counts.dtype)]),
            in_month=int(first_rows[-1]),
            first_rows=first_rows,
        )

    @property
    def n(self) -> int:
        return self.in_month + len(self.runs) - (self.stop_slot - self.first_slot)

    def per_row(self, by_slot: np.ndarray) -> np.ndarray:
        """A slot-level array (indexed by the month's slot) spread to the chunk's rows."""
        return np.repeat(by_slot[self.runs], self.counts)

    def in_slots(self, slots: np.ndarray) -> np.ndarray:
        """Indices of the in-month rows whose slot is in `slots` (sorted slot indices of this chunk)."""
        local = slots - self.first_slot
        if len(local) == 0:
            return np.empty(0, dtype=np.intp)
        runs = np.split(local, np.flatnonzero(np.diff(local) > 1) + 1)
        return np.concatenate([np.arange(self.first_rows[run[0]], self.first_rows[run[-1] + 1]) for run in runs])


def _pickup_zones(plan: MonthPlan, chunk: ChunkPlan, rows: _ChunkRows, rng: np.random.Generator) -> np.ndarray:
    """Pickup zones by popularity; inside a scoped demand episode the scoped zones are re-weighted."""
    pickup = plan.sampler.pickup_sampler().sample(rng, rows.n)
    for index in chunk.episodes:
        scoped_sampler = plan.effects[index].pickup_sampler
        if scoped_sampler is not None:
            inside = rows.in_slots(_episode_slots(plan, chunk, index))
            pickup[inside] = scoped_sampler.sample(rng, len(inside))
    return pickup


def _episode_slots(plan: MonthPlan, chunk: ChunkPlan, index: int) -> np.ndarray:
    return chunk.first_slot + np.flatnonzero(plan.slot_episode[chunk.first_slot : chunk.stop_slot] == index)


def _episode_rows(
    plan: MonthPlan, chunk: ChunkPlan, rows: _ChunkRows, pickup: np.ndarray, affects: str
) -> list[tuple[np.ndarray, float]]:
    """(rows, multiplier) of each episode of the chunk that acts on `affects` ("fare" or "distance")."""
    found = []
    for index in chunk.episodes:
        effect = plan.effects[index]
        if effect.episode.kind.affects == affects:
            inside = rows.in_slots(_episode_slots(plan, chunk, index))
            found.append((inside[effect.in_scope[pickup[inside]]], effect.episode.magnitude))
    return found


def _wall_clock_times(
    plan: MonthPlan, rows: _ChunkRows, seconds: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Pickup, dropoff and (fhvhv) request times on the wall clock, uniform within each slot, whole seconds.

    Times are drawn in real time and then converted, so trips across a DST change get the wall clock right;
    the strays (the rows after the in-month ones) are moved outside the month.
    """
    n = rows.n
    timeline = plan.timeline
    pickup_utc = rng.integers(0, _SLOT_SECONDS, n)
    pickup_utc *= US_PER_SECOND
    pickup_utc += rows.per_row(timeline.slot_utc_us)
    dropoff_utc = seconds * US_PER_SECOND
    dropoff_utc += pickup_utc
    times = [timeline.to_wall(pickup_utc), timeline.to_wall(dropoff_utc)]
    if plan.trip_type == "fhvhv":
        wait = rng.standard_normal(n)  # lognormal seconds
        wait *= _WAIT_SIGMA
        wait += np.log(_WAIT_MEDIAN_SECONDS)
        np.exp(wait, out=wait)
        request_utc = wait.astype(np.int64)
        request_utc *= -US_PER_SECOND
        request_utc += pickup_utc
        times.append(timeline.to_wall(request_utc))
    in_month = rows.in_month
    moved = out_of_month_wall_us(rng, plan.month, n - in_month) - times[0][in_month:]
    for column in times:
        column[in_month:] += moved
    return times[0], times[1], times[2] if len(times) == 3 else None


def _null_rows(n: int, block: tuple[int, int] | None) -> np.ndarray | None:
    if block is None:
        return None
    rows = np.zeros(n, dtype=bool)
    rows[block[0] : block[0] + block[1]] = True
    return rows
