"""Versioned model registry on any Hadoop filesystem (s3a://, hdfs://, file://) through Spark's JVM.

Layout: {models_uri}/{trip_type}/{granularity}/{version}/model.pkl + metadata.json. A version directory is
complete once metadata.json exists (written last); `latest` is the newest complete version. Versions are never
overwritten: saving into an existing version fails.
"""

from __future__ import annotations

import json
import pickle  # noqa: S403 - the registry is the platform's own bucket; models are only loaded from there
import platform
import uuid
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata

from pyspark.sql import SparkSession

from anomaly_detection.model import ModelBundle

LIBRARIES = ("scikit-learn", "numpy", "pandas", "pyarrow", "pyspark")


class ModelRegistryError(RuntimeError):
    pass


class ModelRegistry:
    """Read and write model versions under models_uri using the session's Hadoop configuration."""

    def __init__(self, spark: SparkSession, models_uri: str) -> None:
        self.spark = spark
        self.models_uri = models_uri.rstrip("/")

    # Hadoop FileSystem plumbing ----------------------------------------------------------------------------
    def _path(self, *parts: str):
        jvm = self.spark.sparkContext._jvm
        return jvm.org.apache.hadoop.fs.Path("/".join([self.models_uri, *parts]))

    def _fs(self, path):
        return path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())

    def _write_bytes(self, data: bytes, *parts: str) -> None:
        path = self._path(*parts)
        stream = self._fs(path).create(path, False)  # overwrite=False: never replace an existing file
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def _read_bytes(self, *parts: str) -> bytes:
        path = self._path(*parts)
        fs = self._fs(path)
        if not fs.exists(path):
            raise ModelRegistryError(f"{path.toString()} does not exist")
        stream = fs.open(path)
        try:  # a byte[] returned by a Java method arrives in Python as a bytearray (commons-io ships with Spark)
            return bytes(self.spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    # API ----------------------------------------------------------------------------------------------------
    def versions(self, trip_type: str, granularity: str) -> list[str]:
        """Complete versions, oldest first (version names sort by creation time)."""
        base = self._path(trip_type, granularity)
        fs = self._fs(base)
        if not fs.exists(base):
            return []
        names = [status.getPath().getName() for status in fs.listStatus(base) if status.isDirectory()]
        return sorted(n for n in names if fs.exists(self._path(trip_type, granularity, n, "metadata.json")))

    def save(self, bundle: ModelBundle, trip_type: str, granularity: str, info: dict) -> str:
        """Store a new version; returns its name (UTC timestamp + short random suffix)."""
        version = f"v{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        parts = (trip_type, granularity, version)
        if self._fs(self._path(*parts)).exists(self._path(*parts)):
            raise ModelRegistryError(f"model version {version} already exists")
        model = bundle.model
        self._write_bytes(pickle.dumps(bundle), *parts, "model.pkl")
        meta = {
            "version": version,
            "trip_type": trip_type,
            "granularity": granularity,
            "created_at": datetime.now(UTC).isoformat(),
            "features": list(model.features),
            "params": model.params,
            "threshold": model.threshold,
            "training_rows": model.training_rows,
            "training_score_quantiles": model.training_score_quantiles,
            "libraries": {lib: importlib_metadata.version(lib) for lib in LIBRARIES},
            "python": platform.python_version(),
            **info,
        }
        self._write_bytes(json.dumps(meta, indent=2, default=str).encode(), *parts, "metadata.json")
        return version

    def resolve(self, trip_type: str, granularity: str, version: str = "latest") -> str:
        versions = self.versions(trip_type, granularity)
        if not versions:
            raise ModelRegistryError(
                f"no trained model under {self.models_uri}/{trip_type}/{granularity}: run with --mode train first"
            )
        if version == "latest":
            return versions[-1]
        if version not in versions:
            raise ModelRegistryError(f"model version {version!r} not found; available: {', '.join(versions)}")
        return version

    def promoted_version(self, trip_type: str, granularity: str) -> str:
        """The version the promotion pointer names (written by the retraining DAG, see orchestration.promotion)."""
        from taxi_anomaly.orchestration.promotion import POINTER

        try:
            document = json.loads(self._read_bytes(trip_type, granularity, POINTER))
        except ModelRegistryError:
            raise ModelRegistryError(
                f"no promoted {trip_type}/{granularity} model ({self.models_uri}/{trip_type}/{granularity}/{POINTER}"
                " is missing): run tap_weekly_retrain first"
            ) from None
        return self.resolve(trip_type, granularity, str(document["version"]))

    def load(self, trip_type: str, granularity: str, version: str = "latest") -> tuple[ModelBundle, dict]:
        resolved = self.resolve(trip_type, granularity, version)
        meta = json.loads(self._read_bytes(trip_type, granularity, resolved, "metadata.json"))
        bundle = pickle.loads(self._read_bytes(trip_type, granularity, resolved, "model.pkl"))  # noqa: S301
        return bundle, meta
