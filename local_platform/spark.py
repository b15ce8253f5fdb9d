"""Spark configuration of the local platform: a spark-defaults.conf (Iceberg on the Hive Metastore, S3A on MinIO).

Jobs and tests never hard-code catalogs or endpoints: they read them from SPARK_CONF_DIR, which the local
platform points here and a Kubernetes SparkApplication fills from its sparkConf.
"""

from __future__ import annotations

import os
from pathlib import Path

from local_platform import artifacts
from local_platform.config import LOOPBACK, REPO_ROOT, PlatformConfig
from local_platform.credentials import Credentials, load_or_create
from local_platform.services.metastore import TICKET_FILE_ENV, metastore_client_env, s3a_properties, ticket_file

ICEBERG_CATALOG = "iceberg"  # same name as the Trino catalog, so table names read the same in both


def spark_conf_dir(cfg: PlatformConfig) -> Path:
    return cfg.conf_dir / "spark"


def spark_defaults(cfg: PlatformConfig, creds: Credentials) -> dict[str, str]:
    jars = ",".join(str(p) for p in artifacts.spark_jar_paths(cfg))
    catalog = f"spark.sql.catalog.{ICEBERG_CATALOG}"
    conf = {
        "spark.master": "local[*]",
        "spark.jars": jars,
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        catalog: "org.apache.iceberg.spark.SparkCatalog",
        f"{catalog}.type": "hive",
        f"{catalog}.uri": cfg.metastore_uri,
        f"{catalog}.warehouse": f"s3a://{cfg.warehouse_bucket}/iceberg",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
        "spark.pyspark.python": str(cfg.python),
        "spark.pyspark.driver.python": str(cfg.python),
    }
    conf.update({f"spark.hadoop.{k}": v for k, v in s3a_properties(cfg, creds).items()})
    return conf


def write_spark_defaults(cfg: PlatformConfig, creds: Credentials) -> Path:
    conf_dir = spark_conf_dir(cfg)
    conf_dir.mkdir(parents=True, exist_ok=True)
    target = conf_dir / "spark-defaults.conf"
    target.touch(mode=0o600)
    target.write_text("".join(f"{k} {v}\n" for k, v in spark_defaults(cfg, creds).items()))
    return target


def spark_env(cfg: PlatformConfig, creds: Credentials | None = None) -> dict[str, str]:
    """Environment for anything that starts Spark locally (tests, spark-submit, Airflow tasks), with the ticket the
    metastore's accept gate asks of the JVM that connects to it."""
    creds = creds if creds is not None else load_or_create(cfg.credentials_file)
    return {
        **metastore_client_env(creds),
        # In-process clients (pyiceberg, health checks in Airflow tasks) hold this file open instead: a task worker
        # rewrites its title over its environment (taxi_anomaly.metastore_ticket).
        TICKET_FILE_ENV: str(ticket_file(cfg)),
        "SPARK_CONF_DIR": str(spark_conf_dir(cfg)),
        "PYSPARK_PYTHON": str(cfg.python),
        "PYSPARK_DRIVER_PYTHON": str(cfg.python),
        "JAVA_HOME": str(cfg.java_home),
        "SPARK_LOCAL_IP": LOOPBACK,
        # The HDFS user (simple auth) that owns the raw tree when the raw zone is in HDFS; unused by S3A.
        "HADOOP_USER_NAME": cfg.hdfs_user,
        # Executors import the job package by module name, as in the Kubernetes image (/opt/taxi-anomaly).
        "PYTHONPATH": os.pathsep.join(str(REPO_ROOT / d) for d in ("spark_jobs", "plugins")),
    }
