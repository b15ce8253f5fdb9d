"""End to end against the real MinIO and the local mirror: land, skip, refuse, quarantine, survive faults."""

from __future__ import annotations

import gzip
import hashlib
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from taxi_anomaly.ingest.data_docs import render_months
from taxi_anomaly.ingest.download import DownloadError
from taxi_anomaly.ingest.mirror import Fault, Mirror
from taxi_anomaly.ingest.pipeline import IngestFailed, Status, ingest_month, ingest_zone_lookup
from taxi_anomaly.ingest.schema import canonical_schema
from taxi_anomaly.ingest.settings import IngestSettings
from taxi_anomaly.ingest.storage import RawStore
from taxi_anomaly.layout import month_keys, zone_lookup_keys
from taxi_anomaly.tlc import YearMonth, source_url
from tests.ingest.conftest import RAW_STORES

pytestmark = pytest.mark.platform

JANUARY = YearMonth(2024, 1)
GREEN_PATH = "/trip-data/green_tripdata_2024-01.parquet"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys_under(store: RawStore, settings: IngestSettings) -> list[str]:
    return sorted(store.list_keys(settings.raw_bucket, settings.key_prefix))


def gets(mirror: Mirror, path: str) -> int:
    return sum(1 for r in mirror.requests(path) if r.method == "GET")


@pytest.mark.parametrize("raw_store", RAW_STORES, indirect=True)
def test_real_month_lands_checked_and_validated(settings: IngestSettings, store: RawStore, tlc_data: Path):
    outcome = ingest_month("green", "2024-01", settings)

    assert outcome.status is Status.LANDED, outcome.message
    keys = month_keys("green", JANUARY, settings.key_prefix)
    assert (
        outcome.key == keys.data == f"{settings.key_prefix}tlc/green/year=2024/month=01/green_tripdata_2024-01.parquet"
    )
    original = (tlc_data / "green_tripdata_2024-01.parquet").read_bytes()
    assert sha256(store.get_bytes(settings.raw_bucket, keys.data)) == sha256(original)

    manifest = store.get_json(settings.raw_bucket, keys.manifest)
    assert manifest["source_url"] == source_url(settings.base_url, "green", JANUARY)
    assert (manifest["bytes"], manifest["rows"]) == (len(original), 56_551)
    assert manifest["sha256"] == sha256(original)
    assert manifest["official"]["rows"] == 56_551 and manifest["official"]["bytes"] == len(original)
    assert len(manifest["schema_fingerprint"]) == 16 and manifest["ingested_at"]
    assert manifest["validation"]["passed"] is True
    assert manifest["normalisation"]["missing"][0] == "cbd_congestion_fee"

    result = store.get_json(settings.raw_bucket, keys.validation_json)
    assert result["success"] is True and result["suite_name"] == "tlc_green"
    assert keys_under(store, settings) == sorted(set(keys.landed) - {keys.validation_html})
    # The Data Docs page comes from the render_data_docs task (one GX import per run), from the JSON above.
    assert render_months(store, settings, [("green", JANUARY)]) == [keys.validation_html]
    assert b"tlc_green" in store.get_bytes(settings.raw_bucket, keys.validation_html)
    assert keys_under(store, settings) == sorted(keys.landed)


@pytest.mark.parametrize("raw_store", RAW_STORES, indirect=True)
def test_rerun_skips_unchanged_and_force_lands_again(settings: IngestSettings, mirror: Mirror, store: RawStore):
    first = ingest_month("green", JANUARY, settings)
    assert first.status is Status.LANDED

    again = ingest_month("green", JANUARY, settings)
    assert again.status is Status.SKIPPED_UNCHANGED, again.message
    assert gets(mirror, GREEN_PATH) == 1  # a HEAD, no second download
    assert [r.method for r in mirror.requests(GREEN_PATH)] == ["GET", "HEAD"]

    forced = ingest_month("green", JANUARY, settings, force=True)
    assert forced.status is Status.LANDED
    assert gets(mirror, GREEN_PATH) == 2
    assert forced.manifest["sha256"] == first.manifest["sha256"]
    assert forced.manifest["ingested_at"] >= first.manifest["ingested_at"]


def test_a_changed_source_is_ingested_again(settings: IngestSettings, shifted_month):
    month = YearMonth(2031, 1)
    shifted_month(month)
    first = ingest_month("green", month, settings)
    assert first.status is Status.LANDED, first.message

    shifted_month(month, drop_rows=100)
    second = ingest_month("green", month, settings)
    assert second.status is Status.LANDED, second.message
    assert second.manifest["rows"] == first.manifest["rows"] - 100
    assert second.manifest["sha256"] != first.manifest["sha256"]


