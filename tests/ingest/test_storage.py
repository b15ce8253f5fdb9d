"""The raw stores (S3 and HDFS): no I/O on construction; real round trips; HDFS writes all-or-nothing and closed
to other users."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from taxi_anomaly.ingest.hdfs_storage import HdfsError, HdfsStore
from taxi_anomaly.ingest.settings import HdfsSettings, S3Settings
from taxi_anomaly.ingest.storage import ObjectStore, RawStore
from tests.ingest.conftest import RAW_STORES, hdfs_settings


def test_constructing_does_no_io():
    store = ObjectStore(S3Settings("http://127.0.0.1:9", "u", "p"))  # nothing listens on port 9
    assert "client" not in store.__dict__
    assert repr(store) == "ObjectStore(http://127.0.0.1:9)"
    hdfs = HdfsStore(HdfsSettings("http://127.0.0.1:9/webhdfs/v1", "tap", "hdfs://127.0.0.1:9"))
    assert "session" not in hdfs.__dict__
    assert hdfs.uri("tap-raw", "tlc/a.parquet") == "hdfs://127.0.0.1:9/tap-raw/tlc/a.parquet"


@pytest.mark.platform
@pytest.mark.parametrize("raw_store", RAW_STORES, indirect=True)
def test_round_trip(store: RawStore, platform, unique_name: str, tmp_path: Path):
    bucket, prefix = platform.cfg.raw_bucket, f"{unique_name}/"
    try:
        local = tmp_path / "f.bin"
        local.write_bytes(b"x" * 1000)
        store.put_file(bucket, prefix + "a/f.bin", local, metadata={"sha256": "abc"})
        store.put_json(bucket, prefix + "a/_m.json", {"rows": 3})
        info = store.stat(bucket, prefix + "a/f.bin")
        assert (info.size, info.metadata["sha256"]) == (1000, "abc")
        assert store.get_json(bucket, prefix + "a/_m.json") == {"rows": 3}
        assert store.stat(bucket, prefix + "missing") is None
        assert sorted(store.list_keys(bucket, prefix)) == [prefix + "a/_m.json", prefix + "a/f.bin"]
        local.write_bytes(b"y" * 10)  # a second write replaces the first
        store.put_file(bucket, prefix + "a/f.bin", local)
        assert store.get_bytes(bucket, prefix + "a/f.bin") == b"y" * 10
    finally:
        assert store.delete_prefix(bucket, prefix) == 2
    assert list(store.list_keys(bucket, prefix)) == []
    with pytest.raises(ValueError, match="whole bucket"):
        store.delete_prefix(bucket, "")


@pytest.mark.platform
def test_an_hdfs_write_that_reads_back_wrong_leaves_the_old_file_and_no_temporary(
    platform, hdfs, unique_name: str, tmp_path: Path, monkeypatch
):
    store = HdfsStore(hdfs_settings(platform.cfg))
    bucket, key = platform.cfg.raw_bucket, f"{unique_name}/a/f.bin"
    store.put_bytes(bucket, key, b"old")
    local = tmp_path / "new.bin"
    local.write_bytes(b"new bytes")
    monkeypatch.setattr(HdfsStore, "_sha256_of", lambda self, path: (9, "0" * 64))  # what a corrupt write shows
    try:
        with pytest.raises(HdfsError, match="nothing was renamed"):
            store.put_file(bucket, key, local)
        monkeypatch.undo()
        assert store.get_bytes(bucket, key) == b"old"
        assert list(store.list_keys(bucket, f"{unique_name}/")) == [key]  # no .f.bin.*.tmp left behind
    finally:
        monkeypatch.undo()
        store.delete_prefix(bucket, f"{unique_name}/")


@pytest.mark.platform
def test_hdfs_refuses_anonymous_and_other_users_on_the_raw_tree(platform, hdfs, unique_name: str):
    cfg = platform.cfg
    raw = f"{cfg.webhdfs_url}/{cfg.raw_bucket}/{unique_name}"
    anonymous = requests.put(raw, params={"op": "MKDIRS"}, timeout=10)
    assert anonymous.status_code == 401  # no user named: refused before any permission check
    intruder = HdfsStore(HdfsSettings(cfg.webhdfs_url, "intruder", cfg.hdfs_uri))
    with pytest.raises(HdfsError, match="HTTP 403: .*AccessControlException.*user=intruder"):
        intruder.put_bytes(cfg.raw_bucket, f"{unique_name}/x", b"x")
    with pytest.raises(HdfsError, match="HTTP 403: .*Permission denied"):
        list(intruder.list_keys(cfg.raw_bucket, f"{unique_name}/"))
    owner = HdfsStore(hdfs_settings(cfg))
    owner.put_bytes(cfg.raw_bucket, f"{unique_name}/x", b"x")  # the platform user may
    try:
        status = owner._json("GET", f"/{cfg.raw_bucket}", "GETFILESTATUS")["FileStatus"]
        assert (status["owner"], status["permission"]) == (cfg.hdfs_user, "750")
    finally:
        owner.delete_prefix(cfg.raw_bucket, f"{unique_name}/")
