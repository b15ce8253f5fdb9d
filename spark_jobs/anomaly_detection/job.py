"""The anomaly-detection job: raw months -> windows -> features -> a detector (include/models) -> Iceberg tables."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from anomaly_detection import hadoop_fs, tables
from anomaly_detection.evaluation import calibration, judge
from anomaly_detection.features import MODEL_FEATURES, build_features, seasonal_profile
from anomaly_detection.model import ModelBundle, fit_detector, score_windows
from anomaly_detection.normalise import read_month
from anomaly_detection.registry import ModelRegistry
from anomaly_detection.windows import aggregate_windows
from taxi_anomaly import layout
from taxi_anomaly.contract import AnomalyJob, Mode
from taxi_anomaly.detectors import resolve_spec
from taxi_anomaly.detectors.base import SCORE, WindowDetector
from taxi_anomaly.synthetic.episodes import Episode
from taxi_anomaly.synthetic.labels import Labels

log = logging.getLogger("anomaly_detection")

# Rows per Arrow batch handed to the scoring function: large batches amortise the per-call cost of the model
# (measured ~100-130 k rows/s at 10 k, ~225 k rows/s at 50 k on 2 cores).
ARROW_BATCH_ROWS = 50_000
# Windows outside the dead zone scored on the driver at most, rather than in Python workers (model.score_windows):
# in a 12.1 M-trip generated fhvhv month, 2 of the 1,488 city windows and 1,138 of the 391,344 zone windows are.
DRIVER_SCORING_MAX_ROWS = 50_000


@dataclass
class JobResult:
    model_version: str
    run_id: str
    windows_scored: int = 0
    anomalies: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    tuning: dict[str, Any] | None = None


def read_trips(spark: SparkSession, args: AnomalyJob, months: tuple[str, ...]) -> DataFrame:
    frames = [
        read_month(
            spark, layout.raw_path(args.raw_uri, args.trip_type, m, args.input_layout), args.trip_type
        ).withColumn("month", F.lit(m))
        for m in months
    ]
    return reduce(DataFrame.unionByName, frames)


def read_zones(spark: SparkSession, args: AnomalyJob) -> DataFrame | None:
    if not args.zones_uri:
        return None
    return spark.read.option("header", True).csv(args.zones_uri)


def window_table(spark: SparkSession, args: AnomalyJob, months: tuple[str, ...]) -> DataFrame:
    """Windows of the months, in few partitions: the table is small, and the lags, joins, scoring and writes
    after it would otherwise run spark.sql.shuffle.partitions near-empty tasks each (measured: features of a
    month 27 s -> 10 s)."""
    trips = read_trips(spark, args, months)
    windows = aggregate_windows(trips, list(months), args.granularity, read_zones(spark, args))
    return windows.coalesce(spark.sparkContext.defaultParallelism)


def train_bundle(spark: SparkSession, args: AnomalyJob) -> tuple[ModelBundle, int]:
    """Windows of the training months -> seasonal profile -> features -> the spec's detector, fitted."""
    spec = resolve_spec(args.detector, args.granularity, args.detector_params)
    windows = window_table(spark, args, args.train_months).cache()
    windows.count()
    profile = seasonal_profile(windows).cache()
    # The lags are not model inputs: without them, training skips two self-joins of the window table.
    training = build_features(windows, profile, with_lags=False).select(*MODEL_FEATURES).cache()
    try:
        detector = fit_detector(training, spec, MODEL_FEATURES)
        bundle = ModelBundle(detector=detector, profile=profile.toPandas())
    finally:
        training.unpersist()
        windows.unpersist()
        profile.unpersist()
    return bundle, detector.training_rows


def window_features(
    spark: SparkSession,
    args: AnomalyJob,
    bundle: ModelBundle,
    windows: DataFrame | None = None,
    profile: DataFrame | None = None,
) -> DataFrame:
    """Feature rows of the score months against the bundle's seasonal profile. `windows`: their window table,
    `profile`: the bundle's profile frame, if the caller has them already."""
    if windows is None:
        windows = window_table(spark, args, args.score_months)
    features = build_features(windows, bundle.profile_frame(spark) if profile is None else profile)
    return features.withColumn("trip_type", F.lit(args.trip_type))


def score(
    spark: SparkSession, args: AnomalyJob, bundle: ModelBundle, model_version: str, features: DataFrame | None = None
) -> DataFrame:
    """Rows of the anomaly_scores table. Only the columns that table keeps travel through scoring (every
    column beside the model inputs is queued next to each Arrow batch: measured 1.2 µs a window for the 42
    feature columns)."""
    if features is None:
        features = window_features(spark, args, bundle)
    return scores_of(features, bundle, model_version, args.run_id, on_driver_up_to=DRIVER_SCORING_MAX_ROWS)


