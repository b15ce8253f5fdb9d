"""Per-event detectors: one score per record (a KDD Cup 99 connection, a taxi trip: event_features.FeatureSet),
fitted with scikit-learn on the driver and scored in Spark as native expressions (anomaly_detection.compiled_trees)
or, as the micro-batch fallback, by a pandas UDF. One code path for every feature set.

KDD Cup 99: fit on normal traffic only (kdd.normal_training_split): in the file attacks are about 80 % of the rows,
and a detector fitted on every row learns smurf and neptune as the usual traffic. Trips: the isolation forest on
every row of a month (faults are about 1 %); the unsupervised forest learns recurring faults as real traffic unless
they are left out (bench/README "Per-trip detection on generated months"). Labels pick the training rows and
evaluate the model; they are never model inputs.

Score native expressions with spark.sql.codegen.wholeStage=false (compiled_trees, bench/README "Per-event scoring").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from anomaly_detection.event_features import KDD, FeatureSet, feature_set_named
from taxi_anomaly.kdd import NORMAL

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

GRANULARITY = "event"  # the registry's granularity of per-event models (beside the window models' city, borough)
SCORE, FLAG, TOP_FEATURES = "anomaly_score", "is_anomaly", "top_features"
TOP_FEATURE_COUNT = 3
EXPLAINED_MIN_DEVIATION = 1.0  # |x - centre| / spread below this names no feature
ATTACK_CATEGORY_NAMES = ("dos", "probe", "r2l", "u2r")
_INPUT_PREFIX = "_event_input_"


class EventFamily(str, Enum):
    """How an event's score is computed (higher is more anomalous)."""

    # sklearn IsolationForest; the score is -score_samples.
    ISOLATION_FOREST = "isolation_forest"
    # The IoT system's "unsupervised random forest": sklearn RandomForestClassifier trained to tell the real rows from
    # as many synthetic rows whose columns are drawn independently, each from that column's values (the product of
    # the marginals); the score is P(synthetic).
    UNSUPERVISED_FOREST = "unsupervised_forest"


# Defaults, measured on the 10% file (train: 50 % of the normal rows, seed 0; threshold: training q99; evaluated on
# the other normal rows and every attack; bench/README "Per-event detection on KDD Cup 99").
# IsolationForest: 25, 50 and 100 trees gave the same F1 (0.434) and AUC; 50 keeps the compiled expression small.
# Unsupervised forest, 50 trees: depth 6 / 8 / 10 / 12 without a leaf minimum gave recall 0.006 / 0.62 / 0.016 /
# 0.21 (whether the 280 k smurf rows land in synthetic leaves flips with depth); min_samples_leaf 50 steadies it:
# 30 trees of depth 10 gave F1 0.90 / 0.96 / 0.90 over seeds 0-2 (50 trees of depth 12: 0.90 / 0.96 / 0.96) with
# half the tree nodes (~7 k, the size of a 100-tree IsolationForest).
DEFAULT_PARAMS: dict[EventFamily, dict[str, Any]] = {
    EventFamily.ISOLATION_FOREST: {"n_estimators": 50, "max_samples": 256},
    EventFamily.UNSUPERVISED_FOREST: {"n_estimators": 30, "max_depth": 10, "min_samples_leaf": 50},
}


