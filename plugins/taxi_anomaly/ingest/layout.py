"""Object keys of the raw zone: a month's data file and the sidecar files (manifest, reports) next to it.

Sidecars start with `_` so that Spark and pyarrow datasets reading a `tlc/{trip_type}/` prefix skip them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from taxi_anomaly import tlc
from taxi_anomaly.tlc import YearMonth

MANIFEST = "_manifest.json"
VALIDATION_JSON = "_validation.json"
VALIDATION_HTML = "_validation.html"
QUARANTINE_REPORT = "_quarantine.json"
ZONE_LOOKUP_KEY = "tlc/misc/taxi_zone_lookup.csv"


@dataclass(frozen=True)
class FileKeys:
    """Where one source file lives, once landed or once quarantined."""

    data: str
    quarantine: str

    def beside(self, key: str, name: str) -> str:
        return posixpath.join(posixpath.dirname(key), name)

    @property
    def manifest(self) -> str:
        return self.beside(self.data, MANIFEST)

    @property
    def validation_json(self) -> str:
        return self.beside(self.data, VALIDATION_JSON)

    @property
    def validation_html(self) -> str:
        return self.beside(self.data, VALIDATION_HTML)

    @property
    def quarantine_report(self) -> str:
        return self.beside(self.quarantine, QUARANTINE_REPORT)

    @property
    def quarantine_validation_json(self) -> str:
        return self.beside(self.quarantine, VALIDATION_JSON)

    @property
    def quarantine_validation_html(self) -> str:
        return self.beside(self.quarantine, VALIDATION_HTML)

    @property
    def landed(self) -> tuple[str, ...]:
        return (self.data, self.manifest, self.validation_json, self.validation_html)

    @property
    def quarantined(self) -> tuple[str, ...]:
        return (
            self.quarantine,
            self.quarantine_report,
            self.quarantine_validation_json,
            self.quarantine_validation_html,
        )


def month_keys(trip_type: str, month: YearMonth, prefix: str = "") -> FileKeys:
    """Keys of a month's file: {prefix}tlc/{trip_type}/year=YYYY/month=MM/{file} and {prefix}quarantine/tlc/..."""
    return FileKeys(prefix + tlc.raw_key(trip_type, month), prefix + tlc.quarantine_key(trip_type, month))


def zone_lookup_keys(prefix: str = "") -> FileKeys:
    return FileKeys(prefix + ZONE_LOOKUP_KEY, prefix + "quarantine/" + ZONE_LOOKUP_KEY)