def test_a_new_column_lands_kept_and_reported(settings: IngestSettings, shifted_month, store: RawStore):
    month = YearMonth(2031, 3)
    shifted_month(month, extra_column="surprise_fee")
    outcome = ingest_month("green", month, settings)
    assert outcome.status is Status.LANDED, outcome.message
    assert any("surprise_fee" in w and "outside the canonical schema" in w for w in outcome.warnings)
    manifest = store.get_json(settings.raw_bucket, month_keys("green", month, settings.key_prefix).manifest)
    assert manifest["normalisation"]["extra"] == ["surprise_fee"]
    assert ["surprise_fee", "double"] in manifest["columns"]


def test_the_first_months_of_2009_land_in_their_coordinate_era(settings, generated_dir: Path, tlc_data: Path):
    # The real 2020-04 yellow sample under its 2009 column names and moved to 2009-01; no listing for it.
    sample = pacsv.read_csv(tlc_data / "samples" / "yellow_tripdata_2020-04_sample1000.csv")
    shift = pa.scalar(datetime(2009, 1, 1) - datetime(2020, 4, 1), pa.duration("us"))
    names_2009 = {
        "tpep_pickup_datetime": "Trip_Pickup_DateTime",
        "tpep_dropoff_datetime": "Trip_Dropoff_DateTime",
        "trip_distance": "Trip_Distance",
        "fare_amount": "Fare_Amt",
        "total_amount": "Total_Amt",
        "payment_type": "Payment_Type",
    }
    columns = {new: sample[old] for old, new in names_2009.items()}
    for name in ("Trip_Pickup_DateTime", "Trip_Dropoff_DateTime"):
        columns[name] = pc.strftime(pc.add(columns[name].cast(pa.timestamp("us")), shift), "%Y-%m-%d %H:%M:%S")
    columns["Start_Lon"] = pa.array([-73.98] * sample.num_rows)
    pq.write_table(pa.table(columns), generated_dir / "yellow_tripdata_2009-01.parquet")

    outcome = ingest_month("yellow", "2009-01", settings.with_(metadata_dir=None))
    assert outcome.status is Status.LANDED, outcome.message
    normalisation = outcome.manifest["normalisation"]
    assert normalisation["renamed"]["Trip_Pickup_DateTime"] == "tpep_pickup_datetime"
    assert any(w.startswith("coordinate era") for w in outcome.warnings)


def test_a_csv_gz_month_lands_as_canonical_parquet_and_reruns_skip(settings, shifted_month, store, mirror):
    month = YearMonth(2031, 9)
    path = shifted_month(month)  # a real green month, moved to a month no listing knows
    table = pq.read_table(path)
    with gzip.open(path.with_suffix(".tmp"), "wb") as packed:
        pacsv.write_csv(table.append_column("Unnamed: 0", pa.array(range(table.num_rows))), packed)
    path.with_suffix(".tmp").replace(path)  # served under the .parquet name: content decides, not the name

    outcome = ingest_month("green", month, settings)
    assert outcome.status is Status.LANDED, outcome.message
    manifest = outcome.manifest
    assert manifest["source_format"] == "csv.gz" and manifest["rows"] == table.num_rows
    assert list(manifest["normalisation"]["dropped"]) == ["Unnamed: 0"]  # the conversion's report, kept
    assert any("'Unnamed: 0' dropped" in warning for warning in outcome.warnings)
    assert ["lpep_pickup_datetime", "text"] in manifest["columns"]
    assert manifest["sha256"] == sha256(path.read_bytes())  # of the download
    landed = store.get_bytes(settings.raw_bucket, outcome.key)
    assert landed[:4] == b"PAR1" and sha256(landed) == manifest["landed_sha256"]
    assert pq.read_table(pa.BufferReader(landed)).schema.equals(canonical_schema("green"))
    assert ingest_month("green", month, settings).status is Status.SKIPPED_UNCHANGED


def test_an_archive_of_csv_releases_is_asked_for_by_its_own_names(settings, shifted_month, mirror, store):
    month = YearMonth(2031, 11)
    path = shifted_month(month)
    table = pq.read_table(path)
    archived = path.with_name(f"green_tripdata_{month}.csv.gz")
    with gzip.open(archived, "wb") as packed:
        pacsv.write_csv(table, packed)
    path.unlink()  # only the .csv.gz is served, as on an archive of the CSV releases
    archive = settings.with_(source_suffixes=(".parquet", ".csv.gz", ".csv"))

    outcome = ingest_month("green", month, archive)
    assert outcome.status is Status.LANDED, outcome.message
    assert outcome.manifest["source_url"].endswith("/trip-data/green_tripdata_2031-11.csv.gz")
    assert outcome.manifest["source_format"] == "csv.gz" and outcome.key.endswith("green_tripdata_2031-11.parquet")
    assert ingest_month("green", month, archive).status is Status.SKIPPED_UNCHANGED
    missing = ingest_month("green", YearMonth(2031, 12), archive)
    assert missing.status is Status.NOT_PUBLISHED
    assert ".parquet" in missing.message and ".csv.gz" in missing.message and ".csv" in missing.message


