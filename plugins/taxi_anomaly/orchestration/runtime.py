"""What a running task needs from Airflow: connections and Variables, read when the task runs, never at parse time.

`Runtime.from_params(params)` is cheap (no I/O): the connection is read on first use of a property.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from taxi_anomaly.orchestration.locations import Locations
from taxi_anomaly.orchestration.params import Sandbox

if TYPE_CHECKING:
    from taxi_anomaly.ingest import IngestSettings
    from taxi_anomaly.ingest.storage import ObjectStore, RawStore

S3_CONN_ID = "tap_s3"
HDFS_CONN_ID = "tap_hdfs"
METASTORE_CONN_ID = "tap_metastore"
TRINO_CONN_ID = "tap_trino"
BASE_URL_VARIABLE = "tap_tlc_base_url"


def get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def get_variable(name: str, default: str | None = None) -> str | None:
    from airflow.sdk import Variable

    value = Variable.get(name, default=default)
    return None if value is None else str(value)


@dataclass(frozen=True)
class Runtime:
    """The platform as one run sees it: its sandbox (namespace, key prefix, download URL) and connections."""

    sandbox: Sandbox

    @classmethod
    def from_params(cls, params: Any) -> Runtime:
        return cls(Sandbox.from_params(dict(params or {})))

    @cached_property
    def s3_connection(self) -> Any:
        return get_connection(S3_CONN_ID)

    @cached_property
    def locations(self) -> Locations:
        return Locations.from_connection(self.s3_connection, self.sandbox.storage_prefix)

    @cached_property
    def store(self) -> ObjectStore:
        from taxi_anomaly.ingest import S3Settings
        from taxi_anomaly.ingest.storage import ObjectStore

        return ObjectStore(S3Settings.from_connection(self.s3_connection))

    @cached_property
    def raw_store(self) -> RawStore:
        """The raw zone's store (S3 or HDFS, as the tap_s3 connection's extra `raw_store` says)."""
        from taxi_anomaly.ingest.storage import open_raw_store

        return open_raw_store(self.ingest_settings())

    @cached_property
    def base_url(self) -> str:
        from taxi_anomaly.tlc import DEFAULT_BASE_URL

        return self.sandbox.tlc_base_url or get_variable(BASE_URL_VARIABLE) or DEFAULT_BASE_URL

    def ingest_settings(self) -> IngestSettings:
        from taxi_anomaly.ingest import IngestSettings
        from taxi_anomaly.ingest.settings import HdfsSettings

        extra = getattr(self.s3_connection, "extra_dejson", None) or {}
        hdfs = HdfsSettings.from_connection(get_connection(HDFS_CONN_ID)) if extra.get("raw_store") == "hdfs" else None
        return IngestSettings.from_connection(
            self.s3_connection, base_url=self.base_url, key_prefix=self.sandbox.storage_prefix, hdfs=hdfs
        )

    @property
    def namespace(self) -> str:
        return self.sandbox.namespace
