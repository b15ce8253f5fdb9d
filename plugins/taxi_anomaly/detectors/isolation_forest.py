"""scikit-learn's IsolationForest on the dead-zoned, standardised deviations: fitted on the driver, scored in
vectorised pandas UDFs (whole Arrow batches) on the executors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd  # at module level: the pandas UDF's type hints are resolved in this module's namespace

from taxi_anomaly.detectors.base import SCORE, FamilyParams, WindowDetector, bounded

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class IsolationForestParams(FamilyParams):
    # 100 trees is scikit-learn's default (scores are steady well before; scoring cost grows linearly with trees).
    n_estimators: int = bounded(100, 10, 2000, "trees of the forest")
    # 0: the tree_sample_size rule below.
    max_samples: int = bounded(
        0, 0, 100_000, "windows each tree is grown on (0: 1/32 of the training windows, 256-1024)"
    )


def tree_sample_size(training_windows: int) -> int:
    """Windows each tree is grown on: 1/32 of the training windows, at least scikit-learn's 256, at most 1024.
    City history (~4.4 k windows) keeps 256; borough and zone history get 1024. Measured on generated borough
    months (35 k training windows), top-40 flags: precision 0.70 with 256-window trees, 0.90 with 1024; at city
    level 1024 was worse (0.77 -> 0.68 at the same contamination)."""
    return min(training_windows, max(256, min(1024, training_windows // 32)))


class IsolationForestDetector(WindowDetector):
    """Isolation forest (Liu et al.): windows isolated by few random splits score high. The score is the negated
    scikit-learn `score_samples` (about 0.3 for ordinary windows to 0.8+ for extreme ones)."""

    family = "isolation_forest"
    Params = IsolationForestParams
    description = "scikit-learn IsolationForest, fitted on the driver, scored in pandas UDFs"
    scores_in_python_workers = True

    forest: Any = None
    max_samples = 0

    def _fit(self, inputs: DataFrame) -> None:
        from sklearn.ensemble import IsolationForest

        matrix = inputs.toPandas().to_numpy(dtype=np.float64)
        params: IsolationForestParams = self.params  # type: ignore[assignment]
        self.max_samples = params.max_samples or tree_sample_size(len(matrix))
        self.forest = IsolationForest(
            n_estimators=params.n_estimators,
            max_samples=min(self.max_samples, len(matrix)),
            random_state=self.spec.seed,
            n_jobs=1,
        ).fit(matrix)

    def fitted_params(self) -> dict[str, Any]:
        return {"max_samples_used": self.max_samples}

    def scores_of_inputs(self, inputs: np.ndarray, quiet: np.ndarray) -> np.ndarray:
        """Forest scores of standardised inputs. Rows entirely inside the dead zone (`quiet`) all look alike to
        the forest, so it scores one of them and copies the score (the same number). Most windows are such rows
        (99.5 % of the zone windows of a generated fhvhv month: the forest's cost fell from 3.8 to 0.23 µs a
        window)."""
        scores = np.empty(len(inputs))
        if quiet.any():
            scores[quiet] = -self.forest.score_samples(inputs[quiet][:1])[0]
        if not quiet.all():
            scores[~quiet] = -self.forest.score_samples(inputs[~quiet])
        return scores

    def score_pandas(self, frame: pd.DataFrame) -> np.ndarray:
        deviations = frame[list(self.features)].to_numpy(dtype=np.float64)
        quiet = (np.abs(deviations) <= self.dead_zone).all(axis=1)
        return self.scores_of_inputs(self.inputs_pandas(deviations), quiet)

    def _score(self, frame: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.functions import pandas_udf

        get_detector = shared(frame, self)
        columns = list(self.features)

        @pandas_udf("double")  # type: ignore[call-overload, untyped-decorator]  # pyspark's typing of pandas_udf
        def forest_score(inputs: pd.DataFrame, quiet: pd.Series) -> pd.Series:
            detector = get_detector()
            matrix = inputs[columns].to_numpy(dtype=np.float64)
            return pd.Series(detector.scores_of_inputs(matrix, quiet.to_numpy(dtype=bool)))

        inputs = F.struct(*[x.alias(c) for x, c in zip(self.input_columns(), columns, strict=True)])
        return frame.withColumn(SCORE, forest_score(inputs, self.quiet()))


def shared(frame: DataFrame, value: Any) -> Any:
    """A function that returns `value` inside a UDF: through a broadcast variable in a classic session (the task
    carries only its handle), captured in the UDF's closure under Spark Connect (which has no SparkContext)."""
    try:
        broadcast = frame.sparkSession.sparkContext.broadcast(value)
    except Exception:  # noqa: BLE001 - Spark Connect: no SparkContext
        return lambda: value
    return lambda: broadcast.value
