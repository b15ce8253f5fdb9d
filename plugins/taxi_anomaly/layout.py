"""Where everything is stored, stated once: the raw zone's keys, the model registry's layout and the run reports.

Raw zone (bucket `tap-raw`, or any Hadoop filesystem root):
    {prefix}tlc/{trip_type}/year=YYYY/month=MM/{trip_type}_tripdata_YYYY-MM.parquet   a landed month
    ... beside it: _manifest.json (written last: the month has landed), _validation.json, _validation.html
    {prefix}quarantine/tlc/...   the same keys for a rejected file, with _quarantine.json
    {prefix}tlc/misc/taxi_zone_lookup.csv
Sidecars start with `_` so that Spark and pyarrow datasets reading a `tlc/{trip_type}/` prefix skip them.

Model registry (bucket `tap-models`): {prefix}registry/{trip_type}/{granularity}/{version}/
    model.pkl, metadata.json (written last: the version is complete), artifacts/ (a family's own files)
    {prefix}registry/{trip_type}/{granularity}/promoted.json   the promotion pointer
    {prefix}registry/{trip_type}/{granularity}/candidates/     specs proposed by tuning runs
Versions are never overwritten; `latest` is the newest complete version (names sort by creation time).

Labels (bucket `tap-raw`, beside tlc/): {prefix}labels/{trip_type}/{trip_type}_tripdata_YYYY-MM.labels.json, the
labelled episodes of a month where a labelled source (the generator, an incident log) provides them.

Reports (bucket `tap-reports`): {prefix}pipeline/...

Iceberg tables (catalog `iceberg`, one namespace per deployment or sandbox): the names below; their schemas are
spark_jobs/anomaly_detection/tables.py's.
"""

from __future__ import annotations

import posixpath
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from taxi_anomaly import tlc
from taxi_anomaly.contract import InputLayout
from taxi_anomaly.tlc import YearMonth

RAW_ROOT = "tlc"
QUARANTINE_ROOT = "quarantine"
MANIFEST = "_manifest.json"
VALIDATION_JSON = "_validation.json"
VALIDATION_HTML = "_validation.html"
QUARANTINE_REPORT = "_quarantine.json"
ZONE_LOOKUP = f"{RAW_ROOT}/misc/taxi_zone_lookup.csv"

REGISTRY_ROOT = "registry"
MODEL_FILE = "model.pkl"
# A window model's seasonal profile beside it, as Parquet: Spark reads it (a frame built from the pickled pandas
# copy travels inside its tasks: 7.6 MiB at zone level).
PROFILE_FILE = "profile.parquet"
METADATA_FILE = "metadata.json"
ARTIFACTS_DIR = "artifacts"
CANDIDATES_DIR = "candidates"
POINTER = "promoted.json"

LABELS_ROOT = "labels"
REPORTS_ROOT = "pipeline"

CATALOG = "iceberg"
TRIPS_TABLE = "trips_normalised"
WINDOWS_TABLE = "window_features"
WINDOWS_VIEW = "window_features_current"  # what readers query (taxi_anomaly.serving.views)
SCORES_TABLE = "anomaly_scores"
EVALUATIONS_TABLE = "model_evaluations"
TRIALS_TABLE = "tuning_trials"

_MANIFEST_KEY = re.compile(
    rf"{RAW_ROOT}/(?P<trip_type>[a-z]+)/year=(?P<year>\d{{4}})/month=(?P<month>\d{{2}})/{re.escape(MANIFEST)}$"
)
_VERSION = re.compile(r"^v\d{8}T\d{6}-[0-9a-f]{6}$")


# Raw zone ---------------------------------------------------------------------------------------------------
def raw_key(trip_type: str, month: YearMonth) -> str:
    """tlc/{trip_type}/year=YYYY/month=MM/{trip_type}_tripdata_YYYY-MM.parquet (no prefix)."""
    return posixpath.join(RAW_ROOT, _partition(trip_type, month), tlc.file_name(trip_type, month))


def _partition(trip_type: str, month: YearMonth) -> str:
    return f"{tlc.check_trip_type(trip_type)}/year={month.year:04d}/month={month.month:02d}"


def raw_uri(filesystem_root: str, prefix: str = "") -> str:
    """The raw zone root the Spark job reads, e.g. raw_uri('s3a://tap-raw', 'demo/') -> s3a://tap-raw/demo/tlc."""
    return f"{filesystem_root.rstrip('/')}/{prefix}{RAW_ROOT}"


