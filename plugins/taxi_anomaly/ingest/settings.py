"""Typed settings of the ingestion: where files come from, where they go, how hard to retry, what to enforce."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from taxi_anomaly.tlc import DEFAULT_BASE_URL

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DATA_ENV = "TAP_SHARED_DATA_DIR"
S3_CONN_ENV = "AIRFLOW_CONN_TAP_S3"
HDFS_CONN_ENV = "AIRFLOW_CONN_TAP_HDFS"
RAW_STORES = ("s3", "hdfs")

# Where trip files may come from (a base URL anywhere else is refused: it would let a trigger parameter make the
# worker fetch internal services). The TLC's CDN always; the local platform's mirror (TAP_MIRROR_URL, set by
# local_platform for Airflow and the demo); more origins, comma separated, in TAP_ALLOWED_SOURCES.
MIRROR_URL_ENV = "TAP_MIRROR_URL"
ALLOWED_SOURCES_ENV = "TAP_ALLOWED_SOURCES"


def origin(url: str) -> str:
    """scheme://host:port of a URL (default ports made explicit), lower case; ValueError if it is not http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError(f"{url!r} carries a user name or password; a source URL may not")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def allowed_sources_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The origins trip files may come from: the TLC's CDN, the local mirror and TAP_ALLOWED_SOURCES."""
    env = os.environ if environ is None else environ
    extra = [u for u in env.get(ALLOWED_SOURCES_ENV, "").split(",") if u.strip()]
    mirror = [env[MIRROR_URL_ENV]] if env.get(MIRROR_URL_ENV) else []
    return tuple(dict.fromkeys(origin(u) for u in [DEFAULT_BASE_URL, *mirror, *extra]))


def shared_data_dir() -> Path:
    """The reference data folder: $TAP_SHARED_DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get(SHARED_DATA_ENV) or REPO_ROOT.parent / "shared" / "data")


def default_metadata_dir() -> Path | None:
    """The TLC's official per-file listing, if this machine has it (None turns the official checks off)."""
    path = shared_data_dir() / "tlc" / "metadata"
    return path if path.is_dir() else None


def default_suites_dir() -> Path:
    return REPO_ROOT / "include" / "great_expectations" / "expectations"


@dataclass(frozen=True)
class S3Settings:
    """How to reach the S3-compatible object store (the parts of the Airflow connection `tap_s3` used here).

    :param endpoint_url: e.g. ``http://127.0.0.1:9000``; the scheme decides TLS.
    :param access_key: S3 access key (the connection's login).
    :param secret_key: S3 secret key (the connection's password); never shown in repr.
    :param region: S3 region name; MinIO accepts any.
    """

    endpoint_url: str
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    region: str = "us-east-1"

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"S3 endpoint_url must look like http(s)://host:port, got {self.endpoint_url!r}")

    @property
    def secure(self) -> bool:
        return urlsplit(self.endpoint_url).scheme == "https"

    @property
    def netloc(self) -> str:
        return urlsplit(self.endpoint_url).netloc

    @classmethod
    def from_connection(cls, conn: Any) -> S3Settings:
        """From an Airflow Connection (or anything with host, port, schema, login, password, extra_dejson)."""
        extra = getattr(conn, "extra_dejson", None) or {}
        endpoint = extra.get("endpoint_url") or f"{conn.schema or 'http'}://{conn.host}:{conn.port}"
        return cls(endpoint, conn.login, conn.password, extra.get("region_name", "us-east-1"))

    @classmethod
    def from_env(cls, variable: str = S3_CONN_ENV) -> S3Settings:
        """From the JSON form of the connection in an environment variable (as `local_platform env airflow` sets)."""
        raw = os.environ.get(variable)
        if not raw:
            raise RuntimeError(f"environment variable {variable} is not set; it must hold the tap_s3 connection JSON")
        conn = json.loads(raw)
        extra = conn.get("extra") or {}
        endpoint = extra.get("endpoint_url") or f"{conn.get('schema') or 'http'}://{conn['host']}:{conn['port']}"
        return cls(endpoint, conn.get("login"), conn.get("password"), extra.get("region_name", "us-east-1"))


