"""The documented key layout of the raw zone."""

from __future__ import annotations

from taxi_anomaly.ingest.layout import month_keys, zone_lookup_keys
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


def test_zone_lookup_keys():
    assert zone_lookup_keys().data == "tlc/misc/taxi_zone_lookup.csv"
