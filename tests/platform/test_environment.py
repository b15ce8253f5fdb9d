"""The installed Python environment is the one the lock files describe, and pyspark's files are intact."""

from __future__ import annotations

import base64
import hashlib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.split("[")[0].strip().lower()] = version.strip()
    return pins


def test_pyspark_and_pyspark_client_pinned_to_the_same_version():
    pins = _pins(REPO / "requirements.txt")
    assert pins["pyspark"] == pins["pyspark-client"], "pyspark and pyspark-client must carry the same version"
    assert pins["pyspark"].startswith("4.1."), "Iceberg's Spark runtime exists for Spark 4.1 only"


def test_installed_versions_match_the_lock():
    for name, version in _pins(REPO / "requirements.lock").items():
        assert metadata.version(name) == version, f"{name}: installed {metadata.version(name)}, locked {version}"


@pytest.mark.parametrize("dist_name", ["pyspark", "pyspark-client"])
def test_installed_pyspark_files_match_their_record(dist_name):
    """pyspark and pyspark-client write the same files: a version mismatch leaves pyspark partly overwritten,
    which `pip check` does not see and which breaks every pandas UDF. Compare every file with its RECORD hash."""
    dist = metadata.distribution(dist_name)
    checked, mismatched = 0, []
    for entry in dist.files or []:
        if entry.hash is None or not str(entry).startswith("pyspark/") or not str(entry).endswith(".py"):
            continue
        data = Path(entry.locate()).read_bytes()
        digest = base64.urlsafe_b64encode(hashlib.new(entry.hash.mode, data).digest()).rstrip(b"=").decode()
        checked += 1
        if digest != entry.hash.value:
            mismatched.append(str(entry))
    assert checked > 300, f"only {checked} files of {dist_name} were checked"
    assert not mismatched, f"{len(mismatched)} files differ from {dist_name}'s RECORD, e.g. {mismatched[:5]}"


def test_pyspark_reports_its_own_version():
    import pyspark

    assert pyspark.__version__ == metadata.version("pyspark") == metadata.version("pyspark-client")