@dataclass(frozen=True)
class HdfsSettings:
    """How to reach HDFS as the raw zone (the Airflow connection `tap_hdfs`).

    :param webhdfs_url: the NameNode's WebHDFS root, e.g. ``http://127.0.0.1:9870/webhdfs/v1``.
    :param user: the HDFS user the ingestion acts as (simple auth: named, not proven); owns the raw tree.
    :param namenode_uri: the file system URI Spark reads, e.g. ``hdfs://127.0.0.1:8020``.
    """

    webhdfs_url: str
    user: str
    namenode_uri: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.webhdfs_url)
        if parts.scheme not in ("http", "https") or not parts.path.rstrip("/").endswith("/webhdfs/v1"):
            raise ValueError(f"webhdfs_url must look like http(s)://host:port/webhdfs/v1, got {self.webhdfs_url!r}")
        if not self.namenode_uri.startswith("hdfs://"):
            raise ValueError(f"namenode_uri must look like hdfs://host:port, got {self.namenode_uri!r}")
        if not self.user:
            raise ValueError("an HDFS user is required (the owner of the raw tree)")

    @classmethod
    def from_connection(cls, conn: Any) -> HdfsSettings:
        """From an Airflow Connection: host and port of WebHDFS, login = HDFS user, extra.namenode_uri."""
        extra = getattr(conn, "extra_dejson", None) or {}
        return cls(f"{conn.schema or 'http'}://{conn.host}:{conn.port}/webhdfs/v1", conn.login, extra["namenode_uri"])

    @classmethod
    def from_env(cls, variable: str = HDFS_CONN_ENV) -> HdfsSettings:
        raw = os.environ.get(variable)
        if not raw:
            raise RuntimeError(f"environment variable {variable} is not set; it must hold the tap_hdfs connection JSON")
        conn = json.loads(raw)
        extra = conn.get("extra") or {}
        scheme = conn.get("schema") or "http"
        return cls(f"{scheme}://{conn['host']}:{conn['port']}/webhdfs/v1", conn["login"], extra["namenode_uri"])


