"""The object-store wrapper: no I/O on construction; real round trips against MinIO."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxi_anomaly.ingest.settings import S3Settings
from taxi_anomaly.ingest.storage import ObjectStore


def test_constructing_does_no_io():
    store = ObjectStore(S3Settings("http://127.0.0.1:9", "u", "p"))  # nothing listens on port 9
    assert "client" not in store.__dict__
    assert repr(store) == "ObjectStore(http://127.0.0.1:9)"


@pytest.mark.platform
def test_round_trip(store: ObjectStore, platform, unique_name: str, tmp_path: Path):
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
    finally:
        assert store.delete_prefix(bucket, prefix) == 2
    assert list(store.list_keys(bucket, prefix)) == []
    with pytest.raises(ValueError, match="whole bucket"):
        store.delete_prefix(bucket, "")