def test_text_in_a_column_no_expectation_reads_quarantines_before_landing(settings, shifted_month, store):
    month = YearMonth(2031, 5)
    path = shifted_month(month)
    table = pq.read_table(path)
    index = table.schema.get_field_index("congestion_surcharge")
    text = pa.array(["0"] * (table.num_rows - 1) + ["n/a"])
    pq.write_table(table.set_column(index, "congestion_surcharge", text), path)
    outcome = ingest_month("green", month, settings)
    assert outcome.status is Status.QUARANTINED and outcome.reason == "schema_mismatch"
    assert "green_tripdata_2031-05.parquet" in outcome.message and "'congestion_surcharge'" in outcome.message
    assert not store.exists(settings.raw_bucket, month_keys("green", month, settings.key_prefix).data)


def test_a_check_that_raises_ends_as_an_outcome_naming_the_file(settings, shifted_month, monkeypatch):
    # Fault injection: a check raising something unforeseen (a library bug, a file nobody imagined).
    month = YearMonth(2031, 7)
    shifted_month(month)

    def broken_check(*args, **kwargs):
        raise IndexError("list index out of range")

    monkeypatch.setattr("taxi_anomaly.ingest.pipeline.validate_file", broken_check)
    outcome = ingest_month("green", month, settings)
    assert outcome.status is Status.QUARANTINED and outcome.reason == "check_crashed"
    assert outcome.message.startswith("green_tripdata_2031-07.parquet: the checks could not finish: IndexError")


# Each real broken download, served under a month's name, with the reason it must be quarantined for.
BAD_FILES = [
    ("yellow", "2024-01", "yellow_tripdata_2024-01.truncated.parquet", "truncated_parquet", "missing footer magic"),
    ("green", "2024-02", "html_error_page_saved_as.csv.gz", "not_parquet", "an HTML page titled"),
    ("fhv", "2024-03", "json_error_body_saved_as.csv", "not_parquet", "a JSON document"),
    ("fhvhv", "2024-04", "git_lfs_pointer_saved_as.csv", "not_parquet", "a git-lfs pointer file"),
]


@pytest.mark.parametrize(("trip_type", "month", "bad", "reason", "words"), BAD_FILES)
def test_every_real_broken_download_is_quarantined_with_its_reason(
    settings, mirror, store, tlc_data, trip_type, month, bad, reason, words
):
    month = YearMonth.parse(month)
    keys = month_keys(trip_type, month, settings.key_prefix)
    mirror.alias(source_url("", trip_type, month), tlc_data / "bad" / bad)

    outcome = ingest_month(trip_type, month, settings)

    assert outcome.status is Status.QUARANTINED
    assert outcome.reason == reason
    assert words in outcome.message and keys.data.rsplit("/", 1)[-1] in outcome.message
    assert outcome.key == keys.quarantine
    assert store.get_bytes(settings.raw_bucket, keys.quarantine) == (tlc_data / "bad" / bad).read_bytes()
    report = store.get_json(settings.raw_bucket, keys.quarantine_report)
    assert report["reason"] == reason and words in report["message"]
    assert report["intended_key"] == keys.data and report == outcome.report
    assert not store.exists(settings.raw_bucket, keys.data)
    assert keys_under(store, settings) == sorted([keys.quarantine, keys.quarantine_report])
    with pytest.raises(IngestFailed, match=reason.split("_")[0]):
        outcome.raise_if_failed()


@pytest.mark.parametrize("raw_store", RAW_STORES, indirect=True)
def test_hard_validation_failure_quarantines_with_the_gx_report(settings, mirror, store, tlc_data):
    month = YearMonth(2030, 1)  # the real January 2024 served as January 2030: every pickup is in the wrong month
    mirror.alias(source_url("", "green", month), tlc_data / "green_tripdata_2024-01.parquet")
    keys = month_keys("green", month, settings.key_prefix)

    outcome = ingest_month("green", month, settings)

    assert outcome.status is Status.QUARANTINED and outcome.reason == "validation_failed"
    with pytest.raises(IngestFailed) as failed:
        outcome.raise_if_failed()
    assert "green_tripdata_2030-01.parquet failed 1 hard expectation(s) of suite tlc_green" in str(failed.value)
    assert "expect_column_values_to_be_between(lpep_pickup_datetime)" in str(failed.value)
    report = store.get_json(settings.raw_bucket, keys.quarantine_report)
    assert [f["column"] for f in report["failed_expectations"]] == ["lpep_pickup_datetime"]
    assert store.get_json(settings.raw_bucket, keys.quarantine_validation_json)["success"] is False
    assert not store.exists(settings.raw_bucket, keys.quarantine_validation_html)
    assert render_months(store, settings, [("green", month)]) == [keys.quarantine_validation_html]
    page = store.get_bytes(settings.raw_bucket, keys.quarantine_validation_html)
    assert b"tlc_green" in page and b"lpep_pickup_datetime" in page
    assert not store.exists(settings.raw_bucket, keys.data)


