"""Pinned non-Python dependencies (Maven Central artifacts, Go-built binaries) and their idempotent install."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from local_platform.config import PlatformConfig

MAVEN_CENTRAL = os.environ.get("TAP_MAVEN_REPO", "https://repo1.maven.org/maven2")

TRINO_VERSION = "476"
ICEBERG_VERSION = "1.11.0"
HADOOP_VERSION = "3.4.2"  # must match the Hadoop bundled with pyspark 4.1.x
AWS_SDK_VERSION = "2.44.4"  # the SDK inside iceberg-aws-bundle 1.11.0
KAFKA_VERSION = "4.4.0"
KAFKA_BROKER_LOCK = Path(__file__).resolve().parent / "kafka-broker.lock"
HDFS_LOCK = Path(__file__).resolve().parent / "hdfs.lock"  # Hadoop HADOOP_VERSION's NameNode/DataNode classpath
GUARD_SOURCE = (
    Path(__file__).resolve().parent / "native" / "trino-table-procedure-guard" / "TableProcedureGuardPlugin.java"
)


@dataclass(frozen=True)
class MavenArtifact:
    """One file from Maven Central, pinned by SHA-256 (recorded after checking Maven Central's own SHA-1)."""

    group: str
    artifact: str
    version: str
    sha256: str
    classifier: str = ""
    packaging: str = "jar"

    @property
    def filename(self) -> str:
        suffix = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{suffix}.{self.packaging}"

    @property
    def url(self) -> str:
        return f"{MAVEN_CENTRAL}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"


# Jars on the classpath of Spark (driver + executors) and of the Hive Metastore (which creates s3a:// dirs).
# The AWS SDK comes from iceberg-aws-bundle (unshaded SDK v2); hadoop-aws also needs the transfer manager.
SPARK_JARS = (
    MavenArtifact(
        "org.apache.iceberg",
        "iceberg-spark-runtime-4.1_2.13",
        ICEBERG_VERSION,
        "d6ea6c5d099288daeb7d5a92061bd3d7d8f296492632b42378e5f2f0e3066242",
    ),
    MavenArtifact(
        "org.apache.iceberg",
        "iceberg-aws-bundle",
        ICEBERG_VERSION,
        "38f01da7e96850cdd05e6616d758b77b43314b712a8808e3f9a824d56976162f",
    ),
    MavenArtifact(
        "org.apache.hadoop",
        "hadoop-aws",
        HADOOP_VERSION,
        "d2d24e6b715b5656b9d238bf13b6682a07e2004dd36aad74a73aeb854319f4d9",
    ),
    MavenArtifact(
        "software.amazon.awssdk",
        "s3-transfer-manager",
        AWS_SDK_VERSION,
        "dbcad736b19f6eb8471f9edf027d9fffe994228f25f415894efd01fd80cb6c02",
    ),
)
METASTORE_JARS = SPARK_JARS[1:]

# Spark's Kafka source and sink (the streaming job only). The token provider is served at 4.1.1 only (4.1.2 and
# 4.1.3 are not on Maven Central); its classes are unchanged across the patch releases. kafka-clients is the
# version the connector's pom asks for; snappy, lz4 and zstd come with pyspark's own jars.
SPARK_KAFKA_JARS = (
    MavenArtifact(
        "org.apache.spark",
        "spark-sql-kafka-0-10_2.13",
        "4.1.3",
        "cb31ffd9c8f5527dba061db8af671d295562092e4f3f5ff42fc249fab8a8fde6",
    ),
    MavenArtifact(
        "org.apache.spark",
        "spark-token-provider-kafka-0-10_2.13",
        "4.1.1",
        "e510adc37b03d01d0a190d0dab472b5538e05eaa77454f7e9477156d7a6820ae",
    ),
    MavenArtifact(
        "org.apache.kafka", "kafka-clients", "3.9.1", "7568b998572d256f0b7bc0afdc1b7a2588b8b08415c62ce314c864a6851ae9d9"
    ),
    MavenArtifact(
        "org.apache.commons",
        "commons-pool2",
        "2.12.1",
        "5273c8bc8c0dca2211175c0d27efbd7228efae99689aac001a8e1ef8e872e9ef",
    ),
)


def kafka_broker_jars(lock: Path = KAFKA_BROKER_LOCK) -> tuple[MavenArtifact, ...]:
    """The broker's classpath as pinned in kafka-broker.lock."""
    return locked_jars(lock)


def hdfs_jars(lock: Path = HDFS_LOCK) -> tuple[MavenArtifact, ...]:
    """The HDFS daemons' classpath as pinned in hdfs.lock."""
    return locked_jars(lock)


def locked_jars(lock: Path) -> tuple[MavenArtifact, ...]:
    """A classpath pinned in a lock file (`group:artifact:version sha256` a line, `#` comments)."""
    jars = []
    for line_no, raw in enumerate(lock.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            coordinates, sha256 = line.split()
            group, artifact, version = coordinates.split(":")
        except ValueError:
            raise ValueError(f"{lock}:{line_no}: expected 'group:artifact:version sha256', got {raw!r}") from None
        jars.append(MavenArtifact(group, artifact, version, sha256))
    return tuple(jars)


TRINO_SERVER = MavenArtifact(
    "io.trino",
    "trino-server-core",
    TRINO_VERSION,
    "0f388f9967c177ae70a47c099082fc95387f0c3cb96d8000d1d41fc3a5223158",
    packaging="tar.gz",
)
TRINO_ICEBERG_PLUGIN = MavenArtifact(
    "io.trino",
    "trino-iceberg",
    TRINO_VERSION,
    "99edba5b491ed94d599aeb61e0794272d3569d8b563f3bb8569e8a49daa87b6c",
    packaging="zip",
)
# Trino's OPA access control is published only inside the full server tarball (821 MB; `io.trino:trino-opa` does
# not resolve): fetched once, and only its plugin/opa/ is kept (install_trino_opa_plugin).
TRINO_SERVER_FULL = MavenArtifact(
    "io.trino",
    "trino-server",
    TRINO_VERSION,
    "cfd5accde17e8ebd251eeeb78aed1f490e77bb3a164d95a0f454bf8a7c1cbd3f",
    packaging="tar.gz",
)
TRINO_CLI = MavenArtifact(
    "io.trino",
    "trino-cli",
    TRINO_VERSION,
    "fe4e9c7fb569cd67673afa1622945f6308e1e59bdb825419352b80887661757b",
    classifier="executable",
)


@dataclass(frozen=True)
class GoTool:
    """A binary built from source with `go install module@version` (MinIO publishes source only)."""

    name: str
    module: str
    version: str


# MinIO's release tags (RELEASE.*) are not semver: pin pseudo-versions of the upstream commits.
MINIO = GoTool("minio", "github.com/minio/minio", "v0.0.0-20260212201848-7aac2a2c5b7c")
MC = GoTool("mc", "github.com/minio/mc", "v0.0.0-20250313080218-cf909e1063a9")
# Open Policy Agent, Trino's authorizer (~1.5 min warm, ~5 min cold on 2 cores; 57 MB binary).
OPA = GoTool("opa", "github.com/open-policy-agent/opa", "v1.22.3")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(artifact: MavenArtifact, cfg: PlatformConfig) -> Path:
    """Download an artifact into the cache unless it is there with the pinned checksum; return its path."""
    target = cfg.downloads_dir / artifact.filename
    if target.exists() and _sha256(target) == artifact.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    print(f"  downloading {artifact.url}", file=sys.stderr)
    with urllib.request.urlopen(artifact.url, timeout=120) as resp, open(partial, "wb") as out:
        shutil.copyfileobj(resp, out, 1 << 20)
    actual = _sha256(partial)
    if actual != artifact.sha256:
        partial.unlink()
        raise RuntimeError(f"{artifact.url}: SHA-256 {actual} does not match the pinned {artifact.sha256}")
    partial.replace(target)
    return target


def spark_jar_paths(cfg: PlatformConfig) -> list[Path]:
    return [cfg.downloads_dir / a.filename for a in SPARK_JARS + SPARK_KAFKA_JARS]


def kafka_classpath(cfg: PlatformConfig) -> str:
    return os.pathsep.join(str(cfg.downloads_dir / a.filename) for a in kafka_broker_jars())


def install_trino(cfg: PlatformConfig) -> Path:
    """Unpack trino-server-core plus the Iceberg plugin into the cache; return the Trino home directory."""
    home = cfg.tools_dir / f"trino-server-{TRINO_VERSION}"
    marker = home / ".installed"
    if marker.exists():
        return home
    server = fetch(TRINO_SERVER, cfg)
    plugin = fetch(TRINO_ICEBERG_PLUGIN, cfg)
    staging = cfg.tools_dir / f".staging-trino-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(server) as tar:
        tar.extractall(staging, filter="data")
    (unpacked,) = list(staging.iterdir())
    with zipfile.ZipFile(plugin) as zf:
        zf.extractall(unpacked / "plugin")  # noqa: S202 - pinned by SHA-256 above
    # The zip holds trino-iceberg-<v>/; Trino wants plugin/<name>/.
    (unpacked / "plugin" / f"trino-iceberg-{TRINO_VERSION}").rename(unpacked / "plugin" / "iceberg")
    shutil.rmtree(home, ignore_errors=True)
    unpacked.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(TRINO_VERSION)
    return home


def trino_opa_plugin_dir(cfg: PlatformConfig) -> Path:
    return cfg.tools_dir / f"trino-opa-plugin-{TRINO_VERSION}" / "opa"


def install_trino_opa_plugin(cfg: PlatformConfig) -> Path:
    """Unpack plugin/opa/ of the full Trino tarball into the cache (once); return the plugin directory.

    Most of the plugin's jars are hard links to lib/ inside the tarball, so lib/ is unpacked beside it in the same
    streaming pass (one read of the 821 MB archive, ~10 s) and dropped afterwards."""
    target = trino_opa_plugin_dir(cfg)
    marker = target.parent / ".installed"
    if marker.exists():
        return target
    tarball = fetch(TRINO_SERVER_FULL, cfg)
    staging = cfg.tools_dir / f".staging-trino-opa-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    def lib_and_opa_plugin(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        parts = member.name.split("/")
        if parts[1:2] == ["lib"] or parts[1:3] == ["plugin", "opa"]:
            return tarfile.data_filter(member, path)
        return None

    with tarfile.open(tarball, "r|gz") as tar:
        tar.extractall(staging, filter=lib_and_opa_plugin)  # noqa: S202 - pinned by SHA-256, data filter
    plugin = staging / f"trino-server-{TRINO_VERSION}" / "plugin" / "opa"
    if not (plugin / f"io.trino_trino-opa-{TRINO_VERSION}.jar").is_file():
        raise RuntimeError(f"{tarball.name} holds no plugin/opa/io.trino_trino-opa-{TRINO_VERSION}.jar")
    shutil.rmtree(target.parent, ignore_errors=True)
    target.parent.mkdir(parents=True)
    plugin.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(TRINO_VERSION)
    return target


def trino_guard_plugin_dir(cfg: PlatformConfig) -> Path:
    """Where the table-procedure guard is built: one directory per version of its source."""
    digest = hashlib.sha256(GUARD_SOURCE.read_bytes()).hexdigest()[:12]
    return cfg.cache_dir / "lib" / f"trino-table-procedure-guard-{digest}" / "table-procedure-guard"


def build_trino_guard_plugin(cfg: PlatformConfig) -> Path:
    """Compile the table-procedure guard (native/trino-table-procedure-guard) against Trino's own SPI jar, once per
    source version; return its plugin directory (one jar and its service file)."""
    target = trino_guard_plugin_dir(cfg)
    jar = target / "table-procedure-guard.jar"
    if jar.exists():
        return jar.parent
    spi = install_trino(cfg) / "lib" / f"io.trino_trino-spi-{TRINO_VERSION}.jar"
    staging = target.parent / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    classes = staging / "classes"
    (classes / "META-INF" / "services").mkdir(parents=True)
    javac, jar_tool = cfg.trino_java_home / "bin" / "javac", cfg.trino_java_home / "bin" / "jar"
    # --release 24: Trino 476's minimum Java, so the class files load on any JDK Trino runs on.
    subprocess.run(
        [str(javac), "--release", "24", "-cp", str(spi), "-d", str(classes), str(GUARD_SOURCE)],
        check=True,
        capture_output=True,
    )
    (classes / "META-INF" / "services" / "io.trino.spi.Plugin").write_text(
        "tap.trino.guard.TableProcedureGuardPlugin\n"
    )
    plugin = staging / "table-procedure-guard"
    plugin.mkdir()
    subprocess.run([str(jar_tool), "cf", str(plugin / jar.name), "-C", str(classes), "."], check=True)
    shutil.rmtree(target, ignore_errors=True)
    plugin.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def trino_cli(cfg: PlatformConfig) -> Path:
    return fetch(TRINO_CLI, cfg)


def install_go_tool(tool: GoTool, cfg: PlatformConfig) -> Path:
    """`go install` a pinned tool into the cache's bin/ (skipped when that exact version is already built)."""
    binary = cfg.bin_dir / tool.name
    stamp = cfg.bin_dir / f".{tool.name}.version"
    if binary.exists() and stamp.exists() and stamp.read_text() == tool.version:
        return binary
    cfg.bin_dir.mkdir(parents=True, exist_ok=True)
    print(f"  building {tool.module}@{tool.version} with go install (several minutes)", file=sys.stderr)
    env = {**os.environ, "GOBIN": str(cfg.bin_dir)}
    subprocess.run(["go", "install", f"{tool.module}@{tool.version}"], env=env, check=True)
    stamp.write_text(tool.version)
    return binary
