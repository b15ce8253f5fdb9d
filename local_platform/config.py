"""Typed configuration of the local platform: ports, paths and pinned tool versions, from defaults + overrides.

Every value can be overridden by an environment variable `TAP_<FIELD_NAME_UPPERCASE>` or by a line
`TAP_<FIELD>=value` in `local.env` at the repository root (ignored by git). The environment wins over local.env.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
RAW_STORES = ("s3", "hdfs")
TRINO_ACCESS_CONTROL_MODES = ("opa", "file")


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "taxi-anomaly-platform"


@dataclass(frozen=True)
class PlatformConfig:
    """Where the local platform lives and which ports it uses. All services bind to 127.0.0.1 only."""

    # Ports (all on 127.0.0.1).
    minio_port: int = 9000
    minio_console_port: int = 9001
    metastore_port: int = 9083
    trino_port: int = 8081
    superset_port: int = 8088
    airflow_port: int = 8080
    airflow_worker_log_port: int = 8793
    airflow_trigger_log_port: int = 8794
    kafka_port: int = 9092  # clients (SASL/SCRAM)
    kafka_controller_port: int = 9093  # the KRaft controller quorum (SASL/PLAIN, the broker itself only)
    # HDFS (the raw zone when raw_store is "hdfs"): NameNode RPC and HTTP (WebHDFS), DataNode transfer/HTTP/IPC.
    hdfs_namenode_port: int = 8020
    hdfs_namenode_http_port: int = 9870
    hdfs_datanode_port: int = 9866
    hdfs_datanode_http_port: int = 9864
    hdfs_datanode_ipc_port: int = 9867
    spark_connect_port: int = 15002  # Spark Connect (gRPC, bearer token)
    jupyter_port: int = 8888  # JupyterLab (token)

    opa_port: int = 8282  # Open Policy Agent, Trino's authorizer (HTTPS, client certificates); opa mode only

    # Who decides Trino's access: "opa" (Rego policies in include/opa/, served by the OPA service) or "file"
    # (the fallback: include/trino/access-control.json plus the table-procedure guard). One setting, both tested.
    trino_access_control: str = "opa"

    postgres_port: int = 5432  # Airflow's metadata database
    # The local TLC mirror of `make demo`, the DAG tests and `make mirror` (not started by `make up`, hence not
    # in listening_ports): the one non-CDN source the platform's Airflow may download from (TAP_MIRROR_URL).
    mirror_port: int = 8765

    # Paths. state_dir holds everything a running platform writes (data, logs, PIDs, credentials).
    state_dir: Path = REPO_ROOT / ".platform"
    cache_dir: Path = field(default_factory=_default_cache_dir)
    venv_dir: Path = REPO_ROOT / ".venv"
    superset_venv_dir: Path = REPO_ROOT / ".venv-superset"

    # JDK for Trino (479+ need Java 25; the Maven Central mirror serves 476, which needs >= 24).
    trino_java_home: Path = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
    # PostgreSQL from Debian bookworm's `postgresql` package (installed by `make setup`).
    postgres_home: Path = Path("/usr/lib/postgresql/15")
    # JDK for Spark and the Hive Metastore (Spark 4.1 supports 17 and 21).
    java_home: Path = Path("/usr/lib/jvm/java-17-openjdk-amd64")

    trino_heap: str = "2G"
    metastore_heap: str = "512m"
    kafka_heap: str = "512m"
    superset_workers: int = 2
    hdfs_heap: str = "256m"
    spark_connect_driver_memory: str = "1g"

    # Where the raw zone lives: "s3" (MinIO bucket raw_bucket) or "hdfs" (directory /raw_bucket in HDFS, owned
    # by hdfs_user). `make up` starts HDFS only when this says "hdfs"; tests of both stores start it themselves.
    raw_store: str = "s3"
    hdfs_user: str = "tap"  # the platform's HDFS user: owns the raw tree, ingests and reads it

    # The optional streaming service (`make stream-up`): what it scores, with which model, into which namespace.
    # The models URI is the registry root of the demo's key prefix (Locations(prefix="demo/").models_uri; a
    # test keeps the two equal).
    stream_trip_type: str = "fhvhv"
    stream_granularity: str = "city"
    stream_namespace: str = "taxi"
    stream_key_prefix: str = "demo/"
    stream_models_uri: str = "s3a://tap-models/demo/registry"

    # Buckets created in MinIO by `make up`.
    raw_bucket: str = "tap-raw"
    warehouse_bucket: str = "tap-warehouse"
    models_bucket: str = "tap-models"
    reports_bucket: str = "tap-reports"

    def __post_init__(self) -> None:
        if self.raw_store not in RAW_STORES:
            raise ValueError(f"TAP_RAW_STORE={self.raw_store!r}: choose one of {', '.join(RAW_STORES)}")
        if self.trino_access_control not in TRINO_ACCESS_CONTROL_MODES:
            raise ValueError(
                f"TAP_TRINO_ACCESS_CONTROL={self.trino_access_control!r}: choose one of {TRINO_ACCESS_CONTROL_MODES}"
            )

    @property
    def uses_opa(self) -> bool:
        return self.trino_access_control == "opa"

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.raw_bucket, self.warehouse_bucket, self.models_bucket, self.reports_bucket)

    # Derived paths -------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def conf_dir(self) -> Path:
        return self.state_dir / "conf"

    @property
    def credentials_file(self) -> Path:
        return self.state_dir / "credentials.env"

    @property
    def bin_dir(self) -> Path:
        return self.cache_dir / "bin"

    @property
    def downloads_dir(self) -> Path:
        return self.cache_dir / "downloads"

    @property
    def tools_dir(self) -> Path:
        return self.cache_dir / "tools"

    @property
    def python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    @property
    def spark_home(self) -> Path:
        return self.venv_dir / "lib" / "python3.11" / "site-packages" / "pyspark"

    @property
    def minio_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.minio_port}"

    @property
    def metastore_uri(self) -> str:
        return f"thrift://{LOOPBACK}:{self.metastore_port}"

    @property
    def trino_url(self) -> str:
        return f"http://{LOOPBACK}:{self.trino_port}"

    @property
    def superset_url(self) -> str:
        return f"http://{LOOPBACK}:{self.superset_port}"

    @property
    def listening_ports(self) -> tuple[int, ...]:
        """Every port the core services open (the Airflow log-server ports are not among them: those never run)."""
        return (
            self.minio_port,
            self.minio_console_port,
            self.postgres_port,
            self.metastore_port,
            self.kafka_port,
            self.kafka_controller_port,
            self.trino_port,
            self.superset_port,
            self.airflow_port,
            *((self.opa_port,) if self.uses_opa else ()),
        )

    @property
    def optional_ports(self) -> tuple[int, ...]:
        """The ports of the optional services: HDFS, Spark Connect, JupyterLab."""
        return (*self.hdfs_ports, self.spark_connect_port, self.jupyter_port)

    @property
    def hdfs_ports(self) -> tuple[int, ...]:
        return (
            self.hdfs_namenode_port,
            self.hdfs_namenode_http_port,
            self.hdfs_datanode_port,
            self.hdfs_datanode_http_port,
            self.hdfs_datanode_ipc_port,
        )

    @property
    def hdfs_uri(self) -> str:
        """The default file system URI (NameNode RPC), as Spark's hdfs:// paths name it."""
        return f"hdfs://{LOOPBACK}:{self.hdfs_namenode_port}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{LOOPBACK}:{self.hdfs_namenode_http_port}/webhdfs/v1"

    @property
    def raw_root_uri(self) -> str:
        """The raw zone's root as Spark reads it: s3a://tap-raw or hdfs://127.0.0.1:8020/tap-raw."""
        if self.raw_store == "hdfs":
            return f"{self.hdfs_uri}/{self.raw_bucket}"
        return f"s3a://{self.raw_bucket}"

    @property
    def spark_connect_url(self) -> str:
        # "localhost", not 127.0.0.1: pyspark's client sends a token over a plain channel only to "localhost"
        # (grpc local credentials); for any other host a token implies TLS (pyspark/sql/connect/client/core.py).
        return f"sc://localhost:{self.spark_connect_port}"

    @property
    def jupyter_url(self) -> str:
        return f"http://{LOOPBACK}:{self.jupyter_port}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.kafka_port}"

    @property
    def mirror_url(self) -> str:
        return f"http://{LOOPBACK}:{self.mirror_port}"

    @property
    def airflow_url(self) -> str:
        return f"http://{LOOPBACK}:{self.airflow_port}"


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line_no, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"{path}:{line_no}: expected KEY=value, got {raw!r}")
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def load_config(environ: dict[str, str] | None = None) -> PlatformConfig:
    """Build the configuration from defaults, `local.env` and `TAP_*` environment variables (in that order)."""
    environ = dict(os.environ if environ is None else environ)
    overrides = {**_read_env_file(REPO_ROOT / "local.env"), **environ}
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(PlatformConfig):
        key = f"TAP_{f.name.upper()}"
        if key not in overrides:
            continue
        raw = overrides[key]
        default = getattr(PlatformConfig(), f.name)
        try:
            kwargs[f.name] = type(default)(raw) if not isinstance(default, Path) else Path(raw)
        except ValueError as exc:
            raise ValueError(f"{key}={raw!r} is not a valid {type(default).__name__}") from exc
    return PlatformConfig(**kwargs)  # type: ignore[arg-type]
