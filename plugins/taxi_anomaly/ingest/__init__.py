"""Ingestion of TLC monthly files into the raw zone: download, integrity, normalisation, validation, quarantine.

Modules, one concept each: settings, storage (S3), mirror (local CDN stand-in), download,
integrity, metadata (official listing), schema (canonical schemas), validation (Great Expectations),
quarantine, manifest, pipeline (`ingest_month`, the function Airflow tasks call). See docs/ingestion.md.

Importing this package is cheap (no pyarrow, pandas or GX): `ingest_month` and friends load on first use.
"""

from __future__ import annotations

from typing import Any

from taxi_anomaly.ingest.settings import IngestSettings, S3Settings

_PIPELINE = ("IngestFailed", "IngestOutcome", "Status", "ingest_month", "ingest_months", "ingest_zone_lookup")

__all__ = ["IngestSettings", "S3Settings", *_PIPELINE]


def __getattr__(name: str) -> Any:
    if name in _PIPELINE:
        from taxi_anomaly.ingest import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
