"""Anomaly episodes: the five kinds, what a caller may ask for, and seeded non-overlapping placement in a month."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from taxi_anomaly.synthetic.timeline import SLOT_MINUTES, MonthTimeline, month_end, month_start
from taxi_anomaly.tlc import YearMonth

BOROUGHS = ("Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island")
HISTORY_DAYS = 2  # episodes start after the first two days so that lag features have history
GAP = timedelta(hours=6)  # quiet time between two episodes
# Randomly placed episodes start in the daytime, when city-wide half-hour counts are large enough to show them.
START_HOURS = (6, 20)
_SLOT = timedelta(minutes=SLOT_MINUTES)
_PLACEMENT_ATTEMPTS = 2000


@dataclass(frozen=True)
class EpisodeKind:
    """What an episode type does: which quantity it multiplies, by how much, for how long (when drawn at random)."""

    name: str
    affects: Literal["demand", "fare", "distance"]
    magnitude_range: tuple[float, float]
    hours_range: tuple[float, float]

    def accepts(self, magnitude: float) -> bool:
        """Downward kinds take multipliers in [0, 1), upward kinds multipliers above 1."""
        return 0 <= magnitude < 1 if self.magnitude_range[1] <= 1 else magnitude > 1


EPISODE_KINDS: dict[str, EpisodeKind] = {
    kind.name: kind
    for kind in (
        EpisodeKind("drop", "demand", (0.3, 0.6), (3, 12)),  # a storm
        EpisodeKind("spike", "demand", (1.8, 3.0), (2, 6)),  # an event letting out
        EpisodeKind("fare_surge", "fare", (1.5, 2.5), (1, 4)),
        EpisodeKind("distance_shift", "distance", (1.5, 2.5), (2, 8)),  # a closure forcing detours
        EpisodeKind("outage", "demand", (0.0, 0.05), (1, 3)),  # near-zero trips
    )
}
EPISODE_TYPES = tuple(EPISODE_KINDS)


@dataclass(frozen=True)
class EpisodeRequest:
    """An episode a caller asks for; whatever is left out is drawn from the seed.

    :param type: one of EPISODE_TYPES.
    :param start: wall-clock start on a 30-minute boundary (datetime or ISO text); random if None.
    :param hours: duration, a multiple of 0.5; random within the kind's range if None.
    :param magnitude: the multiplier; random within the kind's range if None.
    :param scope: "city", a borough name, or a sequence of pickup LocationIDs.
    """

    type: str
    start: datetime | str | None = None
    hours: float | None = None
    magnitude: float | None = None
    scope: str | Sequence[int] = "city"

    @classmethod
    def coerce(cls, item: EpisodeRequest | str | Mapping) -> EpisodeRequest:
        if isinstance(item, EpisodeRequest):
            return item
        if isinstance(item, str):
            return cls(type=item)
        if isinstance(item, Mapping):
            unknown = set(item) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"anomalies: unknown episode fields {sorted(unknown)}")
            return cls(**item)
        raise ValueError(f"anomalies: expected an episode type, a mapping or an EpisodeRequest, got {item!r}")


@dataclass(frozen=True)
class Episode:
    """One labelled anomaly: trips picked up in [start, end) (tz-naive wall clock) in the scope are affected.

    `magnitude` multiplies what the type acts on: the trip count (drop, spike, outage), the fares (fare_surge) or
    the distances (distance_shift) of the scope's pickup zones (`zone_ids`; None for the whole city).
    """

    episode_id: str
    trip_type: str
    month: str
    type: str
    start: datetime
    end: datetime
    magnitude: float
    scope: str = "city"
    zone_ids: tuple[int, ...] | None = field(default=None)  # pickup zones affected; None = every zone

    def to_json(self) -> dict:
        return {
            "episode_id": self.episode_id,
            "trip_type": self.trip_type,
            "month": self.month,
            "type": self.type,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "magnitude": self.magnitude,
            "scope": self.scope,
            "zone_ids": None if self.zone_ids is None else list(self.zone_ids),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Episode:
        zone_ids = data.get("zone_ids")
        return cls(
            episode_id=data["episode_id"],
            trip_type=data["trip_type"],
            month=data["month"],
            type=data["type"],
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            magnitude=float(data["magnitude"]),
            scope=data.get("scope", "city"),
            zone_ids=None if zone_ids is None else tuple(int(z) for z in zone_ids),
        )

    @property
    def kind(self) -> EpisodeKind:
        return EPISODE_KINDS[self.type]

    def bucket_starts(self, minutes: int = SLOT_MINUTES) -> list[datetime]:
        """Start of every `minutes`-long wall-clock bucket that overlaps the episode."""
        step = timedelta(minutes=minutes)
        first = datetime.min + ((self.start - datetime.min) // step) * step
        starts = []
        while first < self.end:
            starts.append(first)
            first += step
        return starts

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def default_requests(observable_types: Sequence[str]) -> list[EpisodeRequest]:
    """The demo/evaluation mix: one city-wide episode of each type the trip type's columns can show."""
    return [EpisodeRequest(type=name) for name in EPISODE_TYPES if name in observable_types]


