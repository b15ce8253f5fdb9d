"""The local platform as a whole: install, start in dependency order, report status, stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

from local_platform import artifacts
from local_platform.config import REPO_ROOT, PlatformConfig
from local_platform.credentials import Credentials, load_or_create
from local_platform.process import PRIVATE_UMASK, make_private
from local_platform.services.airflow import AirflowService
from local_platform.services.base import Service
from local_platform.services.exploration import JupyterService, SparkConnectService
from local_platform.services.hdfs import HdfsService
from local_platform.services.kafka import KafkaService
from local_platform.services.metastore import MetastoreService, build_loopback_shim
from local_platform.services.minio import MinioService
from local_platform.services.opa import OpaService
from local_platform.services.postgres import PostgresService
from local_platform.services.stream import StreamService
from local_platform.services.superset import SupersetService
from local_platform.services.trino import TrinoService
from local_platform.spark import write_spark_defaults


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class ServiceStatus:
    name: str
    running: bool
    healthy: bool
    pids: dict[str, int | None]
    urls: list[str]


class LocalPlatform:
    """All services, in start order (each depends only on those before it).

    `services` are the core: what the pipeline needs (HDFS among them when the raw zone is in HDFS).
    `exploration_services` (Spark Connect, JupyterLab) are started by `make up` after the core, and by the tests
    that need them. `optional_services` start on request only (HDFS when the raw zone is in S3, the stream)."""

    def __init__(self, cfg: PlatformConfig, creds: Credentials | None = None) -> None:
        self.cfg = cfg
        self.creds = creds or load_or_create(cfg.credentials_file)
        hdfs = HdfsService(cfg, self.creds)
        raw_in_hdfs = cfg.raw_store == "hdfs"
        self.services: list[Service] = [
            MinioService(cfg, self.creds),
            *([hdfs] if raw_in_hdfs else []),
            PostgresService(cfg, self.creds),
            MetastoreService(cfg, self.creds),
            KafkaService(cfg, self.creds),
            *([OpaService(cfg, self.creds)] if cfg.uses_opa else []),
            TrinoService(cfg, self.creds),
            SupersetService(cfg, self.creds),
            AirflowService(cfg, self.creds),
        ]
        self.exploration_services: list[Service] = [
            SparkConnectService(cfg, self.creds),
            JupyterService(cfg, self.creds),
        ]
        # Started on request only (the stream needs what the pipeline produces first); stopped by `down` if running.
        self.optional_services: list[Service] = [*([] if raw_in_hdfs else [hdfs]), StreamService(cfg, self.creds)]

    @property
    def all_services(self) -> list[Service]:
        return [*self.services, *self.exploration_services, *self.optional_services]

    def service(self, name: str) -> Service:
        return next(s for s in self.all_services if s.name == name)

    # setup ---------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Install everything the platform runs on; a no-op (seconds) when nothing changed."""
        cfg = self.cfg
        _log("setup: python virtualenvs")
        subprocess.run(["bash", str(REPO_ROOT / "local_platform" / "install_venvs.sh")], check=True)
        _log("setup: JVM artifacts from Maven Central")
        jars = (
            *artifacts.SPARK_JARS,
            *artifacts.SPARK_KAFKA_JARS,
            *artifacts.kafka_broker_jars(),
            *artifacts.hdfs_jars(),
        )
        for artifact in jars:
            artifacts.fetch(artifact, cfg)
        artifacts.install_trino(cfg)
        artifacts.install_trino_opa_plugin(cfg)
        artifacts.build_trino_guard_plugin(cfg)
        artifacts.trino_cli(cfg)
        _log("setup: MinIO server and client (go install)")
        artifacts.install_go_tool(artifacts.MINIO, cfg)
        artifacts.install_go_tool(artifacts.MC, cfg)
        _log("setup: Open Policy Agent (go install)")
        artifacts.install_go_tool(artifacts.OPA, cfg)
        _log("setup: loopback bind shim")
        build_loopback_shim(cfg)
        write_spark_defaults(cfg, self.creds)
        _log(f"setup: done (credentials in {cfg.credentials_file})")

    # lifecycle -----------------------------------------------------------------------------------------------
    def up(self, services: list[Service] | None = None) -> None:
        """Start `services` (default: the core, then the exploration services) in order, each until healthy."""
        # State is for the platform's user only: new files 0600 / dirs 0700 (this process, its CLI calls and
        # every service, see process.PRIVATE_UMASK), and state left readable by an older install is fixed here.
        os.umask(PRIVATE_UMASK)
        fixed = make_private(self.cfg.state_dir, keep=PostgresService.passage_dirs(self.cfg))
        if fixed:
            _log(f"up: made {fixed} entries under {self.cfg.state_dir} private to their owner (0700/0600)")
        write_spark_defaults(self.cfg, self.creds)
        for service in services if services is not None else [*self.services, *self.exploration_services]:
            started = time.monotonic()
            state = "already running" if service.is_running() else "starting"
            _log(f"up: {service.name} ({state})")
            service.start()
            _log(f"up: {service.name} healthy after {time.monotonic() - started:.1f} s")

    def down(self) -> list[str]:
        stopped: list[str] = []
        # OPA is stopped in file mode too: it may still run from before a switch of TAP_TRINO_ACCESS_CONTROL.
        others = [OpaService(self.cfg, self.creds)] if not self.cfg.uses_opa else []
        for service in [
            *self.optional_services,
            *reversed(self.exploration_services),
            *reversed(self.services),
            *others,
        ]:
            stopped += service.stop()
        return stopped

    def status(self) -> list[ServiceStatus]:
        result = []
        running_optional = [s for s in self.optional_services if s.is_running()]
        for service in [*self.services, *self.exploration_services, *running_optional]:
            pids = {p.name: p.pid for p in service.processes}
            running = all(pid is not None for pid in pids.values())
            result.append(
                ServiceStatus(
                    name=service.name,
                    running=running,
                    healthy=running and service.healthy(),
                    pids=pids,
                    urls=[f"{e.name}: {e.url}" for e in service.endpoints()],
                )
            )
        return result
