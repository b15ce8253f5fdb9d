"""Connection settings for Trino (from an Airflow connection) and a DB-API connection that honours them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trino.dbapi import Connection as TrinoConnection


@dataclass(frozen=True)
class TrinoSettings:
    """Where Trino is and who logs in.

    :param host: coordinator host.
    :param port: coordinator port.
    :param user: login name; with a password it is checked by Trino (HTTPS only).
    :param password: the user's password, or None for a server without authentication.
    :param catalog: default catalog of queries.
    :param http_scheme: "https" (password logins) or "http".
    :param verify: path of the CA certificate to trust, or True for the system trust store.
    """

    host: str
    port: int
    user: str
    password: str | None = field(default=None, repr=False)  # never in logs or test reports
    catalog: str = "iceberg"
    http_scheme: str = "https"
    verify: bool | str = True

    @classmethod
    def from_connection(cls, conn: Any) -> TrinoSettings:
        """From an Airflow Connection (or anything with host/port/login/password/schema and extra)."""
        extra = getattr(conn, "extra_dejson", None)
        if extra is None:
            raw = getattr(conn, "extra", None) or {}
            extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
        return cls(
            host=conn.host,
            port=int(conn.port),
            user=conn.login,
            password=conn.password or None,
            catalog=extra.get("catalog") or conn.schema or "iceberg",
            http_scheme=extra.get("http_scheme", "https"),
            verify=extra.get("verify", True),
        )

    @property
    def url(self) -> str:
        return f"{self.http_scheme}://{self.host}:{self.port}"

    def connect(self, schema: str | None = None, session_properties: dict[str, str] | None = None) -> TrinoConnection:
        """A DB-API connection; nothing is sent before the first query. `session_properties` travel with every
        query (as headers), like SET SESSION."""
        import requests
        import trino

        session = requests.Session()
        # requests lets REQUESTS_CA_BUNDLE override session.verify; the CA given here must win.
        session.trust_env = False
        session.verify = self.verify
        auth = trino.auth.BasicAuthentication(self.user, self.password) if self.password else None
        return trino.dbapi.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            auth=auth,
            http_scheme=self.http_scheme,
            http_session=session,
            catalog=self.catalog,
            schema=schema,
            session_properties=session_properties,
        )
