"""How a client reaches Kafka: bootstrap servers and one role's SASL/SCRAM login, from an Airflow connection."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

SCRAM_MECHANISM = "SCRAM-SHA-512"
CONN_ENV = {
    "replay": "AIRFLOW_CONN_TAP_KAFKA_REPLAY",
    "streaming": "AIRFLOW_CONN_TAP_KAFKA_STREAMING",
    "reader": "AIRFLOW_CONN_TAP_KAFKA_READER",
}


@dataclass(frozen=True)
class KafkaSettings:
    """:param bootstrap: host:port[,host:port]; :param user: the role's SCRAM principal; :param password: never
    shown in repr; :param security_protocol: SASL_PLAINTEXT on loopback, SASL_SSL on a cluster with TLS."""

    bootstrap: str
    user: str
    password: str = field(repr=False)
    security_protocol: str = "SASL_PLAINTEXT"
    mechanism: str = SCRAM_MECHANISM

    def client_config(self) -> dict[str, Any]:
        """librdkafka (confluent-kafka) settings."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.mechanism,
            "sasl.username": self.user,
            "sasl.password": self.password,
        }

    def spark_options(self) -> dict[str, str]:
        """Options of Spark's Kafka source and sink (`kafka.`-prefixed Java client settings)."""
        module = "org.apache.kafka.common.security.scram.ScramLoginModule"
        jaas = f'{module} required username="{self.user}" password="{self.password}";'
        return {
            "kafka.bootstrap.servers": self.bootstrap,
            "kafka.security.protocol": self.security_protocol,
            "kafka.sasl.mechanism": self.mechanism,
            "kafka.sasl.jaas.config": jaas,
        }

    @classmethod
    def from_connection(cls, conn: Any) -> KafkaSettings:
        """From an Airflow Connection (host, port, login, password, extra_dejson)."""
        document = {
            "host": conn.host,
            "port": conn.port,
            "login": conn.login,
            "password": conn.password,
            "extra": conn.extra_dejson,
        }
        return cls.from_connection_json(json.dumps(document), source=f"connection {conn.conn_id}")

    @classmethod
    def from_connection_json(cls, raw: str, source: str = "connection") -> KafkaSettings:
        conn = json.loads(raw)
        extra = conn.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        bootstrap = extra.get("bootstrap_servers") or f"{conn['host']}:{conn['port']}"
        if not conn.get("login") or not conn.get("password"):
            raise ValueError(f"{source}: a Kafka connection needs a login and a password (SASL/SCRAM)")
        return cls(
            bootstrap,
            conn["login"],
            conn["password"],
            extra.get("security_protocol", "SASL_PLAINTEXT"),
            extra.get("sasl_mechanism", SCRAM_MECHANISM),
        )

    @classmethod
    def for_role(cls, role: str, environ: dict[str, str] | None = None) -> KafkaSettings:
        """From the role's connection JSON in AIRFLOW_CONN_TAP_KAFKA_<ROLE> (as `local_platform env airflow` sets)."""
        if role not in CONN_ENV:
            raise ValueError(f"unknown Kafka role {role!r}; choose one of {', '.join(CONN_ENV)}")
        env = os.environ if environ is None else environ
        variable = CONN_ENV[role]
        raw = env.get(variable)
        if not raw:
            raise RuntimeError(f"environment variable {variable} is not set; it must hold the Kafka connection JSON")
        return cls.from_connection_json(raw, source=variable)
