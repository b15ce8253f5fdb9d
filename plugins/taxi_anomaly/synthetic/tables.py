"""Turn drawn trips into an Arrow table in the exact TLC schema of each trip type (vendors, fees, flags, nulls)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from taxi_anomaly.synthetic.schemas import FARE_COLUMN, MONEY_COLUMNS, NULL_BLOCK_COLUMNS, TIP_COLUMN, TLC_SCHEMAS
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
    :param hour_of_week: of the pickup's slot, Monday 00:00-01:00 = 0.
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
    hour_of_week: np.ndarray
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


@dataclass(frozen=True)
class Cents:
    """Money already on whole cents (constants and their sums), written without rounding.

    The array belongs to the table being built: refunds negate it in place.
    """

    values: np.ndarray


Column = np.ndarray | np.ma.MaskedArray | Strings | Cents


def build_table(
    trip_type: str,
    rng: np.random.Generator,
    trips: Trips,
    *,
    null_rows: np.ndarray | None = None,
    refund_rows: np.ndarray | None = None,
    overtipped: tuple[np.ndarray, np.ndarray] | None = None,
) -> pa.Table:
    """The trips as a table in the trip type's TLC schema.

    :param null_rows: rows whose trip details are missing (the type's NULL_BLOCK_COLUMNS become null).
    :param refund_rows: indices of rows recorded as refunds: the type's MONEY_COLUMNS negated.
    :param overtipped: (rows, multiples): those rows' tip is their fare times the multiple (a data-entry fault),
        and their total follows.
    """
    columns = _BUILDERS[trip_type](rng, trips)
    if overtipped is not None and len(overtipped[0]) and trip_type in TIP_COLUMN:
        _overstate_tips(trip_type, columns, *overtipped)
    schema = TLC_SCHEMAS[trip_type]
    nullable = set(NULL_BLOCK_COLUMNS[trip_type]) if null_rows is not None else set()
    refunded = set(MONEY_COLUMNS[trip_type]) if refund_rows is not None and len(refund_rows) else set()
    string_data: dict = {}  # string columns with the same codes and choices share their buffers
    arrays = [
        _to_arrow(
            columns[f.name],
            f.type,
            null_rows if f.name in nullable else None,
            refund_rows if f.name in refunded else None,
            string_data,
        )
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _overstate_tips(trip_type: str, columns: dict[str, Column], rows: np.ndarray, multiples: np.ndarray) -> None:
    fare, tip = columns[FARE_COLUMN[trip_type]], columns[TIP_COLUMN[trip_type]]
    assert isinstance(fare, np.ndarray) and isinstance(tip, np.ndarray)  # (drawn amounts, not Cents or Strings)
    before = np.round(tip[rows], 2)
    tip[rows] = fare[rows] * multiples
    total = columns.get("total_amount")
    if isinstance(total, np.ndarray):  # (fhvhv records carry no total)
        total[rows] += np.round(tip[rows], 2) - before


def _to_arrow(
    column: Column,
    dtype: pa.DataType,
    extra_nulls: np.ndarray | None,
    negated_rows: np.ndarray | None,
    string_data: dict,
) -> pa.Array:
    if isinstance(column, Strings):
        return _fixed_width_strings(column, _either(column.nulls, extra_nulls), string_data)
    on_cents = isinstance(column, Cents)
    if on_cents:
        column = column.values
    nulls = _either(np.ma.getmask(column) if np.ma.isMaskedArray(column) else None, extra_nulls)
    values = np.ma.getdata(column)
    if pa.types.is_timestamp(dtype):
        values = values.astype(np.int64, copy=False)
    elif pa.types.is_floating(dtype):
        if not on_cents:
            values = np.round(values, 2)  # a new array: the negation below never reaches a shared one
        if negated_rows is not None:
            values[negated_rows] *= -1
    else:
        values = values.astype(dtype.to_pandas_dtype(), copy=False)
    # Straight from the buffers: pa.array would copy timestamps and re-check masks.
    data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.Array.from_buffers(dtype, len(values), [_validity(nulls), data], null_count=_null_count(nulls))


def _validity(nulls: np.ndarray | None) -> pa.Buffer | None:
    return None if nulls is None else pa.py_buffer(np.packbits(~nulls, bitorder="little"))


def _null_count(nulls: np.ndarray | None) -> int:
    return 0 if nulls is None else int(np.count_nonzero(nulls))


def _either(first: np.ndarray | None, second: np.ndarray | None) -> np.ndarray | None:
    if first is None or first is np.ma.nomask:
        return second
    return first if second is None else first | second


def _fixed_width_strings(column: Strings, nulls: np.ndarray | None, shared: dict) -> pa.Array:
    """Build the large_string array straight from byte buffers: every choice has the same width.

    :param shared: data buffers already built for this table, by (codes, choices): reused, not rebuilt.
    """
    width = len(column.choices[0])
    if any(len(choice) != width for choice in column.choices):
        raise ValueError(f"choices must share one width: {column.choices!r}")
    n = len(column.codes)
    key = (id(column.codes), tuple(column.choices))
    if key not in shared:
        shared[key] = (column.codes, pa.py_buffer(_string_bytes(column.codes, column.choices, width)))
    data = shared[key][1]  # (the codes are kept in the entry so that their id stays theirs)
    return pa.LargeStringArray.from_buffers(n, _offsets(n, width), data, _validity(nulls), _null_count(nulls))


def _string_bytes(codes: np.ndarray, choices: Sequence[str], width: int) -> np.ndarray:
    """The concatenated values. Two choices (flags, the two companies) take arithmetic instead of a gather."""
    encoded = [np.frombuffer(choice.encode("ascii"), dtype=np.uint8) for choice in choices]
    if len(choices) > 2:
        records = np.frombuffer(b"".join(e.tobytes() for e in encoded), dtype=f"V{width}")  # one per choice
        return records[codes].view(np.uint8)
    first, last = encoded[0], encoded[-1]
    step = last - first  # uint8, modulo 256: first + 1 * step == last
    second = codes.astype(np.uint8, copy=False)
    if width == 1:
        return second * step[0] + first[0]
    data = np.tile(first, len(codes))
    for position in np.flatnonzero(step):
        data[position::width] = second * step[position] + first[position]
    return data


@lru_cache(maxsize=4)
def _offsets(n: int, width: int) -> pa.Buffer:
    """Value offsets of n strings of one width; shared by the string columns of a chunk (buffers are immutable)."""
    return pa.py_buffer(np.arange(0, (n + 1) * width, width, dtype=np.int64))


def _pick(rng: np.random.Generator, n: int, shares: Sequence[float]) -> np.ndarray:
    """Codes 0..len(shares)-1 drawn with the given shares."""
    edges = np.cumsum(shares[:-1]) / np.sum(shares)
    return np.searchsorted(edges, rng.random(n), side="right")


def _bernoulli_rows(rng: np.random.Generator, n: int, chance: float) -> np.ndarray:
    """Rows (sorted indices) where an event of the given chance happens, each row independently.

    Drawn as geometric gaps between events, so a rare event costs O(chance * n) instead of n uniform numbers.
    """
    if n == 0 or chance <= 0:
        return np.empty(0, dtype=np.intp)
    expected = n * chance
    batch = int(expected + 6 * np.sqrt(expected) + 16)
    rows = np.cumsum(rng.geometric(chance, batch)) - 1
    while rows[-1] < n:  # (almost never) not yet past the last row
        rows = np.concatenate([rows, rows[-1] + np.cumsum(rng.geometric(chance, batch))])
    return rows[: np.searchsorted(rows, n)]


def _flags(rng: np.random.Generator, n: int, chance: float) -> np.ndarray:
    """0/1 codes, 1 with the given chance (a rare one)."""
    return _codes(n, _bernoulli_rows(rng, n, chance))


def _tolls(rng: np.random.Generator, trips: Trips) -> np.ndarray:
    n = len(trips)
    chance = trips.long_trip * np.float32(_TOLL_CHANCE_LONG - _TOLL_CHANCE_LOCAL)
    chance += np.float32(_TOLL_CHANCE_LOCAL)
    tolled = np.flatnonzero(rng.random(n, dtype=np.float32) < chance)
    tolls = np.zeros(n)
    tolls[tolled] = _TOLL_AMOUNTS[rng.integers(0, len(_TOLL_AMOUNTS), len(tolled))]
    return tolls


def _card_tips(rng: np.random.Generator, fare: np.ndarray, paid_by_card: np.ndarray) -> np.ndarray:
    return _tips(rng, fare, np.flatnonzero(paid_by_card), 0.1, 0.3)


def _tips(rng: np.random.Generator, fare: np.ndarray, tipped: np.ndarray, low: float, high: float) -> np.ndarray:
    """Tips on the `tipped` rows, a uniform share in [low, high) of the fare; 0 elsewhere."""
    tips = np.zeros(len(fare))
    tips[tipped] = fare[tipped] * (low + (high - low) * rng.random(len(tipped)))
    return tips


# Overnight and weekday rush-hour surcharges of the taxi meter, by hour of the week (Monday 00:00-01:00 = 0).
_METER_EXTRA = (np.where(_NIGHT, 1.0, 0.0)[None, :] + np.where(_WEEKDAY_PEAK, 2.5, 0.0)).ravel()


def _meter_extra(trips: Trips) -> np.ndarray:
    return _METER_EXTRA[trips.hour_of_week]


def _yellow(rng: np.random.Generator, trips: Trips) -> dict[str, Column]:
    n = len(trips)
    jfk_manhattan = ((trips.pickup == _JFK) | (trips.dropoff == _JFK)) & trips.congestion_zone
    rate_code = np.where(jfk_manhattan, 2, 1)
    rate_code = np.where(rng.random(n, dtype=np.float32) < np.float32(0.01), 5, rate_code)
    fare = np.where(jfk_manhattan, 70.0 * trips.fare_factor, trips.fare)
    payment = _pick(rng, n, [0.80, 0.17, 0.015, 0.015]) + 1
    columns: dict[str, Column] = {
        "VendorID": _pick(rng, n, [0.25, 0.75]) + 1,
        "tpep_pickup_datetime": trips.pickup_us,
        "tpep_dropoff_datetime": trips.dropoff_us,
        "passenger_count": _pick(rng, n, [0.01, 0.75, 0.14, 0.04, 0.02, 0.02, 0.02]),
        "trip_distance": trips.miles,
        "RatecodeID": rate_code,
        "store_and_fwd_flag": Strings(_flags(rng, n, 0.005), ("N", "Y")),
        "PULocationID": trips.pickup,
        "DOLocationID": trips.dropoff,
        "payment_type": payment,
        "fare_amount": fare,
        "extra": Cents(_meter_extra(trips)),
        "mta_tax": Cents(np.full(n, 0.5)),
        "tip_amount": _card_tips(rng, fare, payment == 1),
        "tolls_amount": Cents(_tolls(rng, trips)),
        "improvement_surcharge": Cents(np.full(n, 1.0)),
        "congestion_surcharge": Cents(trips.congestion_zone * 2.5),
        "Airport_fee": Cents(trips.airport * 1.75),
    }
    columns["total_amount"] = _total(n, columns, set(MONEY_COLUMNS["yellow"]) - {"total_amount"})
    return columns


def _green(rng: np.random.Generator, trips: Trips) -> dict[str, Column]:
    n = len(trips)
    negotiated = rng.random(n, dtype=np.float32) < np.float32(0.035)
    dispatched = rng.random(n, dtype=np.float32) < np.float32(0.03)
    payment = _pick(rng, n, [0.68, 0.30, 0.015, 0.005]) + 1
    columns: dict[str, Column] = {
        "VendorID": _pick(rng, n, [0.13, 0.87]) + 1,
        "lpep_pickup_datetime": trips.pickup_us,
        "lpep_dropoff_datetime": trips.dropoff_us,
        "store_and_fwd_flag": Strings(_flags(rng, n, 0.002), ("N", "Y")),
        "RatecodeID": np.where(negotiated, 5, 1),
        "PULocationID": trips.pickup,
        "DOLocationID": trips.dropoff,
        "passenger_count": _pick(rng, n, [0.01, 0.84, 0.09, 0.01, 0.005, 0.03, 0.015]),
        "trip_distance": trips.miles,
        "fare_amount": np.where(negotiated, np.round(trips.fare), trips.fare),
        "extra": Cents(np.where(negotiated, 0.0, _meter_extra(trips))),
        "mta_tax": Cents(np.where(negotiated, 0.0, 0.5)),
        "tip_amount": _card_tips(rng, trips.fare, payment == 1),
        "tolls_amount": Cents(_tolls(rng, trips)),
        "ehail_fee": np.ma.masked_array(np.zeros(n), mask=np.ones(n, dtype=bool)),
        "improvement_surcharge": Cents(np.full(n, 1.0)),
        "payment_type": payment,
        "trip_type": np.where(dispatched, 2, 1),
        "congestion_surcharge": Cents(trips.congestion_zone * 2.75),
    }
    columns["total_amount"] = _total(n, columns, set(MONEY_COLUMNS["green"]) - {"total_amount", "ehail_fee"})
    return columns


_FHV_BASES = ("B03404", "B00256", "B01312", "B02800", "B00446", "B02111", "B01717", "B00310", "B02550", "B03016")
_FHV_BASE_SHARES = 1.0 / np.arange(1, len(_FHV_BASES) + 1)  # a few large dispatchers, a tail of small ones


def _fhv(rng: np.random.Generator, trips: Trips) -> dict[str, Column]:
    n = len(trips)
    base = _pick(rng, n, _FHV_BASE_SHARES)
    other_affiliation = _bernoulli_rows(rng, n, 0.08)
    affiliated = base.copy()
    affiliated[other_affiliation] = _pick(rng, len(other_affiliation), _FHV_BASE_SHARES)
    return {
        "dispatching_base_num": Strings(base, _FHV_BASES),
        "pickup_datetime": trips.pickup_us,
        "dropOff_datetime": trips.dropoff_us,
        "PUlocationID": np.ma.masked_array(trips.pickup, mask=_chance(rng, n, 0.12)),
        "DOlocationID": np.ma.masked_array(trips.dropoff, mask=_chance(rng, n, 0.04)),
        "SR_Flag": np.ma.masked_array(np.ones(n, dtype=np.int64), mask=~_chance(rng, n, 0.02)),
        "Affiliated_base_number": Strings(affiliated, _FHV_BASES, nulls=_chance(rng, n, 0.03)),
    }


def _chance(rng: np.random.Generator, n: int, chance: float) -> np.ndarray:
    """True with the given chance, row by row."""
    return rng.random(n, dtype=np.float32) < np.float32(chance)


_HVFHS_LICENSES = ("HV0003", "HV0005")  # Uber, Lyft: the two high-volume companies since 2022
_HVFHS_BASES = ("B03404", "B03406")
_LYFT = 1
_ON_SCENE_MEAN_SECONDS = 60.0  # driver arrival to pickup, where recorded (Uber)
_DRIVER_SHARE = (0.74, 0.07, 0.45, 1.0)  # mean, sd, clipped to [min, max]


def _fhvhv(rng: np.random.Generator, trips: Trips) -> dict[str, Column]:
    n = len(trips)
    company = _chance(rng, n, 0.27).view(np.int8)
    lyft = company == _LYFT
    on_scene_wait = rng.standard_exponential(n)
    on_scene_wait *= _ON_SCENE_MEAN_SECONDS
    on_scene_us = on_scene_wait.astype(np.int64)
    on_scene_us *= -US_PER_SECOND
    on_scene_us += trips.pickup_us
    shared_request = _bernoulli_rows(rng, n, SHARED_RIDE_SHARE)
    shared_match = shared_request[rng.random(len(shared_request)) < 0.4]
    fare = trips.fare
    tips = _tips(rng, fare, np.flatnonzero(_chance(rng, n, 0.18)), 0.1, 0.25)
    mean, sd, low, high = _DRIVER_SHARE
    driver_pay = rng.standard_normal(n)
    driver_pay *= sd
    driver_pay += mean
    np.clip(driver_pay, low, high, out=driver_pay)
    driver_pay *= fare
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
        "tolls": Cents(_tolls(rng, trips)),
        "bcf": fare * 0.025,  # Black Car Fund
        "sales_tax": fare * 0.08875,
        "congestion_surcharge": Cents(trips.congestion_zone * 2.75),
        "airport_fee": Cents(trips.airport * 2.5),
        "tips": tips,
        "driver_pay": driver_pay,
        "shared_request_flag": Strings(_codes(n, shared_request), ("N", "Y")),
        "shared_match_flag": Strings(_codes(n, shared_match), ("N", "Y")),
        "access_a_ride_flag": Strings(company, ("N", " ")),
        "wav_request_flag": Strings(_flags(rng, n, 0.001), ("N", "Y")),
        "wav_match_flag": Strings(_flags(rng, n, 0.06), ("N", "Y")),
    }


def _codes(n: int, rows: np.ndarray) -> np.ndarray:
    """0/1 codes, 1 on the given rows."""
    codes = np.zeros(n, dtype=np.int8)
    codes[rows] = 1
    return codes


def _total(n: int, columns: dict[str, Column], parts: set[str]) -> np.ndarray:
    total = np.zeros(n)
    for name in sorted(parts):
        column = columns[name]
        total += column.values if isinstance(column, Cents) else np.round(column, 2)
    return total


_BUILDERS: dict[str, Callable[[np.random.Generator, Trips], dict[str, Column]]] = {
    "yellow": _yellow,
    "green": _green,
    "fhv": _fhv,
    "fhvhv": _fhvhv,
}
