"""Decide a month before any row is drawn: trips per 30-minute slot, episode effects, chunks and their dirt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise

import numpy as np

from taxi_anomaly.synthetic.dirt import FAULT_KINDS, TRIP_FEATURE_FAULTS, ChunkDirt, DirtOptions
from taxi_anomaly.synthetic.episodes import Episode, EpisodeRequest, plan_episodes
from taxi_anomaly.synthetic.profile import ZONE_COUNT, Profile, load_profile
from taxi_anomaly.synthetic.schemas import FARE_COLUMN
from taxi_anomaly.synthetic.timeline import MonthTimeline, wall_us
from taxi_anomaly.synthetic.trips import TRIP_TYPE_MODELS, TripSampler, ZoneSampler
from taxi_anomaly.tlc import TRIP_TYPES, YearMonth

DEFAULT_CHUNK_ROWS = 1_000_000  # one parquet row group per chunk; bounds memory
DAILY_VARIATION = 0.03  # day-to-day demand noise (log sd) so that normal days are not copies of each other


@dataclass(frozen=True)
class EpisodeEffect:
    """How one episode reaches the rows: which pickup zones are in scope, and a re-weighted pickup sampler."""

    episode: Episode
    in_scope: np.ndarray  # by LocationID (index 0 unused)
    pickup_sampler: ZoneSampler | None  # only for scoped demand episodes


@dataclass(frozen=True)
class ChunkPlan:
    """A run of consecutive slots written as one row group, with its own random stream."""

    index: int
    first_slot: int
    stop_slot: int
    episodes: tuple[int, ...]  # indices of the episodes touching these slots
    dirt: ChunkDirt
    seed: np.random.SeedSequence


@dataclass
class MonthPlan:
    """Everything decided before any row is drawn: trips per slot, episodes, chunks and their dirt."""

    trip_type: str
    month: YearMonth
    rows: int
    timeline: MonthTimeline
    sampler: TripSampler
    slot_counts: np.ndarray
    slot_hour_of_week: np.ndarray
    slot_episode: np.ndarray  # index into effects, -1 outside episodes
    effects: list[EpisodeEffect]
    chunks: list[ChunkPlan] = field(default_factory=list)

    @property
    def episodes(self) -> list[Episode]:
        return [effect.episode for effect in self.effects]

    def dirt_totals(self) -> dict[str, int]:
        """Rows of each fault kind, as `{kind}_rows`."""
        chunks = [chunk.dirt for chunk in self.chunks]
        totals = {
            "out_of_month": sum(d.out_of_month for d in chunks),
            "null_block": sum(d.null_block[1] for d in chunks if d.null_block),
        }
        totals |= {kind: sum(d.faults[kind] for d in chunks) for kind in chunks[0].faults}
        return {f"{kind}_rows": totals[kind] for kind in FAULT_KINDS}


def plan_month(
    trip_type: str,
    month: YearMonth,
    rows: int,
    seed: int,
    requests: Sequence[EpisodeRequest],
    dirt: DirtOptions,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    profile: Profile | None = None,
) -> MonthPlan:
    """Decide episodes, the trips of every 30-minute slot and the chunks; the random streams come from the seed."""
    profile = profile or _default_profile()
    root = np.random.SeedSequence([seed, TRIP_TYPES.index(trip_type), month.year, month.month])
    plan_seed, chunk_root = root.spawn(2)
    rng = np.random.default_rng(plan_seed)
    timeline = MonthTimeline.for_month(month)
    sampler = TripSampler(profile, TRIP_TYPE_MODELS[trip_type])
    episodes = plan_episodes(
        requests, trip_type=trip_type, month=month, timeline=timeline, boroughs=profile.boroughs, rng=rng
    )
    effects = [_effect(episode, sampler) for episode in episodes]
    slot_episode = _slot_episodes(timeline, episodes)

    demand = _slot_demand(timeline, profile, rng) * _demand_factors(slot_episode, effects, sampler)
    strays = int(rng.binomial(rows, dirt.out_of_month_share))
    slot_counts = rng.multinomial(rows - strays, demand / demand.sum())
    plan = MonthPlan(
        trip_type, month, rows, timeline, sampler, slot_counts, timeline.slot_hour_of_week(), slot_episode, effects
    )
    plan.chunks = _chunks(plan, strays, dirt, chunk_rows, chunk_root, rng)
    return plan


def _slot_demand(timeline: MonthTimeline, profile: Profile, rng: np.random.Generator) -> np.ndarray:
    """Expected trips of each slot up to a constant: the hour of the week's shape times a day-to-day factor."""
    day = timeline.slot_day()
    day_factor = np.exp(DAILY_VARIATION * rng.standard_normal(int(day.max()) + 1))
    return profile.hour_of_week[timeline.slot_hour_of_week()] * day_factor[day]


