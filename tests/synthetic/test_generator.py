"""The synthetic TLC generator: real schemas, realistic shapes, dirt as configured, labels that match the data."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_anomaly.synthetic import (
    DISTANCE_COLUMN,
    EPISODE_TYPES,
    FARE_COLUMN,
    FAULT_KINDS,
    PICKUP_COLUMN,
    TLC_SCHEMAS,
    DirtOptions,
    Episode,
    episode_at,
    generate_month,
    labelled_buckets,
    load_labels,
    load_trip_labels,
)
from taxi_anomaly.synthetic import generator as generator_module
from taxi_anomaly.synthetic.__main__ import main as cli_main
from taxi_anomaly.synthetic.profile import VALID_ZONE_COUNT, derive_profile, load_profile
from taxi_anomaly.synthetic.trips import TRIP_TYPE_MODELS, TripSampler
from taxi_anomaly.tlc import TRIP_TYPES

REPO_ROOT = Path(__file__).resolve().parents[2]
TLC_DATA = REPO_ROOT.parent / "shared" / "data" / "tlc"
REAL_GREEN = TLC_DATA / "green_tripdata_2024-01.parquet"
ZONE_LOOKUP = TLC_DATA / "taxi_zone_lookup.csv"
MONTH = "2024-04"  # no DST change inside, so same-weekday comparisons are like for like
MONTH_START, MONTH_END = datetime(2024, 4, 1), datetime(2024, 5, 1)


@pytest.fixture(scope="module")
def fhvhv_month(tmp_path_factory: pytest.TempPathFactory):
    """A default fhvhv month (one episode of each type, default dirt) at 200 k trips."""
    result = generate_month("fhvhv", MONTH, tmp_path_factory.mktemp("fhvhv"), trips=200_000, seed=11)
    trips = pq.read_table(result.data_path).to_pandas()
    return result, trips


def _city_frame(trips: pd.DataFrame, trip_type: str) -> pd.DataFrame:
    """Pickup, fare and miles of the in-month trips, with the dirt a validation stage would drop set to NaN."""
    frame = pd.DataFrame({"pickup": trips[PICKUP_COLUMN[trip_type]]})
    fare, miles = trips[FARE_COLUMN[trip_type]], trips[DISTANCE_COLUMN[trip_type]]
    frame["fare"] = fare.where(fare > 0)
    frame["miles"] = miles.where((miles > 0) & (miles < 1000))
    return frame[(frame.pickup >= MONTH_START) & (frame.pickup < MONTH_END)]


def _window_stats(city: pd.DataFrame, start: datetime, end: datetime) -> tuple[int, float, float]:
    inside = city[(city.pickup >= start) & (city.pickup < end)]
    return len(inside), inside.fare.mean(), inside.miles.mean()


def _reference_windows(episode: Episode, episodes: list[Episode]) -> list[tuple[datetime, datetime]]:
    """The episode's window on the same weekday and clock time in other weeks, where no episode is."""
    windows = []
    for weeks in (-3, -2, -1, 1, 2, 3):
        start, end = episode.start + timedelta(weeks=weeks), episode.end + timedelta(weeks=weeks)
        clear = all(end <= other.start or other.end <= start for other in episodes)
        if start >= MONTH_START + timedelta(days=2) and end <= MONTH_END and clear:
            windows.append((start, end))
    return windows


def _ratios(city: pd.DataFrame, window: tuple[datetime, datetime], references: list[tuple[datetime, datetime]]):
    """(count, mean fare, mean miles) in the window divided by the same over the reference windows."""
    count, fare, miles = _window_stats(city, *window)
    reference = np.array([_window_stats(city, *other) for other in references])
    return count / reference[:, 0].mean(), fare / reference[:, 1].mean(), miles / reference[:, 2].mean()


# --- schema ---------------------------------------------------------------------------------------------------


def _latest_real_columns(trip_type: str) -> list[str]:
    """Column names of the newest real monthly file listed in the TLC metadata."""
    latest = sorted((TLC_DATA / "metadata").glob(f"{trip_type}_tripmetadata_*.csv"))[-1]
    return pd.read_csv(latest)["file_column_names"].iloc[-1].split(",")