@dataclass(frozen=True)
class IngestSettings:
    """Everything `ingest_month` needs, with defaults for the TLC CDN and the local platform.

    :param s3: the object store.
    :param raw_store: where the raw zone lives: "s3" (bucket raw_bucket) or "hdfs" (directory /raw_bucket).
    :param hdfs: how to reach HDFS; required when raw_store is "hdfs".
    :param base_url: the trip-data CDN (the TLC's by default; the local mirror in tests and the demo).
    :param raw_bucket: bucket of the raw zone; data files, manifests, reports and quarantine all live there.
    :param key_prefix: prepended to every key (empty in production; a unique prefix per test run).
    :param metadata_dir: folder of the TLC's ``*_tripmetadata_YYYY.csv`` listings; None skips the official checks.
    :param suites_dir: folder of the Great Expectations suites, one ``{trip_type}.json`` per trip type.
    :param work_dir: where downloads are staged before upload (system temp dir if None).
    :param max_attempts: downloads tried at most this many times on transient errors (reset, timeout, 5xx, 429).
    :param backoff_initial_s: wait before the 2nd attempt; doubles each time, up to backoff_max_s.
    :param backoff_max_s: cap of one wait (also of a server's Retry-After).
    :param connect_timeout_s: TCP connect timeout of one request.
    :param read_timeout_s: longest silence allowed between two reads of one response.
    :param chunk_bytes: read/hash/write unit of a download.
    :param progress_min_bytes: files at least this large log their download progress.
    :param progress_interval_s: at most one progress line per this many seconds.
    :param allowed_sources: origins (scheme://host:port) base_url may point at; see allowed_sources_from_env.
    :param download_deadline_s: a download (all its attempts) that has not finished after this long fails for
        good, naming the URL (a source that trickles a byte every few seconds never trips read_timeout_s).
    :param min_throughput_bytes_s: an attempt slower than this, averaged over `throughput_window_s`, is abandoned
        and retried (the TLC's CDN serves tens of MiB/s; 64 KiB/s moves a 500 MB month in ~2 h, within
        the deadline only if it is raised).
    :param throughput_window_s: the averaging window of the throughput check (and its grace at the start).
    :param month_tolerance_hours: pickups this far outside the file's month still count as "inside" for the hard
        month check (late-night trips that straddle midnight of the month's first or last day).
    :param trailing_months: months before this one whose row counts bound the soft row-count check.
    :param trailing_row_ratio: allowed (low, high) ratio of this month's rows to the trailing months' mean.
    :param validation_batch_rows: rows per validated chunk; bounds memory on 20 M-row fhvhv months.
    :param source_suffixes: file name endings asked for, in order; a 404/403 on one asks for the next. The TLC
        serves `.parquet`; an archive of its CSV releases, e.g. `(".parquet", ".csv.gz", ".csv")`. What a file
        is, is told by its content whatever its name.
    """

    s3: S3Settings
    raw_store: str = "s3"
    hdfs: HdfsSettings | None = None
    base_url: str = DEFAULT_BASE_URL
    raw_bucket: str = "tap-raw"
    key_prefix: str = ""
    metadata_dir: Path | None = field(default_factory=default_metadata_dir)
    suites_dir: Path = field(default_factory=default_suites_dir)
    work_dir: Path | None = None
    max_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    chunk_bytes: int = 1 << 20
    progress_min_bytes: int = 32 << 20
    progress_interval_s: float = 5.0
    allowed_sources: tuple[str, ...] = field(default_factory=allowed_sources_from_env)
    download_deadline_s: float = 1800.0
    min_throughput_bytes_s: float = 64 * 1024
    throughput_window_s: float = 60.0
    month_tolerance_hours: float = 24.0
    trailing_months: int = 3
    trailing_row_ratio: tuple[float, float] = (0.5, 1.5)
    validation_batch_rows: int = 1_000_000
    source_suffixes: tuple[str, ...] = (".parquet",)

    def __post_init__(self) -> None:
        if self.raw_store not in RAW_STORES:
            raise ValueError(f"raw_store must be one of {', '.join(RAW_STORES)}, got {self.raw_store!r}")
        if self.raw_store == "hdfs" and self.hdfs is None:
            raise ValueError("raw_store 'hdfs' needs the HDFS settings (the tap_hdfs connection)")
        allowed = tuple(origin(u) for u in self.allowed_sources)
        if origin(self.base_url) not in allowed:
            raise ValueError(
                f"tlc_base_url {self.base_url!r} is not an allowed source; allowed: {', '.join(allowed)} "
                f"(more in {ALLOWED_SOURCES_ENV}, comma separated)"
            )
        if self.download_deadline_s <= 0 or self.min_throughput_bytes_s < 0 or self.throughput_window_s <= 0:
            raise ValueError("download_deadline_s and throughput_window_s must be > 0, min_throughput_bytes_s >= 0")
        if not self.source_suffixes or not all(s.startswith(".") for s in self.source_suffixes):
            raise ValueError(f"source_suffixes must be file endings such as '.parquet', got {self.source_suffixes}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.key_prefix and not self.key_prefix.endswith("/"):
            raise ValueError(f"key_prefix must end with '/', got {self.key_prefix!r}")
        low, high = self.trailing_row_ratio
        if not 0 <= low <= 1 <= high:
            raise ValueError(f"trailing_row_ratio must be (low <= 1 <= high), got {self.trailing_row_ratio}")
        if self.validation_batch_rows < 1:
            raise ValueError(f"validation_batch_rows must be >= 1, got {self.validation_batch_rows}")
        if self.metadata_dir is not None and not Path(self.metadata_dir).is_dir():
            raise ValueError(f"metadata_dir {self.metadata_dir} is not a directory (use None to skip those checks)")

    @classmethod
    def from_connection(cls, conn: Any, **overrides: Any) -> IngestSettings:
        """From the Airflow connection `tap_s3` (its extra may name `raw_bucket`, `raw_store` and
        `source_suffixes`), plus any field overrides (`hdfs=` when the raw store is HDFS)."""
        extra = getattr(conn, "extra_dejson", None) or {}
        if "raw_store" in extra:
            overrides.setdefault("raw_store", extra["raw_store"])
        if "raw_bucket" in extra:
            overrides.setdefault("raw_bucket", extra["raw_bucket"])
        if "source_suffixes" in extra:
            overrides.setdefault("source_suffixes", tuple(extra["source_suffixes"]))
        return cls(s3=S3Settings.from_connection(conn), **overrides)

    def with_(self, **changes: Any) -> IngestSettings:
        return replace(self, **changes)
