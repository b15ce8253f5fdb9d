"""Where a run reads and writes: the buckets of the tap_s3 connection and the run's key prefix, as the URIs and keys
of taxi_anomaly.layout, and the one constructor of the anomaly job's description from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taxi_anomaly import layout
from taxi_anomaly.contract import AnomalyJob, Granularity


@dataclass(frozen=True)
class Locations:
    """Buckets (from the Airflow connection tap_s3's extra) and a key prefix.

    :param raw_bucket: raw zone bucket (TLC files, manifests, validation reports).
    :param models_bucket: model registry bucket (versions and the promoted pointer).
    :param reports_bucket: run records and evaluation reports.
    :param prefix: prepended to every key ('' in production, 'name/' in tests and demos).
    :param raw_root: the raw zone's root as Spark reads it (the connection's extra `raw_root`): s3a://{raw_bucket}
        by default, hdfs://namenode:port/{raw_bucket} when the raw zone is in HDFS.
    """

    raw_bucket: str = "tap-raw"
    models_bucket: str = "tap-models"
    reports_bucket: str = "tap-reports"
    prefix: str = ""
    raw_root: str = ""

    def __post_init__(self) -> None:
        if self.prefix and not self.prefix.endswith("/"):
            raise ValueError(f"a key prefix must end with '/', got {self.prefix!r}")

    @classmethod
    def from_connection(cls, conn: Any, prefix: str = "") -> Locations:
        extra = getattr(conn, "extra_dejson", None) or {}
        defaults = cls()
        return cls(
            raw_bucket=extra.get("raw_bucket", defaults.raw_bucket),
            models_bucket=extra.get("models_bucket", defaults.models_bucket),
            reports_bucket=extra.get("reports_bucket", defaults.reports_bucket),
            prefix=prefix,
            raw_root=extra.get("raw_root", ""),
        )

    @property
    def raw_uri(self) -> str:
        return layout.raw_uri(self.raw_root or f"s3a://{self.raw_bucket}", self.prefix)

    @property
    def models_uri(self) -> str:
        return layout.registry_uri(f"s3a://{self.models_bucket}", self.prefix)

    @property
    def zones_uri(self) -> str:
        return layout.zones_uri(self.raw_uri)

    @property
    def labels_uri(self) -> str:
        return layout.labels_uri(f"s3a://{self.raw_bucket}", self.prefix)

    def models_key(self, trip_type: str, granularity: str, *parts: str) -> str:
        """Key in the models bucket under the registry root, e.g. (yellow, city, 'promoted.json')."""
        return layout.registry_key(self.prefix, trip_type, granularity, *parts)

    def report_key(self, *parts: str) -> str:
        return layout.report_key(self.prefix, *parts)

    def job(self, **fields: Any) -> AnomalyJob:
        """An AnomalyJob reading and writing here (borough jobs also get the zone lookup)."""
        fields.setdefault("raw_uri", self.raw_uri)
        fields.setdefault("models_uri", self.models_uri)
        fields.setdefault("labels_uri", self.labels_uri)
        if fields.get("granularity") == Granularity.BOROUGH:
            fields.setdefault("zones_uri", self.zones_uri)
        return AnomalyJob(**fields)
