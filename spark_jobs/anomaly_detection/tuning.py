"""Hyperparameter search on labelled months (mode tune): the spec's search space, K folds over months.

Fold k scores labelled month m_k with a model trained on the `history_months` months just before it (never the
same month, never a later one). Every fit of the space (a combination of parameter values and dead zone) is trained
once per fold; every threshold of the space is then tried on that fit's training scores (no refit). A trial is a
(fit, threshold) pair; its figures per fold go to the tuning_trials table. The best trial finds every episode in
every fold and has the highest mean bucket F1; it is written as a candidate spec file under the registry
(taxi_anomaly.layout.candidate_path), never into include/models: promoting it is a reviewed change.
Fits run in parallel, one per core (Spark runs jobs from several threads at once; the driver's share of a fit,
e.g. scikit-learn's, runs beside the others).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from anomaly_detection import hadoop_fs, tables
from anomaly_detection.evaluation import LabelledQuality, judge
from anomaly_detection.features import MODEL_FEATURES, build_features, seasonal_profile
from anomaly_detection.model import fit_detector
from taxi_anomaly import layout
from taxi_anomaly.contract import AnomalyJob
from taxi_anomaly.detectors import resolve_spec
from taxi_anomaly.detectors.base import SCORE
from taxi_anomaly.detectors.spec import SearchSpace, Threshold, read_spec_file, search_space
from taxi_anomaly.synthetic.episodes import Episode

log = logging.getLogger("anomaly_detection.tuning")


@dataclass(frozen=True)
class Fold:
    """Score `month` with a model trained on `history` (the months just before it)."""

    month: str
    history: tuple[str, ...]


def folds(months: Sequence[str], labelled: Sequence[str], history: int) -> list[Fold]:
    """One fold per labelled month that has `history` months before it among `months`."""
    ordered = sorted(set(months))
    return [
        Fold(month, tuple(ordered[i - history : i]))
        for i, month in enumerate(ordered)
        if month in set(labelled) and i >= history
    ]


def choose_fits(space: SearchSpace, max_trials: int, seed: int) -> list[dict[str, Any]]:
    """The fits to train: all of the space's, or a random subset so that fits x thresholds <= max_trials."""
    fits = space.fits()
    allowed = max(1, max_trials // max(1, len(space.thresholds)))
    return fits if len(fits) <= allowed else random.Random(seed).sample(fits, allowed)  # noqa: S311 - not security


@dataclass
class TrialResult:
    """One (fit, threshold) pair across the folds."""

    trial: int
    overrides: dict[str, Any]
    threshold: Threshold
    folds: dict[str, LabelledQuality] = field(default_factory=dict)
    fit_seconds: float = 0.0

    @property
    def every_episode_found(self) -> bool:
        return all(q.every_episode_found for q in self.folds.values())

    @property
    def mean_f1(self) -> float:
        return float(np.mean([q.bucket_f1 for q in self.folds.values()])) if self.folds else 0.0

    @property
    def rank(self) -> tuple[bool, float]:
        return self.every_episode_found, self.mean_f1

    def spec_overrides(self) -> dict[str, Any]:
        return {**self.overrides, "threshold_rule": str(self.threshold.rule), "threshold_value": self.threshold.value}


@dataclass
class TuningResult:
    detector: str
    trials: list[TrialResult]
    best: TrialResult
    candidate_uri: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "trials": len(self.trials),
            "best": {
                "overrides": self.best.spec_overrides(),
                "mean_bucket_f1": round(self.best.mean_f1, 4),
                "every_episode_found": self.best.every_episode_found,
                "folds": {m: q.as_dict() for m, q in self.best.folds.items()},
            },
            "candidate": self.candidate_uri,
        }


def labelled_months(spark: SparkSession, job: AnomalyJob) -> dict[str, list[Episode]]:
    from anomaly_detection.job import labelled_episodes

    found = {m: labelled_episodes(spark, job, m) for m in job.train_months}
    return {m: episodes for m, episodes in found.items() if episodes is not None}


