"""The raw zone's storage interface (put, get, stat, list, delete by bucket and key) and its S3 implementation.

`RawStore` is what the ingestion needs; `ObjectStore` (S3, the minio client) and `HdfsStore` (WebHDFS,
hdfs_storage.py) implement it, and `open_raw_store` picks one from the settings. A "bucket" is an S3 bucket or, in
HDFS, the top-level directory of the same name.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from taxi_anomaly.ingest.settings import IngestSettings, S3Settings

if TYPE_CHECKING:
    from minio import Minio


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    metadata: dict[str, str]


class RawStore(Protocol):
    """Where the ingestion lands files. Every write is all-or-nothing: a reader sees the old object, no object, or
    the complete new one, never part of one."""

    def uri(self, bucket: str, key: str) -> str: ...

    def put_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None: ...

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def put_json(self, bucket: str, key: str, document: Any) -> None: ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...

    def get_json(self, bucket: str, key: str) -> Any: ...

    def download(self, bucket: str, key: str, path: Path) -> None: ...

    def stat(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def list_keys(self, bucket: str, prefix: str) -> Iterator[str]: ...

    def delete(self, bucket: str, *keys: str) -> None: ...

    def delete_prefix(self, bucket: str, prefix: str) -> int: ...


def open_raw_store(settings: IngestSettings) -> RawStore:
    """The raw zone's store as the settings choose it (no I/O until first use)."""
    if settings.raw_store == "hdfs":
        from taxi_anomaly.ingest.hdfs_storage import HdfsStore

        assert settings.hdfs is not None  # IngestSettings checks it
        return HdfsStore(settings.hdfs)
    return ObjectStore(settings.s3)


def to_json_bytes(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False, default=str).encode()


class ObjectStore:
    """S3 access for the ingestion. Constructing it does no I/O; the client is created on first use.

    :param settings: endpoint and credentials of the store.
    """

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"ObjectStore({self.settings.endpoint_url})"

    def uri(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    @cached_property
    def client(self) -> Minio:
        from minio import Minio

        return Minio(
            self.settings.netloc,
            access_key=self.settings.access_key,
            secret_key=self.settings.secret_key,
            secure=self.settings.secure,
            region=self.settings.region,
        )

    def put_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Upload a local file. S3 makes the object visible only once the whole upload has completed."""
        self.client.fput_object(bucket, key, str(path), content_type=content_type, metadata=metadata)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def put_json(self, bucket: str, key: str, document: Any) -> None:
        self.put_bytes(bucket, key, to_json_bytes(document), "application/json")

    def get_bytes(self, bucket: str, key: str) -> bytes:
        response = self.client.get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.get_bytes(bucket, key))

    def download(self, bucket: str, key: str, path: Path) -> None:
        self.client.fget_object(bucket, key, str(path))

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's size, ETag and user metadata, or None if there is no such object."""
        from minio.error import S3Error

        try:
            obj = self.client.stat_object(bucket, key)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        user_meta = {
            k.lower().removeprefix("x-amz-meta-"): v
            for k, v in (obj.metadata or {}).items()
            if k.lower().startswith("x-amz-meta-")
        }
        return ObjectInfo(key, int(obj.size or 0), obj.etag, user_meta)

    def exists(self, bucket: str, key: str) -> bool:
        return self.stat(bucket, key) is not None

    def list_keys(self, bucket: str, prefix: str) -> Iterator[str]:
        for obj in self.client.list_objects(bucket, prefix=prefix, recursive=True):
            yield obj.object_name

    def delete(self, bucket: str, *keys: str) -> None:
        """Delete the given keys (missing ones are fine)."""
        from minio.deleteobjects import DeleteObject

        errors = list(self.client.remove_objects(bucket, [DeleteObject(k) for k in keys]))
        if errors:
            raise RuntimeError(f"removing objects in s3://{bucket} failed: {'; '.join(str(e) for e in errors)}")

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under a prefix; returns how many there were."""
        if not prefix:
            raise ValueError("refusing to delete a whole bucket (empty prefix)")
        keys = list(self.list_keys(bucket, prefix))
        if keys:
            self.delete(bucket, *keys)
        return len(keys)
