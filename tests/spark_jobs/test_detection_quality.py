"""Detection quality on generated months with labelled episodes: the default detector against the labels and the
seasonal baseline (bench/detection_quality.py's harness, at a scale that keeps the test within a few minutes).

Three history months with incidents and a target month with seven city-wide episodes (one of each type, a night
spike and a night drop), 600 k trips a month, city level, 3 months of history. The floors are below what was
measured at this scale (bench/README.md, "Detection quality"); the targets at fhvhv scale are measured there.
"""

from __future__ import annotations

import pytest

from bench.detection_quality import SETTINGS, run_seed
from taxi_anomaly.contract import DEFAULT_DETECTOR

pytestmark = pytest.mark.spark


def test_the_default_detector_finds_every_episode_precisely_and_beats_the_seasonal_baseline(spark, tmp_path):
    city = tuple(s for s in SETTINGS if s.name == "city, 3 months")
    run = run_seed(spark, trips=600_000, seed=1, families=[DEFAULT_DETECTOR], settings=city, work_dir=tmp_path)
    result = run["settings"]["city, 3 months"]
    detector, baseline = result[DEFAULT_DETECTOR], result["baseline"]
    assert detector["episodes"] == 7
    assert detector["episodes_found"] == detector["episodes"], detector
    assert detector["bucket_precision"] >= 0.7, detector
    assert set(detector["recall_by_type"]) == {"drop", "spike", "fare_surge", "distance_shift", "outage"}
    assert detector["bucket_f1"] > baseline["bucket_f1"], (detector, baseline)
