"""k-means (Spark MLlib, fitted on the executors): the distance of a window's inputs to the nearest centroid,
scored natively from the centroids (no Python at scoring time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from taxi_anomaly.detectors.base import SCORE, FamilyParams, WindowDetector, bounded

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.ml.clustering import KMeansModel
    from pyspark.sql import Column, DataFrame


@dataclass(frozen=True)
class KMeansParams(FamilyParams):
    k: int = bounded(8, 2, 200, "clusters")
    max_iter: int = bounded(30, 5, 500, "iterations of Lloyd's algorithm")
    trim: float = bounded(0.05, 0.0, 0.5, "share of the farthest training windows left out of a second fit")


class KMeansDetector(WindowDetector):
    """Windows far from every cluster of the history score high: the score is the Euclidean distance to the nearest
    centroid, in standardised input units.

    Trimmed k-means: the history holds incidents too, and a plain fit gives them centroids of their own, so a new
    incident of a kind seen before sits next to one and scores low (measured on generated windows: a 30-sd distance
    shift scored 1.5 against a threshold of 3.7). The second fit leaves out the `trim` share of the windows
    farthest from the first fit's centroids.
    """

    family = "kmeans"
    Params = KMeansParams
    description = "Spark MLlib KMeans, fitted on the executors; distance to the nearest centroid, scored natively"

    centroids: np.ndarray = np.zeros((0, 0))

    def _fit(self, inputs: DataFrame) -> None:
        from pyspark.ml.clustering import KMeans
        from pyspark.ml.feature import VectorAssembler
        from pyspark.sql import functions as F

        params: KMeansParams = self.params  # type: ignore[assignment]
        kmeans = KMeans(k=params.k, maxIter=params.max_iter, seed=self.spec.seed, featuresCol="_x")
        assembler = VectorAssembler(inputCols=list(self.features), outputCol="_x")
        vectors = assembler.transform(inputs).select("_x", *self.features).cache()
        try:
            self.centroids = _centres(kmeans.fit(vectors))
            if params.trim > 0:
                distance = self._distance([F.col(c) for c in self.features])
                cut = vectors.select(distance.alias("_d")).approxQuantile("_d", [1 - params.trim], 0.001)[0]
                self.centroids = _centres(kmeans.fit(vectors.where(distance <= F.lit(cut))))
        finally:
            vectors.unpersist()

    def fitted_params(self) -> dict[str, Any]:
        return {"centroids": len(self.centroids)}

    def _distance(self, inputs: list[Column]) -> Column:
        """Distance from the inputs to the nearest centroid, natively."""
        from pyspark.sql import functions as F

        distances = [
            F.sqrt(sum(((x - F.lit(float(c))) ** 2 for x, c in zip(inputs, centroid, strict=True)), F.lit(0.0)))
            for centroid in self.centroids
        ]
        return F.least(*distances) if len(distances) > 1 else distances[0]

    def _score(self, frame: DataFrame) -> DataFrame:
        return frame.withColumn(SCORE, self._distance(self.input_columns()))

    def score_pandas(self, frame: pd.DataFrame) -> np.ndarray:
        inputs = self.inputs_pandas(frame[list(self.features)].to_numpy(dtype=np.float64))
        squared = ((inputs[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        distances: np.ndarray = np.sqrt(squared.min(axis=1))
        return distances


def _centres(model: KMeansModel) -> np.ndarray:
    return np.array([np.asarray(c, dtype=np.float64) for c in model.clusterCenters()])
