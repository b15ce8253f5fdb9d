"""Turn drawn trips into an Arrow table in the exact TLC schema of each trip type (vendors, fees, flags, nulls)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from taxi_anomaly.synthetic.schemas import MONEY_COLUMNS, NULL_BLOCK_COLUMNS, TLC_SCHEMAS
from taxi_anomaly.synthetic.timeline import US_PER_SECOND

_NIGHT = np.isin(np.arange(24), [20, 21, 22, 23, 0, 1, 2, 3, 4, 5])
_WEEKDAY_PEAK = np.zeros((7, 24), dtype=bool)
_WEEKDAY_PEAK[0:5, 16:20] = True
_TOLL_AMOUNTS = np.array([6.94, 6.55, 10.17, 13.38])
_TOLL_CHANCE_LONG = 0.35  # trips between boroughs or to an airport
_TOLL_CHANCE_LOCAL = 0.01
_JFK = 132
SHARED_RIDE_SHARE = 0.02  # fhvhv trips requested as shared rides


@dataclass
class Trips:
    """One chunk of drawn trips, every array one value per row.

    :param pickup_us: pickup, tz-naive New York wall clock (µs).
    :param dropoff_us: dropoff, same clock.
    :param request_us: when the ride was requested (for-hire trips), same clock.
    :param pickup, dropoff: LocationIDs.
    :param miles: trip distance as recorded (dirt included).
    :param seconds: trip duration.
    :param fare: base fare (after any fare surge).
    :param fare_factor: the fare surge applied to the row (1 outside surges), for flat fares.
    :param hour, weekday: of the pickup (weekday 0 = Monday).
    :param long_trip: between boroughs or to/from an airport.
    :param airport, congestion_zone: pickup or dropoff at an airport / in Manhattan's congestion zone.
    """

    pickup_us: np.ndarray
    dropoff_us: np.ndarray
    request_us: np.ndarray | None
    pickup: np.ndarray
    dropoff: np.ndarray
    miles: np.ndarray
    seconds: np.ndarray
    fare: np.ndarray
    fare_factor: np.ndarray
    hour: np.ndarray
    weekday: np.ndarray
    long_trip: np.ndarray
    airport: np.ndarray
    congestion_zone: np.ndarray

    def __len__(self) -> int:
        return len(self.pickup_us)


@dataclass(frozen=True)
class Strings:
    """A string column given as codes into a few fixed-width choices, null where `nulls` is True."""

    codes: np.ndarray
    choices: Sequence[str]
    nulls: np.ndarray | None = None


Column = np.ndarray | np.ma.MaskedArray | Strings


def build_table(
    trip_type: str,
    rng: np.random.Generator,
    trips: Trips,
    *,
    null_rows: np.ndarray | None = None,
    refund_rows: np.ndarray | None = None,
) -> pa.Table:
    """The trips as a table in the trip type's TLC schema.

    :param null_rows: rows whose trip details are missing (the type's NULL_BLOCK_COLUMNS become null).
    :param refund_rows: indices of rows recorded as refunds: the type's MONEY_COLUMNS negated.
    """
    columns = _BUILDERS[trip_type](rng, trips)
    if refund_rows is not None and len(refund_rows):
        for name in MONEY_COLUMNS[trip_type]:
            columns[name] = columns[name].copy()
            columns[name][refund_rows] *= -1
    schema = TLC_SCHEMAS[trip_type]
    nullable = set(NULL_BLOCK_COLUMNS[trip_type]) if null_rows is not None else set()
    arrays = [_to_arrow(columns[f.name], f.type, null_rows if f.name in nullable else None) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _to_arrow(column: Column, dtype: pa.DataType, extra_nulls: np.ndarray | None) -> pa.Array:
    if isinstance(column, Strings):
        return _fixed_width_strings(column, _either(column.nulls, extra_nulls))
    nulls = _either(np.ma.getmask(column) if np.ma.isMaskedArray(column) else None, extra_nulls)
    values = np.ma.getdata(column)
    if pa.types.is_timestamp(dtype):
        values = values.view("datetime64[us]")
    elif pa.types.is_floating(dtype):
        values = np.round(values, 2)
    else:
        values = values.astype(dtype.to_pandas_dtype(), copy=False)
    return pa.array(values, type=dtype, mask=nulls)


def _either(first: np.ndarray | None, second: np.ndarray | None) -> np.ndarray | None:
    if first is None or first is np.ma.nomask:
        return second
    return first if second is None else first | second


def _fixed_width_strings(column: Strings, nulls: np.ndarray | None) -> pa.Array:
    """Build the large_string array straight from byte buffers: every choice has the same width."""
    width = len(column.choices[0])
    if any(len(choice) != width for choice in column.choices):
        raise ValueError(f"choices must share one width: {column.choices!r}")
    choices = np.frombuffer("".join(column.choices).encode("ascii"), dtype=f"V{width}")  # one record per choice
    n = len(column.codes)
    data = choices[column.codes].view(np.uint8)
    validity = None if nulls is None else pa.py_buffer(np.packbits(~nulls, bitorder="little"))
    null_count = 0 if nulls is None else int(nulls.sum())
    return pa.LargeStringArray.from_buffers(n, _offsets(n, width), pa.py_buffer(data), validity, null_count)


@lru_cache(maxsize=4)
def _offsets(n: int, width: int) -> pa.Buffer:
    """Value offsets of n strings of one width; shared by the string columns of a chunk (buffers are immutable)."""
    return pa.py_buffer(np.arange(0, (n + 1) * width, width, dtype=np.int64))


def _pick(rng: np.random.Generator, n: int, shares: Sequence[float]) -> np.ndarray:
    """Codes 0..len(shares)-1 drawn with the given shares."""
    edges = np.cumsum(shares[:-1]) / np.sum(shares)
    return np.searchsorted(edges, rng.random(n), side="right")


def _tolls(rng: np.random.Generator, trips: Trips) -> np.ndarray:
    n = len(trips)
    chance = np.where(trips.long_trip, _TOLL_CHANCE_LONG, _TOLL_CHANCE_LOCAL)
    return np.where(rng.random(n) < chance, _TOLL_AMOUNTS[rng.integers(0, len(_TOLL_AMOUNTS), n)], 0.0)


def _card_tips(rng: np.random.Generator, fare: np.ndarray, paid_by_card: np.ndarray) -> np.ndarray:
    return np.where(paid_by_card, fare * rng.uniform(0.1, 0.3, len(fare)), 0.0)


def _meter_extra(trips: Trips) -> np.ndarray:
    """Overnight and weekday rush-hour surcharges of the taxi meter."""
    return np.where(_NIGHT[trips.hour], 1.0, 0.0) + np.where(_WEEKDAY_PEAK[trips.weekday, trips.hour], 2.5, 0.0)


def _yellow(rng: np.random.Generator, trips: Trips) -> dict[str, Column]:
    n = len(trips)
    jfk_manhattan = ((trips.pickup == _JFK) | (trips.dropoff == _JFK)) & trips.congestion_zone
    rate_code = np.where(jfk_manhattan, 2, 1)
    rate_code = np.where(rng.random(n) < 0.01, 5, rate_code)
    fare = np.where(jfk_manhattan, 70.0 * trips.fare_factor, trips.fare)
    payment = _pick(rng, n, [0.80, 0.17, 0.015, 0.015]) + 1
    columns: dict[str, Column] = {
        "VendorID": _pick(rng, n, [0.25, 0.75]) + 1,
        "tpep_pickup_datetime": trips.pickup_us,
        "tpep_dropoff_datetime": trips.dropoff_us,
        "passenger_count": _pick(rng, n, [0.01, 0.75, 0.14, 0.04, 0.02, 0.02, 0.02]),
        "trip_distance": trips.miles,
        "RatecodeID": rate_code,
        "store_and_fwd_flag": Strings((rng.random(n) < 0.005).astype(np.int8), ("N", "Y")),
        "PULocationID": trips.pickup,
        "DOLocationID": trips.dropoff,
        "payment_type": payment,
        "fare_amount": fare,
        "extra": _meter_extra(trips),
        "mta_tax": np.full(n, 0.5),
        "tip_amount": _card_tips(rng, fare, payment == 1),
        "tolls_amount": _tolls(rng, trips),
        "improvement_surcharge": np.full(n, 1.0),
        "congestion_surcharge": np.where(trips.congestion_zone, 2.5, 0.0),
        "Airport_fee": np.where(trips.airport, 1.75, 0.0),
    }
    columns["total_amount"] = _total(columns, set(MONEY_COLUMNS["yellow"]) - {"total_amount"})
    return columns


def _green(rng: np.random.Generator, trips: Trips) -> dict[str, Column]:
    n = len(trips)
    negotiated = rng.random(n) < 0.035
    dispatched = rng.random(n) < 0.03
    payment = _pick(rng, n, [0.68, 0.30, 0.015, 0.005]) + 1
    columns: dict[str, Column] = {
        "VendorID": _pick(rng, n, [0.13, 0.87]) + 1,
        "lpep_pickup_datetime": trips.pickup_us,
        "lpep_dropoff_datetime": trips.dropoff_us,
        "store_and_fwd_flag": Strings((rng.random(n) < 0.002).astype(np.int8), ("N", "Y")),
        "RatecodeID": np.where(negotiated, 5, 1),
        "PULocationID": trips.pickup,
        "DOLocationID": trips.dropoff,
        "passenger_count": _pick(rng, n, [0.01, 0.84, 0.09, 0.01, 0.005, 0.03, 0.015]),
        "trip_distance": trips.miles,
        "fare_amount": np.where(negotiated, np.round(trips.fare), trips.fare),
        "extra": np.where(negotiated, 0.0, _meter_extra(trips)),
        "mta_tax": np.where(negotiated, 0.0, 0.5),
        "tip_amount": _card_tips(rng, trips.fare, payment == 1),
        "tolls_amount": _tolls(rng, trips),
        "ehail_fee": np.ma.masked_array(np.zeros(n), mask=np.ones(n, dtype=bool)),
        "improvement_surcharge": np.full(n, 1.0),
        "payment_type": payment,
        "trip_type": np.where(dispatched, 2, 1),
        "congestion_surcharge": np.where(trips.congestion_zone, 2.75, 0.0),
    }
    columns["total_amount"] = _total(columns, set(MONEY_COLUMNS["green"]) - {"total_amount", "ehail_fee"})
    return columns


_FHV_BASES = ("B03404", "B00256", "B01312", "B02800", "B00446", "B02111", "B01717", "B00310", "B02550", "B03016")
_FHV_BASE_SHARES = 1.0 / np.arange(1, len(_FHV_BASES) + 1)  # a few large dispatchers, a tail of small ones


def _fhv(rng: np.random.Generator, trips: Trips) -> dict[str, Column]:
    n = len(trips)
    base = _pick(rng, n, _FHV_BASE_SHARES)
    other_affiliation = rng.random(n) < 0.08
    affiliated = np.where(other_affiliation, _pick(rng, n, _FHV_BASE_SHARES), base)
    return {
        "dispatching_base_num": Strings(base, _FHV_BASES),
        "pickup_datetime": trips.pickup_us,
        "dropOff_datetime": trips.dropoff_us,
        "PUlocationID": np.ma.masked_array(trips.pickup, mask=rng.random(n) < 0.12),
        "DOlocationID": np.ma.masked_array(trips.dropoff, mask=rng.random(n) < 0.04),
        "SR_Flag": np.ma.masked_array(np.ones(n, dtype=np.int64), mask=rng.random(n) >= 0.02),
        "Affiliated_base_number": Strings(affiliated, _FHV_BASES, nulls=rng.random(n) < 0.03),
    }


_HVFHS_LICENSES = ("HV0003", "HV0005")  # Uber, Lyft: the two high-volume companies since 2022
_HVFHS_BASES = ("B03404", "B03406")
_LYFT = 1


def _fhvhv(rng: np.random.Generator, trips: Trips) -> dict[str, Column]:
    n = len(trips)
    company = (rng.random(n) < 0.27).astype(np.int8)
    lyft = company == _LYFT
    on_scene_us = trips.pickup_us - rng.exponential(60.0, n).astype(np.int64) * US_PER_SECOND
    shared_request = rng.random(n) < SHARED_RIDE_SHARE
    shared_match = shared_request & (rng.random(n) < 0.4)
    fare = trips.fare
    tips = np.where(rng.random(n) < 0.18, fare * rng.uniform(0.1, 0.25, n), 0.0)
    driver_share = np.clip(rng.normal(0.74, 0.07, n), 0.45, 1.0)
    return {
        "hvfhs_license_num": Strings(company, _HVFHS_LICENSES),
        "dispatching_base_num": Strings(company, _HVFHS_BASES),
        "originating_base_num": Strings(company, _HVFHS_BASES, nulls=lyft),
        "request_datetime": trips.request_us,
        "on_scene_datetime": np.ma.masked_array(on_scene_us, mask=lyft),
        "pickup_datetime": trips.pickup_us,
        "dropoff_datetime": trips.dropoff_us,
        "PULocationID": trips.pickup,
        "DOLocationID": trips.dropoff,
        "trip_miles": trips.miles,
        "trip_time": trips.seconds,
        "base_passenger_fare": fare,
        "tolls": _tolls(rng, trips),
        "bcf": fare * 0.025,  # Black Car Fund
        "sales_tax": fare * 0.08875,
        "congestion_surcharge": np.where(trips.congestion_zone, 2.75, 0.0),
        "airport_fee": np.where(trips.airport, 2.5, 0.0),
        "tips": tips,
        "driver_pay": fare * driver_share,
        "shared_request_flag": Strings(shared_request.astype(np.int8), ("N", "Y")),
        "shared_match_flag": Strings(shared_match.astype(np.int8), ("N", "Y")),
        "access_a_ride_flag": Strings(company, ("N", " ")),
        "wav_request_flag": Strings((rng.random(n) < 0.001).astype(np.int8), ("N", "Y")),
        "wav_match_flag": Strings((rng.random(n) < 0.06).astype(np.int8), ("N", "Y")),
    }


def _total(columns: dict[str, Column], parts: set[str]) -> np.ndarray:
    total = np.zeros(len(columns[next(iter(parts))]))
    for name in sorted(parts):
        total += np.round(columns[name], 2)
    return total


_BUILDERS: dict[str, Callable[[np.random.Generator, Trips], dict[str, Column]]] = {
    "yellow": _yellow,
    "green": _green,
    "fhv": _fhv,
    "fhvhv": _fhvhv,
}
