"""Vectorised trip attributes every trip type shares: pickup and dropoff zones, distance, duration and base fare."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
    "fhv": TripTypeModel(
        default_trips=1_500_000,
        pickup_share_of_green_pickups=0.5,
        borough_tilt=_FOR_HIRE_BOROUGH_TILT,
        service_zone_tilt={"Airports": 1.3},
        miles_scale=1.3,
        same_zone_share=0.06,
        same_borough_share=0.65,
        tariff=_FOR_HIRE_TARIFF,
    ),
    "fhvhv": TripTypeModel(
        default_trips=15_000_000,
        pickup_share_of_green_pickups=0.5,
        borough_tilt=_FOR_HIRE_BOROUGH_TILT,
        service_zone_tilt={"Airports": 1.3},
        miles_scale=1.3,
        same_zone_share=0.06,
        same_borough_share=0.65,
        tariff=_FOR_HIRE_TARIFF,
    ),
}


class ZoneSampler:
    """Draws LocationIDs with fixed weights at O(1) per draw (Walker's alias method)."""

    def __init__(self, weights: np.ndarray):
        """:param weights: non-negative weight of LocationID 1..len(weights)."""
        size = len(weights)
        scaled = np.asarray(weights, dtype=float) * size / np.sum(weights)
        self._keep = np.ones(size)
        self._alias = np.arange(size)
        small = [i for i in range(size) if scaled[i] < 1.0]
        large = [i for i in range(size) if scaled[i] >= 1.0]
        while small and large:
            low, high = small.pop(), large[-1]
            self._keep[low], self._alias[low] = scaled[low], high
            scaled[high] -= 1.0 - scaled[low]
            if scaled[high] < 1.0:
                small.append(large.pop())

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        column = rng.integers(0, len(self._keep), n)
        chosen = np.where(rng.random(n) < self._keep[column], column, self._alias[column])
        return (chosen + 1).astype(np.int32)


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
        self._dropoffs = ZoneSampler(self.dropoff_weights)
        self._dropoffs_in_borough = [
            ZoneSampler(np.where(self.zones.borough[1:] == code, self.dropoff_weights, 0.0))
            for code in range(len(self.zones.boroughs))
        ]

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
        n = len(pickup)
        dropoff = self._dropoffs.sample(rng, n)
        draw = rng.random(n)
        pickup_borough = self.zones.borough[pickup]
        in_borough = (draw >= self.model.same_zone_share) & (
            draw < self.model.same_zone_share + self.model.same_borough_share
        )
        for code, sampler in enumerate(self._dropoffs_in_borough):
            rows = in_borough & (pickup_borough == code)
            dropoff[rows] = sampler.sample(rng, int(rows.sum()))
        same_zone = draw < self.model.same_zone_share
        dropoff[same_zone] = pickup[same_zone]
        return dropoff

    def miles(self, rng: np.random.Generator, pickup: np.ndarray, dropoff: np.ndarray, hour: np.ndarray) -> np.ndarray:
        """Lognormal distance whose median depends on where the trip goes and on the hour."""
        kind = np.where(self.zones.borough[pickup] == self.zones.borough[dropoff], _SAME_BOROUGH, _OTHER_BOROUGH)
        kind[pickup == dropoff] = _SAME_ZONE
        kind[self.zones.airport[pickup] | self.zones.airport[dropoff]] = _AIRPORT
        miles = _MEDIAN_MILES[kind] * np.exp(_MILES_SIGMA[kind] * rng.standard_normal(len(kind)))
        miles *= np.where(_NIGHT_HOURS[hour], self.model.miles_scale * _NIGHT_MILES_FACTOR, self.model.miles_scale)
        return np.clip(miles, *_MILES_RANGE)

    def seconds(self, rng: np.random.Generator, miles: np.ndarray, hour: np.ndarray) -> np.ndarray:
        """Duration from distance and the hour's typical speed; longer trips reach faster roads."""
        mph = self.profile.speed_mph_by_hour[hour] * (1.0 + 0.35 * np.log1p(miles / 5.0))
        mph *= np.exp(_SPEED_SIGMA * rng.standard_normal(len(miles)))
        seconds = miles / mph * 3600.0 + _PICKUP_OVERHEAD_SECONDS
        return np.clip(seconds, *_SECONDS_RANGE).astype(np.int64)

    def base_fare(self, rng: np.random.Generator, miles: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        tariff = self.model.tariff
        fare = tariff.flag + tariff.per_mile * miles + tariff.per_minute * (seconds / 60.0)
        return fare * np.exp(tariff.noise * rng.standard_normal(len(miles)))
