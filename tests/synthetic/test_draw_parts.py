"""The vectorised pieces the generator's speed rests on draw what they should (see test_generator for the months)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from taxi_anomaly.synthetic import generate_month, tables
from taxi_anomaly.synthetic.profile import ZONE_COUNT, load_profile
from taxi_anomaly.synthetic.timeline import MonthTimeline, wall_us
from taxi_anomaly.synthetic.trips import (
    _AIRPORT,
    _OTHER_BOROUGH,
    _SAME_BOROUGH,
    _SAME_ZONE,
    TRIP_TYPE_MODELS,
    StackedZoneSampler,
    TripSampler,
    ZoneSampler,
    _alias_draw,
)
from taxi_anomaly.tlc import YearMonth

DRAWS = 2_000_000


def _max_z(drawn: np.ndarray, weights: np.ndarray) -> float:
    """Largest |observed - expected| / sd over the zones with weight, for LocationIDs drawn with these weights."""
    share = weights / weights.sum()
    observed = np.bincount(drawn, minlength=len(weights) + 1)[1:] / len(drawn)
    sd = np.sqrt(share * (1 - share) / len(drawn))
    return float(np.max(np.abs(observed - share)[share > 0] / sd[share > 0]))


def test_alias_sampler_draws_each_zone_with_its_weight():
    rng = np.random.default_rng(1)
    weights = rng.random(ZONE_COUNT) ** 3
    weights[[4, 100, ZONE_COUNT - 1]] = 0.0
    drawn = ZoneSampler(weights).sample(rng, DRAWS)
    assert drawn.min() >= 1 and drawn.max() <= ZONE_COUNT
    assert not np.isin(drawn, [5, 101, ZONE_COUNT]).any()  # weight 0 is never drawn
    assert _max_z(drawn, weights) < 5


def test_alias_draw_stays_in_range_for_the_largest_uniform_number():
    sampler = ZoneSampler(np.ones(ZONE_COUNT))
    drawn = _alias_draw(np.array([0.0, 1.0 - 2.0**-53]), ZONE_COUNT, sampler._edge, sampler._choice)
    assert drawn.tolist() == [1, ZONE_COUNT]


def test_stacked_samplers_draw_each_row_from_its_own_table():
    rng = np.random.default_rng(2)
    weights = [rng.random(ZONE_COUNT), np.where(np.arange(ZONE_COUNT) < 10, 1.0, 0.0), rng.random(ZONE_COUNT) ** 4]
    stacked = StackedZoneSampler([ZoneSampler(w) for w in weights])
    table = rng.integers(0, len(weights), DRAWS)
    drawn = stacked.sample(rng, table)
    for index, w in enumerate(weights):
        assert _max_z(drawn[table == index], w) < 5
    assert drawn[table == 1].max() <= 10


def test_rare_event_rows_are_independent_with_the_given_chance():
    rng = np.random.default_rng(3)
    for n, chance in [(1_000_000, 0.001), (1_000_000, 0.06), (50, 0.5), (1, 0.01), (0, 0.1)]:
        rows = tables._bernoulli_rows(rng, n, chance)
        assert (np.diff(rows) > 0).all() and (rows >= 0).all() and (rows < max(n, 1)).all()
        if n >= 1_000_000:
            assert abs(len(rows) - n * chance) < 5 * np.sqrt(n * chance)
    # Every row is equally likely (no drift along the chunk).
    counts = np.bincount(np.concatenate([tables._bernoulli_rows(rng, 100, 0.3) for _ in range(20_000)]))
    assert abs(counts / 20_000 - 0.3).max() < 0.02


@pytest.mark.parametrize("choices", [("N", "Y"), ("N", " "), ("HV0003", "HV0005"), ("B03404", "B03406")])
def test_two_choice_strings_by_arithmetic_equal_a_lookup(choices: tuple[str, str]):
    codes = (np.random.default_rng(4).random(1000) < 0.3).astype(np.int8)
    data = tables._string_bytes(codes, choices, len(choices[0]))
    assert data.tobytes().decode("ascii") == "".join(choices[code] for code in codes)


def test_wall_clock_conversion_across_and_away_from_a_dst_change():
    timeline = MonthTimeline.for_month(YearMonth(2024, 11))
    fall_back = timeline.transitions_utc_us[0]
    rng = np.random.default_rng(5)
    for low, high in [(-10, 10), (1, 100), (-100, -1)]:  # hours around the change
        utc = fall_back + rng.integers(low * 3600, high * 3600, 10_000) * 1_000_000
        expected = utc + timeline.offsets_us[np.searchsorted(timeline.transitions_utc_us, utc, side="right")]
        assert (timeline.to_wall(utc) == expected).all()
    assert timeline.to_wall(fall_back + np.array([0])) == [wall_us(datetime(2024, 11, 3, 1))]


def test_route_tables_match_the_zone_facts():
    sampler = TripSampler(load_profile(), TRIP_TYPE_MODELS["fhvhv"])
    zones = sampler.zones
    pickup, dropoff = (a.ravel() for a in np.meshgrid(np.arange(1, ZONE_COUNT + 1), np.arange(1, ZONE_COUNT + 1)))
    routes = sampler.routes(pickup, dropoff)
    airport = zones.airport[pickup] | zones.airport[dropoff]
    same_borough = zones.borough[pickup] == zones.borough[dropoff]
    expected = np.where(same_borough, _SAME_BOROUGH, _OTHER_BOROUGH)
    expected[pickup == dropoff] = _SAME_ZONE
    expected[airport] = _AIRPORT
    assert (routes.kind == expected).all()
    assert (routes.airport == airport).all()
    assert (routes.long_trip == (~same_borough | airport)).all()
    assert (routes.congestion_zone == (zones.congestion_zone[pickup] | zones.congestion_zone[dropoff])).all()


def test_fhv_and_fhvhv_share_one_trip_model():
    fhv, fhvhv = TRIP_TYPE_MODELS["fhv"], TRIP_TYPE_MODELS["fhvhv"]
    assert fhv.default_trips < fhvhv.default_trips
    assert replace(fhv, default_trips=fhvhv.default_trips) == fhvhv


def test_generation_reports_the_cpu_time_of_drawing_and_encoding(tmp_path):
    result = generate_month("green", "2024-04", tmp_path, trips=20_000, seed=1)
    assert result.draw_cpu_seconds > 0 and result.encode_cpu_seconds > 0
