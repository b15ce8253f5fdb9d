"""Integrity checks on real files: the good month, every real broken download, a corrupt footer, the listing."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from taxi_anomaly.ingest.integrity import (
    EMPTY_FILE,
    INCOMPLETE_ZONE_LOOKUP,
    NOT_PARQUET,
    ROW_COUNT_MISMATCH,
    SIZE_MISMATCH,
    TRUNCATED_PARQUET,
    UNEXPECTED_CONTENT,
    UNREADABLE_FOOTER,
    IntegrityError,
    check_official,
    check_parquet,
    check_zone_lookup,
)
from taxi_anomaly.ingest.metadata import OfficialMetadata
from taxi_anomaly.tlc import YearMonth

# Each real broken file, the reason it must be rejected with, and words its message must contain.
BAD_FILES = [
    ("yellow_tripdata_2024-01.truncated.parquet", TRUNCATED_PARQUET, ["truncated parquet", "missing footer magic"]),
    ("html_error_page_saved_as.csv.gz", NOT_PARQUET, ["not a parquet file", "an HTML page titled 'Release Yellow"]),
    ("json_error_body_saved_as.csv", NOT_PARQUET, ["a JSON document", "Cannot find view with id 2kpn-5x46"]),
    ("git_lfs_pointer_saved_as.csv", NOT_PARQUET, ["git-lfs pointer", "oid sha256:85325e7a", "201326592 bytes"]),
]


@pytest.mark.parametrize(("name", "reason", "words"), BAD_FILES)
def test_every_real_broken_download_is_rejected_specifically(tlc_data: Path, name: str, reason: str, words: list[str]):
    with pytest.raises(IntegrityError) as caught:
        check_parquet(tlc_data / "bad" / name, "green_tripdata_2024-02.parquet")
    assert caught.value.reason == reason
    message = str(caught.value)
    assert message.startswith("green_tripdata_2024-02.parquet ")
    for word in words:
        assert word in message


def test_the_real_month_passes_with_its_footer_facts(tlc_data: Path):
    facts = check_parquet(tlc_data / "green_tripdata_2024-01.parquet")
    assert facts.rows == 56_551
    assert facts.row_groups == 1
    assert facts.columns[1] == ("lpep_pickup_datetime", "timestamp[us]")
    assert len(facts.schema_fingerprint) == 16


def test_magic_at_both_ends_but_a_corrupt_footer(tlc_data: Path, tmp_path: Path):
    broken = tmp_path / "broken.parquet"
    shutil.copyfile(tlc_data / "green_tripdata_2024-01.parquet", broken)
    with broken.open("r+b") as handle:  # claim a footer longer than the file
        handle.seek(-8, 2)
        handle.write(struct.pack("<i", 10**9))
    with pytest.raises(IntegrityError) as caught:
        check_parquet(broken)
    assert caught.value.reason == UNREADABLE_FOOTER
    assert "footer cannot be read" in str(caught.value)


def test_an_empty_body(tmp_path: Path):
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(IntegrityError) as caught:
        check_parquet(empty)
    assert caught.value.reason == EMPTY_FILE


def test_official_size_and_rows(tlc_data: Path):
    listing = OfficialMetadata(tlc_data / "metadata")
    january = listing.lookup("green", YearMonth(2024, 1))
    check_official("green_tripdata_2024-01.parquet", 1_362_284, 56_551, january)
    february = listing.lookup("green", YearMonth(2024, 2))
    with pytest.raises(IntegrityError) as caught:
        check_official("green_tripdata_2024-02.parquet", 1_362_284, 56_551, february)
    assert caught.value.reason == SIZE_MISMATCH
    assert "1362284 bytes but the TLC listing green_tripmetadata_2024.csv" in str(caught.value)
    with pytest.raises(IntegrityError) as caught:
        check_official("green_tripdata_2024-02.parquet", february.size_bytes, 1, february)
    assert caught.value.reason == ROW_COUNT_MISMATCH


def test_zone_lookup(tlc_data: Path):
    assert check_zone_lookup(tlc_data / "taxi_zone_lookup.csv") == 265
    with pytest.raises(IntegrityError) as caught:
        check_zone_lookup(tlc_data / "bad" / "json_error_body_saved_as.csv", "taxi_zone_lookup.csv")
    assert caught.value.reason == UNEXPECTED_CONTENT
    assert "a JSON document" in str(caught.value)


def test_a_truncated_zone_lookup_is_refused_naming_what_is_cut(tlc_data: Path, tmp_path: Path):
    text = (tlc_data / "taxi_zone_lookup.csv").read_text()
    cut = tmp_path / "taxi_zone_lookup.csv"
    cut.write_text(text[: text.index("\n25,") + 16])  # 24 zones and the first 12 characters of the 25th
    with pytest.raises(IntegrityError) as caught:
        check_zone_lookup(cut)
    assert caught.value.reason == INCOMPLETE_ZONE_LOOKUP
    message = str(caught.value)
    assert "taxi_zone_lookup.csv is not a complete TLC zone lookup (25 rows)" in message
    assert "line 26 has 3 fields" in message and "zone ids missing of 1-265: [26, 27" in message


def test_a_zone_lookup_with_a_repeated_id_or_an_unknown_borough_is_refused(tlc_data: Path, tmp_path: Path):
    lines = (tlc_data / "taxi_zone_lookup.csv").read_text().splitlines()
    edited = tmp_path / "taxi_zone_lookup.csv"
    edited.write_text("\n".join([*lines[:3], lines[2].replace('"Queens"', '"Queenz"'), *lines[4:]]) + "\n")
    with pytest.raises(IntegrityError, match=r"zone ids repeated: \[2\].*zone ids missing of 1-265: \[3\]"):
        check_zone_lookup(edited)
    with pytest.raises(IntegrityError, match=r"unknown boroughs: \['Queenz'\]"):
        check_zone_lookup(edited)


def test_a_parquet_zone_lookup_is_named_as_parquet(tlc_data: Path, tmp_path: Path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    as_parquet = tmp_path / "taxi_zone_lookup.csv"
    pq.write_table(pacsv.read_csv(tlc_data / "taxi_zone_lookup.csv"), as_parquet)
    with pytest.raises(IntegrityError, match="it is a parquet file") as caught:
        check_zone_lookup(as_parquet)
    assert caught.value.reason == UNEXPECTED_CONTENT
