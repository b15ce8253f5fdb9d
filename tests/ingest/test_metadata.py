"""The TLC's official per-file listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxi_anomaly.ingest.metadata import OfficialMetadata
from taxi_anomaly.tlc import YearMonth


def test_lookup_of_known_and_unknown_months(tlc_data: Path):
    listing = OfficialMetadata(tlc_data / "metadata")
    green = listing.lookup("green", YearMonth(2024, 1))
    assert (green.rows, green.size_bytes) == (56_551, 1_362_284)
    assert green.columns[:3] == ("VendorID", "lpep_pickup_datetime", "lpep_dropoff_datetime")
    assert listing.rows("yellow", YearMonth(2010, 2)) == 11_145_409
    assert listing.lookup("green", YearMonth(2024, 12)) is None  # after the listing was taken
    assert listing.lookup("fhvhv", YearMonth(2030, 1)) is None  # no listing for that year


def test_a_missing_folder_is_an_error_naming_it(tmp_path: Path):
    with pytest.raises(ValueError, match="nowhere"):
        OfficialMetadata(tmp_path / "nowhere")
