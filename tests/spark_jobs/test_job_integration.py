"""The whole job against the real platform: raw files in MinIO or HDFS -> Iceberg tables in the Hive Metastore."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from anomaly_detection import tables
from anomaly_detection.job import main
from anomaly_detection.registry import ModelRegistry
from taxi_anomaly import layout
from taxi_anomaly.contract import AnomalyJob
from taxi_anomaly.tlc import YearMonth
from tests.conftest import FHVHV_HISTORY, FHVHV_TARGET
from tests.ingest.conftest import RAW_STORES

pytestmark = [pytest.mark.platform, pytest.mark.spark]

HISTORY = list(FHVHV_HISTORY)
TARGET = FHVHV_TARGET


@dataclass(frozen=True)
class RawZone:
    prefix: str  # unique per module run; also the models' prefix
    uri: str  # the job's --raw-uri: s3a://... or hdfs://...
    labels_uri: str  # the labelled episodes of every month, in S3 whichever store holds the raw zone


@pytest.fixture(scope="module")
def generated_months(generated_fhvhv_months) -> list[Path]:
    return generated_fhvhv_months


@pytest.fixture(scope="module")
def raw_zone(request, platform, generated_months):
    """The generated months in the raw zone's layout under a unique prefix, in S3 (MinIO) or, when a test is
    parametrised with RAW_STORES, in HDFS too (WebHDFS, as the platform user), read by Spark through hdfs://."""
    import uuid

    from taxi_anomaly.ingest.hdfs_storage import HdfsStore
    from taxi_anomaly.ingest.settings import HdfsSettings, S3Settings
    from taxi_anomaly.ingest.storage import ObjectStore

    cfg, creds = platform.cfg, platform.creds
    kind = getattr(request, "param", "s3")
    if kind == "hdfs":
        request.getfixturevalue("hdfs")
        store = HdfsStore(HdfsSettings(cfg.webhdfs_url, cfg.hdfs_user, cfg.hdfs_uri))
        root = f"{cfg.hdfs_uri}/{cfg.raw_bucket}"
    else:
        store = ObjectStore(S3Settings(cfg.minio_endpoint, creds.minio_root_user, creds.minio_root_password))
        root = f"s3a://{cfg.raw_bucket}"
    s3 = ObjectStore(S3Settings(cfg.minio_endpoint, creds.minio_root_user, creds.minio_root_password))
    prefix = f"it-{kind}-{uuid.uuid4().hex[:8]}"
    for path, month in zip(generated_months, [*HISTORY, TARGET], strict=True):
        ym = YearMonth.parse(month)
        store.put_file(cfg.raw_bucket, f"{prefix}/{layout.raw_key('fhvhv', ym)}", path)
        # Every generated month is labelled: its labels file sits beside the parquet file.
        s3.put_file(cfg.raw_bucket, f"{prefix}/{layout.labels_key('fhvhv', ym)}", path.with_suffix(".labels.json"))
    yield RawZone(prefix, f"{root}/{prefix}/{layout.RAW_ROOT}", f"s3a://{cfg.raw_bucket}/{prefix}/{layout.LABELS_ROOT}")
    store.delete_prefix(cfg.raw_bucket, f"{prefix}/")
    s3.delete_prefix(cfg.raw_bucket, f"{prefix}/{layout.LABELS_ROOT}/")


def job_args(platform, zone: RawZone, namespace: str, *extra: str):
    return AnomalyJob.from_argv(
        [
            "--trip-type",
            "fhvhv",
            "--granularity",
            "city",
            "--raw-uri",
            zone.uri,
            "--labels-uri",
            zone.labels_uri,
            "--models-uri",
            f"s3a://{platform.cfg.models_bucket}/{zone.prefix}",
            "--namespace",
            namespace,
            *extra,
        ]
    )