def plan_episodes(
    requests: Sequence[EpisodeRequest],
    *,
    trip_type: str,
    month: YearMonth,
    timeline: MonthTimeline,
    boroughs: Sequence[str],
    rng: np.random.Generator,
) -> list[Episode]:
    """Turn requests into concrete, non-overlapping episodes; fixed starts first, then random ones around them."""
    windows: list[tuple[datetime, datetime]] = []
    placed: list[tuple[EpisodeRequest, datetime, datetime, float]] = []
    forbidden_days = timeline.dst_change_days()
    fixed = [r for r in requests if r.start is not None]
    drawn = [r for r in requests if r.start is None]
    for request in fixed + drawn:
        kind = _kind_of(request)
        hours = request.hours if request.hours is not None else _draw_hours(kind, rng)
        _check_hours(hours)
        if request.start is None:
            start = _draw_start(month, hours, windows, forbidden_days, rng)
        else:
            start = _parse_start(request.start)
            _check_start(start, hours, month, windows)
        magnitude = request.magnitude if request.magnitude is not None else _draw_magnitude(kind, rng)
        if not kind.accepts(magnitude):
            raise ValueError(
                f"anomalies: magnitude {magnitude} does not fit a {kind.name} (range {kind.magnitude_range})"
            )
        end = start + timedelta(hours=hours)
        windows.append((start, end))
        placed.append((request, start, end, float(magnitude)))
    placed.sort(key=lambda item: item[1])
    return [
        _episode(f"{trip_type}-{month}-e{number:02d}", trip_type, month, request, start, end, magnitude, boroughs)
        for number, (request, start, end, magnitude) in enumerate(placed, start=1)
    ]


def _episode(
    episode_id: str,
    trip_type: str,
    month: YearMonth,
    request: EpisodeRequest,
    start: datetime,
    end: datetime,
    magnitude: float,
    boroughs: Sequence[str],
) -> Episode:
    scope, zone_ids = _resolve_scope(request.scope, boroughs)
    return Episode(episode_id, trip_type, str(month), request.type, start, end, magnitude, scope, zone_ids)


def _kind_of(request: EpisodeRequest) -> EpisodeKind:
    if request.type not in EPISODE_KINDS:
        raise ValueError(
            f"anomalies: unknown episode type {request.type!r}; expected one of {', '.join(EPISODE_TYPES)}"
        )
    return EPISODE_KINDS[request.type]


def _resolve_scope(scope: str | Sequence[int], boroughs: Sequence[str]) -> tuple[str, tuple[int, ...] | None]:
    """("city", None), (borough, its zones) or ("zones", the given zones)."""
    if scope == "city":
        return "city", None
    if isinstance(scope, str):
        if scope not in BOROUGHS:
            raise ValueError(
                f"anomalies: scope {scope!r} is neither 'city', a borough ({', '.join(BOROUGHS)}) nor zones"
            )
        return scope, tuple(i + 1 for i, name in enumerate(boroughs) if name == scope)
    zone_ids = tuple(sorted({int(z) for z in scope}))
    if not zone_ids or not all(1 <= z <= len(boroughs) for z in zone_ids):
        raise ValueError(f"anomalies: scope zones must be LocationIDs 1..{len(boroughs)}, got {list(scope)!r}")
    return "zones", zone_ids


def _draw_hours(kind: EpisodeKind, rng: np.random.Generator) -> float:
    low, high = (int(h * 2) for h in kind.hours_range)
    return int(rng.integers(low, high + 1)) / 2


def _draw_magnitude(kind: EpisodeKind, rng: np.random.Generator) -> float:
    low, high = kind.magnitude_range
    return round(float(rng.uniform(low, high)), 3)


def _check_hours(hours: float) -> None:
    if hours <= 0 or (hours * 2) != int(hours * 2):
        raise ValueError(f"anomalies: hours must be a positive multiple of 0.5, got {hours}")


def _parse_start(start: datetime | str) -> datetime:
    moment = datetime.fromisoformat(start) if isinstance(start, str) else start
    if moment.tzinfo is not None:
        raise ValueError(f"anomalies: start must be tz-naive wall-clock time like the TLC data, got {start!r}")
    return moment


def _check_start(start: datetime, hours: float, month: YearMonth, windows: list[tuple[datetime, datetime]]) -> None:
    end = start + timedelta(hours=hours)
    earliest = month_start(month) + timedelta(days=HISTORY_DAYS)
    if (start - datetime.min) % _SLOT:
        raise ValueError(f"anomalies: start {start} is not on a {SLOT_MINUTES}-minute boundary")
    if start < earliest or end > month_end(month):
        raise ValueError(f"anomalies: episode {start}..{end} must lie within {earliest}..{month_end(month)}")
    if _overlaps(start, end, windows):
        raise ValueError(f"anomalies: episode {start}..{end} overlaps another episode (or is within {GAP} of it)")


def _draw_start(
    month: YearMonth,
    hours: float,
    windows: list[tuple[datetime, datetime]],
    forbidden_days: set[int],
    rng: np.random.Generator,
) -> datetime:
    first_day = month_start(month)
    days = (month_end(month) - first_day).days
    duration = timedelta(hours=hours)
    first_slot, last_slot = (hour * 60 // SLOT_MINUTES for hour in START_HOURS)
    for _ in range(_PLACEMENT_ATTEMPTS):
        day = int(rng.integers(HISTORY_DAYS, days))
        start = first_day + timedelta(days=day) + int(rng.integers(first_slot, last_slot + 1)) * _SLOT
        end = start + duration
        last_day = (end - timedelta(microseconds=1) - first_day).days
        if end > month_end(month) or forbidden_days.intersection(range(day, last_day + 1)):
            continue
        if _overlaps(start, end, windows):
            continue
        return start
    raise ValueError(f"anomalies: cannot fit another {hours} h episode into {month} without overlaps")


def _overlaps(start: datetime, end: datetime, windows: list[tuple[datetime, datetime]]) -> bool:
    return any(start < other_end + GAP and other_start < end + GAP for other_start, other_end in windows)
