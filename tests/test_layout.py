"""The storage layout, stated once (taxi_anomaly.layout): what the ingestion writes is what the job reads, what the
job writes is what the orchestration lists."""

from __future__ import annotations

from datetime import UTC, datetime

from taxi_anomaly import layout
from taxi_anomaly.contract import InputLayout
from taxi_anomaly.layout import month_keys, zone_lookup_keys
from taxi_anomaly.orchestration.locations import Locations
from taxi_anomaly.tlc import YearMonth


def test_month_keys():
    keys = month_keys("fhvhv", YearMonth(2024, 3), "run1/")
    base = "run1/tlc/fhvhv/year=2024/month=03/"
    assert keys.data == base + "fhvhv_tripdata_2024-03.parquet"
    assert keys.manifest == base + "_manifest.json"
    assert (keys.validation_json, keys.validation_html) == (base + "_validation.json", base + "_validation.html")
    assert keys.quarantine == "run1/quarantine/" + base.removeprefix("run1/") + "fhvhv_tripdata_2024-03.parquet"
    assert keys.quarantine_report == "run1/quarantine/tlc/fhvhv/year=2024/month=03/_quarantine.json"


def test_sidecars_are_hidden_from_dataset_readers():
    keys = month_keys("green", YearMonth(2024, 1))
    sidecars = [k for k in keys.landed if k != keys.data]
    assert all(k.rsplit("/", 1)[-1].startswith("_") for k in sidecars)


def test_the_key_the_ingestion_writes_is_the_path_the_job_reads():
    for prefix in ("", "t_demo/"):
        where = Locations(raw_bucket="raw-b", prefix=prefix)
        for trip_type, month in (("green", "2024-01"), ("fhvhv", "2025-12"), ("yellow", "2009-01")):
            written = month_keys(trip_type, YearMonth.parse(month), prefix).data
            read = layout.raw_path(where.raw_uri, trip_type, month)
            assert read == f"s3a://raw-b/{written}"
            assert layout.landed_months(
                [month_keys(trip_type, YearMonth.parse(month), prefix).manifest], trip_type
            ) == [month]
        assert where.zones_uri == f"s3a://raw-b/{zone_lookup_keys(prefix).data}"
        assert layout.labels_path(where.labels_uri, "fhvhv", "2024-04") == (
            f"s3a://raw-b/{prefix}{layout.labels_key('fhvhv', YearMonth(2024, 4))}"
        )
    assert layout.raw_path("file:///data", "green", "2024-01", InputLayout.FLAT) == (
        "file:///data/green_tripdata_2024-01.parquet"
    )


def test_registry_versions_are_complete_only_with_their_metadata():
    first = layout.new_version_name(datetime(2026, 1, 5, 6, 0, tzinfo=UTC))
    second = layout.new_version_name(datetime(2026, 1, 5, 6, 0, tzinfo=UTC))
    assert first.startswith("v20260105T060000-") and first != second
    listing = [
        f"{first}/model.pkl",
        f"{first}/metadata.json",
        f"{second}/model.pkl",  # being written: no metadata yet
        "promoted.json",
        "v-odd/metadata.json",
    ]
    assert layout.complete_versions(listing) == [first]
    where = Locations(models_bucket="m", prefix="p/")
    assert where.models_uri == "s3a://m/p/registry"
    assert (
        where.models_key("fhvhv", "city", first, layout.METADATA_FILE) == f"p/registry/fhvhv/city/{first}/metadata.json"
    )


def test_zone_lookup_keys():
    assert zone_lookup_keys().data == "tlc/misc/taxi_zone_lookup.csv"
