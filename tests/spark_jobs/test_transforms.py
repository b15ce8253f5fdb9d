"""Unit tests of the job's pure DataFrame transforms on tiny hand-written frames."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from anomaly_detection.features import (
    _us_federal_holidays,
    add_lags,
    add_time_features,
    build_features,
    seasonal_profile,
)
from anomaly_detection.normalise import InputDataError, normalise_trips
from anomaly_detection.windows import aggregate_windows, bucket_grid

pytestmark = pytest.mark.spark

FHVHV_COLUMNS = (
    "hvfhs_license_num STRING, pickup_datetime TIMESTAMP_NTZ, dropoff_datetime TIMESTAMP_NTZ, "
    "PULocationID INT, DOLocationID INT, trip_miles DOUBLE, trip_time BIGINT, "
    "base_passenger_fare DOUBLE, driver_pay DOUBLE, airport_fee DOUBLE, shared_match_flag STRING"
)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_normalise_fhvhv_maps_names_and_types(spark):
    raw = spark.createDataFrame(
        [
            ("HV0003", ts("2024-03-01 08:05:00"), ts("2024-03-01 08:20:00"), 132, 48, 17.5, 900, 60.0, 45.0, 2.5, "N"),
            ("HV0005", ts("2024-03-01 08:10:00"), ts("2024-03-01 08:16:00"), 48, 50, 1.2, 360, 9.0, 7.0, None, "Y"),
        ],
        FHVHV_COLUMNS,
    )
    got = normalise_trips(raw, "fhvhv").select(
        "pickup_at",
        "pu_location_id",
        "trip_distance",
        "trip_duration_s",
        "fare_amount",
        "driver_pay",
        "is_airport",
        "is_shared",
    )
    expected = spark.createDataFrame(
        [
            (ts("2024-03-01 08:05:00"), 132, 17.5, 900.0, 60.0, 45.0, True, False),
            (ts("2024-03-01 08:10:00"), 48, 1.2, 360.0, 9.0, 7.0, False, True),
        ],
        "pickup_at TIMESTAMP_NTZ, pu_location_id INT, trip_distance DOUBLE, trip_duration_s DOUBLE, "
        "fare_amount DOUBLE, driver_pay DOUBLE, is_airport BOOLEAN, is_shared BOOLEAN",
    )
    assertDataFrameEqual(got, expected)


def test_normalise_green_handles_name_drift_and_missing_columns(spark):
    # Mixed-case names as in the 2023+ yellow files (Airport_fee) and no driver pay / trip_time columns.
    raw = spark.createDataFrame(
        [(2, ts("2024-01-01 00:10:00"), ts("2024-01-01 00:30:00"), 74, 1, 3.0, 14.2, 20.1, 1.75)],
        "VendorID INT, lpep_pickup_datetime TIMESTAMP_NTZ, lpep_dropoff_datetime TIMESTAMP_NTZ, PULocationID INT, "
        "DOLocationID INT, trip_distance DOUBLE, fare_amount DOUBLE, total_amount DOUBLE, Airport_fee DOUBLE",
    )
    row = normalise_trips(raw, "green").first()
    assert row.trip_type == "green"
    assert row.trip_duration_s == 1200.0  # derived from the timestamps
    assert row.driver_pay is None
    assert row.is_airport is True  # DOLocationID 1 (Newark) and a fee


def test_normalise_reads_spaced_and_snake_case_headers_as_the_ingest_maps_them(spark):
    # yellow 2014 CSV headers (a space after each comma) and a snake_case export's zone ids.
    raw = spark.createDataFrame(
        [(ts("2014-03-01 00:10:00"), ts("2014-03-01 00:40:00"), 132, 138, 17.5, 52.0)],
        "` pickup_datetime` TIMESTAMP_NTZ, ` dropoff_datetime` TIMESTAMP_NTZ, pickup_location_id INT, "
        "dropoff_location_id INT, ` trip_distance` DOUBLE, ` fare_amount` DOUBLE",
    )
    row = normalise_trips(raw, "yellow").first()
    assert (row.pu_location_id, row.do_location_id, row.trip_distance, row.fare_amount) == (132, 138, 17.5, 52.0)
    assert row.trip_duration_s == 1800.0 and row.is_airport is True


def test_normalise_rejects_a_file_without_pickup_time(spark):
    raw = spark.createDataFrame([(1, 2.0)], "VendorID INT, trip_distance DOUBLE")
    with pytest.raises(InputDataError, match=r"s3a://raw/x.parquet: no pickup timestamp column"):
        normalise_trips(raw, "yellow", source="s3a://raw/x.parquet")


def test_bucket_grid_handles_dst_changes(spark):
    march = bucket_grid(spark, ["2024-03"]).collect()
    november = {r.bucket_start: r.exposure for r in bucket_grid(spark, ["2024-11"]).collect()}
    # 31 days x 48 buckets, minus the two that never happen on 2024-03-10 (02:00-03:00 skipped).
    assert len(march) == 31 * 48 - 2
    assert ts("2024-03-10 02:00:00") not in {r.bucket_start for r in march}
    # 2024-11-03 01:00-02:00 happens twice.
    assert november[ts("2024-11-03 01:00:00")] == 2 and november[ts("2024-11-03 01:30:00")] == 2
    assert november[ts("2024-11-03 02:00:00")] == 1
    assert len(november) == 30 * 48


def _trips(spark, rows):
    return spark.createDataFrame(
        rows,
        "trip_type STRING, pickup_at TIMESTAMP_NTZ, dropoff_at TIMESTAMP_NTZ, pu_location_id INT, "
        "do_location_id INT, trip_distance DOUBLE, trip_duration_s DOUBLE, fare_amount DOUBLE, driver_pay DOUBLE, "
        "total_amount DOUBLE, is_airport BOOLEAN, is_shared BOOLEAN",
    )


def _trip(pickup: str, zone: int = 48, distance: float = 2.0, fare: float = 10.0, airport: bool = False):
    return ("fhvhv", ts(pickup), None, zone, 50, distance, 600.0, fare, fare * 0.7, None, airport, False)


def test_aggregate_windows_zero_fills_missing_buckets_and_drops_out_of_month_trips(spark):
    trips = _trips(
        spark,
        [
            _trip("2024-02-01 00:05:00", fare=10.0),
            _trip("2024-02-01 00:25:00", fare=20.0, airport=True),
            _trip("2024-02-01 00:31:00", distance=-3.0, fare=-5.0),  # dirt: excluded from means, counted as a trip
            _trip("2024-01-31 23:59:00"),  # outside the month: not counted
            _trip("2024-03-01 00:00:00"),  # outside the month: not counted
        ],
    )
    windows = aggregate_windows(trips, ["2024-02"], "city")
    assert windows.count() == 29 * 48  # leap year, every bucket present
    got = windows.where(F.col("bucket_start") < F.lit(ts("2024-02-01 01:30:00"))).select(
        "key", "bucket_start", "trips", "fare_mean", "distance_mean", "airport_share"
    )
    expected = spark.createDataFrame(
        [
            ("NYC", ts("2024-02-01 00:00:00"), 2, 15.0, 2.0, 0.5),
            ("NYC", ts("2024-02-01 00:30:00"), 1, None, None, 0.0),
            ("NYC", ts("2024-02-01 01:00:00"), 0, None, None, None),
        ],
        "key STRING, bucket_start TIMESTAMP_NTZ, trips LONG, fare_mean DOUBLE, distance_mean DOUBLE, "
        "airport_share DOUBLE",
    )
    assertDataFrameEqual(got, expected)
    assert windows.agg(F.sum("trips")).first()[0] == 3


def test_aggregate_windows_by_zone_and_borough(spark):
    zones = spark.createDataFrame(
        [("48", "Manhattan", "Clinton East"), ("132", "Queens", "JFK Airport")],
        "LocationID STRING, Borough STRING, Zone STRING",
    )
    trips = _trips(
        spark,
        [
            _trip("2024-02-01 08:00:00", zone=48),
            _trip("2024-02-01 08:10:00", zone=132),
            _trip("2024-02-01 08:20:00", zone=132),
        ],
    )
    by_zone = aggregate_windows(trips, ["2024-02"], "zone", zones)
    by_borough = aggregate_windows(trips, ["2024-02"], "borough", zones)
    at_eight = F.col("bucket_start") == F.lit(ts("2024-02-01 08:00:00"))
    assert {r.key: r.trips for r in by_zone.where(at_eight).collect()} == {"48": 1, "132": 2}
    assert {r.key: r.trips for r in by_borough.where(at_eight).collect()} == {"Manhattan": 1, "Queens": 2}
    assert by_borough.count() == 2 * 29 * 48


def test_aggregate_windows_of_empty_input_is_an_all_zero_grid(spark):
    windows = aggregate_windows(_trips(spark, []), ["2024-02"], "city")
    assert windows.count() == 29 * 48
    assert windows.agg(F.max("trips")).first()[0] == 0


def test_time_features_and_holidays(spark):
    windows = spark.createDataFrame(
        [(ts("2024-07-04 13:30:00"),), (ts("2024-07-08 00:00:00"),)], "bucket_start TIMESTAMP_NTZ"
    )
    got = add_time_features(windows).select("bucket_start", "hour", "slot", "weekday", "is_holiday")
    expected = spark.createDataFrame(
        [(ts("2024-07-04 13:30:00"), 13, 27, 3, True), (ts("2024-07-08 00:00:00"), 0, 0, 0, False)],
        "bucket_start TIMESTAMP_NTZ, hour INT, slot INT, weekday INT, is_holiday BOOLEAN",
    )
    assertDataFrameEqual(got, expected)
    holidays = {d.isoformat() for d in _us_federal_holidays({2024})}
    assert {"2024-01-01", "2024-11-28", "2024-12-25", "2024-05-27", "2024-09-02"} <= holidays


def test_lags_join_the_same_slot_a_day_and_a_week_earlier(spark):
    rows = [
        ("city", "NYC", ts("2024-02-01 08:00:00"), 10.0),
        ("city", "NYC", ts("2024-02-07 08:00:00"), 30.0),
        ("city", "NYC", ts("2024-02-08 06:30:00"), 1.0),
        ("city", "NYC", ts("2024-02-08 07:30:00"), 3.0),
        ("city", "NYC", ts("2024-02-08 08:00:00"), 40.0),
        ("city", "EWR", ts("2024-02-07 08:00:00"), 99.0),  # another key: never a lag of NYC's
        ("city", "EWR", ts("2024-02-08 07:30:00"), 5.0),
        # Across the spring-forward night: a day earlier is the same wall-clock slot (DST does not shift it).
        ("city", "NYC", ts("2024-03-09 08:00:00"), 7.0),
        ("city", "NYC", ts("2024-03-10 08:00:00"), 8.0),
    ]
    windows = spark.createDataFrame(rows, "granularity STRING, key STRING, bucket_start TIMESTAMP_NTZ, rate DOUBLE")
    got = {(r.key, r.bucket_start): r for r in add_lags(windows).collect()}
    last = got["NYC", ts("2024-02-08 08:00:00")]
    assert (last.rate_prev_day, last.rate_prev_week) == (30.0, 10.0)
    assert last.rolling_rate_3h == pytest.approx((10.0 + 30.0 + 1.0 + 3.0) / 4)  # the 6 windows before, as present
    assert last.d_prev_day == pytest.approx(math.log1p(40.0) - math.log1p(30.0))
    assert got["NYC", ts("2024-02-01 08:00:00")].rate_prev_day is None
    assert got["NYC", ts("2024-02-01 08:00:00")].rolling_rate_3h is None
    assert got["NYC", ts("2024-02-08 07:30:00")].rate_prev_day is None  # no NYC window at 07:30 the day before
    assert got["EWR", ts("2024-02-08 07:30:00")].rolling_rate_3h == 99.0
    assert got["NYC", ts("2024-03-10 08:00:00")].rate_prev_day == 7.0


def test_seasonal_z_scores_judge_a_slot_against_its_own_history(spark):
    # Four Thursdays 08:00 with ~100 trips, then one with 40: z of the last must be strongly negative.
    history = [
        ("city", "NYC", ts(f"2024-02-{d:02d} 08:00:00"), "2024-02", 1, n, float(n), 10.0, 2.0, 600.0, 7.0, 0.1)
        for d, n in ((1, 100), (8, 104), (15, 96), (22, 100))
    ]
    schema = (
        "granularity STRING, key STRING, bucket_start TIMESTAMP_NTZ, month STRING, exposure INT, trips LONG, "
        "rate DOUBLE, fare_mean DOUBLE, distance_mean DOUBLE, duration_mean DOUBLE, driver_pay_mean DOUBLE, "
        "airport_share DOUBLE"
    )
    profile = seasonal_profile(spark.createDataFrame(history, schema))
    today = spark.createDataFrame(
        [("city", "NYC", ts("2024-02-29 08:00:00"), "2024-02", 1, 40, 40.0, 10.0, 2.0, 600.0, 7.0, 0.1)], schema
    )
    row = build_features(today, profile).first()
    assert row.z_log_rate < -5
    assert abs(row.z_log_fare_per_mile) < 1e-9 and abs(row.z_log_distance) < 1e-9


def test_a_count_of_two_where_none_is_usual_is_counting_noise_not_a_huge_deviation(spark):
    # A quiet key (EWR-like): the slot's history is 0, 1, 0, 0 trips, so its MAD is 0. Two trips today must not
    # read as a 100-sd event: the count scale is at least the Poisson noise of the usual count, 1/sqrt(m + 1).
    schema = (
        "granularity STRING, key STRING, bucket_start TIMESTAMP_NTZ, month STRING, exposure INT, trips LONG, "
        "rate DOUBLE, fare_mean DOUBLE, distance_mean DOUBLE, duration_mean DOUBLE, driver_pay_mean DOUBLE, "
        "airport_share DOUBLE"
    )
    history = [
        ("borough", "EWR", ts(f"2024-02-{d:02d} 08:00:00"), "2024-02", 1, n, float(n), 30.0, 15.0, 1800.0, 20.0, 1.0)
        for d, n in ((1, 0), (8, 1), (15, 0), (22, 0))
    ]
    profile = seasonal_profile(spark.createDataFrame(history, schema))
    today = spark.createDataFrame(
        [("borough", "EWR", ts("2024-02-29 08:00:00"), "2024-02", 1, 2, 2.0, 30.0, 15.0, 1800.0, 20.0, 1.0)], schema
    )
    row = build_features(today, profile).first()
    assert row.z_log_rate == pytest.approx(math.log1p(2))  # median 0 trips: scale 1/sqrt(0 + 1) = 1


def test_means_of_a_handful_of_trips_are_not_judged_but_their_count_is(spark):
    # A slot with ~40 trips and steady means; today 3 trips with a fare per mile 3x usual. Three trips say nothing
    # reliable about fares (z 0), but 3 trips where ~40 are usual is itself a deviation.
    schema = (
        "granularity STRING, key STRING, bucket_start TIMESTAMP_NTZ, month STRING, exposure INT, trips LONG, "
        "rate DOUBLE, fare_mean DOUBLE, distance_mean DOUBLE, duration_mean DOUBLE, driver_pay_mean DOUBLE, "
        "airport_share DOUBLE"
    )
    history = [
        ("zone", "132", ts(f"2024-02-{d:02d} 08:00:00"), "2024-02", 1, n, float(n), fare, 2.0, 600.0, 7.0, 0.5)
        for d, n, fare in ((1, 40, 10.0), (8, 42, 10.5), (15, 38, 9.5), (22, 40, 10.0))
    ]
    profile = seasonal_profile(spark.createDataFrame(history, schema))
    rows = [
        ("zone", "132", ts("2024-02-29 08:00:00"), "2024-02", 1, 3, 3.0, 30.0, 2.0, 600.0, 7.0, 0.5),
        ("zone", "132", ts("2024-03-07 08:00:00"), "2024-03", 1, 10, 10.0, 30.0, 2.0, 600.0, 7.0, 0.5),
    ]
    got = {r.trips: r for r in build_features(spark.createDataFrame(rows, schema), profile).collect()}
    assert got[3].z_log_fare_per_mile == 0.0 and got[3].z_pay_share == 0.0
    assert got[3].z_log_rate < -5 and got[3].z_max_abs == pytest.approx(abs(got[3].z_log_rate))
    assert got[10].z_log_fare_per_mile > 5  # from MIN_TRIPS_FOR_MEANS trips on, means are judged again


def test_a_fare_surge_moves_fare_per_mile_only_and_a_longer_trip_mix_moves_distance_only(spark):
    """Signals are decorrelated: one cause shows in one feature, so noise does not pile up across features."""
    schema = (
        "granularity STRING, key STRING, bucket_start TIMESTAMP_NTZ, month STRING, exposure INT, trips LONG, "
        "rate DOUBLE, fare_mean DOUBLE, distance_mean DOUBLE, duration_mean DOUBLE, driver_pay_mean DOUBLE, "
        "airport_share DOUBLE"
    )
    history = [
        (
            "city",
            "NYC",
            ts(f"2024-02-{d:02d} 08:00:00"),
            "2024-02",
            1,
            100,
            100.0,
            10.0 + j,
            2.0 + j / 10,
            600.0 + 30 * j,
            7.0 + 0.7 * j,
            0.1,
        )
        for j, d in enumerate((1, 8, 15, 22))
    ]
    profile = seasonal_profile(spark.createDataFrame(history, schema))
    surge = ("city", "NYC", ts("2024-02-29 08:00:00"), "2024-02", 1, 100, 100.0, 22.0, 2.1, 630.0, 15.4, 0.1)
    longer = ("city", "NYC", ts("2024-03-07 08:00:00"), "2024-03", 1, 100, 100.0, 21.0, 4.2, 1260.0, 14.7, 0.1)
    rows = {
        r.bucket_start: r for r in build_features(spark.createDataFrame([surge, longer], schema), profile).collect()
    }
    fare_surge, distance_shift = rows[ts("2024-02-29 08:00:00")], rows[ts("2024-03-07 08:00:00")]
    assert fare_surge.z_log_fare_per_mile > 5 and abs(fare_surge.z_log_distance) < 2
    assert distance_shift.z_log_distance > 5 and abs(distance_shift.z_log_fare_per_mile) < 2
    assert abs(distance_shift.z_log_speed) < 2 and abs(fare_surge.z_pay_share) < 2


def test_window_table_scans_each_raw_month_once_without_python(spark, tmp_path):
    """The raw months are the only large input: one native scan each, no Python step before scoring."""
    from anomaly_detection.job import window_table
    from taxi_anomaly.contract import AnomalyJob

    for month in ("2024-01", "2024-02"):
        raw = spark.createDataFrame(
            [
                (
                    "HV0003",
                    ts(f"{month}-03 08:05:00"),
                    ts(f"{month}-03 08:20:00"),
                    132,
                    48,
                    17.5,
                    900,
                    60.0,
                    45.0,
                    2.5,
                    "N",
                )
            ],
            FHVHV_COLUMNS,
        )
        raw.write.parquet(str(tmp_path / f"fhvhv_tripdata_{month}.parquet"))
    args = AnomalyJob.from_argv(
        [
            *("--trip-type", "fhvhv", "--granularity", "zone", "--mode", "train", "--train-months", "2024-01,2024-02"),
            *("--raw-uri", f"file://{tmp_path}", "--input-layout", "flat", "--models-uri", f"file://{tmp_path}/m"),
        ]
    )
    windows = window_table(spark, args, args.train_months)
    plan = windows._jdf.queryExecution().executedPlan().toString()
    assert plan.count("FileScan parquet") == 2
    assert "Python" not in plan and "ExistingRDD" not in plan
    assert sorted(windows.where(F.col("trips") > 0).select("key", "month").collect()) == [
        ("132", "2024-01"),
        ("132", "2024-02"),
    ]
