"""Airflow connections to the platform's services, provisioned as AIRFLOW_CONN_* environment variables.

The connection ids are the platform's contract with the DAGs and plugins (and with the Kubernetes Secrets
described in helm-values/): tap_s3 (its extra also says where the raw zone is: raw_store s3 or hdfs, raw_root),
tap_hdfs (WebHDFS as the platform's HDFS user), tap_metastore, tap_trino (admin), tap_trino_analyst (read-only, used by
Superset), tap_superset, tap_spark_local, and one Kafka connection per role: tap_kafka_replay (writes trips),
tap_kafka_streaming (the streaming job), tap_kafka_reader (reads every topic).
"""

from __future__ import annotations

import json

from local_platform.config import LOOPBACK, PlatformConfig
from local_platform.credentials import Credentials
from local_platform.services.kafka import KAFKA_PRINCIPALS, SCRAM_MECHANISM, kafka_password
from local_platform.services.trino import ca_file_path

S3_CONN_ID = "tap_s3"
METASTORE_CONN_ID = "tap_metastore"
TRINO_CONN_ID = "tap_trino"
TRINO_ANALYST_CONN_ID = "tap_trino_analyst"
SUPERSET_CONN_ID = "tap_superset"
SPARK_LOCAL_CONN_ID = "tap_spark_local"
HDFS_CONN_ID = "tap_hdfs"
KAFKA_ROLES = ("replay", "streaming", "reader")


def _kafka(cfg: PlatformConfig, creds: Credentials, role: str) -> dict:
    return {
        "conn_type": "generic",
        "description": f"Kafka as the {role} role (SASL/SCRAM)",
        "host": LOOPBACK,
        "port": cfg.kafka_port,
        "login": KAFKA_PRINCIPALS[role],
        "password": kafka_password(creds, role),
        "extra": {
            "bootstrap_servers": cfg.kafka_bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM_MECHANISM,
        },
    }


def _trino(cfg: PlatformConfig, login: str, password: str, description: str) -> dict:
    return {
        "conn_type": "generic",
        "description": description,
        "host": LOOPBACK,
        "port": cfg.trino_port,
        "schema": "iceberg",
        "login": login,
        "password": password,
        "extra": {"http_scheme": "https", "catalog": "iceberg", "verify": str(ca_file_path(cfg))},
    }


def connection_definitions(cfg: PlatformConfig, creds: Credentials) -> dict[str, dict]:
    return {
        S3_CONN_ID: {
            "conn_type": "generic",
            "description": "S3-compatible object store (MinIO locally)",
            "host": LOOPBACK,
            "port": cfg.minio_port,
            "schema": "http",
            "login": creds.minio_root_user,
            "password": creds.minio_root_password,
            "extra": {
                "endpoint_url": cfg.minio_endpoint,
                "region_name": "us-east-1",
                "raw_bucket": cfg.raw_bucket,
                "warehouse_bucket": cfg.warehouse_bucket,
                "models_bucket": cfg.models_bucket,
                "reports_bucket": cfg.reports_bucket,
                "raw_store": cfg.raw_store,
                "raw_root": cfg.raw_root_uri,
            },
        },
        HDFS_CONN_ID: {
            "conn_type": "generic",
            "description": "HDFS over WebHDFS (simple auth: the login names the HDFS user)",
            "host": LOOPBACK,
            "port": cfg.hdfs_namenode_http_port,
            "schema": "http",
            "login": cfg.hdfs_user,
            "extra": {"namenode_uri": cfg.hdfs_uri},
        },
        METASTORE_CONN_ID: {
            "conn_type": "generic",
            "description": "Hive Metastore Thrift service",
            "host": LOOPBACK,
            "port": cfg.metastore_port,
            "schema": "thrift",
        },
        TRINO_CONN_ID: _trino(
            cfg, creds.trino_admin_user, creds.trino_admin_password, "Trino as the platform admin (HTTPS, password)"
        ),
        TRINO_ANALYST_CONN_ID: _trino(
            cfg, creds.trino_analyst_user, creds.trino_analyst_password, "Trino as the read-only analyst"
        ),
        SUPERSET_CONN_ID: {
            "conn_type": "http",
            "description": "Superset REST API",
            "host": LOOPBACK,
            "port": cfg.superset_port,
            "schema": "http",
            "login": creds.superset_admin_user,
            "password": creds.superset_admin_password,
        },
        SPARK_LOCAL_CONN_ID: {
            "conn_type": "spark",
            "description": "spark-submit to local[*] (SparkSubmitHook)",
            "host": "local[*]",
            "extra": {"spark-binary": "spark-submit", "deploy-mode": "client"},
        },
        **{f"tap_kafka_{role}": _kafka(cfg, creds, role) for role in KAFKA_ROLES},
    }


def airflow_connections(cfg: PlatformConfig, creds: Credentials) -> dict[str, str]:
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
        for conn_id, conn in connection_definitions(cfg, creds).items()
    }
