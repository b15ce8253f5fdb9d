"""The spark-submit entry point turns every failure into a non-zero exit (else a SparkApplication ends COMPLETED)."""

from __future__ import annotations

import os
import subprocess

import pytest

from local_platform.config import REPO_ROOT, load_config
from local_platform.spark import spark_env

pytestmark = pytest.mark.spark
ENTRY = REPO_ROOT / "spark_jobs" / "run_anomaly_detection.py"


def spark_submit(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    cfg = load_config()
    env = {**os.environ, **spark_env(cfg)}
    return subprocess.run(
        [str(cfg.venv_dir / "bin" / "spark-submit"), str(ENTRY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bad_arguments_exit_2_with_the_parameter_named():
    result = spark_submit(
        "--trip-type",
        "fhvhv",
        "--raw-uri",
        "file:///nowhere",
        "--models-uri",
        "file:///nowhere",
        "--mode",
        "score",
        "--score-months",
        "2024-13",
    )
    output = result.stdout + result.stderr  # spark-submit's Python runner merges the child's stderr into stdout
    assert result.returncode == 2
    assert "score_months must be a month as YYYY-MM" in output and "2024-13" in output


def test_a_wrong_detector_parameter_exits_2_before_spark_starts():
    result = spark_submit(
        *("--trip-type", "fhvhv", "--raw-uri", "file:///nowhere", "--models-uri", "file:///nowhere"),
        *("--mode", "train", "--train-months", "2024-01", "--detector", "kmeans"),
        *("--detector-params", '{"k": 1}'),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "k must be between 2 and 200, got 1" in output
    assert "SparkContext" not in output


def test_a_failing_job_exits_non_zero_and_logs_why(tmp_path):
    result = spark_submit(
        "--trip-type",
        "green",
        "--raw-uri",
        f"file://{tmp_path}",
        "--input-layout",
        "flat",
        "--models-uri",
        f"file://{tmp_path}/models",
        "--mode",
        "train",
        "--train-months",
        "2024-01",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "job failed" in output
    assert "green_tripdata_2024-01.parquet: cannot read as parquet" in output
