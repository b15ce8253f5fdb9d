"""The generator's trip labels: which rows carry which fault, reproducible by seed, and every labelled row shows its
fault in the data while the unlabelled rows show none."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from taxi_anomaly.synthetic import (
    FAULT_KINDS,
    TRIP_FEATURE_FAULTS,
    DirtOptions,
    faulty_rows,
    generate_month,
    load_labels,
    load_trip_labels,
    score_trip_faults,
)
from taxi_anomaly.synthetic.dirt import GPS_FAULT_MPH
from taxi_anomaly.synthetic.trips import TRIP_TYPE_MODELS

MONTH = "2024-04"
MONTH_START, MONTH_END = datetime(2024, 4, 1), datetime(2024, 5, 1)
# Every kind at a share that gives a few hundred rows of 60 k.
DIRTY = DirtOptions(**{f"{kind}_share": 0.004 for kind in FAULT_KINDS})
# Raw column names: fare, distance, tip, pickup, dropoff (None: the duration is fhvhv's trip_time).
COLUMNS = {
    "yellow": ("fare_amount", "trip_distance", "tip_amount", "tpep_pickup_datetime", "tpep_dropoff_datetime"),
    "fhvhv": ("base_passenger_fare", "trip_miles", "tips", "pickup_datetime", None),
}


def month_frame(trip_type: str, trips: pd.DataFrame) -> pd.DataFrame:
    fare, miles, tip, pickup, dropoff = COLUMNS[trip_type]
    seconds = trips.trip_time if dropoff is None else (trips[dropoff] - trips[pickup]).dt.total_seconds()
    return pd.DataFrame(
        {"fare": trips[fare], "miles": trips[miles], "tip": trips[tip], "seconds": seconds, "pickup": trips[pickup]}
    )


@pytest.fixture(scope="module", params=list(COLUMNS))
def dirty_month(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    trip_type = request.param
    folder = tmp_path_factory.mktemp(trip_type)
    result = generate_month(trip_type, MONTH, folder, trips=60_000, seed=4, dirt=DIRTY, chunk_rows=25_000)
    trips = pq.read_table(result.data_path).to_pandas()
    return trip_type, result, trips, load_trip_labels(result.trip_labels_path)


def test_trip_labels_are_reproducible_and_counted_in_the_labels(tmp_path: Path):
    first = generate_month("green", MONTH, tmp_path / "a", trips=30_000, seed=9, dirt=DIRTY, chunk_rows=10_000)
    again = generate_month("green", MONTH, tmp_path / "b", trips=30_000, seed=9, dirt=DIRTY, chunk_rows=10_000)
    other = generate_month("green", MONTH, tmp_path / "c", trips=30_000, seed=10, dirt=DIRTY, chunk_rows=10_000)
    assert first.trip_labels_path.name == "green_tripdata_2024-04.trip_labels.parquet"
    assert first.trip_labels_path.read_bytes() == again.trip_labels_path.read_bytes()
    labels, other_labels = load_trip_labels(first.trip_labels_path), load_trip_labels(other.trip_labels_path)
    assert not labels.equals(other_labels)
    assert list(labels.columns) == ["row", "fault"] and labels["row"].is_monotonic_increasing
    assert labels["row"].between(0, first.rows - 1).all() and not labels.duplicated().any()
    counts = labels["fault"].value_counts()
    assert {f"{kind}_rows": int(counts.get(kind, 0)) for kind in FAULT_KINDS} == first.dirt
    assert load_labels(first.labels_path).dirt == first.dirt
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "green_tripdata_2024-04.labels.json",
        "green_tripdata_2024-04.parquet",
        "green_tripdata_2024-04.trip_labels.parquet",
    ]


def test_labelled_rows_show_their_fault_and_the_others_none(dirty_month):
    trip_type, result, trips, labels = dirty_month
    frame = month_frame(trip_type, trips)
    rows = {kind: labels.loc[labels.fault == kind, "row"].to_numpy() for kind in FAULT_KINDS}
    assert all(len(rows[kind]) > 100 for kind in FAULT_KINDS if kind != "null_block"), labels.fault.value_counts()
    tariff = TRIP_TYPE_MODELS[trip_type].tariff
    expected_fare = tariff.flag + tariff.per_mile * frame.miles + tariff.per_minute * frame.seconds / 60
    overcharge = frame.fare / expected_fare
    speed = frame.miles / (frame.seconds / 3600)

    def shows(kind: str) -> pd.Series:
        return {
            "out_of_month": (frame.pickup < MONTH_START) | (frame.pickup >= MONTH_END),
            "negative_fare": frame.fare < 0,
            "zero_distance": frame.miles == 0,
            "absurd_distance": frame.miles >= 200_000,
            "null_block": trips["passenger_count" if trip_type == "yellow" else "congestion_surcharge"].isna(),
            "meter_fault": overcharge > 2.5,
            "gps_fault": speed > GPS_FAULT_MPH[0] - 1,  # (distance rounded to the cent of a mile)
            "tip_over_fare": frame.tip > frame.fare,
            "fare_without_distance": (frame.miles == 0) & (frame.seconds <= 90) & (frame.fare > 0),
        }[kind]

    unlabelled = np.setdiff1d(np.arange(len(trips)), labels.row)
    for kind in FAULT_KINDS:
        assert shows(kind).iloc[rows[kind]].all(), kind
        if kind == "meter_fault":  # a few flat airport fares and a fare surge's tail (x2.5) come near
            assert shows(kind).iloc[unlabelled].mean() < 0.002
        else:
            assert not shows(kind).iloc[unlabelled].any(), kind
    # A tip over the fare reaches the total
    if trip_type == "yellow":
        parts = ["fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge"]
        parts += ["congestion_surcharge", "Airport_fee"]
        overtipped = trips.iloc[rows["tip_over_fare"]]
        total = overtipped[parts].fillna(0).sum(axis=1)
        np.testing.assert_allclose(overtipped.total_amount, total, atol=0.011)


def test_fhv_has_no_fare_or_distance_faults(tmp_path: Path):
    result = generate_month("fhv", MONTH, tmp_path, trips=20_000, seed=1, dirt=DIRTY)
    labels = load_trip_labels(result.trip_labels_path)
    assert set(labels.fault) == {"out_of_month", "null_block"}
    assert all(result.dirt[f"{kind}_rows"] == 0 for kind in TRIP_FEATURE_FAULTS)


def test_scoring_against_the_trip_labels():
    labels = pd.DataFrame(
        {"row": [1, 2, 2, 5, 7], "fault": ["meter_fault", "out_of_month", "zero_distance", "null_block", "gps_fault"]}
    )
    assert faulty_rows(labels, 8).tolist() == [False, True, True, False, False, False, False, True]
    flagged = np.array([False, True, False, False, False, True, True, False])
    score = score_trip_faults(labels, flagged)
    assert score["precision"] == pytest.approx(1 / 3) and score["recall"] == pytest.approx(1 / 3)
    assert score["recall_by_fault"] == {
        "gps_fault": 0.0,
        "meter_fault": 1.0,
        "null_block": 1.0,
        "out_of_month": 0.0,
        "zero_distance": 0.0,
    }
    assert score["negatives_flagged_share"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="kinds: tsunami not in FAULT_KINDS"):
        faulty_rows(labels, 8, ["tsunami"])


def test_a_file_that_is_not_trip_labels_is_refused(tmp_path: Path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"row": [1], "kind": ["meter_fault"]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"x.parquet: not trip labels \(columns \['row', 'kind'\]"):
        load_trip_labels(path)