def test_green_schema_equals_the_real_green_file(tmp_path: Path):
    result = generate_month("green", "2024-02", tmp_path, trips=5_000)
    assert pq.read_schema(result.data_path).equals(pq.read_schema(REAL_GREEN), check_metadata=False)


@pytest.mark.parametrize("trip_type", TRIP_TYPES)
def test_columns_equal_the_real_files_columns(tmp_path: Path, trip_type: str):
    result = generate_month(trip_type, "2024-02", tmp_path, trips=5_000)
    schema = pq.read_schema(result.data_path)
    sample_header = pd.read_csv(TLC_DATA / "samples" / f"{trip_type}_tripdata_2020-04_sample1000.csv", nrows=0)
    assert schema.names == _latest_real_columns(trip_type)
    assert [n.lower() for n in schema.names] == [n.lower() for n in sample_header.columns]
    assert schema.equals(TLC_SCHEMAS[trip_type], check_metadata=False)
    timestamps = [f for f in schema if pa.types.is_timestamp(f.type)]
    assert len(timestamps) >= 2 and all(f.type.tz is None and f.type.unit == "us" for f in timestamps)


def test_fhvhv_has_the_24_columns_of_the_2023_metadata(fhvhv_month):
    result, _ = fhvhv_month
    listed = pd.read_csv(TLC_DATA / "metadata" / "fhvhv_tripmetadata_2023.csv")["file_column_names"].iloc[0]
    assert pq.read_schema(result.data_path).names == listed.split(",")
    assert len(listed.split(",")) == 24


# --- reproducibility, time --------------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path):
    first = generate_month("fhvhv", "2024-03", tmp_path / "a", trips=30_000, seed=5, chunk_rows=10_000)
    again = generate_month("fhvhv", "2024-03", tmp_path / "b", trips=30_000, seed=5, chunk_rows=10_000)
    other = generate_month("fhvhv", "2024-03", tmp_path / "c", trips=30_000, seed=6, chunk_rows=10_000)
    assert _digest(first.data_path) == _digest(again.data_path)
    assert first.labels_path.read_text() == again.labels_path.read_text()
    assert _digest(first.data_path) != _digest(other.data_path)
    assert first.episodes != other.episodes
    assert pq.ParquetFile(first.data_path).metadata.num_row_groups >= 3


def test_pickups_lie_in_the_month_except_the_labelled_stray_rows(fhvhv_month):
    result, trips = fhvhv_month
    labels = load_labels(result.labels_path)
    pickup = trips["pickup_datetime"]
    outside = (pickup < MONTH_START) | (pickup >= MONTH_END)
    assert outside.sum() == labels.dirt["out_of_month_rows"] > 0
    assert outside.mean() < 0.001
    assert (trips["dropoff_datetime"] > pickup).all()
    assert (pickup.dt.microsecond == 0).all()
    assert len(trips) == result.rows == labels.rows == 200_000


def test_daylight_saving_changes_follow_the_new_york_wall_clock(tmp_path: Path):
    spring = pq.read_table(generate_month("yellow", "2024-03", tmp_path, trips=150_000, anomalies="none").data_path)
    fall = pq.read_table(generate_month("yellow", "2024-11", tmp_path, trips=150_000, anomalies="none").data_path)
    spring_pickup = spring.column("tpep_pickup_datetime").to_pandas()
    fall_pickup = fall.column("tpep_pickup_datetime").to_pandas()
    assert spring_pickup.between(datetime(2024, 3, 10, 2), datetime(2024, 3, 10, 3), inclusive="left").sum() == 0
    repeated_hour = fall_pickup.between(datetime(2024, 11, 3, 1), datetime(2024, 11, 3, 2), inclusive="left").sum()
    other_sundays = [
        fall_pickup.between(datetime(2024, 11, d, 1), datetime(2024, 11, d, 2), inclusive="left").sum()
        for d in (10, 17, 24)
    ]
    assert 1.6 < repeated_hour / np.mean(other_sundays) < 2.4


