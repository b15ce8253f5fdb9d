"""Trino, a single coordinator node serving the Iceberg catalog (include/trino/catalog) on loopback."""

from __future__ import annotations

import json
import os
import shutil
from string import Template

from local_platform import artifacts
from local_platform.config import LOOPBACK, REPO_ROOT
from local_platform.process import http_ok, wait_until
from local_platform.services.base import Endpoint, Service

TRINO_INCLUDE = REPO_ROOT / "include" / "trino"


class TrinoService(Service):
    name = "trino"
    process_names = ("trino",)
    start_timeout = 180.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("HTTP / JDBC", self.cfg.trino_url)]

    @property
    def home(self):
        return self.cfg.tools_dir / f"trino-server-{artifacts.TRINO_VERSION}"

    def write_config(self):
        etc = self.conf_dir() / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "node.properties").write_text(
            "node.environment=local\n"
            "node.id=local-coordinator\n"
            f"node.data-dir={self.data_dir()}\n"
            # Without these Trino binds every interface.
            f"node.bind-ip={LOOPBACK}\n"
            f"node.internal-address={LOOPBACK}\n"
        )
        (etc / "config.properties").write_text(
            "coordinator=true\n"
            "node-scheduler.include-coordinator=true\n"
            f"http-server.http.port={self.cfg.trino_port}\n"
            f"discovery.uri=http://{LOOPBACK}:{self.cfg.trino_port}\n"
            "query.max-memory=1GB\n"
            "query.max-memory-per-node=1GB\n"
        )
        jvm = Template((TRINO_INCLUDE / "jvm.config").read_text()).substitute(TRINO_HEAP=self.cfg.trino_heap)
        (etc / "jvm.config").write_text(jvm)
        (etc / "log.properties").write_text("io.trino=INFO\n")
        shutil.rmtree(etc / "catalog", ignore_errors=True)
        shutil.copytree(TRINO_INCLUDE / "catalog", etc / "catalog")
        return etc

    def env(self) -> dict[str, str]:
        java_home = str(self.cfg.trino_java_home)
        return {
            **self.base_env(),
            "JAVA_HOME": java_home,
            "PATH": f"{java_home}/bin:{os.environ['PATH']}",
            "TAP_METASTORE_URI": self.cfg.metastore_uri,
            "TAP_S3_ENDPOINT": self.cfg.minio_endpoint,
            "TAP_S3_ACCESS_KEY": self.creds.minio_root_user,
            "TAP_S3_SECRET_KEY": self.creds.minio_root_password,
        }

    def start(self) -> None:
        proc = self.process("trino")
        if not proc.is_running():
            etc = self.write_config()
            argv = [str(self.home / "bin" / "launcher"), "run", f"--etc-dir={etc}", f"--data-dir={self.data_dir()}"]
            proc.start(argv, self.env(), self.log_file("trino"), cwd=self.data_dir())
        wait_until(self.healthy, self.start_timeout, "Trino", proc, self.log_file("trino"), interval=1.0)

    def healthy(self) -> bool:
        def ready(status: int, body: bytes) -> bool:
            return status == 200 and json.loads(body).get("starting") is False

        return http_ok(f"{self.cfg.trino_url}/v1/info", accept=ready)
