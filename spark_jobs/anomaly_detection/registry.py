"""Versioned model registry on any Hadoop filesystem (s3a://, hdfs://, file://) through Spark's JVM.

The layout (version directories, metadata.json written last, the promotion pointer) is taxi_anomaly.layout's.
Versions are never overwritten: saving into an existing version fails.
"""

from __future__ import annotations

import io
import json
import pickle  # noqa: S403 - the registry is the platform's own bucket; models are only loaded from there
import platform
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any, Protocol, TypeVar, overload

import pandas as pd
from pyspark.sql import SparkSession

from anomaly_detection import hadoop_fs
from anomaly_detection.model import ModelBundle
from taxi_anomaly import layout

LIBRARIES = ("scikit-learn", "numpy", "pandas", "pyarrow", "pyspark")


class ModelRegistryError(RuntimeError):
    pass


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """A pandas frame as one Parquet file's bytes (written on the driver: no Spark task carries the rows)."""
    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)
    return sink.getvalue()


class StoredModel(Protocol):
    """What the registry stores beside a window model's bundle: a per-event model (event_models.EventModel)."""

    def metadata(self) -> dict[str, Any]: ...

    def save_artifacts(self, spark: SparkSession, uri: str) -> None: ...

    def load_artifacts(self, spark: SparkSession, uri: str) -> None: ...


StoredT = TypeVar("StoredT")


class ModelRegistry:
    """Read and write model versions under models_uri using the session's Hadoop configuration."""

    def __init__(self, spark: SparkSession, models_uri: str) -> None:
        self.spark = spark
        self.models_uri = models_uri.rstrip("/")

    def uri(self, *parts: str) -> str:
        return "/".join([self.models_uri, *parts])

    def _read(self, *parts: str) -> bytes:
        try:
            return hadoop_fs.read_bytes(self.spark, self.uri(*parts))
        except hadoop_fs.MissingFile as err:
            raise ModelRegistryError(str(err)) from None

    # API ----------------------------------------------------------------------------------------------------
    def versions(self, trip_type: str, granularity: str) -> list[str]:
        """Complete versions, oldest first."""
        names = hadoop_fs.directories(self.spark, self.uri(trip_type, granularity))
        present = [
            f"{name}/{layout.METADATA_FILE}"
            for name in names
            if hadoop_fs.exists(self.spark, self.uri(trip_type, granularity, name, layout.METADATA_FILE))
        ]
        return layout.complete_versions(present)

    def save(
        self,
        bundle: ModelBundle | StoredModel,
        trip_type: str,
        granularity: str,
        info: dict[str, Any],
        version: str | None = None,
    ) -> str:
        """Store a new version (model.pkl, the detector's artifacts, then metadata.json); returns its name.

        `bundle` is a window model's bundle, or a per-event model (trip_type: its feature set, granularity "event")."""
        version = version or layout.new_version_name()
        parts = (trip_type, granularity, version)
        if hadoop_fs.exists(self.spark, self.uri(*parts)):
            raise ModelRegistryError(f"model version {version} already exists")
        detector = bundle.detector if isinstance(bundle, ModelBundle) else bundle
        if isinstance(bundle, ModelBundle):
            bundle = replace(bundle, profile_uri=None)  # the loaded copy points at its own version's file
            hadoop_fs.write_bytes(self.spark, self.uri(*parts, layout.PROFILE_FILE), parquet_bytes(bundle.profile))
        hadoop_fs.write_bytes(self.spark, self.uri(*parts, layout.MODEL_FILE), pickle.dumps(bundle))
        detector.save_artifacts(self.spark, self.uri(*parts, layout.ARTIFACTS_DIR))
        meta = {
            "version": version,
            "trip_type": trip_type,
            "granularity": granularity,
            "created_at": datetime.now(UTC).isoformat(),
            **detector.metadata(),
            "libraries": {lib: importlib_metadata.version(lib) for lib in LIBRARIES},
            "python": platform.python_version(),
            **info,
        }
        document = json.dumps(meta, indent=2, default=str).encode()
        hadoop_fs.write_bytes(self.spark, self.uri(*parts, layout.METADATA_FILE), document)
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
        try:
            document = json.loads(self._read(trip_type, granularity, layout.POINTER))
        except ModelRegistryError:
            where = self.uri(trip_type, granularity, layout.POINTER)
            raise ModelRegistryError(
                f"no promoted {trip_type}/{granularity} model ({where} is missing): run tap_weekly_retrain first"
            ) from None
        return self.resolve(trip_type, granularity, str(document["version"]))

    def metadata(self, trip_type: str, granularity: str, version: str) -> dict[str, Any]:
        return dict(json.loads(self._read(trip_type, granularity, version, layout.METADATA_FILE)))

    @overload
    def load(self, trip_type: str, granularity: str, version: str = "latest") -> tuple[ModelBundle, dict[str, Any]]: ...

    @overload
    def load(
        self, trip_type: str, granularity: str, version: str = "latest", *, kind: type[StoredT]
    ) -> tuple[StoredT, dict[str, Any]]: ...

    def load(
        self, trip_type: str, granularity: str, version: str = "latest", *, kind: type[Any] = ModelBundle
    ) -> tuple[Any, dict[str, Any]]:
        """A version and its metadata; `kind` is what it must hold (a window model's bundle unless told, e.g.
        kind=EventModel for a per-event model)."""
        resolved = self.resolve(trip_type, granularity, version)
        meta = self.metadata(trip_type, granularity, resolved)
        stored = pickle.loads(self._read(trip_type, granularity, resolved, layout.MODEL_FILE))  # noqa: S301
        if not isinstance(stored, kind):
            raise ModelRegistryError(
                f"{self.uri(trip_type, granularity, resolved)} holds a {type(stored).__name__}, not a {kind.__name__}"
            )
        detector = stored.detector if isinstance(stored, ModelBundle) else stored
        if isinstance(stored, ModelBundle):
            profile_uri = self.uri(trip_type, granularity, resolved, layout.PROFILE_FILE)
            stored.profile_uri = profile_uri if hadoop_fs.exists(self.spark, profile_uri) else None
        detector.load_artifacts(self.spark, self.uri(trip_type, granularity, resolved, layout.ARTIFACTS_DIR))
        return stored, meta

    def promote(self, trip_type: str, granularity: str, version: str, reason: str, **details: Any) -> dict[str, Any]:
        """Write the promotion pointer (layout.POINTER) naming `version`, replacing the previous one; returns it.
        The retraining DAG writes it after its evaluation gate (orchestration.promotion); this is for a job that
        promotes on the operator's word (run_event_training --promote)."""
        resolved = self.resolve(trip_type, granularity, version)
        try:
            previous = json.loads(self._read(trip_type, granularity, layout.POINTER)).get("version")
        except ModelRegistryError:
            previous = None
        document = {
            "version": resolved,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": reason,
            **details,
            "previous": previous,
        }
        encoded = json.dumps(document, indent=2, default=str).encode()
        hadoop_fs.write_bytes(self.spark, self.uri(trip_type, granularity, layout.POINTER), encoded, overwrite=True)
        return document