def test_leap_day_and_month_lengths(tmp_path: Path):
    leap = generate_month("green", "2024-02", tmp_path, trips=20_000, dirt=False, anomalies="none")
    common = generate_month("green", "2023-02", tmp_path, trips=20_000, dirt=False, anomalies="none")
    leap_days = pq.read_table(leap.data_path).column("lpep_pickup_datetime").to_pandas().dt.day
    common_pickup = pq.read_table(common.data_path).column("lpep_pickup_datetime").to_pandas()
    assert leap_days.max() == 29 and (leap_days == 29).sum() > 300
    assert common_pickup.min() >= datetime(2023, 2, 1) and common_pickup.max() < datetime(2023, 3, 1)


# --- calibrated shapes ------------------------------------------------------------------------------------------


def test_committed_profile_is_what_the_real_file_gives():
    derived, committed = derive_profile(REAL_GREEN, ZONE_LOOKUP), load_profile()
    assert derived.to_json() == committed.to_json()
    assert len(committed.hour_of_week) == 168 and (committed.hour_of_week > 0).all()


def test_every_valid_zone_can_be_drawn_for_every_trip_type():
    profile = load_profile()
    assert (profile.pickup_counts[:VALID_ZONE_COUNT] > 0).all()
    for model in TRIP_TYPE_MODELS.values():
        sampler = TripSampler(profile, model)
        assert (sampler.pickup_weights[:VALID_ZONE_COUNT] > 0).all()
        assert (sampler.dropoff_weights[:VALID_ZONE_COUNT] > 0).all()


def test_weekly_shape_follows_the_real_green_month(tmp_path: Path):
    result = generate_month("green", "2024-01", tmp_path, trips=100_000, anomalies="none", dirt=False)
    synthetic = pq.read_table(result.data_path).column("lpep_pickup_datetime").to_pandas()
    real = pq.read_table(REAL_GREEN).column("lpep_pickup_datetime").to_pandas()
    real = real[(real >= datetime(2024, 1, 2)) & (real < datetime(2024, 2, 1))]
    synthetic = synthetic[synthetic >= datetime(2024, 1, 2)]

    def per_hour_of_week(pickup: pd.Series) -> np.ndarray:
        return np.bincount(pickup.dt.weekday * 24 + pickup.dt.hour, minlength=168)

    assert np.corrcoef(per_hour_of_week(synthetic), per_hour_of_week(real))[0, 1] > 0.95
    assert np.corrcoef(np.bincount(synthetic.dt.hour), np.bincount(real.dt.hour))[0, 1] > 0.97


def test_trip_attributes_are_correlated_and_plausible(fhvhv_month):
    result, trips = fhvhv_month
    clean = trips.drop(index=load_trip_labels(result.trip_labels_path)["row"].unique())  # dirt and faults out
    assert (clean.trip_miles > 0).all() and (clean.trip_miles < 1000).all() and (clean.base_passenger_fare > 0).all()
    assert np.corrcoef(clean.trip_miles, clean.trip_time)[0, 1] > 0.7
    assert np.corrcoef(clean.trip_miles, clean.base_passenger_fare)[0, 1] > 0.7
    assert 0.6 < (clean.driver_pay / clean.base_passenger_fare).median() < 0.85
    airport = clean.PULocationID.isin([1, 132, 138]) | clean.DOLocationID.isin([1, 132, 138])
    assert (clean.airport_fee[airport].dropna() > 0).all() and (clean.airport_fee[~airport].dropna() == 0).all()
    assert clean.trip_miles[airport].median() > 2 * clean.trip_miles[~airport].median()
    assert 0.01 < (trips.shared_request_flag == "Y").mean() < 0.03
    assert 2 < clean.trip_miles.median() < 6


# --- labels against data ----------------------------------------------------------------------------------------

# Expected (count, mean fare, mean miles) ratio in an episode window versus the same weekday and time elsewhere;
# "m" is the episode's magnitude, None means not checked (an outage leaves too few trips for means).
EXPECTED_RATIOS = {
    "drop": ("m", 1.0, 1.0),
    "spike": ("m", 1.0, 1.0),
    "outage": ("m", None, None),
    "fare_surge": (1.0, "m", 1.0),
    "distance_shift": (1.0, None, "m"),
}