def _slot_episodes(timeline: MonthTimeline, episodes: list[Episode]) -> np.ndarray:
    slot_episode = np.full(timeline.slot_count, -1, dtype=np.int16)
    for index, episode in enumerate(episodes):
        inside = (timeline.slot_wall_us >= wall_us(episode.start)) & (timeline.slot_wall_us < wall_us(episode.end))
        slot_episode[inside] = index
    return slot_episode


def _effect(episode: Episode, sampler: TripSampler) -> EpisodeEffect:
    in_scope = np.ones(ZONE_COUNT + 1, dtype=bool)
    pickup_sampler = None
    if episode.zone_ids is not None:
        in_scope[:] = False
        in_scope[list(episode.zone_ids)] = True
        if episode.kind.affects == "demand":
            pickup_sampler = sampler.pickup_sampler(np.where(in_scope[1:], episode.magnitude, 1.0))
    return EpisodeEffect(episode, in_scope, pickup_sampler)


def _demand_factors(slot_episode: np.ndarray, effects: list[EpisodeEffect], sampler: TripSampler) -> np.ndarray:
    """Slot demand multipliers: a scoped episode scales only its zones' share of the city's pickups."""
    factors = np.ones(len(slot_episode))
    for index, effect in enumerate(effects):
        if effect.episode.kind.affects != "demand":
            continue
        scope_share = sampler.pickup_weights[effect.in_scope[1:]].sum()
        factors[slot_episode == index] = 1.0 + (effect.episode.magnitude - 1.0) * scope_share
    return factors


def _chunks(
    plan: MonthPlan,
    strays: int,
    dirt: DirtOptions,
    chunk_rows: int,
    chunk_root: np.random.SeedSequence,
    rng: np.random.Generator,
) -> list[ChunkPlan]:
    """Cut the slots into runs of about chunk_rows trips and share the dirt out among them."""
    counts = plan.slot_counts
    cumulative = np.cumsum(counts)
    cuts = np.searchsorted(cumulative, np.arange(chunk_rows, cumulative[-1], chunk_rows), side="left") + 1
    bounds = [0, *np.unique(cuts[cuts < len(counts)]).tolist(), len(counts)]
    in_month = np.array([counts[a:b].sum() for a, b in pairwise(bounds)])
    stray_counts = rng.multinomial(strays, _shares(in_month))
    sizes = in_month + stray_counts
    block = _null_block(sizes, round(dirt.null_block_share * plan.rows), rng)
    seeds = chunk_root.spawn(len(sizes))
    shares = dirt.to_json()
    if plan.trip_type not in FARE_COLUMN:  # nothing to corrupt: the records carry neither fare nor distance
        shares |= {f"{kind}_share": 0.0 for kind in TRIP_FEATURE_FAULTS}
    chunks = []
    for index, (first, stop) in enumerate(pairwise(bounds)):
        chunk_dirt = ChunkDirt(
            out_of_month=int(stray_counts[index]),
            faults={kind: int(rng.binomial(sizes[index], shares[f"{kind}_share"])) for kind in TRIP_FEATURE_FAULTS},
            null_block=block[1] if block and block[0] == index else None,
        )
        touched = np.unique(plan.slot_episode[first:stop])
        episodes = tuple(int(e) for e in touched if e >= 0)
        chunks.append(ChunkPlan(index, first, stop, episodes, chunk_dirt, seeds[index]))
    return chunks


def _shares(sizes: np.ndarray) -> np.ndarray:
    total = sizes.sum()
    return sizes / total if total else np.full(len(sizes), 1.0 / len(sizes))


def _null_block(sizes: np.ndarray, length: int, rng: np.random.Generator) -> tuple[int, tuple[int, int]] | None:
    """(chunk index, (first row, length)) of the one block of null rows, or None."""
    length = min(length, int(sizes.max()))
    if length <= 0:
        return None
    candidates = np.flatnonzero(sizes >= length)
    chunk = int(rng.choice(candidates, p=_shares(sizes[candidates])))
    return chunk, (int(rng.integers(0, sizes[chunk] - length + 1)), length)


@cache
def _default_profile() -> Profile:
    return load_profile()
