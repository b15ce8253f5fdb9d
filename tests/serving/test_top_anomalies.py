"""The top-anomalies helper and its command line, reading the real Trino as the analyst."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import pytest

from local_platform.config import REPO_ROOT
from taxi_anomaly.serving.top_anomalies import Anomaly, format_table, top_anomalies
from tests.serving.conftest import query
from tests.serving.pipeline_rows import ANOMALOUS_WINDOWS, MONTH


def test_format_table_lines_up_columns_and_says_when_there_is_nothing():
    rows = [
        Anomaly(datetime(2001, 2, 6, 17), "yellow", "city", "NYC", 0.8123, 1316, "trips far below usual"),
        Anomaly(datetime(2001, 2, 10, 22, 30), "green", "borough", "Queens", 0.75, None, None),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == [
        "#",
        "window",
        "start",
        "trip",
        "type",
        "granularity",
        "key",
        "score",
        "trips",
        "explanation",
    ]
    assert lines[1].split()[:7] == ["1", "2001-02-06", "17:00", "yellow", "city", "NYC", "0.812"]
    assert lines[1].index("0.812") == lines[2].index("0.750")
    assert format_table([]) == "no anomalous windows found"


@pytest.mark.platform
def test_top_anomalies_returns_the_flagged_windows_highest_score_first(trino_analyst, pipeline_run):
    flagged = query(
        trino_analyst, f"SELECT count_if(is_anomaly) FROM iceberg.taxi.anomaly_scores WHERE month = '{MONTH}'"
    )
    assert flagged[0][0] >= ANOMALOUS_WINDOWS  # this session's run, plus any other run of the same test month

    found = top_anomalies(trino_analyst.connect(), limit=1000, month=MONTH)
    assert len(found) == flagged[0][0]
    assert all(a.explanation for a in found)
    scores = [a.anomaly_score for a in found]
    assert scores == sorted(scores, reverse=True)

    city = top_anomalies(trino_analyst.connect(), limit=3, month=MONTH, granularity="city", trip_type="green")
    assert len(city) == 3 and {(a.granularity, a.trip_type, a.key) for a in city} == {("city", "green", "NYC")}


@pytest.mark.platform
def test_the_command_line_prints_them_using_the_airflow_connection(airflow_connections, pipeline_run):
    result = subprocess.run(
        [sys.executable, "-m", "taxi_anomaly.serving.top_anomalies", "-n", "3", "--month", MONTH],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Top 3 anomalous windows in iceberg.taxi") and "as analyst" in lines[0]
    assert lines[1].split()[:2] == ["#", "window"]
    assert len(lines) == 5 and all(line.split()[0] == str(rank) for rank, line in enumerate(lines[2:], start=1))


@pytest.mark.platform
def test_the_command_line_says_when_there_is_no_pipeline_output_yet(airflow_connections, unique_name):
    result = subprocess.run(
        [sys.executable, "-m", "taxi_anomaly.serving.top_anomalies", "--schema", unique_name],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert f"iceberg.{unique_name}.anomaly_scores does not exist yet: run the pipeline first" in result.stderr
