"""Draw one chunk of a planned month, fully vectorised: slots → zones → miles → seconds → fares → times → dirt."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from taxi_anomaly.synthetic.dirt import ABSURD_MILES, out_of_month_wall_us, split_rows
from taxi_anomaly.synthetic.plan import ChunkPlan, MonthPlan
from taxi_anomaly.synthetic.tables import Trips, build_table
from taxi_anomaly.synthetic.timeline import SLOT_MINUTES, US_PER_SECOND

_SLOT_SECONDS = SLOT_MINUTES * 60
_WAIT_MEDIAN_SECONDS = 300.0  # request to pickup, for-hire trips
_WAIT_SIGMA = 0.5


def draw_chunk(plan: MonthPlan, chunk: ChunkPlan) -> pa.Table:
    """All rows of one chunk as a table in the trip type's TLC schema; the chunk's own seed makes it repeatable."""
    rng = np.random.default_rng(chunk.seed)
    slot, in_month = _row_slots(plan, chunk, rng)
    episode = plan.slot_episode[slot]
    episode[in_month:] = -1  # strays take a slot's context but lie outside the month and every episode
    hour_of_week = plan.slot_hour_of_week[slot]
    hour = hour_of_week % 24

    sampler = plan.sampler
    pickup = _pickup_zones(plan, chunk, episode, rng)
    dropoff = sampler.dropoff_zones(rng, pickup)
    miles = sampler.miles(rng, pickup, dropoff, hour) * _row_factors(plan, chunk, episode, pickup, "distance")
    seconds = sampler.seconds(rng, miles, hour)
    fare_factor = _row_factors(plan, chunk, episode, pickup, "fare")
    fare = sampler.base_fare(rng, miles, seconds) * fare_factor
    pickup_us, dropoff_us, request_us = _wall_clock_times(plan, slot, seconds, in_month, rng)

    dirt = chunk.dirt
    refunds, zeros, absurd = split_rows(rng, len(slot), dirt.negative_fares, dirt.zero_distances, dirt.absurd_distances)
    miles[zeros] = 0.0
    miles[absurd] = rng.uniform(*ABSURD_MILES, len(absurd))
    zones = sampler.zones
    airport = zones.airport[pickup] | zones.airport[dropoff]
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
        hour=hour,
        weekday=hour_of_week // 24,
        long_trip=(zones.borough[pickup] != zones.borough[dropoff]) | airport,
        airport=airport,
        congestion_zone=zones.congestion_zone[pickup] | zones.congestion_zone[dropoff],
    )
    return build_table(
        plan.trip_type,
        rng,
        trips,
        null_rows=_null_rows(len(slot), dirt.null_block),
        refund_rows=refunds,
    )


def _row_slots(plan: MonthPlan, chunk: ChunkPlan, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The slot of every row: the planned trips slot by slot, then the strays (which borrow a random slot)."""
    slots = np.arange(chunk.first_slot, chunk.stop_slot)
    slot = np.repeat(slots, plan.slot_counts[chunk.first_slot : chunk.stop_slot])
    strays = rng.integers(chunk.first_slot, chunk.stop_slot, chunk.dirt.out_of_month)
    return np.concatenate([slot, strays]), len(slot)


def _pickup_zones(plan: MonthPlan, chunk: ChunkPlan, episode: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pickup zones by popularity; inside a scoped demand episode the scoped zones are re-weighted."""
    pickup = plan.sampler.pickup_sampler().sample(rng, len(episode))
    for index in chunk.episodes:
        scoped_sampler = plan.effects[index].pickup_sampler
        if scoped_sampler is not None:
            rows = episode == index
            pickup[rows] = scoped_sampler.sample(rng, int(rows.sum()))
    return pickup


def _wall_clock_times(
    plan: MonthPlan, slot: np.ndarray, seconds: np.ndarray, in_month: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Pickup, dropoff and (fhvhv) request times on the wall clock, uniform within each slot, whole seconds.

    Times are drawn in real time and then converted, so trips across a DST change get the wall clock right;
    rows after `in_month` are the strays and are moved outside the month.
    """
    n = len(slot)
    timeline = plan.timeline
    pickup_utc = timeline.slot_utc_us[slot] + rng.integers(0, _SLOT_SECONDS, n) * US_PER_SECOND
    times = [timeline.to_wall(pickup_utc), timeline.to_wall(pickup_utc + seconds * US_PER_SECOND)]
    if plan.trip_type == "fhvhv":
        wait = rng.lognormal(np.log(_WAIT_MEDIAN_SECONDS), _WAIT_SIGMA, n).astype(np.int64)
        times.append(timeline.to_wall(pickup_utc - wait * US_PER_SECOND))
    moved = out_of_month_wall_us(rng, plan.month, n - in_month) - times[0][in_month:]
    for column in times:
        column[in_month:] += moved
    return times[0], times[1], times[2] if len(times) == 3 else None


def _row_factors(
    plan: MonthPlan, chunk: ChunkPlan, episode: np.ndarray, pickup: np.ndarray, affects: str
) -> np.ndarray:
    """Per-row multiplier of the episodes that act on `affects` ("fare" or "distance"), 1 elsewhere."""
    factors = np.ones(len(episode))
    for index in chunk.episodes:
        effect = plan.effects[index]
        if effect.episode.kind.affects == affects:
            factors[(episode == index) & effect.in_scope[pickup]] = effect.episode.magnitude
    return factors


def _null_rows(n: int, block: tuple[int, int] | None) -> np.ndarray | None:
    if block is None:
        return None
    rows = np.zeros(n, dtype=bool)
    rows[block[0] : block[0] + block[1]] = True
    return rows