def test_size_different_from_the_official_listing_is_quarantined(settings, mirror, store, tlc_data):
    month = YearMonth(2024, 2)
    mirror.alias(source_url("", "green", month), tlc_data / "green_tripdata_2024-01.parquet")
    outcome = ingest_month("green", month, settings)
    assert outcome.status is Status.QUARANTINED and outcome.reason == "size_mismatch"
    assert "1362284 bytes but the TLC listing green_tripmetadata_2024.csv" in outcome.message
    assert "says 1283805" in outcome.message
    assert not store.exists(settings.raw_bucket, month_keys("green", month, settings.key_prefix).data)


def test_a_500_then_ok_lands_after_a_retry(settings: IngestSettings, mirror: Mirror):
    mirror.add_fault(GREEN_PATH, Fault("status", status=500))
    outcome = ingest_month("green", JANUARY, settings)
    assert outcome.status is Status.LANDED
    assert outcome.manifest["attempts"] == 2
    assert [r.status for r in mirror.requests(GREEN_PATH)] == [500, 200]


@pytest.mark.parametrize(
    "fault",
    [Fault("drop", times=None), Fault("wrong_length", times=None), Fault("status", status=503, times=None)],
    ids=["drop", "wrong_length", "503"],
)
def test_a_persistent_fault_fails_clearly_and_leaves_nothing(settings, mirror, store, fault: Fault):
    mirror.add_fault(GREEN_PATH, fault)
    with pytest.raises(DownloadError, match=f"downloading .*{GREEN_PATH} failed after 5 attempt"):
        ingest_month("green", JANUARY, settings)
    assert gets(mirror, GREEN_PATH) == settings.max_attempts
    assert keys_under(store, settings) == []
    assert list(Path(settings.work_dir).iterdir()) == []  # the staged download is gone too


def test_an_under_declared_length_yields_a_truncated_file_that_never_lands(settings, mirror, store):
    mirror.add_fault(GREEN_PATH, Fault("wrong_length", length_delta=-50_000, times=None))
    outcome = ingest_month("green", JANUARY, settings)
    assert outcome.status is Status.QUARANTINED and outcome.reason == "truncated_parquet"
    assert not store.exists(settings.raw_bucket, month_keys("green", JANUARY, settings.key_prefix).data)


def test_not_published_writes_nothing(settings: IngestSettings, mirror: Mirror, store: RawStore):
    outcome = ingest_month("fhvhv", "2031-06", settings)
    assert outcome.status is Status.NOT_PUBLISHED
    assert "fhvhv_tripdata_2031-06.parquet" in outcome.message and "HTTP 404" in outcome.message
    assert keys_under(store, settings) == []
    mirror.add_fault(GREEN_PATH, Fault("status", status=403, times=None))
    assert ingest_month("green", JANUARY, settings).status is Status.NOT_PUBLISHED
    assert gets(mirror, GREEN_PATH) == 1  # 403 is not retried


@pytest.mark.parametrize("raw_store", RAW_STORES, indirect=True)
def test_a_bad_forced_download_never_replaces_the_landed_file(settings, mirror, store, tlc_data):
    landed = ingest_month("green", JANUARY, settings)
    assert landed.status is Status.LANDED
    mirror.alias(GREEN_PATH, tlc_data / "bad" / "json_error_body_saved_as.csv")

    outcome = ingest_month("green", JANUARY, settings, force=True)

    assert outcome.status is Status.QUARANTINED and outcome.reason == "not_parquet"
    keys = month_keys("green", JANUARY, settings.key_prefix)
    data = store.get_bytes(settings.raw_bucket, keys.data)
    assert sha256(data) == landed.manifest["sha256"]
    assert store.get_json(settings.raw_bucket, keys.manifest)["sha256"] == landed.manifest["sha256"]


def test_zone_lookup_lands_with_a_manifest(settings: IngestSettings, store: RawStore, tlc_data: Path):
    outcome = ingest_zone_lookup(settings)
    assert outcome.status is Status.LANDED, outcome.message
    keys = zone_lookup_keys(settings.key_prefix)
    assert store.get_bytes(settings.raw_bucket, keys.data) == (tlc_data / "taxi_zone_lookup.csv").read_bytes()
    assert store.get_json(settings.raw_bucket, keys.manifest)["rows"] == 265
    assert ingest_zone_lookup(settings).status is Status.SKIPPED_UNCHANGED