def raw_path(root: str, trip_type: str, month: str, layout: InputLayout = InputLayout.PARTITIONED) -> str:
    """Where the job finds a month's file under a raw zone root (raw_uri) or a flat folder of TLC files."""
    ym = YearMonth.parse(month)
    name = tlc.file_name(trip_type, ym)
    if layout is InputLayout.FLAT:
        return f"{root.rstrip('/')}/{name}"
    return f"{root.rstrip('/')}/{_partition(trip_type, ym)}/{name}"


def zones_uri(raw_root: str) -> str:
    """The zone lookup under a raw zone root (raw_uri)."""
    return f"{raw_root.rstrip('/')}/{ZONE_LOOKUP.removeprefix(RAW_ROOT + '/')}"


def landed_months(keys: Iterable[str], trip_type: str) -> list[str]:
    """Months with a manifest (a completed landing) among raw-zone keys, oldest first."""
    found = set()
    for key in keys:
        match = _MANIFEST_KEY.search(key)
        if match and match["trip_type"] == trip_type:
            found.add(f"{match['year']}-{match['month']}")
    return sorted(found)


@dataclass(frozen=True)
class FileKeys:
    """Where one source file lives, once landed or once quarantined, with its sidecars."""

    data: str
    quarantine: str

    @staticmethod
    def beside(key: str, name: str) -> str:
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
    key = raw_key(trip_type, month)
    return FileKeys(prefix + key, posixpath.join(prefix + QUARANTINE_ROOT, key))


def zone_lookup_keys(prefix: str = "") -> FileKeys:
    return FileKeys(prefix + ZONE_LOOKUP, posixpath.join(prefix + QUARANTINE_ROOT, ZONE_LOOKUP))


# Model registry ---------------------------------------------------------------------------------------------
def registry_uri(filesystem_root: str, prefix: str = "") -> str:
    """The registry root the Spark job uses, e.g. registry_uri('s3a://tap-models', 'demo/')."""
    return f"{filesystem_root.rstrip('/')}/{prefix}{REGISTRY_ROOT}"


def registry_key(prefix: str, trip_type: str, granularity: str, *parts: str) -> str:
    """A key under the registry root in its bucket: {prefix}registry/{trip_type}/{granularity}/{parts...}."""
    return "/".join([f"{prefix}{REGISTRY_ROOT}", trip_type, str(granularity), *parts])


def new_version_name(now: datetime | None = None) -> str:
    """v{UTC time}-{6 hex}: sorts by creation time; the suffix tells apart two versions of the same second."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"v{moment:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def candidate_path(registry_root: str, trip_type: str, granularity: str, detector: str, run_id: str) -> str:
    """Where a tuning run writes its best spec: {registry}/{trip_type}/{granularity}/candidates/{detector}-{run}.yaml
    (not a version: versions are named v...)."""
    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return "/".join([registry_root.rstrip("/"), trip_type, granularity, CANDIDATES_DIR, f"{detector}-{safe_run}.yaml"])


def complete_versions(paths: Iterable[str]) -> list[str]:
    """Version names whose metadata.json exists, oldest first, from paths relative to a (trip type, granularity)
    directory of the registry (e.g. 'v20260105T060000-1a2b3c/metadata.json'); anything else is ignored."""
    found = set()
    for path in paths:
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[1] == METADATA_FILE and _VERSION.match(parts[0]):
            found.add(parts[0])
    return sorted(found)


# Labels -----------------------------------------------------------------------------------------------------
def labels_uri(filesystem_root: str, prefix: str = "") -> str:
    """The labels root the Spark job reads, e.g. labels_uri('s3a://tap-raw', 'demo/')."""
    return f"{filesystem_root.rstrip('/')}/{prefix}{LABELS_ROOT}"


def labels_key(trip_type: str, month: YearMonth) -> str:
    """labels/{trip_type}/{trip_type}_tripdata_YYYY-MM.labels.json (no prefix)."""
    return posixpath.join(LABELS_ROOT, tlc.check_trip_type(trip_type), tlc.file_name(trip_type, month, ".labels.json"))


def labels_path(root: str, trip_type: str, month: str) -> str:
    """A month's labels file under a labels root (labels_uri)."""
    return f"{root.rstrip('/')}/{labels_key(trip_type, YearMonth.parse(month)).removeprefix(LABELS_ROOT + '/')}"


# Tables -----------------------------------------------------------------------------------------------------
def sql_table(namespace: str, table: str) -> str:
    """A table's name for SQL text, every part checked and quoted: "iceberg"."taxi"."anomaly_scores"."""
    from taxi_anomaly.contract import check_namespace

    check_namespace(namespace)
    check_namespace(table, "table")
    return f'"{CATALOG}"."{namespace}"."{table}"'


# Reports ----------------------------------------------------------------------------------------------------
def report_key(prefix: str, *parts: str) -> str:
    return "/".join([f"{prefix}{REPORTS_ROOT}", *parts])
