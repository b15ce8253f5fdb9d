"""IsolationForest on seasonally normalised window features: trained on the driver, scored on executors.

Scoring is vectorised: a pandas UDF hands the model whole Arrow batches (spark.sql.execution.arrow.
maxRecordsPerBatch rows each), never one row at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from anomaly_detection.features import MODEL_FEATURES

# Readable names for explanations.
FEATURE_LABELS = {
    "z_log_rate": "trip count",
    "z_log_fare_per_mile": "fare per mile",
    "z_log_distance": "trip distance",
    "z_log_speed": "speed",
    "z_pay_share": "driver pay share of fare",
}
SUMMARY_FEATURES = ("z_max_abs",)  # model inputs that summarise others; never given as an explanation
TOP_FEATURES = 3
# An explanation names a deviation only from this size on (and beyond the dead zone): "+0.0 sd" or "+0.4 sd" is no
# reason (windows of a few trips have means that are not judged, so their deviations are exactly 0).
EXPLAINED_MIN_SD = 1.0
# Deviations up to this many robust sd count as noise for the forest (they become 0; larger ones lose this much).
# Without it the forest ranked night windows with three or four 3-6 sd deviations above 15-60 sd incidents: a
# new incident resembles the incidents of the history, so it is not isolated faster than the scatter of several
# moderate deviations. Measured with the job's features on generated months (pandas replica, 3-5 forest seeds),
# bucket precision at the default contamination, every episode found in every run:
# city 600 k trips seeds 1/2 0.75/0.81 -> 0.87/0.94, 3 M seeds 2/3 0.69/0.69 -> 0.96/0.91;
# borough 1.5 M seeds 1/2 0.77/0.73 -> 1.00/0.99; zone 15 M 0.76 -> 1.00. 4 sd was in between; 6 sd lost a
# borough episode.
DEAD_ZONE_SD = 5.0


def shrink(deviations: np.ndarray, dead_zone: float) -> np.ndarray:
    """Move every value `dead_zone` towards 0, stopping at 0: 7 -> 2, -7 -> -2, 3 -> 0 with a dead zone of 5."""
    return np.sign(deviations) * np.maximum(np.abs(deviations) - dead_zone, 0.0)


@dataclass
class TrainedModel:
    """Everything scoring needs, picklable: scaler, forest, decision threshold and the feature order."""

    scaler: object
    forest: object
    threshold: float
    features: tuple[str, ...] = MODEL_FEATURES
    params: dict = field(default_factory=dict)
    training_rows: int = 0
    training_score_quantiles: dict = field(default_factory=dict)
    dead_zone: float = 0.0  # models saved before the dead zone existed load with none

    def anomaly_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Higher is more anomalous (the negated sklearn score_samples, about 0.3 normal to 0.8+ extreme)."""
        return self.scores_of(self.deviations(frame))

    def deviations(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input columns as a matrix, in self.features order: robust z-scores against the seasonal
        profile (robust sd units) and their largest absolute value."""
        return frame[list(self.features)].to_numpy(dtype=np.float64)

    def forest_inputs(self, deviations: np.ndarray) -> np.ndarray:
        """What the forest sees: every deviation moved `dead_zone` sd towards 0 (smaller ones become 0), then
        standardised with the training mean and sd."""
        return self.scaler.transform(shrink(deviations, self.dead_zone))

    def scores_of(self, deviations: np.ndarray) -> np.ndarray:
        """Forest scores of the rows. Rows entirely inside the dead zone all look alike to the forest (every
        input 0), so it scores one of them and copies the score (the same number). Most windows are such rows
        (99.5 % of the zone windows of a generated fhvhv month: the forest's cost fell from 3.8 to 0.23 µs a
        window)."""
        quiet = (np.abs(deviations) <= self.dead_zone).all(axis=1)
        scores = np.empty(len(deviations))
        if quiet.any():
            scores[quiet] = -self.forest.score_samples(self.forest_inputs(deviations[quiet][:1]))[0]
        if not quiet.all():
            scores[~quiet] = -self.forest.score_samples(self.forest_inputs(deviations[~quiet]))
        return scores

    def explain(self, deviations: np.ndarray, flagged: np.ndarray, k: int = TOP_FEATURES) -> tuple[np.ndarray, list]:
        """For rows of deviations: per row the positions (in self.features) of the k features furthest from
        normal (largest |value|, most first, ties in feature order), and for flagged rows a sentence such as
        "trip count below usual (-9.3 sd); fare per mile above usual (+6.1 sd)" (None for the others)."""
        magnitude = np.abs(deviations)
        magnitude[:, [i for i, f in enumerate(self.features) if f in SUMMARY_FEATURES]] = -1.0  # not a reason
        order = np.argsort(-magnitude, axis=1, kind="stable")[:, :k]
        sentences: list[str | None] = [None] * len(deviations)
        for row in np.flatnonzero(flagged):
            sentences[row] = self.sentence(deviations[row], order[row])
        return order, sentences

    def sentence(self, deviations: np.ndarray, order: np.ndarray) -> str:
        """The explanation of one flagged row: the deviations in `order` that matter (beyond the dead zone, and
        at least EXPLAINED_MIN_SD), most first; the largest one alone if none does."""
        limit = max(self.dead_zone, EXPLAINED_MIN_SD)
        named = [i for i in order if abs(deviations[i]) >= limit] or [
            i for i in order[:1] if abs(deviations[i]) >= EXPLAINED_MIN_SD
        ]
        if not named:
            return f"no signal is {EXPLAINED_MIN_SD:g} sd or more from its seasonal usual"
        parts = []
        for i in named:
            value = deviations[i]
            label = FEATURE_LABELS.get(self.features[i], self.features[i])
            parts.append(f"{label} {'above' if value > 0 else 'below'} usual ({value:+.1f} sd)")
        return "; ".join(parts)


@dataclass
class ModelBundle:
    """What the registry stores: the trained model and the seasonal profile its features are relative to."""

    model: TrainedModel
    profile: pd.DataFrame


def tree_sample_size(training_windows: int) -> int:
    """Windows each tree is grown on: 1/32 of the training windows, at least scikit-learn's 256, at most 1024.
    City history (~4.4 k windows) keeps 256; borough and zone history get 1024. Measured on generated borough
    months (35 k training windows), top-40 flags: precision 0.70 with 256-window trees, 0.90 with 1024; at city
    level 1024 was worse (0.77 -> 0.68 at the same contamination)."""
    return min(training_windows, max(256, min(1024, training_windows // 32)))


def train(
    training_features: pd.DataFrame,
    contamination: float = 0.01,
    n_estimators: int = 200,
    max_samples: int | None = None,
    seed: int = 42,
    dead_zone: float = DEAD_ZONE_SD,
) -> TrainedModel:
    """Fit StandardScaler + IsolationForest on the driver; the threshold is the training score quantile
    that flags `contamination` of the training windows.

    The history should be the real history, incidents included: a forest trained on spotless months has no
    structure beyond their range, so a new 20-sd spike scores like the most extreme normal window (measured on
    generated months: spikes missed in half the seeds; with incidents in the history every episode is found)."""
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import StandardScaler

    if training_features.empty:
        raise ValueError("no training windows: check the training months and the input files")
    if not 0 < contamination < 0.5:
        raise ValueError(f"contamination must be in (0, 0.5), got {contamination}")
    if dead_zone < 0:
        raise ValueError(f"dead_zone must be >= 0 sd, got {dead_zone}")
    model = TrainedModel(scaler=None, forest=None, threshold=0.0, dead_zone=dead_zone)
    deviations = model.deviations(training_features)
    model.scaler = StandardScaler().fit(shrink(deviations, dead_zone))
    max_samples = max_samples or tree_sample_size(len(deviations))
    model.forest = IsolationForest(
        n_estimators=n_estimators, max_samples=max_samples, contamination=contamination, random_state=seed, n_jobs=1
    ).fit(model.forest_inputs(deviations))
    model.params = {
        "contamination": contamination,
        "n_estimators": n_estimators,
        "max_samples": max_samples,
        "seed": seed,
        "dead_zone_sd": dead_zone,
    }
    model.training_rows = len(deviations)
    scores = model.anomaly_scores(training_features)
    model.threshold = float(np.quantile(scores, 1 - contamination))
    model.training_score_quantiles = {q: float(np.quantile(scores, q)) for q in (0.5, 0.9, 0.99, 0.999)}
    return model


# What the pandas UDF returns: the score, the positions of the top features packed in one integer (decimal
# digits, most first; the array of names is made on the JVM), the sentence for flagged windows (else null).
SCORE_COLUMNS = "anomaly_score double, reasons int, explanation string"


def pack_positions(order: np.ndarray) -> np.ndarray:
    """Positions (rows of up to TOP_FEATURES indexes < 10) as one integer each: [4, 0, 2] -> 402."""
    return sum(order[:, r].astype(np.int32) * 10 ** (order.shape[1] - 1 - r) for r in range(order.shape[1]))


def score_windows(features: DataFrame, model: TrainedModel) -> DataFrame:
    """Add anomaly_score, is_anomaly, top_features and explanation.

    A pandas UDF runs the forest over whole Arrow batches of the model's input columns only, and sends back
    little: a double, an integer and a mostly-null string. Measured at zone level, per window: strings and
    arrays of names built in Python and carried back through Arrow cost more than the forest; sorting an
    array of structs per row on the JVM cost more still. Score the narrowest frame the caller needs: every
    column of `features` is queued beside each Arrow batch.
    """
    from pyspark.sql.functions import pandas_udf

    if len(model.features) > 10:
        raise ValueError("pack_positions keeps one decimal digit per feature position: at most 10 features")
    k = min(TOP_FEATURES, sum(f not in SUMMARY_FEATURES for f in model.features))
    broadcast = features.sparkSession.sparkContext.broadcast(model)

    @pandas_udf(SCORE_COLUMNS)
    def score_batch(batch: pd.DataFrame) -> pd.DataFrame:
        trained: TrainedModel = broadcast.value
        deviations = trained.deviations(batch)
        scores = trained.scores_of(deviations)
        order, sentences = trained.explain(deviations, scores > trained.threshold, k)
        return pd.DataFrame({"anomaly_score": scores, "reasons": pack_positions(order), "explanation": sentences})

    names = F.array(*[F.lit(f) for f in model.features])
    reasons = F.col("_scored.reasons")
    positions = [(reasons / 10 ** (k - 1 - r)).cast("int") % 10 for r in range(k)]
    scored = features.withColumn("_scored", score_batch(F.struct(*[F.col(c) for c in model.features])))
    return scored.withColumns(
        {
            "anomaly_score": F.col("_scored.anomaly_score"),
            "is_anomaly": F.col("_scored.anomaly_score") > F.lit(model.threshold),
            "top_features": F.array(*[F.element_at(names, p + 1) for p in positions]),
            "explanation": F.col("_scored.explanation"),
        }
    ).drop("_scored")
