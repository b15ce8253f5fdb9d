"""Checks that each platform service answers a real request, given its connection settings."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceEndpoint:
    """The parts of an Airflow connection a health check needs (Connection objects fit this shape)."""

    host: str
    port: int
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_connection(cls, conn) -> ServiceEndpoint:
        return cls(conn.host, int(conn.port), conn.login, conn.password, conn.schema, conn.extra_dejson)


def check_s3(endpoint: ServiceEndpoint) -> list[str]:
    """List the buckets; fail if any bucket the platform needs is missing. Returns the bucket names."""
    from minio import Minio

    client = Minio(
        f"{endpoint.host}:{endpoint.port}",
        access_key=endpoint.login,
        secret_key=endpoint.password,
        secure=endpoint.schema == "https",
    )
    names = sorted(b.name for b in client.list_buckets())
    wanted = [v for k, v in endpoint.extra.items() if k.endswith("_bucket")]
    missing = [b for b in wanted if b not in names]
    if missing:
        raise RuntimeError(f"S3 at {endpoint.host}:{endpoint.port} lacks bucket(s) {', '.join(missing)}")
    return names


def check_metastore(endpoint: ServiceEndpoint) -> list[str]:
    """Ask the Hive Metastore for its databases over Thrift. Returns the database names."""
    from hive_metastore.ThriftHiveMetastore import Client
    from thrift.protocol import TBinaryProtocol
    from thrift.transport import TSocket, TTransport

    from taxi_anomaly.metastore_ticket import metastore_ticket

    transport = TTransport.TBufferedTransport(TSocket.TSocket(endpoint.host, endpoint.port))
    with metastore_ticket():
        transport.open()
        try:
            return list(Client(TBinaryProtocol.TBinaryProtocol(transport)).get_all_databases())
        finally:
            transport.close()


def check_trino(endpoint: ServiceEndpoint) -> list[str]:
    """Run a query on Trino (HTTPS, password login). Returns the schemas of its Iceberg catalog."""
    from taxi_anomaly.serving.trino_client import TrinoSettings

    settings = TrinoSettings.from_connection(endpoint)
    cursor = settings.connect().cursor()
    cursor.execute(f"SHOW SCHEMAS FROM {settings.catalog}")
    return sorted(row[0] for row in cursor.fetchall())


def check_superset(endpoint: ServiceEndpoint) -> str:
    """Superset's /health answers OK. Returns the answer."""
    url = f"{endpoint.schema or 'http'}://{endpoint.host}:{endpoint.port}/health"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - URL built from the connection
        body = resp.read().decode()
    if body.strip() != "OK":
        raise RuntimeError(f"Superset at {url} answered {body[:200]!r}")
    return body.strip()