def test_labels_line_up_with_the_data(fhvhv_month):
    result, trips = fhvhv_month
    episodes = load_labels(result.labels_path).episodes
    assert sorted(e.type for e in episodes) == sorted(EPISODE_TYPES)
    city = _city_frame(trips, "fhvhv")
    for episode in episodes:
        references = _reference_windows(episode, episodes)
        assert len(references) >= 2, episode
        measured = _ratios(city, (episode.start, episode.end), references)
        for name, ratio, expected in zip(
            ("count", "fare", "miles"), measured, EXPECTED_RATIOS[episode.type], strict=True
        ):
            target = episode.magnitude if expected == "m" else expected
            if target is None:
                continue
            tolerance = 0.05 if target < 0.1 else 0.15 * target
            assert abs(ratio - target) < tolerance, f"{episode.episode_id} {episode.type}: {name} ratio {ratio:.3f}"
        if episode.type == "distance_shift":
            assert measured[1] > 1.2  # fares follow the longer distances


def test_outside_episodes_the_same_weekday_and_time_do_not_differ(fhvhv_month):
    result, trips = fhvhv_month
    episodes = result.episodes
    city = _city_frame(trips, "fhvhv")
    checked = 0
    for episode in episodes:
        references = _reference_windows(episode, episodes)
        for window in references:
            others = [other for other in references if other != window]
            if not others:
                continue
            count, fare, miles = _ratios(city, window, others)
            # far inside the labelled ranges: drops and outages ≤ 0.6, spikes ≥ 1.8, surges and shifts ≥ 1.5
            assert all(0.8 < ratio < 1.25 for ratio in (count, fare, miles)), f"quiet {window}: {count, fare, miles}"
            checked += 1
    assert checked >= 5


def test_scoped_episode_moves_only_its_zones(tmp_path: Path):
    request = {"type": "spike", "start": "2024-04-17T17:00", "hours": 3, "magnitude": 2.5, "scope": "Manhattan"}
    result = generate_month("yellow", MONTH, tmp_path, trips=150_000, anomalies=[request], dirt=False)
    (episode,) = result.episodes
    assert (episode.type, episode.start, episode.end, episode.magnitude) == (
        "spike",
        datetime(2024, 4, 17, 17),
        datetime(2024, 4, 17, 20),
        2.5,
    )
    assert episode.scope == "Manhattan" and 60 < len(episode.zone_ids) < 75
    trips = pq.read_table(result.data_path).to_pandas()
    in_scope = trips.PULocationID.isin(episode.zone_ids)
    scoped = _city_frame(trips[in_scope], "yellow")
    rest = _city_frame(trips[~in_scope], "yellow")
    references = _reference_windows(episode, result.episodes)
    assert abs(_ratios(scoped, (episode.start, episode.end), references)[0] - 2.5) < 0.3
    assert abs(_ratios(rest, (episode.start, episode.end), references)[0] - 1.0) < 0.25


def test_episodes_follow_the_placement_rules(tmp_path: Path):
    for month in ("2024-02", "2024-03", "2024-11", "2025-06"):
        for seed in (1, 2):
            episodes = generate_month("fhv", month, tmp_path, trips=500, seed=seed).episodes
            assert sorted(e.type for e in episodes) == ["distance_shift", "drop", "outage", "spike"]
            first = datetime.fromisoformat(f"{month}-01")
            for before, after in pairwise(episodes):
                assert before.end < after.start
            for episode in episodes:
                hours = (episode.end - episode.start) / timedelta(hours=1)
                assert episode.start >= first + timedelta(days=2)
                assert episode.start.minute in (0, 30) and episode.start.second == 0
                assert 1 <= hours <= 12 and (episode.type != "outage" or hours <= 3)
                low, high = {"drop": (0.3, 0.6), "spike": (1.8, 3), "distance_shift": (1.5, 2.5)}.get(
                    episode.type, (0.0, 0.05)
                )
                assert low <= episode.magnitude <= high
                assert episode.scope == "city" and episode.zone_ids is None


