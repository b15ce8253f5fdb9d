"""The whole job against the real platform: raw files in MinIO -> Iceberg tables in the Hive Metastore."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from anomaly_detection import tables
from anomaly_detection.job import main
from anomaly_detection.registry import ModelRegistry
from taxi_anomaly.contract import AnomalyJob

pytestmark = [pytest.mark.platform, pytest.mark.spark]

HISTORY = ["2024-01", "2024-02", "2024-03"]
TARGET = "2024-04"


@pytest.fixture(scope="module")
def raw_zone(platform, tmp_path_factory):
    """Four small generated fhvhv months uploaded to MinIO in the raw zone's layout, under a unique prefix."""
    import uuid

    from minio import Minio

    from taxi_anomaly.synthetic import generate_month

    prefix = f"it-{uuid.uuid4().hex[:8]}"
    out = tmp_path_factory.mktemp("raw")
    client = Minio(
        f"127.0.0.1:{platform.cfg.minio_port}",
        access_key=platform.creds.minio_root_user,
        secret_key=platform.creds.minio_root_password,
        secure=False,
    )
    keys = []
    for i, month in enumerate([*HISTORY, TARGET]):
        result = generate_month("fhvhv", month, out, trips=150_000, seed=10 + i)
        year, mm = month.split("-")
        key = f"{prefix}/tlc/fhvhv/year={year}/month={mm}/{Path(result.data_path).name}"
        client.fput_object(platform.cfg.raw_bucket, key, str(result.data_path))
        keys.append(key)
    yield prefix
    for key in keys:
        client.remove_object(platform.cfg.raw_bucket, key)


def job_args(platform, prefix: str, namespace: str, *extra: str):
    return AnomalyJob.from_argv(
        [
            "--trip-type",
            "fhvhv",
            "--granularity",
            "city",
            "--raw-uri",
            f"s3a://{platform.cfg.raw_bucket}/{prefix}/tlc",
            "--models-uri",
            f"s3a://{platform.cfg.models_bucket}/{prefix}",
            "--namespace",
            namespace,
            *extra,
        ]
    )


def test_train_score_rerun_and_failed_write(platform, spark, raw_zone, unique_name):
    namespace = unique_name
    scores = tables.table_name(namespace, tables.SCORES_TABLE)
    windows = tables.table_name(namespace, tables.WINDOWS_TABLE)
    try:
        first = main(
            spark,
            job_args(
                platform,
                raw_zone,
                namespace,
                "--mode",
                "train-and-score",
                "--train-months",
                ",".join(HISTORY),
                "--score-months",
                TARGET,
                "--run-id",
                "run-1",
            ),
        )
        expected_windows = 30 * 48  # April 2024 in 30-minute buckets, city-wide
        assert first.windows_scored == expected_windows
        assert spark.table(scores).count() == expected_windows
        assert spark.table(windows).count() == expected_windows
        row = spark.table(scores).agg(F.countDistinct("model_version"), F.first("run_id"), F.sum("trips")).first()
        assert row[0] == 1 and row[1] == "run-1"
        assert 130_000 < row[2] <= 150_000  # April's trips, minus the generator's dirt outside the month

        # The model version is in the registry on MinIO.
        registry = ModelRegistry(spark, f"s3a://{platform.cfg.models_bucket}/{raw_zone}")
        assert registry.versions("fhvhv", "city") == [first.model_version]

        # Rerun of the month with the latest model: same windows, replaced not appended.
        second = main(
            spark,
            job_args(platform, raw_zone, namespace, "--mode", "score", "--score-months", TARGET, "--run-id", "run-2"),
        )
        assert second.model_version == first.model_version
        assert spark.table(scores).count() == expected_windows
        assert {r.run_id for r in spark.table(scores).select("run_id").distinct().collect()} == {"run-2"}
        flagged_first, flagged_second = first.anomalies, second.anomalies
        assert flagged_first == flagged_second  # same model, same data: same result

        # A write that dies midway commits nothing: readers still see the previous complete month.
        snapshot = spark.sql(f"SELECT snapshot_id FROM {scores}.snapshots ORDER BY committed_at DESC").first()[0]
        failing = spark.table(scores).withColumn(
            "run_id",
            F.when(
                F.col("bucket_start") > F.lit("2024-04-20").cast("timestamp_ntz"),
                F.raise_error(F.lit("simulated crash midway")),
            ).otherwise(F.lit("run-3")),
        )
        with pytest.raises(Exception, match="simulated crash midway"):
            tables.replace_partitions(failing, namespace, tables.SCORES_TABLE)
        assert (
            spark.sql(f"SELECT snapshot_id FROM {scores}.snapshots ORDER BY committed_at DESC").first()[0] == snapshot
        )
        assert spark.table(scores).where("run_id = 'run-3'").count() == 0
        assert spark.table(scores).count() == expected_windows
    finally:
        tables.drop_namespace(spark, namespace)


def test_score_without_a_trained_model_fails_clearly(platform, spark, raw_zone, unique_name):
    from anomaly_detection.registry import ModelRegistryError

    with pytest.raises(ModelRegistryError, match="no trained model under .*run with --mode train first"):
        main(spark, job_args(platform, f"{raw_zone}-nothing", unique_name, "--mode", "score", "--score-months", TARGET))


def test_a_missing_raw_month_names_its_path(platform, spark, raw_zone, unique_name):
    from anomaly_detection.normalise import InputDataError

    with pytest.raises(InputDataError, match=r"fhvhv_tripdata_2023-12.parquet: cannot read as parquet"):
        main(spark, job_args(platform, raw_zone, unique_name, "--mode", "train", "--train-months", "2023-12"))
