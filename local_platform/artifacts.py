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


@dataclass(frozen=True)
class MavenArtifact:
    """One file from Maven Central, checked against the SHA-1 Maven Central publishes for it (pinned here)."""

    group: str
    artifact: str
    version: str
    sha1: str
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
    MavenArtifact("org.apache.iceberg", "iceberg-spark-runtime-4.1_2.13", ICEBERG_VERSION,
                  "f9b1e4a18797c58ae406104ef5c75d1b64a373c5"),
    MavenArtifact("org.apache.iceberg", "iceberg-aws-bundle", ICEBERG_VERSION,
                  "afe5b22dd5bc2d2c0639049b06a92dae2545cac7"),
    MavenArtifact("org.apache.hadoop", "hadoop-aws", HADOOP_VERSION, "16f9de6da5c7862241d55a13d34843404d0cbb88"),
    MavenArtifact("software.amazon.awssdk", "s3-transfer-manager", AWS_SDK_VERSION,
                  "3ee1934ac45ab9642d12a4ca6b68f687fc40c6a6"),
)
METASTORE_JARS = SPARK_JARS[1:]

TRINO_SERVER = MavenArtifact("io.trino", "trino-server-core", TRINO_VERSION,
                             "6bae2db438f8e6a2a8d9c8b566bb5e5b05870138", packaging="tar.gz")
TRINO_ICEBERG_PLUGIN = MavenArtifact("io.trino", "trino-iceberg", TRINO_VERSION,
                                     "6a9841be7b21c71110a1efc3a98e5dd833b20a8e", packaging="zip")
TRINO_CLI = MavenArtifact("io.trino", "trino-cli", TRINO_VERSION, "c835824e01842036d4e0c071b5e2b7e1d28ba299",
                          classifier="executable")


@dataclass(frozen=True)
class GoTool:
    """A binary built from source with `go install module@version` (MinIO publishes source only)."""

    name: str
    module: str
    version: str


# MinIO's release tags (RELEASE.*) are not semver: pin pseudo-versions of the upstream commits.
MINIO = GoTool("minio", "github.com/minio/minio", "v0.0.0-20260212201848-7aac2a2c5b7c")
MC = GoTool("mc", "github.com/minio/mc", "v0.0.0-20250313080218-cf909e1063a9")


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(artifact: MavenArtifact, cfg: PlatformConfig) -> Path:
    """Download an artifact into the cache unless it is there with the pinned checksum; return its path."""
    target = cfg.downloads_dir / artifact.filename
    if target.exists() and _sha1(target) == artifact.sha1:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    print(f"  downloading {artifact.url}", file=sys.stderr)
    with urllib.request.urlopen(artifact.url, timeout=120) as resp, open(partial, "wb") as out:
        shutil.copyfileobj(resp, out, 1 << 20)
    actual = _sha1(partial)
    if actual != artifact.sha1:
        partial.unlink()
        raise RuntimeError(f"{artifact.url}: SHA-1 {actual} does not match the pinned {artifact.sha1}")
    partial.replace(target)
    return target


def spark_jar_paths(cfg: PlatformConfig) -> list[Path]:
    return [cfg.downloads_dir / a.filename for a in SPARK_JARS]


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
        tar.extractall(staging, filter="tar")
    (unpacked,) = list(staging.iterdir())
    with zipfile.ZipFile(plugin) as zf:
        zf.extractall(unpacked / "plugin")
    # The zip holds trino-iceberg-<v>/; Trino wants plugin/<name>/.
    (unpacked / "plugin" / f"trino-iceberg-{TRINO_VERSION}").rename(unpacked / "plugin" / "iceberg")
    shutil.rmtree(home, ignore_errors=True)
    unpacked.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(TRINO_VERSION)
    return home


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