def test_clean_month_has_no_episodes(tmp_path: Path):
    result = generate_month("green", MONTH, tmp_path, trips=2_000, anomalies="none")
    assert result.episodes == [] and load_labels(result.labels_path).episodes == []


# --- labels file and bucket helpers -----------------------------------------------------------------------------


def test_labels_file_round_trips_and_names_its_data(fhvhv_month):
    result, _ = fhvhv_month
    labels = load_labels(result.labels_path)
    assert result.labels_path.name == "fhvhv_tripdata_2024-04.labels.json"
    assert labels.data_file == result.data_path.name == "fhvhv_tripdata_2024-04.parquet"
    assert labels.episodes == result.episodes
    assert (labels.seed, labels.trip_type, labels.month) == (11, "fhvhv", MONTH)
    assert labels.options["anomalies"] == "default"


def test_bucket_helpers():
    episode = Episode("e1", "green", MONTH, "drop", datetime(2024, 4, 9, 10), datetime(2024, 4, 9, 11, 30), 0.4)
    later = Episode("e2", "green", MONTH, "spike", datetime(2024, 4, 20, 18), datetime(2024, 4, 20, 19), 2.0)
    assert labelled_buckets([episode]) == {datetime(2024, 4, 9, 10), datetime(2024, 4, 9, 10, 30)} | {
        datetime(2024, 4, 9, 11)
    }
    assert labelled_buckets([episode, later], minutes=60) == {
        datetime(2024, 4, 9, 10),
        datetime(2024, 4, 9, 11),
        datetime(2024, 4, 20, 18),
    }
    assert episode_at([episode, later], datetime(2024, 4, 9, 11)) is episode
    assert episode_at([episode, later], pd.Timestamp("2024-04-20 18:30")) is later
    assert episode_at([episode, later], datetime(2024, 4, 9, 11, 30)) is None
    assert episode_at([episode, later], datetime(2024, 4, 9, 9, 30)) is None


def test_labelled_buckets_are_the_buckets_the_data_changes_in(fhvhv_month):
    result, trips = fhvhv_month
    labels = load_labels(result.labels_path)
    buckets = labelled_buckets(labels)
    assert len(buckets) == sum(2 * (e.end - e.start) / timedelta(hours=1) for e in labels.episodes)
    outage = next(e for e in labels.episodes if e.type == "outage")
    city = _city_frame(trips, "fhvhv")
    per_bucket = city.pickup.dt.floor("30min").value_counts()
    week = timedelta(weeks=1)
    for bucket in outage.bucket_starts():
        assert episode_at(labels, bucket) == outage
        usual = per_bucket[bucket + week] if bucket + week < MONTH_END else per_bucket[bucket - week]
        assert per_bucket.get(bucket, 0) < 0.1 * usual


# --- dirt -------------------------------------------------------------------------------------------------------


def test_dirt_shares_are_as_configured(tmp_path: Path):
    shares = DirtOptions(
        out_of_month_share=0.002,
        negative_fare_share=0.003,
        zero_distance_share=0.01,
        absurd_distance_share=0.001,
        null_block_share=0.004,
        meter_fault_share=0.002,
        gps_fault_share=0.003,
        tip_over_fare_share=0.002,
        fare_without_distance_share=0.001,
    )
    rows = 100_000
    result = generate_month("fhvhv", MONTH, tmp_path, trips=rows, dirt=shares, chunk_rows=30_000)
    trips = pq.read_table(result.data_path).to_pandas()
    dirt = result.dirt
    pickup = trips.pickup_datetime
    outside = (pickup < MONTH_START) | (pickup >= MONTH_END)
    null_rows = np.flatnonzero(trips.congestion_surcharge.isna())
    labelled = load_trip_labels(result.trip_labels_path).groupby("fault")["row"].apply(set).to_dict()
    found = {
        "out_of_month_rows": int(outside.sum()),
        "negative_fare_rows": int((trips.base_passenger_fare < 0).sum()),
        "zero_distance_rows": len(set(np.flatnonzero(trips.trip_miles == 0)) - labelled["fare_without_distance"]),
        "absurd_distance_rows": int((trips.trip_miles >= 200_000).sum()),
        "null_block_rows": len(null_rows),
    }
    found |= {f"{kind}_rows": len(labelled[kind]) for kind in FAULT_KINDS if f"{kind}_rows" not in found}
    assert found == dirt
    assert all(len(labelled[kind]) == dirt[f"{kind}_rows"] for kind in FAULT_KINDS)
    assert (pickup[outside].dt.year.isin([2008, 2009])).any()
    assert len(null_rows) == 400 and (np.diff(null_rows) == 1).all()
    assert trips.originating_base_num.iloc[null_rows].isna().all()
    for name, share in shares.to_json().items():
        count = dirt[name.replace("_share", "_rows")]
        assert abs(count - share * rows) <= 5 * np.sqrt(share * rows) + 1, name
    assert load_labels(result.labels_path).dirt == dirt


