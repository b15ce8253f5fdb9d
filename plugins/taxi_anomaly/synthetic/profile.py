"""Demand and zone shapes calibrated from a real TLC month: derive them from the real file, load the committed copy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

PROFILE_PATH = Path(__file__).with_name("profile.json")

ZONE_COUNT = 265  # LocationID 1..265 in the zone lookup; 264 and 265 are "Unknown" / "Outside of NYC"
VALID_ZONE_COUNT = 263  # 1..263 are real places and each gets a non-zero weight
HOURS_PER_WEEK = 168
# Days whose traffic is not a typical weekday: left out of the weekly shape (month, day).
FIXED_DATE_HOLIDAYS = ((1, 1), (7, 4), (12, 25))
# Trips the speed medians are taken from: a real distance and a real duration.
_SPEED_MILES = (0.0, 100.0)
_SPEED_SECONDS = (60.0, 4 * 3600.0)


@dataclass(frozen=True)
class Profile:
    """Calibrated shapes the generator draws from.

    :param hour_of_week: mean pickups per hour for each hour of the week, slot 0 = Monday 00:00-01:00.
    :param speed_mph_by_hour: median trip speed for each pickup hour of the day.
    :param boroughs: borough of each zone, index 0 = LocationID 1.
    :param service_zones: TLC service zone of each zone ("Yellow Zone", "Boro Zone", "Airports", "EWR", "N/A").
    :param pickup_counts: pickups per zone in the source month plus one for every valid zone (1..263).
    :param dropoff_counts: the same for dropoffs.
    :param source: which files the shapes came from and how many trips were used.
    """

    hour_of_week: np.ndarray
    speed_mph_by_hour: np.ndarray
    boroughs: tuple[str, ...]
    service_zones: tuple[str, ...]
    pickup_counts: np.ndarray
    dropoff_counts: np.ndarray
    source: dict

    @property
    def zone_ids(self) -> np.ndarray:
        return np.arange(1, ZONE_COUNT + 1)

    def to_json(self) -> str:
        """One line per field so that a re-derived profile diffs readably."""
        fields = {
            "source": self.source,
            "hour_of_week": [float(x) for x in self.hour_of_week],
            "speed_mph_by_hour": [float(x) for x in self.speed_mph_by_hour],
            "boroughs": list(self.boroughs),
            "service_zones": list(self.service_zones),
            "pickup_counts": [int(x) for x in self.pickup_counts],
            "dropoff_counts": [int(x) for x in self.dropoff_counts],
        }
        lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in fields.items()]
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str) -> Profile:
        data = json.loads(text)
        return cls(
            hour_of_week=np.array(data["hour_of_week"], dtype=float),
            speed_mph_by_hour=np.array(data["speed_mph_by_hour"], dtype=float),
            boroughs=tuple(data["boroughs"]),
            service_zones=tuple(data["service_zones"]),
            pickup_counts=np.array(data["pickup_counts"], dtype=np.int64),
            dropoff_counts=np.array(data["dropoff_counts"], dtype=np.int64),
            source=data["source"],
        )


def load_profile(path: Path = PROFILE_PATH) -> Profile:
    return Profile.from_json(path.read_text())


def write_profile(profile: Profile, path: Path = PROFILE_PATH) -> None:
    path.write_text(profile.to_json())


def derive_profile(trips_path: Path, zone_lookup_path: Path) -> Profile:
    """Measure the shapes on a real monthly TLC parquet file (any trip type) and the official zone lookup."""
    trips = _read_trips(trips_path)
    zones = pd.read_csv(zone_lookup_path, keep_default_na=False)
    if list(zones["LocationID"]) != list(range(1, ZONE_COUNT + 1)):
        raise ValueError(f"{zone_lookup_path}: expected LocationID 1..{ZONE_COUNT} in order")
    trips = _trips_of_main_month(trips)
    return Profile(
        hour_of_week=_hour_of_week_shape(trips["pickup"]),
        speed_mph_by_hour=_speed_by_hour(trips),
        boroughs=tuple(zones["Borough"]),
        service_zones=tuple(zones["service_zone"]),
        pickup_counts=_zone_counts(trips["pu"]),
        dropoff_counts=_zone_counts(trips["do"]),
        source={"trips": trips_path.name, "zones": zone_lookup_path.name, "trips_used": len(trips)},
    )


def _read_trips(path: Path) -> pd.DataFrame:
    """Pickup, dropoff, zones and distance under common names, whatever the trip type's column names are."""
    names = pq.read_schema(path).names

    def column(*candidates: str) -> str:
        found = [n for n in names if n.lower() in candidates]
        if not found:
            raise ValueError(f"{path}: no column among {candidates}")
        return found[0]

    renames = {
        column("lpep_pickup_datetime", "tpep_pickup_datetime", "pickup_datetime"): "pickup",
        column("lpep_dropoff_datetime", "tpep_dropoff_datetime", "dropoff_datetime"): "dropoff",
        column("pulocationid"): "pu",
        column("dolocationid"): "do",
        column("trip_distance", "trip_miles"): "miles",
    }
    return pq.read_table(path, columns=list(renames)).to_pandas().rename(columns=renames)


def _trips_of_main_month(trips: pd.DataFrame) -> pd.DataFrame:
    """Trips picked up in the file's own month (the most common one), without fixed-date holidays."""
    pickup = trips["pickup"]
    month = pickup.dt.to_period("M").mode().iloc[0]
    keep = pickup.dt.to_period("M") == month
    for holiday_month, holiday_day in FIXED_DATE_HOLIDAYS:
        keep &= ~((pickup.dt.month == holiday_month) & (pickup.dt.day == holiday_day))
    return trips[keep].reset_index(drop=True)


def _hour_of_week_shape(pickup: pd.Series) -> np.ndarray:
    """Mean pickups per occurrence of each hour of the week (Monday 00:00 first)."""
    slot = pickup.dt.weekday * 24 + pickup.dt.hour
    trips_per_slot = np.bincount(slot, minlength=HOURS_PER_WEEK)
    days = pickup.dt.normalize().drop_duplicates()
    occurrences = np.repeat(np.bincount(days.dt.weekday, minlength=7), 24)
    return np.round(trips_per_slot / occurrences, 3)


def _speed_by_hour(trips: pd.DataFrame) -> np.ndarray:
    seconds = (trips["dropoff"] - trips["pickup"]).dt.total_seconds()
    usable = trips["miles"].between(*_SPEED_MILES, inclusive="neither") & seconds.between(*_SPEED_SECONDS)
    mph = trips["miles"][usable] / (seconds[usable] / 3600.0)
    medians = mph.groupby(trips["pickup"][usable].dt.hour).median()
    return np.round(medians.reindex(range(24)).to_numpy(), 3)


def _zone_counts(zone: pd.Series) -> np.ndarray:
    """Trips per LocationID 1..265, plus one for each valid zone so that every real place can appear."""
    ids = zone.dropna().astype(int)
    counts = np.bincount(ids[ids.between(1, ZONE_COUNT)], minlength=ZONE_COUNT + 1)[1:]
    counts[:VALID_ZONE_COUNT] += 1
    return counts.astype(np.int64)