def test_train_score_rerun_and_failed_write(platform, spark, raw_zone, unique_name, monkeypatch):
    namespace = unique_name
    trino = None
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

        # The model version is in the registry on MinIO, with the evaluation of the month it scored.
        registry = ModelRegistry(spark, f"s3a://{platform.cfg.models_bucket}/{raw_zone.prefix}")
        assert registry.versions("fhvhv", "city") == [first.model_version]
        evaluation = registry.metadata("fhvhv", "city", first.model_version)["evaluations"][0]
        assert evaluation["month"] == TARGET and evaluation["labelled"] and evaluation["episodes"] == 5
        assert evaluation["episodes_found"] >= 4 and evaluation["windows"] == expected_windows
        assert evaluation["expected_share"] > 0 and 0 < evaluation["dead_zone_share"] < 1
        evaluations = tables.table_name(namespace, tables.EVALUATIONS_TABLE)
        row = spark.table(evaluations).where(f"model_version = '{first.model_version}'").collect()
        assert len(row) == 1 and row[0]["labelled"] and row[0]["bucket_f1"] == evaluation["bucket_f1"]

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
        assert spark.table(evaluations).count() == 2  # one row per version, month and run

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

        # A run killed between its two table commits (features committed, scores not: the state a kill -9 of the
        # driver at that moment leaves, as Iceberg commits are atomic) is never seen half by readers.
        trino = reader_views_of(platform, namespace)
        killed_between_commits(
            monkeypatch,
            spark,
            job_args(platform, raw_zone, namespace, "--mode", "score", "--score-months", TARGET, "--run-id", "run-x"),
        )
        assert trino("SELECT DISTINCT run_id FROM {ns}.window_features") == [["run-x"]]  # ahead of the scores
        assert trino("SELECT DISTINCT run_id FROM {ns}.anomaly_scores") == [["run-2"]]
        assert trino("SELECT count(*) FROM {ns}.window_features_current") == [[0]]  # no run-x beside run-2
        main(
            spark,
            job_args(platform, raw_zone, namespace, "--mode", "score", "--score-months", TARGET, "--run-id", "run-4"),
        )  # the retry
        assert trino("SELECT run_id, count(*) FROM {ns}.window_features_current GROUP BY 1") == [
            ["run-4", expected_windows]
        ]
    finally:
        if trino is not None:  # Trino's view: Spark's catalog does not list it, so drop it where it was made
            trino("DROP VIEW IF EXISTS {ns}.window_features_current")
        tables.drop_namespace(spark, namespace)


class KilledBetweenCommits(Exception):
    pass


def killed_between_commits(monkeypatch, spark, job) -> None:
    """Run the job, stopping it after the window_features commit, before the anomaly_scores one."""
    committed = tables.replace_partitions

    def dies_before_the_scores(frame, namespace, table):
        if table == tables.SCORES_TABLE:
            raise KilledBetweenCommits(f"stopped before committing {table}")
        committed(frame, namespace, table)

    with monkeypatch.context() as patched:
        patched.setattr(tables, "replace_partitions", dies_before_the_scores)
        with pytest.raises(KilledBetweenCommits):
            main(spark, job)


def reader_views_of(platform, namespace: str):
    """The readers' views of the namespace, created as the pipeline's Trino step does; a query function (as the
    admin: the raw tables too) with {ns} standing for the quoted namespace."""
    from taxi_anomaly.serving.trino_client import TrinoSettings
    from taxi_anomaly.serving.views import ensure_reader_views

    admin = TrinoSettings(
        host="127.0.0.1",
        port=platform.cfg.trino_port,
        user=platform.creds.trino_admin_user,
        password=platform.creds.trino_admin_password,
        verify=str(platform.service("trino").ca_file),
    )
    ensure_reader_views(admin.connect(), namespace)

    def query(sql: str) -> list[list]:
        cursor = admin.connect().cursor()
        cursor.execute(sql.format(ns=f'"iceberg"."{namespace}"'))
        return [list(row) for row in cursor.fetchall()]

    return query