def scores_of(
    features: DataFrame, bundle: ModelBundle, model_version: str, run_id: str, on_driver_up_to: int = 0
) -> DataFrame:
    """Score feature rows with the bundle's model: the anomaly_scores table's columns (batch and stream).
    on_driver_up_to: see model.score_windows."""
    kept = [*tables.SCORES_FROM_FEATURES, *bundle.detector.features]
    scored = score_windows(features.select(*kept), bundle.detector, on_driver_up_to)
    return scored.select(
        "*",
        F.lit(model_version).alias("model_version"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("scored_at"),
    )


def evaluate(
    spark: SparkSession, args: AnomalyJob, detector: WindowDetector, scored: DataFrame, version: str
) -> list[dict[str, Any]]:
    """The model_evaluations rows of the scored months: calibration always, labelled quality where the month
    has a labels file under args.labels_uri."""
    quiet = F.col("z_max_abs") <= F.lit(float(detector.dead_zone))
    per_month = scored.groupBy("month").agg(
        F.count(F.lit(1)).alias("windows"),
        F.sum(F.col("is_anomaly").cast("int")).alias("anomalies"),
        F.sum(quiet.cast("int")).alias("quiet"),
        F.percentile_approx(SCORE, [0.5, 0.9, 0.99], 1000).alias("q"),
        F.collect_set("key").alias("keys"),
    )
    flagged = scored.where("is_anomaly").select("month", "key", "bucket_start").collect()
    rows = []
    for month in per_month.collect():
        scores = dict(zip(("p50", "p90", "p99"), month["q"], strict=True))
        row: dict[str, Any] = {
            "model_version": version,
            "family": detector.family,
            "detector": detector.spec.name,
            "trip_type": args.trip_type,
            "granularity": str(args.granularity),
            "month": month["month"],
            "namespace": args.namespace,
            "run_id": args.run_id,
            "threshold": float(detector.threshold),
            **calibration(
                int(month["windows"]),
                int(month["anomalies"] or 0),
                detector.training_flagged_share,
                scores,
                int(month["quiet"] or 0),
            ),
            "labelled": False,
        }
        episodes = labelled_episodes(spark, args, month["month"])
        if episodes is not None:
            pairs = [(r["key"], r["bucket_start"]) for r in flagged if r["month"] == month["month"]]
            quality = judge(pairs, episodes, args.granularity, month["keys"])
            row.update(
                labelled=True,
                bucket_precision=quality.bucket_precision,
                bucket_recall=quality.bucket_recall,
                bucket_f1=quality.bucket_f1,
                episodes=quality.episodes,
                episodes_found=quality.episodes_found,
                recall_by_type=quality.recall_by_type,
            )
        rows.append(row)
    return rows


def labelled_episodes(spark: SparkSession, args: AnomalyJob, month: str) -> list[Episode] | None:
    """The month's labelled episodes, or None where no labels file exists."""
    if not args.labels_uri:
        return None
    uri = layout.labels_path(args.labels_uri, args.trip_type, month)
    if not hadoop_fs.exists(spark, uri):
        return None
    return Labels.from_json(hadoop_fs.read_bytes(spark, uri).decode()).episodes


def write_evaluations(spark: SparkSession, args: AnomalyJob, rows: list[dict[str, Any]]) -> None:
    tables.upsert(spark, args.evaluations_in, tables.EVALUATIONS_TABLE, rows, EVALUATION_KEYS, "evaluated_at")


EVALUATION_KEYS = ("model_version", "trip_type", "granularity", "month", "run_id")


def main(spark: SparkSession, args: AnomalyJob) -> JobResult:
    """Run the job; raises on any failure (the entry point turns that into a non-zero exit).

    A version trained in train-and-score mode is saved once its score months are evaluated, with the evaluation
    in its metadata, before the scores and evaluations that name it are written (score_and_write)."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # wall-clock bucket arithmetic relies on it
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    # Everything after the raw scan is small (at most ~400 k windows a month), and cached plans keep their
    # shuffle partitions (AQE does not coalesce them): 200 partitions made scoring 200 tasks (measured 53 s
    # for one month, city windows). One partition per core.
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    if args.mode is Mode.TUNE:
        from anomaly_detection import tuning

        tuned = tuning.run(spark, args)
        log.info("tuning %s: best %s", args.detector, tuned.as_dict()["best"])
        return JobResult(model_version="", run_id=args.run_id, tuning=tuned.as_dict())
    registry = ModelRegistry(spark, args.models_uri)
    result = JobResult(model_version=args.model_version, run_id=args.run_id)
    info: dict[str, Any] = {}
    bundle = None
    if args.mode.trains:
        clock = time.monotonic()
        bundle, rows = train_bundle(spark, args)
        info = {"training_months": list(args.train_months), "training_windows": rows, "run_id": args.run_id}
        result.timings_s["train"] = time.monotonic() - clock
        log.info("trained %s on %d windows", bundle.detector.spec.name, rows)
        if not args.mode.scores:
            result.model_version = registry.save(bundle, args.trip_type, args.granularity, info)
            return result
        result.model_version = layout.new_version_name()
    started = time.monotonic()
    cached: list[DataFrame] = []
    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="anomaly-job") as pool:
            try:
                score_and_write(spark, args, registry, bundle, info, result, pool, cached)
            except BaseException:
                spark.sparkContext.cancelAllJobs()  # e.g. no model: the pool need not finish a scan nobody reads
                raise
    finally:  # after the pool has shut down: no write still reads them
        for frame in cached:
            frame.unpersist()
    result.windows_scored = sum(e["windows"] for e in result.evaluations)
    result.anomalies = sum(e["anomalies"] for e in result.evaluations)
    result.timings_s["total_after_training"] = time.monotonic() - started
    log.info(
        "scored %d windows, %d anomalous, model %s, run %s",
        result.windows_scored,
        result.anomalies,
        result.model_version,
        args.run_id,
    )
    return result


def score_and_write(
    spark: SparkSession,
    args: AnomalyJob,
    registry: ModelRegistry,
    bundle: ModelBundle | None,
    info: dict[str, Any],
    result: JobResult,
    pool: ThreadPoolExecutor,
    cached: list[DataFrame],
) -> None:
    """Score the months with `bundle` (None: the registry's args.model_version) and write the three tables.

    Spark runs the jobs of several driver threads at once: the steps that wait on the metastore and the object
    store (model load, table checks, commits) overlap those that keep the cores busy (the raw scan, the
    evaluation). Each table is committed on its own, `window_features` before `anomaly_scores`: a run that fails
    midway is rerun, and the rerun replaces what the failed one committed. Frames it caches are added to `cached`,
    for the caller to release."""
    lap = time.monotonic()

    def step_done(name: str) -> None:
        nonlocal lap
        result.timings_s[name], lap = time.monotonic() - lap, time.monotonic()

    # The window table is small (one row per key and half-hour) but costs a full scan of the raw months:
    # materialise it once, so that lags, joins and both table writes read it from memory.
    def cached_windows() -> DataFrame:
        windows = window_table(spark, args, args.score_months).cache()
        cached.append(windows)
        windows.count()
        return windows

    scanned = pool.submit(cached_windows)
    if bundle is None:
        result.model_version = registry.resolve(args.trip_type, args.granularity, args.model_version)
        bundle, _meta = registry.load(args.trip_type, args.granularity, result.model_version)
    tables.ensure_tables(spark, args.namespace, tables.SERVED_TABLE_DDL)
    tables.ensure_tables(spark, args.evaluations_in, {tables.EVALUATIONS_TABLE: tables.EVALUATIONS_DDL})
    profile = bundle.profile_frame(spark)
    if args.write_trips:
        trips = read_trips(spark, args, args.score_months)
        tables.replace_partitions(trips, args.namespace, tables.TRIPS_TABLE)
    windows = scanned.result()
    step_done("windows")  # with the model load and the table checks, which overlap it
    features = window_features(spark, args, bundle, windows, profile).cache()
    cached.append(features)
    features.count()
    step_done("features")
    scored = score(spark, args, bundle, result.model_version, features).cache()
    cached.append(scored)
    scored.count()  # the scoring step alone (its rate: windows_scored / this)
    step_done("scoring")
    run_columns = [F.lit(args.run_id).alias("run_id"), F.current_timestamp().alias("computed_at")]
    feature_rows = features.select("*", *run_columns)
    features_written = pool.submit(tables.replace_partitions, feature_rows, args.namespace, tables.WINDOWS_TABLE)
    result.evaluations = evaluate(spark, args, bundle.detector, scored, result.model_version)
    if args.mode.trains:  # saved before any row names the version
        info["evaluations"] = result.evaluations
        registry.save(bundle, args.trip_type, args.granularity, info, version=result.model_version)
    # The scores follow their features: readers see a run's features only beside its scores (docs/serving.md).
    features_written.result()
    written = [
        pool.submit(tables.replace_partitions, scored, args.namespace, tables.SCORES_TABLE),
        pool.submit(write_evaluations, spark, args, result.evaluations),
    ]
    for write in written:
        write.result()
    step_done("evaluation_and_writes")