@dataclass
class EventModel:
    """A fitted per-event detector: the sklearn estimator, how record columns become its inputs, its threshold.

    :param feature_set: the name of the records' FeatureSet ("kddcup99", "trips"): the registry's trip_type.
    :param family: how the score is computed.
    :param features: model input names in the estimator's column order (the feature set's inputs).
    :param estimator: the fitted sklearn estimator.
    :param threshold: an event is flagged when its score is above this.
    :param encodings: symbolic column -> value -> its share of the training rows. One numeric column per field,
        ordered by how usual a value is, so a single split separates the usual values from the rare ones;
        a value never seen in training (or null) is 0.0, the rarest.
    :param centre: median of each input over the training rows (explanations).
    :param spread: robust scale of each input: 1.4826 x MAD, else the standard deviation where the MAD is 0, else 1.0
        for a column constant in training (its deviation is then the raw difference).
    :param training: rows, seed, params, threshold rule, training score quantiles, evaluation when known.
    """

    feature_set: str
    family: EventFamily
    features: tuple[str, ...]
    estimator: Any
    threshold: float
    encodings: dict[str, dict[str, float]]
    centre: np.ndarray
    spread: np.ndarray
    training: dict[str, Any] = field(default_factory=dict)

    # Inputs ---------------------------------------------------------------------------------------------------
    @property
    def records(self) -> FeatureSet:
        """The feature set of the records this model scores."""
        return feature_set_named(self.feature_set)

    def input_columns(self, records: DataFrame) -> list[Column]:
        """Native expressions from the record columns to the model inputs, in `features` order, each aliased to its
        feature name. Symbolic values are looked up in a literal map (unseen or null: 0.0); numeric inputs are the
        feature set's expressions, and null stays null (the trees route it as sklearn routes NaN)."""
        from pyspark.sql import functions as F

        feature_set = self.records
        feature_set.check_records(records.columns)
        numeric = feature_set.numeric_columns()
        columns = []
        for name in self.features:
            if name in self.encodings:
                pairs = [F.lit(x) for value, share in sorted(self.encodings[name].items()) for x in (value, share)]
                lookup = F.create_map(*pairs)[F.col(name).cast("string")] if pairs else F.lit(None)
                columns.append(F.coalesce(lookup.cast("double"), F.lit(0.0)).alias(name))
            else:
                columns.append(numeric[name].alias(name))
        return columns

    def inputs_numpy(self, records: pd.DataFrame) -> np.ndarray:
        """The same inputs on the driver (NaN where a numeric input is missing)."""
        feature_set = self.records
        feature_set.check_records(records.columns)
        numeric = feature_set.numeric_numpy(records)
        columns = []
        for name in self.features:
            if name in self.encodings:
                shares = self.encodings[name]
                codes = [shares.get(v, 0.0) if isinstance(v, str) else 0.0 for v in records[name]]
                columns.append(np.array(codes, dtype=np.float64))
            else:
                columns.append(numeric[name])
        return np.column_stack(columns)

    # Scores ---------------------------------------------------------------------------------------------------
    def score_column(self, inputs: Sequence[Column | str]) -> Column:
        """The score as one native expression of the inputs (in `features` order; plain column names keep the plan
        smallest). Higher is more anomalous: -score_samples for the IsolationForest, P(synthetic) for the forest."""
        from anomaly_detection.compiled_trees import forest_probability, isolation_forest_score

        self._check_inputs(inputs)
        if self.family is EventFamily.ISOLATION_FOREST:
            return -isolation_forest_score(self.estimator, inputs)
        return forest_probability(self.estimator, inputs, class_index=1)

    def score_udf_column(self, inputs: Sequence[Column | str]) -> Column:
        """The same score by a pandas UDF calling the sklearn estimator (the micro-batch fallback)."""
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.functions import pandas_udf

        self._check_inputs(inputs)
        family, estimator = self.family, self.estimator

        def score(*columns: pd.Series) -> pd.Series:
            x = np.column_stack([c.to_numpy(dtype=np.float64, na_value=np.nan) for c in columns])
            return pd.Series(_score_numpy(family, estimator, x))

        udf = pandas_udf(score, "double")  # type: ignore[call-overload]  # pyspark types a UDF by its arity
        return udf(*[F.col(c) if isinstance(c, str) else c for c in inputs])  # type: ignore[no-any-return]

    def score_numpy(self, x: np.ndarray) -> np.ndarray:
        """The sklearn reference of score_column on an inputs matrix (rows x features, NaN for missing)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"x: expected rows x {len(self.features)} inputs, got shape {x.shape}")
        return _score_numpy(self.family, self.estimator, x)

    def top_features_column(self, inputs: Sequence[Column | str]) -> Column:
        """Native: up to 3 structs {feature, deviation} of the inputs furthest from the training centre
        (deviation = (x - centre) / spread), only those with |deviation| >= 1, the largest |deviation| first (ties:
        `features` order); missing and NaN inputs name nothing."""
        from pyspark.sql import functions as F

        self._check_inputs(inputs)
        candidates = []
        for position, (name, x) in enumerate(zip(self.features, inputs, strict=True)):
            value = F.col(x) if isinstance(x, str) else x
            deviation = F.nanvl(
                (value - F.lit(float(self.centre[position]))) / F.lit(float(self.spread[position])), F.lit(None)
            )
            candidates.append(
                F.struct(
                    (-F.abs(deviation)).alias("order"),
                    F.lit(position).alias("position"),
                    F.lit(name).alias("feature"),
                    deviation.alias("deviation"),
                )
            )
        named = F.filter(F.array(*candidates), lambda c: F.abs(c["deviation"]) >= F.lit(EXPLAINED_MIN_DEVIATION))
        top = F.slice(F.sort_array(named), 1, TOP_FEATURE_COUNT)
        return F.transform(top, lambda c: F.struct(c["feature"].alias("feature"), c["deviation"].alias("deviation")))

    def _check_inputs(self, inputs: Sequence[Column | str]) -> None:
        if isinstance(inputs, str) or len(inputs) != len(self.features):
            raise ValueError(f"inputs: expected {len(self.features)} columns in features order, got {inputs!r:.80}")

    # Registry ---------------------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """What the registry records (metadata.json)."""
        return {
            "family": self.family.value,
            "feature_set": self.feature_set,
            "features": list(self.features),
            "threshold": self.threshold,
            "training": self.training,
        }

    def save_artifacts(self, spark: SparkSession, uri: str) -> None:
        """Nothing beside the pickle: the estimator is a Python object."""

    def load_artifacts(self, spark: SparkSession, uri: str) -> None:
        """Nothing to read back (see save_artifacts)."""


def _score_numpy(family: EventFamily, estimator: Any, x: np.ndarray) -> np.ndarray:
    if family is EventFamily.ISOLATION_FOREST:
        return -np.asarray(estimator.score_samples(x), dtype=np.float64)
    return np.asarray(estimator.predict_proba(x)[:, 1], dtype=np.float64)


# Fitting ------------------------------------------------------------------------------------------------------
def fit_event_model(
    records: pd.DataFrame,
    family: EventFamily,
    *,
    seed: int,
    params: Mapping[str, Any] | None = None,
    threshold_quantile: float = 0.99,
    feature_set: FeatureSet | str = KDD,
) -> EventModel:
    """Fit on the driver with sklearn. `records` are the training rows (see the module's docstring) with the
    feature set's record columns; `params` override DEFAULT_PARAMS and are the estimator's own parameters.

    threshold = the `threshold_quantile` of the training scores: 1 - threshold_quantile is the share of normal
    training traffic that is flagged. The forest's training scores are its out-of-bag scores of the real rows (a
    tree's score of a row it was fitted on is biased low; the in-bag quantile flagged 3.4 % of held-out normal
    rows instead of 1 % with unlimited depth)."""
    family = _family(family)
    chosen_set = feature_set_named(feature_set)
    if not 0.0 < threshold_quantile < 1.0:
        raise ValueError(f"threshold_quantile must be between 0 and 1 (exclusive), got {threshold_quantile!r}")
    chosen_set.check_records(records.columns)
    if len(records) < 2:
        raise ValueError(f"records: {len(records)} training row(s); at least 2 are needed")
    encodings = {c: _shares(records[c]) for c in chosen_set.symbolic}
    inputs = chosen_set.inputs
    model = EventModel(
        feature_set=chosen_set.name,
        family=family,
        features=inputs,
        estimator=None,
        threshold=float("nan"),
        encodings=encodings,
        centre=np.zeros(len(inputs)),
        spread=np.ones(len(inputs)),
    )
    x = model.inputs_numpy(records)
    model.centre, model.spread = _robust_centre_and_spread(x)
    chosen = {**DEFAULT_PARAMS[family], **_checked_params(family, params or {})}
    model.estimator, training_scores = _fit_estimator(family, x, chosen, seed)
    model.threshold = float(np.quantile(training_scores, threshold_quantile))
    model.training = {
        "rows": len(records),
        "seed": seed,
        "params": chosen,
        "threshold_rule": {"quantile": threshold_quantile, "of": _TRAINING_SCORES[family]},
        "training_flagged_share": float(np.mean(training_scores > model.threshold)),
        "training_score_quantiles": {str(q): float(np.quantile(training_scores, q)) for q in (0.5, 0.9, 0.99, 0.999)},
        "tree_nodes": int(sum(e.tree_.node_count for e in model.estimator.estimators_)),
    }
    return model


_TRAINING_SCORES = {
    EventFamily.ISOLATION_FOREST: "training rows' scores",
    EventFamily.UNSUPERVISED_FOREST: "real training rows' out-of-bag scores",
}


def _family(family: EventFamily | str) -> EventFamily:
    try:
        return EventFamily(family)
    except ValueError:
        names = ", ".join(f.value for f in EventFamily)
        raise ValueError(f"family must be one of {names}, got {family!r}") from None


def _estimator_class(family: EventFamily) -> Any:
    from sklearn.ensemble import IsolationForest, RandomForestClassifier

    return IsolationForest if family is EventFamily.ISOLATION_FOREST else RandomForestClassifier


def _checked_params(family: EventFamily, params: Mapping[str, Any]) -> dict[str, Any]:
    known = set(_estimator_class(family)().get_params())
    reserved = {"random_state", "oob_score", "bootstrap"} if family is EventFamily.UNSUPERVISED_FOREST else set()
    unknown = sorted(set(params) - (known - reserved - {"random_state"}))
    if unknown:
        raise ValueError(f"params: {', '.join(unknown)} not settable for {family.value}")
    return dict(params)


def _fit_estimator(family: EventFamily, x: np.ndarray, params: dict[str, Any], seed: int) -> tuple[Any, np.ndarray]:
    """The fitted estimator and the training scores its threshold comes from."""
    estimator_class = _estimator_class(family)
    if family is EventFamily.ISOLATION_FOREST:
        forest = estimator_class(random_state=seed, **params).fit(x)
        return forest, -forest.score_samples(x)
    rng = np.random.default_rng(seed)
    synthetic = np.column_stack([rng.choice(x[:, j], size=len(x)) for j in range(x.shape[1])])
    labelled = np.vstack([x, synthetic])
    is_synthetic = np.r_[np.zeros(len(x)), np.ones(len(synthetic))]
    forest = estimator_class(random_state=seed, oob_score=True, bootstrap=True, **params).fit(labelled, is_synthetic)
    out_of_bag = forest.oob_decision_function_[: len(x), 1]
    return forest, out_of_bag[np.isfinite(out_of_bag)]  # (a row in every tree's sample has no out-of-bag score)


def _shares(values: pd.Series) -> dict[str, float]:
    counts = values.dropna().astype(str).value_counts(normalize=True)
    return {str(k): float(v) for k, v in counts.items()}


def _robust_centre_and_spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = np.nanmedian(x, axis=0)
    spread = 1.4826 * np.nanmedian(np.abs(x - centre), axis=0)
    std = np.nanstd(x, axis=0)
    spread = np.where(spread > 0, spread, np.where(std > 0, std, 1.0))
    return centre, spread


# Scoring ------------------------------------------------------------------------------------------------------
def score_events(records: DataFrame, model: EventModel, *, native: bool = True) -> DataFrame:
    """`records` (the model's record columns, any others kept) with anomaly_score, is_anomaly and top_features.

    native=True compiles the estimator into the plan (no Python UDF); native=False scores with the pandas UDF.
    The inputs are materialised as columns first, so the compiled trees refer to them by name."""
    from pyspark.sql import functions as F

    names = [f"{_INPUT_PREFIX}{i}" for i in range(len(model.features))]
    with_inputs = records.select("*", *[c.alias(n) for c, n in zip(model.input_columns(records), names, strict=True)])
    score = model.score_column(names) if native else model.score_udf_column(names)
    scored = with_inputs.withColumn(SCORE, score)
    return scored.withColumns(
        {FLAG: F.col(SCORE) > F.lit(float(model.threshold)), TOP_FEATURES: model.top_features_column(names)}
    ).drop(*names)


# Evaluation ---------------------------------------------------------------------------------------------------
def evaluate(
    labels: Sequence[str] | np.ndarray | pd.Series,
    categories: Sequence[str] | np.ndarray | pd.Series,
    scores: Sequence[float] | np.ndarray | pd.Series,
    threshold: float,
) -> dict[str, Any]:
    """Attack vs normal at `threshold` (flagged: score > threshold): precision, recall, F1, the share of normal rows
    flagged, recall per attack category and per attack, and the counts."""
    label = np.asarray(labels, dtype=object)
    category = np.asarray(categories, dtype=object)
    score = np.asarray(scores, dtype=np.float64)
    if not len(label) == len(category) == len(score):
        raise ValueError(f"labels, categories, scores: lengths differ ({len(label)}, {len(category)}, {len(score)})")
    attack = label != NORMAL
    flagged = score > threshold
    true_positives = int(np.sum(flagged & attack))
    precision = true_positives / int(flagged.sum()) if flagged.any() else 0.0
    recall = true_positives / int(attack.sum()) if attack.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    normal_rows = int((~attack).sum())
    return {
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "normal_flagged_share": float(flagged[~attack].mean()) if normal_rows else 0.0,
        "recall_by_category": {
            c: float(flagged[category == c].mean()) for c in ATTACK_CATEGORY_NAMES if np.any(category == c)
        },
        "recall_by_attack": {str(a): float(flagged[label == a].mean()) for a in sorted(set(label[attack].tolist()))},
        "counts": {
            "rows": len(label),
            "attacks": int(attack.sum()),
            "normal": normal_rows,
            "flagged": int(flagged.sum()),
            "true_positives": true_positives,
            "false_positives": int(np.sum(flagged & ~attack)),
            "attacks_by_category": {c: int(np.sum(category == c)) for c in ATTACK_CATEGORY_NAMES},
        },
    }
