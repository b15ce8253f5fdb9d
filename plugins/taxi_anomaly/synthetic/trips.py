"""Vectorised trip attributes every trip type shares: pickup and dropoff zones, distance, duration and base fare."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from taxi_anomaly.synthetic.profile import ZONE_COUNT, Profile

AIRPORT_ZONES = (1, 132, 138)  # Newark (EWR), JFK, LaGuardia
# Median miles and log-spread of a trip's distance by where it goes (calibrated on green 2024-01:
# same zone 0.85, same borough 1.9, other borough 6.4 miles).
_SAME_ZONE, _SAME_BOROUGH, _OTHER_BOROUGH, _AIRPORT = range(4)
_MEDIAN_MILES = np.array([0.85, 1.9, 6.4, 11.0])
_MILES_SIGMA = np.array([0.5, 0.55, 0.45, 0.35])
_NIGHT_HOURS = np.isin(np.arange(24), [0, 1, 2, 3, 4, 5])
_NIGHT_MILES_FACTOR = 1.15  # emptier streets, longer rides
_MILES_RANGE = (0.05, 120.0)
_SECONDS_RANGE = (30, 6 * 3600)
_SPEED_SIGMA = 0.2
_PICKUP_OVERHEAD_SECONDS = 45


@dataclass(frozen=True)
class Tariff:
    """Base fare = (flag + per_mile * miles + per_minute * minutes) * lognormal(0, noise)."""

    flag: float
    per_mile: float
    per_minute: float
    noise: float


@dataclass(frozen=True)
class TripTypeModel:
    """How one trip type differs from the green-taxi calibration.

    :param default_trips: trips in a month when the caller gives no count (real months: see tlc/metadata).
    :param pickup_share_of_green_pickups: the zone shape mixes green pickups (this share) and green dropoffs
        (the rest); green cabs may not pick up in most of Manhattan, so the other types lean on dropoffs.
    :param borough_tilt: factor on the zone weights by borough (green's own mix leans to Manhattan and Queens).
    :param service_zone_tilt: factor on the zone weights by TLC service zone.
    :param miles_scale: factor on every distance.
    :param same_zone_share: share of trips ending in their pickup zone.
    :param same_borough_share: share of trips ending elsewhere in the pickup borough.
    :param tariff: how the base fare follows distance and time.
    """

    default_trips: int
    pickup_share_of_green_pickups: float
    borough_tilt: Mapping[str, float]
    service_zone_tilt: Mapping[str, float]
    miles_scale: float
    same_zone_share: float
    same_borough_share: float
    tariff: Tariff


_FOR_HIRE_BOROUGH_TILT = {"Manhattan": 0.5, "Queens": 0.8, "Brooklyn": 2.3, "Bronx": 7.0, "Staten Island": 20.0}
_TAXI_TARIFF = Tariff(flag=2.4, per_mile=2.8, per_minute=0.45, noise=0.08)  # fitted on green 2024-01 meter fares
_FOR_HIRE_TARIFF = Tariff(flag=3.0, per_mile=1.9, per_minute=0.7, noise=0.2)  # dynamic pricing: wider noise

_FOR_HIRE = TripTypeModel(
    default_trips=15_000_000,
    pickup_share_of_green_pickups=0.5,
    borough_tilt=_FOR_HIRE_BOROUGH_TILT,
    service_zone_tilt={"Airports": 1.3},
    miles_scale=1.3,
    same_zone_share=0.06,
    same_borough_share=0.65,
    tariff=_FOR_HIRE_TARIFF,
)

TRIP_TYPE_MODELS: dict[str, TripTypeModel] = {
    "yellow": TripTypeModel(
        default_trips=3_000_000,
        pickup_share_of_green_pickups=0.0,
        borough_tilt={},
        service_zone_tilt={"Yellow Zone": 15.0, "Airports": 15.0},
        miles_scale=1.0,
        same_zone_share=0.08,
        same_borough_share=0.75,
        tariff=_TAXI_TARIFF,
    ),
    "green": TripTypeModel(
        default_trips=60_000,
        pickup_share_of_green_pickups=1.0,
        borough_tilt={},
        service_zone_tilt={},
        miles_scale=1.0,
        same_zone_share=0.10,
        same_borough_share=0.80,
        tariff=_TAXI_TARIFF,
    ),
    # fhv and fhvhv records describe the same for-hire trips; only the size of a month differs.
    "fhv": replace(_FOR_HIRE, default_trips=1_500_000),
    "fhvhv": _FOR_HIRE,
}


class ZoneSampler:
    """Draws LocationIDs with fixed weights at O(1) per draw (Walker's alias method), one uniform number each."""

    def __init__(self, weights: np.ndarray):
        """:param weights: non-negative weight of LocationID 1..len(weights)."""
        self._size = len(weights)
        self._edge, self._choice = _alias_table(weights)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n LocationIDs (intp, so that they index lookup tables directly)."""
        return _alias_draw(rng.random(n), self._size, self._edge, self._choice)


class StackedZoneSampler:
    """Several ZoneSamplers of one size in one table, so that every row draws from its own in one vectorised pass."""

    def __init__(self, samplers: list[ZoneSampler]):
        sizes = {sampler._size for sampler in samplers}
        if len(sizes) != 1:
            raise ValueError(f"stacked samplers must share one size, got {sorted(sizes)}")
        self._size = sizes.pop()
        self._edge = np.concatenate([sampler._edge for sampler in samplers])
        self._choice = np.concatenate([sampler._choice for sampler in samplers])

    def sample(self, rng: np.random.Generator, table: np.ndarray) -> np.ndarray:
        """One LocationID (intp) per row, drawn from the sampler `table[row]`."""
        return _alias_draw(rng.random(len(table)), self._size, self._edge, self._choice, table)


def _alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table as (edge, choice), for one uniform number u per draw.

    Column j = floor(u * size) keeps LocationID j+1 when u * size < edge[j] = j + keep[j], else takes its alias:
    choice[2j] is j+1, choice[2j+1] the alias. A copy of the last column pads the table (u * size rounding up).
    """
    size = len(weights)
    scaled = np.asarray(weights, dtype=float) * size / np.sum(weights)
    keep = np.ones(size)
    alias = np.arange(size)
    small = [i for i in range(size) if scaled[i] < 1.0]
    large = [i for i in range(size) if scaled[i] >= 1.0]
    while small and large:
        low, high = small.pop(), large[-1]
        keep[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        if scaled[high] < 1.0:
            small.append(large.pop())
    columns = np.arange(size + 1)
    edge = np.minimum(columns, size - 1) + np.append(keep, keep[-1])
    edge[-1] += 1.0
    choice = np.empty(2 * (size + 1), dtype=np.intp)
    choice[0::2] = np.append(np.arange(size), size - 1) + 1
    choice[1::2] = np.append(alias, alias[-1]) + 1
    return edge, choice


def _alias_draw(
    uniform: np.ndarray, size: int, edge: np.ndarray, choice: np.ndarray, table: np.ndarray | None = None
) -> np.ndarray:
    """LocationIDs for uniform numbers in [0, 1); `table` picks each row's table out of stacked ones."""
    scaled = uniform * size
    column = scaled.astype(np.intp)  # floor: scaled is non-negative
    if table is not None:
        column += table * (size + 1)  # the edges stay in each table's own coordinates
    alias = scaled >= edge[column]
    column *= 2
    column += alias
    return choice[column]


@dataclass(frozen=True)
class ZoneFacts:
    """Per-LocationID lookups (index = LocationID, index 0 unused) for vectorised gathers."""

    borough: np.ndarray  # code into boroughs, -1 where there is no borough to stay in (EWR, Unknown, N/A)
    airport: np.ndarray
    congestion_zone: np.ndarray  # Manhattan "Yellow Zone": where the congestion surcharge applies
    boroughs: tuple[str, ...]

    @classmethod
    def from_profile(cls, profile: Profile) -> ZoneFacts:
        names = ("Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island")
        borough = np.full(ZONE_COUNT + 1, -1, dtype=np.int8)
        congestion = np.zeros(ZONE_COUNT + 1, dtype=bool)
        zone_facts = zip(profile.boroughs, profile.service_zones, strict=True)
        for location_id, (name, service_zone) in enumerate(zone_facts, start=1):
            borough[location_id] = names.index(name) if name in names else -1
            congestion[location_id] = name == "Manhattan" and service_zone == "Yellow Zone"
        airport = np.zeros(ZONE_COUNT + 1, dtype=bool)
        airport[list(AIRPORT_ZONES)] = True
        return cls(borough=borough, airport=airport, congestion_zone=congestion, boroughs=names)


@dataclass(frozen=True)
class Routes:
    """What a trip's pickup and dropoff zones imply, one value per row."""

    kind: np.ndarray  # _SAME_ZONE, _SAME_BOROUGH, _OTHER_BOROUGH or _AIRPORT (intp)
    congestion_zone: np.ndarray  # pickup or dropoff in the congestion zone

    @property
    def airport(self) -> np.ndarray:
        """Pickup or dropoff at an airport."""
        return self.kind == _AIRPORT

    @property
    def long_trip(self) -> np.ndarray:
        """Between boroughs or to/from an airport."""
        return self.kind >= _OTHER_BOROUGH


@dataclass
class TripSampler:
    """Draws zones, miles, seconds and base fares for one trip type from the calibrated profile."""

    profile: Profile
    model: TripTypeModel
    zones: ZoneFacts = field(init=False)
    pickup_weights: np.ndarray = field(init=False)
    dropoff_weights: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.zones = ZoneFacts.from_profile(self.profile)
        self.pickup_weights = self._zone_weights(self.model.pickup_share_of_green_pickups)
        self.dropoff_weights = self._zone_weights(0.0)
        self._pickups = ZoneSampler(self.pickup_weights)
        # Dropoff tables: one per borough (dropoffs inside it), then the whole city.
        borough_count = len(self.zones.boroughs)
        in_borough = [
            np.where(self.zones.borough[1:] == code, self.dropoff_weights, 0.0) for code in range(borough_count)
        ]
        self._dropoffs = StackedZoneSampler([ZoneSampler(weights) for weights in [*in_borough, self.dropoff_weights]])
        self._city_table = borough_count
        # The table a trip staying in its pickup borough uses (the city's where the zone has no borough).
        self._home_table = np.where(self.zones.borough >= 0, self.zones.borough, borough_count).astype(np.intp)
        self._pair_kind, self._pair_congestion = _route_tables(self.zones)
        night_scale = np.where(_NIGHT_HOURS, _NIGHT_MILES_FACTOR, 1.0)
        self.log_miles_scale_by_hour = np.log(self.model.miles_scale * night_scale)

    def _zone_weights(self, share_of_pickups: float) -> np.ndarray:
        pickups = self.profile.pickup_counts / self.profile.pickup_counts.sum()
        dropoffs = self.profile.dropoff_counts / self.profile.dropoff_counts.sum()
        weights = share_of_pickups * pickups + (1 - share_of_pickups) * dropoffs
        borough_tilt = [self.model.borough_tilt.get(name, 1.0) for name in self.profile.boroughs]
        service_zone_tilt = [self.model.service_zone_tilt.get(name, 1.0) for name in self.profile.service_zones]
        weights = weights * np.array(borough_tilt) * np.array(service_zone_tilt)
        return weights / weights.sum()

    def pickup_sampler(self, zone_factor: np.ndarray | None = None) -> ZoneSampler:
        """The pickup-zone sampler, optionally with each zone's weight multiplied (scoped demand episodes)."""
        if zone_factor is None:
            return self._pickups
        return ZoneSampler(self.pickup_weights * zone_factor)

    def dropoff_zones(self, rng: np.random.Generator, pickup: np.ndarray) -> np.ndarray:
        """Mostly local trips: same zone, else same borough, else anywhere by dropoff popularity."""
        draw = rng.random(len(pickup), dtype=np.float32)
        same_zone_share = np.float32(self.model.same_zone_share)
        local_share = np.float32(self.model.same_zone_share + self.model.same_borough_share)
        # Trips staying in their borough draw from its table, the others (and same-zone trips) from the city's.
        in_borough = (draw >= same_zone_share) & (draw < local_share)
        table = self._home_table[pickup]
        table -= self._city_table
        table *= in_borough
        table += self._city_table
        dropoff = self._dropoffs.sample(rng, table)
        same_zone = np.flatnonzero(draw < same_zone_share)
        dropoff[same_zone] = pickup[same_zone]
        return dropoff

    def routes(self, pickup: np.ndarray, dropoff: np.ndarray) -> Routes:
        """Route kind and congestion-zone flag of each trip, looked up by (pickup, dropoff) pair."""
        pair = pickup * (ZONE_COUNT + 1)
        pair += dropoff
        return Routes(kind=self._pair_kind[pair], congestion_zone=self._pair_congestion[pair])

    def miles(self, rng: np.random.Generator, kind: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
        """Lognormal distance whose median depends on where the trip goes and on the hour.

        :param log_scale: log of each row's distance factor for its hour (log_miles_scale_by_hour).
        """
        miles = rng.standard_normal(len(kind))
        miles *= _MILES_SIGMA[kind]
        miles += _LOG_MEDIAN_MILES[kind]
        miles += log_scale
        np.exp(miles, out=miles)
        return np.clip(miles, *_MILES_RANGE, out=miles)

    def seconds(self, rng: np.random.Generator, miles: np.ndarray, speed_mph: np.ndarray) -> np.ndarray:
        """Duration from distance and the hour's typical speed; longer trips reach faster roads.

        :param speed_mph: each row's typical speed for its hour (the profile's speed_mph_by_hour).
        """
        mph = miles / 5.0
        np.log1p(mph, out=mph)
        mph *= 0.35
        mph += 1.0
        mph *= speed_mph
        noise = rng.standard_normal(len(miles))
        noise *= _SPEED_SIGMA
        np.exp(noise, out=noise)
        mph *= noise
        seconds = np.divide(miles, mph, out=mph)
        seconds *= 3600.0
        seconds += _PICKUP_OVERHEAD_SECONDS
        return np.clip(seconds, *_SECONDS_RANGE, out=seconds).astype(np.int64)

    def base_fare(self, rng: np.random.Generator, miles: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        tariff = self.model.tariff
        fare = seconds * (tariff.per_minute / 60.0)
        fare += tariff.per_mile * miles
        fare += tariff.flag
        noise = rng.standard_normal(len(miles))
        noise *= tariff.noise
        np.exp(noise, out=noise)
        fare *= noise
        return fare


_LOG_MEDIAN_MILES = np.log(_MEDIAN_MILES)


def _route_tables(zones: ZoneFacts) -> tuple[np.ndarray, np.ndarray]:
    """Route kind and congestion-zone flag of every (pickup, dropoff) pair, flat index pickup * 266 + dropoff."""
    pickup, dropoff = np.divmod(np.arange((ZONE_COUNT + 1) ** 2), ZONE_COUNT + 1)
    kind = np.where(zones.borough[pickup] == zones.borough[dropoff], _SAME_BOROUGH, _OTHER_BOROUGH)
    kind[pickup == dropoff] = _SAME_ZONE
    kind[zones.airport[pickup] | zones.airport[dropoff]] = _AIRPORT
    return kind.astype(np.intp), zones.congestion_zone[pickup] | zones.congestion_zone[dropoff]