def test_without_dirt_there_is_none_and_default_dirt_is_small(tmp_path: Path, fhvhv_month):
    result = generate_month("yellow", MONTH, tmp_path, trips=20_000, dirt=False)
    trips = pq.read_table(result.data_path).to_pandas()
    assert set(result.dirt.values()) == {0}
    assert trips.tpep_pickup_datetime.between(MONTH_START, MONTH_END, inclusive="left").all()
    assert (trips.trip_distance > 0).all() and (trips.fare_amount > 0).all()
    assert trips.passenger_count.notna().all()
    default_result, _ = fhvhv_month
    assert sum(default_result.dirt.values()) < 0.01 * default_result.rows


# --- API and command line ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"trip_type": "limo"}, "trip_type"),
        ({"month": "2024-13"}, "month"),
        ({"month": "March"}, "month"),
        ({"trips": -5}, "trips"),
        ({"trips": 0}, "trips"),
        ({"seed": -1}, "seed"),
        ({"anomalies": "sometimes"}, "anomalies"),
        ({"anomalies": [{"type": "tsunami"}]}, "anomalies"),
        ({"anomalies": [{"type": "drop", "when": "now"}]}, "anomalies"),
        ({"anomalies": [{"type": "drop", "start": "2024-04-01T10:00"}]}, "anomalies"),
        ({"anomalies": [{"type": "drop", "magnitude": 1.5}]}, "anomalies"),
        ({"trip_type": "fhv", "anomalies": ["fare_surge"]}, "anomalies"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(tmp_path: Path, arguments: dict, parameter: str):
    call = {"trip_type": "green", "month": MONTH, "trips": 1_000} | arguments
    with pytest.raises(ValueError, match=rf"^{parameter}: "):
        generate_month(call.pop("trip_type"), call.pop("month"), tmp_path, **call)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder_is_refused(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=r"^out_dir: "):
        generate_month("green", MONTH, blocker / "out", trips=1_000)


def test_failed_write_leaves_no_half_written_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    draw = generator_module.draw_chunk

    def failing_draw(plan, chunk):
        if chunk.index == 2:
            raise RuntimeError("disk on fire")
        return draw(plan, chunk)

    monkeypatch.setattr(generator_module, "draw_chunk", failing_draw)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_month("green", MONTH, tmp_path, trips=5_000, chunk_rows=1_000)
    assert list(tmp_path.iterdir()) == []


def test_command_line_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture):
    code = cli_main(["--trip-type", "green", "--month", MONTH, "--out", str(tmp_path), "--trips", "3000", "--clean"])
    printed = capsys.readouterr().out
    assert code == 0
    assert (tmp_path / "green_tripdata_2024-04.parquet").exists()
    assert "green_tripdata_2024-04.labels.json (0 episodes)" in printed and "3,000 rows" in printed
    assert pq.read_metadata(tmp_path / "green_tripdata_2024-04.parquet").num_rows == 3_000


def test_command_line_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture):
    code = cli_main(["--trip-type", "green", "--month", "2024-4x", "--out", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: month: ")