def run(spark: SparkSession, job: AnomalyJob) -> TuningResult:
    """Search the spec's space on the job's months; write the trials and the candidate spec."""
    from anomaly_detection.job import window_table

    document = read_spec_file(job.detector)
    base = resolve_spec(job.detector, job.granularity, job.detector_params)
    space = search_space(document, base)
    labels = labelled_months(spark, job)
    plan = folds(job.train_months, list(labels), job.history_months)
    if not plan:
        raise ValueError(
            f"no labelled month among {', '.join(job.train_months)} has {job.history_months} months before it "
            f"(labelled: {', '.join(labels) or 'none'} under {job.labels_uri})"
        )
    fits = choose_fits(space, job.max_trials, base.seed)
    log.info(
        "tuning %s: %d fits x %d thresholds on %d folds", job.detector, len(fits), len(space.thresholds), len(plan)
    )
    windows = window_table(spark, job, job.train_months).cache()
    prepared = {fold.month: _prepare(windows, fold) for fold in plan}
    results = {
        (i, t): TrialResult(i * len(space.thresholds) + t, fit, threshold)
        for i, fit in enumerate(fits)
        for t, threshold in enumerate(space.thresholds)
    }

    def run_fit(task: tuple[int, dict[str, Any], Fold]) -> None:
        i, fit, fold = task
        started = time.monotonic()
        spec = resolve_spec(job.detector, job.granularity, {**job.detector_params, **fit})
        training, target, keys = prepared[fold.month]
        detector = fit_detector(training, spec, MODEL_FEATURES)
        scored = detector.score(target).select("key", "bucket_start", SCORE).toPandas()
        seconds = time.monotonic() - started
        for t, threshold in enumerate(space.thresholds):
            detector.set_threshold(threshold)
            flagged = scored[scored[SCORE] > detector.threshold]
            pairs = list(zip(flagged["key"], flagged["bucket_start"], strict=True))
            result = results[(i, t)]
            result.folds[fold.month] = judge(pairs, labels[fold.month], job.granularity, keys)
            result.fit_seconds += seconds

    tasks = [(i, fit, fold) for i, fit in enumerate(fits) for fold in plan]
    try:
        with ThreadPoolExecutor(max_workers=max(1, spark.sparkContext.defaultParallelism)) as pool:
            list(pool.map(run_fit, tasks))
    finally:
        for training, target, _keys in prepared.values():
            training.unpersist()
            target.unpersist()
        windows.unpersist()
    trials = sorted(results.values(), key=lambda r: r.trial)
    best = max(trials, key=lambda r: r.rank)
    candidate_uri = write_candidate(spark, job, document, best)
    write_trials(spark, job, trials)
    return TuningResult(job.detector, trials, best, candidate_uri)


def _prepare(windows: DataFrame, fold: Fold) -> tuple[DataFrame, DataFrame, list[str]]:
    """The fold's training features (history months, against their own seasonal profile) and the scored month's
    features against that profile, both cached; and the scored month's keys."""
    history = windows.where(F.col("month").isin(*fold.history))
    profile = seasonal_profile(history).cache()
    training = build_features(history, profile).select(*MODEL_FEATURES).cache()
    target_windows = windows.where(F.col("month") == fold.month)
    target = build_features(target_windows, profile).select("key", "bucket_start", *MODEL_FEATURES).cache()
    keys = [r[0] for r in target.select("key").distinct().collect()]
    return training, target, keys


def candidate_document(document: dict[str, Any], granularity: str, best: TrialResult) -> dict[str, Any]:
    """The spec file with the best trial's values set for the tuned granularity."""
    candidate = {k: v for k, v in document.items() if k != "search"}
    sections = dict(candidate.get("granularities") or {})
    section = dict(sections.get(granularity) or {})
    params = {k: v for k, v in best.overrides.items() if k != "dead_zone_sd"}
    if params:
        section["params"] = {**(section.get("params") or {}), **params}
    if "dead_zone_sd" in best.overrides:
        section["dead_zone_sd"] = best.overrides["dead_zone_sd"]
    section["threshold"] = best.threshold.as_dict()
    sections[granularity] = section
    candidate["granularities"] = sections
    return candidate


def write_candidate(spark: SparkSession, job: AnomalyJob, document: dict[str, Any], best: TrialResult) -> str:
    uri = layout.candidate_path(job.models_uri, job.trip_type, str(job.granularity), job.detector, job.run_id)
    folds_text = ", ".join(f"{m} F1 {q.bucket_f1:.3f} ({q.episodes_found}/{q.episodes})" for m, q in best.folds.items())
    header = (
        f"# Candidate spec from tuning run {job.run_id} ({job.trip_type}, {job.granularity}): trial {best.trial},\n"
        f"# mean bucket F1 {best.mean_f1:.3f}, every episode found: {best.every_episode_found}; {folds_text}.\n"
        f"# A candidate only: copy it into include/models/ (a reviewed change) to use it.\n"
    )
    body = yaml.safe_dump(candidate_document(document, str(job.granularity), best), sort_keys=False)
    hadoop_fs.write_bytes(spark, uri, (header + body).encode())
    return uri


def trial_rows(job: AnomalyJob, trials: Sequence[TrialResult]) -> Iterator[dict[str, Any]]:
    import json

    for trial in trials:
        for month, quality in trial.folds.items():
            yield {
                "run_id": job.run_id,
                "detector": job.detector,
                "trip_type": job.trip_type,
                "granularity": str(job.granularity),
                "trial": trial.trial,
                "overrides": json.dumps(trial.spec_overrides(), sort_keys=True),
                "month": month,
                "bucket_precision": quality.bucket_precision,
                "bucket_recall": quality.bucket_recall,
                "bucket_f1": quality.bucket_f1,
                "episodes": quality.episodes,
                "episodes_found": quality.episodes_found,
                "flagged": quality.flagged,
                "mean_bucket_f1": trial.mean_f1,
                "every_episode_found": trial.every_episode_found,
                "fit_seconds": trial.fit_seconds,
            }


def write_trials(spark: SparkSession, job: AnomalyJob, trials: Sequence[TrialResult]) -> None:
    tables.ensure_tables(spark, job.namespace, {tables.TRIALS_TABLE: tables.TRIALS_DDL})
    rows = list(trial_rows(job, trials))
    tables.upsert(spark, job.namespace, tables.TRIALS_TABLE, rows, ("run_id", "trial", "month"), "tuned_at")
