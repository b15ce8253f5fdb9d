"""The window model: a fitted detector and the seasonal profile its features are relative to, and the one function
that turns feature rows into the anomaly_scores columns (batch job, stream and notebook alike)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taxi_anomaly.detectors import family_of
from taxi_anomaly.detectors.base import SCORE, WindowDetector, explanation_columns
from taxi_anomaly.detectors.spec import DetectorSpec


@dataclass
class ModelBundle:
    """What the registry stores: the fitted detector and the seasonal profile its features are relative to."""

    detector: WindowDetector
    profile: pd.DataFrame


def fit_detector(training: DataFrame, spec: DetectorSpec, features: Sequence[str]) -> WindowDetector:
    """The spec's family fitted on training feature rows (cache `training`: the fit reads it more than once)."""
    return family_of(spec.family).fit(training, spec, features)


def score_windows(features: DataFrame, detector: WindowDetector) -> DataFrame:
    """Add anomaly_score, is_anomaly, top_features and explanation (the sentence for flagged windows only).

    The score is the family's (a pandas UDF over whole Arrow batches, or native expressions); the flag and the
    explanations are native. Score the narrowest frame the caller needs: a pandas UDF queues every column of
    `features` beside each Arrow batch (measured 1.2 µs a window for 42 feature columns).
    """
    scored = detector.score(features)
    flagged = scored.withColumn("is_anomaly", F.col(SCORE) > F.lit(float(detector.threshold)))
    return flagged.withColumns(
        explanation_columns(detector.features, F.col("is_anomaly"), detector.explanation_limit())
    )
