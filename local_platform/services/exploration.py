"""The exploration services: a Spark Connect server (token-authenticated gRPC) and JupyterLab (token login).

The Connect server runs the platform's Spark configuration (SPARK_CONF_DIR: Iceberg on the Hive Metastore, S3A on
MinIO, the HDFS client settings), so a notebook's thin client sees the same catalog and raw zone as the batch job.
Spark 4.1's server checks a pre-shared bearer token (SPARK_CONNECT_AUTHENTICATE_TOKEN, PreSharedKeyAuthentication-
Interceptor): a call without it, or with another, is refused with UNAUTHENTICATED.
"""

from __future__ import annotations

from local_platform.config import LOOPBACK, REPO_ROOT, PlatformConfig
from local_platform.credentials import Credentials
from local_platform.process import http_ok, port_open, wait_until
from local_platform.services.base import Endpoint, Service
from local_platform.spark import spark_env

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def connect_client_env(cfg: PlatformConfig, creds: Credentials) -> dict[str, str]:
    """What a Spark Connect client needs: pyspark's SparkSession.builder.getOrCreate() reads both variables."""
    return {"SPARK_REMOTE": cfg.spark_connect_url, "SPARK_CONNECT_AUTHENTICATE_TOKEN": creds.spark_connect_token}


class SparkConnectService(Service):
    name = "spark-connect"
    process_names = ("spark-connect",)
    start_timeout = 120.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("gRPC", f"{self.cfg.spark_connect_url} (token: SPARK_CONNECT_TOKEN in credentials.env)")]

    def argv(self) -> list[str]:
        cfg = self.cfg
        return [
            str(cfg.spark_home / "bin" / "spark-submit"),
            "--class",
            CONNECT_SERVER_CLASS,
            "--name",
            "tap-spark-connect",
            "--driver-memory",
            cfg.spark_connect_driver_memory,
            "--conf",
            f"spark.connect.grpc.binding.address={LOOPBACK}",
            "--conf",
            f"spark.connect.grpc.binding.port={cfg.spark_connect_port}",
            "spark-internal",
        ]

    def env(self) -> dict[str, str]:
        return {
            **self.java_env(),
            **spark_env(self.cfg),
            "SPARK_CONNECT_MODE": "0",  # this process is the server, not a client
            "SPARK_CONNECT_AUTHENTICATE_TOKEN": self.creds.spark_connect_token,
            "HADOOP_USER_NAME": self.cfg.hdfs_user,
        }

    def start(self) -> None:
        proc = self.process("spark-connect")
        if not proc.is_running():
            proc.start(self.argv(), self.env(), self.log_file("spark-connect"), cwd=self.data_dir())
        wait_until(self.healthy, self.start_timeout, "Spark Connect", proc, self.log_file("spark-connect"))

    def healthy(self) -> bool:
        # The gRPC port opens once the server is ready; tests/explore runs a real authenticated query.
        return port_open(self.cfg.spark_connect_port)


class JupyterService(Service):
    name = "jupyter"
    process_names = ("jupyterlab",)
    start_timeout = 60.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("JupyterLab", f"{self.cfg.jupyter_url}/lab (token: JUPYTER_TOKEN in credentials.env)")]

    def argv(self) -> list[str]:
        return [
            str(self.cfg.venv_dir / "bin" / "jupyter"),
            "lab",
            f"--ip={LOOPBACK}",
            f"--port={self.cfg.jupyter_port}",
            "--port-retries=0",
            "--no-browser",
            "--allow-root",  # the platform runs as root on these machines (PLATFORM-NOTES)
            f"--ServerApp.root_dir={NOTEBOOKS_DIR}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]

    def env(self) -> dict[str, str]:
        state = self.data_dir()
        return {
            **self.base_env(),
            **spark_env(self.cfg),
            **connect_client_env(self.cfg, self.creds),
            "JUPYTER_TOKEN": self.creds.jupyter_token,
            "JUPYTER_CONFIG_DIR": str(state / "config"),
            "JUPYTER_DATA_DIR": str(state / "data"),
            "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(state / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(state / "lab-workspaces"),
            "TAP_RAW_ROOT_URI": self.cfg.raw_root_uri,
            "HADOOP_USER_NAME": self.cfg.hdfs_user,
        }

    def write_settings(self) -> None:
        """Lab settings of this install: no news pop-up (it would ask to fetch news from the internet)."""
        notification = self.data_dir() / "lab-settings" / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}\n')

    def start(self) -> None:
        proc = self.process("jupyterlab")
        if not proc.is_running():
            self.write_settings()
            proc.start(self.argv(), self.env(), self.log_file("jupyterlab"), cwd=NOTEBOOKS_DIR)
        wait_until(self.healthy, self.start_timeout, "JupyterLab", proc, self.log_file("jupyterlab"))

    def healthy(self) -> bool:
        return http_ok(f"{self.cfg.jupyter_url}/api/status?token={self.creds.jupyter_token}")