@pytest.mark.parametrize("raw_zone", RAW_STORES, indirect=True)
def test_the_job_reads_a_raw_month_whole_from_either_store(platform, spark, raw_zone, generated_months):
    """The job's read of the raw zone (its raw_path, read_month, aggregate_windows) from s3a:// and hdfs://: every
    trip of the month counted, every window present. The rest of the job does not depend on the store (the full
    run above reads S3; this one costs ~15 s per store instead of minutes)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from anomaly_detection.normalise import read_month
    from anomaly_detection.windows import aggregate_windows

    args = job_args(platform, raw_zone, "unused", "--mode", "train", "--train-months", TARGET)
    path = layout.raw_path(args.raw_uri, args.trip_type, TARGET, args.input_layout)
    assert path.startswith(raw_zone.uri)
    windows = aggregate_windows(read_month(spark, path, "fhvhv"), [TARGET], "city")
    count, trips = windows.agg(F.count(F.lit(1)), F.sum("trips")).first()
    pickups = pq.read_table(generated_months[-1], columns=["pickup_datetime"])["pickup_datetime"]
    in_april = pc.and_(
        pc.greater_equal(pickups, pc.strptime("2024-04-01", "%Y-%m-%d", "us")),
        pc.less(pickups, pc.strptime("2024-05-01", "%Y-%m-%d", "us")),
    )
    assert (count, trips) == (30 * 48, pc.sum(in_april).as_py())


def test_score_without_a_trained_model_fails_clearly(platform, spark, raw_zone, unique_name):
    from anomaly_detection.registry import ModelRegistryError

    with pytest.raises(ModelRegistryError, match="no trained model under .*run with --mode train first"):
        nothing = RawZone(f"{raw_zone.prefix}-nothing", raw_zone.uri, raw_zone.labels_uri)
        main(spark, job_args(platform, nothing, unique_name, "--mode", "score", "--score-months", TARGET))


@pytest.mark.parametrize("raw_zone", RAW_STORES, indirect=True)
def test_a_missing_raw_month_names_its_path(platform, spark, raw_zone, unique_name):
    from anomaly_detection.normalise import InputDataError

    with pytest.raises(InputDataError, match=r"fhvhv_tripdata_2023-12.parquet: cannot read as parquet"):
        main(spark, job_args(platform, raw_zone, unique_name, "--mode", "train", "--train-months", "2023-12"))


def test_tuning_folds_over_labelled_months_and_writes_trials_and_a_candidate(platform, spark, raw_zone, unique_name):
    import yaml

    from anomaly_detection import hadoop_fs
    from taxi_anomaly.detectors.spec import SPEC_KEYS

    models = f"s3a://{platform.cfg.models_bucket}/{raw_zone.prefix}"
    job = job_args(
        platform,
        raw_zone,
        unique_name,
        *("--mode", "tune", "--train-months", ",".join([*HISTORY, TARGET]), "--history-months", "2"),
        *("--max-trials", "9", "--run-id", "tune-1"),
    )
    versions_before = ModelRegistry(spark, models).versions("fhvhv", "city")
    try:
        result = main(spark, job)
        assert result.tuning is not None
        best = result.tuning["best"]
        assert set(best["folds"]) == {HISTORY[-1], TARGET}  # each scored by the two months before it
        trials = spark.table(tables.table_name(unique_name, tables.TRIALS_TABLE))
        assert trials.select("trial").distinct().count() == result.tuning["trials"] == 9
        assert trials.count() == 18 and trials.where("run_id != 'tune-1'").count() == 0
        top = trials.orderBy(F.desc("every_episode_found"), F.desc("mean_bucket_f1"), "trial").first()
        assert top is not None and abs(top["mean_bucket_f1"] - best["mean_bucket_f1"]) < 1e-3
        assert result.tuning["candidate"].startswith(f"{models}/fhvhv/city/candidates/isolation_forest-tune-1")
        text = hadoop_fs.read_bytes(spark, result.tuning["candidate"]).decode()
        candidate = yaml.safe_load(text)
        assert set(candidate) <= SPEC_KEYS and "search" not in candidate
        assert candidate["granularities"]["city"]["threshold"]["rule"] == best["overrides"]["threshold_rule"]
        assert text.startswith("# Candidate spec from tuning run tune-1")
        # Tuning saves no version and promotes nothing.
        assert ModelRegistry(spark, models).versions("fhvhv", "city") == versions_before
    finally:
        tables.drop_namespace(spark, unique_name)


def test_upsert_appends_keys_the_table_cannot_hold_and_merges_the_others(platform, spark, unique_name):
    """The evaluations' write: a plain append while no row can share a key, a MERGE once one does (a retried
    run), one row per key either way."""
    table = tables.table_name(unique_name, "upserted")
    keys = ("run_id", "k")
    try:
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {tables.CATALOG}.{unique_name}")
        spark.sql(
            f"CREATE TABLE {table} (run_id STRING NOT NULL, k INT NOT NULL, v DOUBLE, at TIMESTAMP) USING iceberg"
        )

        def upsert(*rows):
            as_dicts = [dict(zip(("run_id", "k", "v"), row, strict=True)) for row in rows]
            tables.upsert(spark, unique_name, "upserted", as_dicts, keys, "at")
            operation = spark.sql(f"SELECT operation FROM {table}.snapshots ORDER BY committed_at DESC").first()[0]
            assert spark.table(table).where("at IS NULL").count() == 0
            return operation, sorted(tuple(r) for r in spark.table(table).drop("at").collect())

        assert upsert(("r1", 1, 1.0), ("r1", 2, 2.0)) == ("append", [("r1", 1, 1.0), ("r1", 2, 2.0)])
        # k = 1 exists under r1 and r2 is new, but no (run_id, k) pair of these rows exists: appended.
        assert upsert(("r2", 1, 5.0))[0] == "append"
        operation, rows = upsert(("r1", 2, 20.0), ("r1", 3, 3.0))  # a retry of r1 with one more key
        assert operation == "overwrite"
        assert rows == [("r1", 1, 1.0), ("r1", 2, 20.0), ("r1", 3, 3.0), ("r2", 1, 5.0)]
    finally:
        tables.drop_namespace(spark, unique_name)


def test_tables_are_created_with_the_write_properties_and_older_tables_get_them(platform, spark, unique_name):
    """A new table has every TABLE_PROPERTIES entry; a table created before a property was added gets it from
    the next ensure_tables, in one commit, and none after that."""
    ddl = {tables.SCORES_TABLE: tables.TABLE_DDL[tables.SCORES_TABLE]}
    older = tables.table_name(unique_name, tables.SCORES_TABLE)

    def properties(table: str) -> dict[str, str]:
        return {row.key: row.value for row in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}

    def commits(table: str) -> int:
        return spark.sql(f"SELECT * FROM {table}.metadata_log_entries").count()

    try:
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {tables.CATALOG}.{unique_name}")
        spark.sql(
            f"CREATE TABLE {older} ({ddl[tables.SCORES_TABLE]}) USING iceberg "
            "TBLPROPERTIES ('format-version'='2', 'write.parquet.compression-codec'='zstd')"
        )
        assert "write.parquet.dict-size-bytes" not in properties(older)
        before = commits(older)
        tables.ensure_tables(spark, unique_name, ddl)
        after_upgrade = commits(older)
        assert after_upgrade == before + 1
        assert properties(older).items() >= tables.TABLE_PROPERTIES.items()
        tables.ensure_tables(spark, unique_name, ddl)
        assert commits(older) == after_upgrade

        tables.ensure_tables(spark, unique_name, {tables.WINDOWS_TABLE: tables.TABLE_DDL[tables.WINDOWS_TABLE]})
        created = tables.table_name(unique_name, tables.WINDOWS_TABLE)
        assert properties(created).items() >= tables.TABLE_PROPERTIES.items()
    finally:
        tables.drop_namespace(spark, unique_name)
