"""The raw zone in HDFS over WebHDFS (plain HTTP with requests): the same RawStore contract as S3.

HDFS has no atomic "put": a file being written is visible under its name. So every write goes to a hidden temporary
name beside the target (`.name.<id>.tmp`: Spark and Hadoop input formats skip names starting with `.` or `_`), is
checked (its length and the SHA-256 of what HDFS serves back equal those of the local bytes), gets its metadata
as `user.*` extended attributes, and only then is renamed over the final name. A rename cannot replace a file
in WebHDFS, so an existing target is deleted first: for that moment a reader finds no file, never part of one.
A failed write deletes its temporary file.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxi_anomaly.ingest.settings import HdfsSettings
from taxi_anomaly.ingest.storage import ObjectInfo, to_json_bytes

if TYPE_CHECKING:
    import requests

CHUNK = 1 << 20
TIMEOUT_S = (10.0, 120.0)  # connect, read


class HdfsError(RuntimeError):
    """A WebHDFS call failed; the message names the operation, the path and what the NameNode said."""


class HdfsStore:
    """WebHDFS access for the ingestion, as `settings.user`. Constructing it does no I/O.

    :param settings: WebHDFS URL, HDFS user and the NameNode URI (for `uri`).
    """

    def __init__(self, settings: HdfsSettings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"HdfsStore({self.settings.webhdfs_url} as {self.settings.user})"

    @cached_property
    def session(self) -> requests.Session:
        import requests

        return requests.Session()

    # Paths ------------------------------------------------------------------------------------------------------
    @staticmethod
    def path(bucket: str, key: str = "") -> str:
        return posixpath.join("/", bucket, key) if key else f"/{bucket}"

    def uri(self, bucket: str, key: str) -> str:
        return f"{self.settings.namenode_uri}{self.path(bucket, key)}"

    # WebHDFS calls ----------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, op: str, ok: tuple[int, ...] = (200,), **params: Any) -> requests.Response:
        url = f"{self.settings.webhdfs_url.rstrip('/')}{path}"
        query = {"op": op, "user.name": self.settings.user, **params}
        response = self.session.request(method, url, params=query, timeout=TIMEOUT_S, allow_redirects=False)
        if response.status_code not in ok:
            raise HdfsError(f"WebHDFS {op} {path}: HTTP {response.status_code}: {_remote_message(response)}")
        return response

    def _json(self, method: str, path: str, op: str, **params: Any) -> dict[str, Any]:
        return self._call(method, path, op, **params).json()

    def _create(self, path: str, body: Any) -> None:
        """CREATE in two steps: the NameNode answers 307 with the DataNode that takes the bytes."""
        redirect = self._call("PUT", path, "CREATE", ok=(307,), overwrite="true")
        response = self.session.put(redirect.headers["Location"], data=body, timeout=TIMEOUT_S)
        if response.status_code != 201:
            raise HdfsError(f"WebHDFS CREATE {path}: HTTP {response.status_code}: {_remote_message(response)}")

    def _open(self, path: str) -> requests.Response:
        redirect = self._call("GET", path, "OPEN", ok=(307,))
        response = self.session.get(redirect.headers["Location"], stream=True, timeout=TIMEOUT_S)
        if response.status_code != 200:
            raise HdfsError(f"WebHDFS OPEN {path}: HTTP {response.status_code}: {_remote_message(response)}")
        return response

    def _status(self, path: str) -> dict[str, Any] | None:
        response = self._call("GET", path, "GETFILESTATUS", ok=(200, 404))
        return None if response.status_code == 404 else response.json()["FileStatus"]

    def _sha256_of(self, path: str) -> tuple[int, str]:
        digest, size = hashlib.sha256(), 0
        with self._open(path) as response:
            for chunk in response.iter_content(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    # Writes -----------------------------------------------------------------------------------------------------
    def _write(self, bucket: str, key: str, body: Any, size: int, sha256: str, metadata: dict[str, str]) -> None:
        final = self.path(bucket, key)
        folder, name = posixpath.split(final)
        temporary = posixpath.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            self._create(temporary, body)
            stored = self._sha256_of(temporary)
            if stored != (size, sha256):
                raise HdfsError(
                    f"{self.uri(bucket, key)}: HDFS holds {stored[0]} bytes with sha256 {stored[1][:12]}... after the "
                    f"write, the source has {size} bytes with sha256 {sha256[:12]}...; nothing was renamed"
                )
            for attribute, value in metadata.items():
                xattr = {"xattr.name": f"user.{attribute}", "xattr.value": value, "flag": "CREATE"}
                self._call("PUT", temporary, "SETXATTR", **xattr)
            self._call("DELETE", final, "DELETE", recursive="false")
            renamed = self._json("PUT", temporary, "RENAME", destination=final)
            if not renamed.get("boolean"):
                raise HdfsError(f"WebHDFS RENAME {temporary} -> {final} answered false")
        except BaseException:
            self._call("DELETE", temporary, "DELETE", ok=(200, 404), recursive="false")
            raise

    def put_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Upload a local file under a temporary name, check it, then rename it to `key` (see the module doc)."""
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        with open(path, "rb") as handle:
            self._write(bucket, key, handle, size, digest.hexdigest(), metadata or {})

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._write(bucket, key, data, len(data), hashlib.sha256(data).hexdigest(), {})

    def put_json(self, bucket: str, key: str, document: Any) -> None:
        self.put_bytes(bucket, key, to_json_bytes(document), "application/json")

    # Reads ------------------------------------------------------------------------------------------------------
    def get_bytes(self, bucket: str, key: str) -> bytes:
        with self._open(self.path(bucket, key)) as response:
            return response.content

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.get_bytes(bucket, key))

    def download(self, bucket: str, key: str, path: Path) -> None:
        with self._open(self.path(bucket, key)) as response, open(path, "wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        """The file's size and `user.*` attributes, or None if there is no such file (etag: HDFS has none)."""
        path = self.path(bucket, key)
        status = self._status(path)
        if status is None or status["type"] != "FILE":
            return None
        attributes = self._json("GET", path, "GETXATTRS", encoding="text").get("XAttrs", [])
        metadata = {
            a["name"].removeprefix("user."): str(a.get("value") or "").strip('"')
            for a in attributes
            if a["name"].startswith("user.")
        }
        return ObjectInfo(key, int(status["length"]), None, metadata)

    def exists(self, bucket: str, key: str) -> bool:
        return self.stat(bucket, key) is not None

    def list_keys(self, bucket: str, prefix: str) -> Iterator[str]:
        """Every file under `prefix` (keys relative to the bucket directory), depth first, sorted per folder."""
        root = self.path(bucket)
        start = posixpath.dirname(prefix.rstrip("/")) if not prefix.endswith("/") else prefix.rstrip("/")
        pending = [self.path(bucket, start) if start else root]
        while pending:
            folder = pending.pop()
            response = self._call("GET", folder, "LISTSTATUS", ok=(200, 404))
            if response.status_code == 404:
                continue
            entries = sorted(response.json()["FileStatuses"]["FileStatus"], key=lambda e: e["pathSuffix"])
            for entry in reversed(entries):
                child = posixpath.join(folder, entry["pathSuffix"])
                key = child[len(root) + 1 :]
                if entry["type"] == "DIRECTORY":
                    if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                        pending.append(child)
                elif key.startswith(prefix):
                    yield key

    # Deletes ----------------------------------------------------------------------------------------------------
    def delete(self, bucket: str, *keys: str) -> None:
        """Delete the given files (missing ones are fine)."""
        for key in keys:
            self._call("DELETE", self.path(bucket, key), "DELETE", recursive="false")

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every file under a prefix (a folder prefix goes with its folder); returns how many there were."""
        if not prefix:
            raise ValueError("refusing to delete a whole bucket directory (empty prefix)")
        keys = list(self.list_keys(bucket, prefix))
        if prefix.endswith("/"):
            self._call("DELETE", self.path(bucket, prefix.rstrip("/")), "DELETE", recursive="true")
        else:
            self.delete(bucket, *keys)
        return len(keys)


def _remote_message(response: requests.Response) -> str:
    """The NameNode's RemoteException message, else the start of the body."""
    try:
        remote = response.json()["RemoteException"]
        return f"{remote.get('exception')}: {remote.get('message')}"
    except (ValueError, KeyError, TypeError):
        return response.text[:300].strip() or response.reason
