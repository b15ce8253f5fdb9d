"""The streaming job as a managed local service (optional: `make stream-up` / `make stream-down`, not `make up`).

It scores the trips topic with the promoted model of one trip type and granularity (TAP_STREAM_* settings),
keeps its checkpoint under .platform/data/stream/, and writes its progress to .platform/data/stream/status.json.
It needs a promoted model, so it starts after a first training (`make demo` does one), not with the platform.
"""

from __future__ import annotations

import json
import time

from local_platform.config import REPO_ROOT
from local_platform.connections import connection_definitions
from local_platform.process import wait_until
from local_platform.services.base import Endpoint, Service
from local_platform.spark import spark_env


class StreamService(Service):
    name = "stream"
    process_names = ("stream-scoring",)
    start_timeout = 180.0

    @property
    def status_file(self):
        return self.data_dir() / "status.json"

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("progress", str(self.status_file))]

    def argv(self) -> list[str]:
        cfg = self.cfg
        checkpoint = self.data_dir() / "checkpoint" / f"{cfg.stream_trip_type}-{cfg.stream_granularity}"
        argv = [
            str(cfg.python),
            str(REPO_ROOT / "spark_jobs" / "run_stream_scoring.py"),
            "--trip-type",
            cfg.stream_trip_type,
            "--granularity",
            cfg.stream_granularity,
            "--models-uri",
            cfg.stream_models_uri,
            "--namespace",
            cfg.stream_namespace,
            "--checkpoint-uri",
            checkpoint.as_uri(),
            "--status-file",
            str(self.status_file),
        ]
        if cfg.stream_granularity == "borough":
            argv += ["--zones-uri", f"{cfg.raw_root_uri}/{cfg.stream_key_prefix}tlc/misc/taxi_zone_lookup.csv"]
        return argv

    def env(self) -> dict[str, str]:
        streaming = connection_definitions(self.cfg, self.creds)["tap_kafka_streaming"]
        return {
            **self.base_env(),
            **spark_env(self.cfg, self.creds),
            "AIRFLOW_CONN_TAP_KAFKA_STREAMING": json.dumps(streaming),
        }

    def start(self) -> None:
        proc = self.process("stream-scoring")
        if not proc.is_running():
            self.status_file.unlink(missing_ok=True)
            proc.start(self.argv(), self.env(), self.log_file("stream-scoring"), cwd=self.data_dir())
        wait_until(self.healthy, self.start_timeout, "streaming job", proc, self.log_file("stream-scoring"))

    def healthy(self) -> bool:
        """Running and reporting: the status file was rewritten within the last 30 s and every query the job
        started (the job lists them all) has reported progress."""
        return status_healthy(self.status_file)


def status_healthy(status_file, max_age_s: float = 30.0) -> bool:
    """A streaming job's status file is fresh and each of its queries has made progress."""
    try:
        document = json.loads(status_file.read_text())
    except (OSError, ValueError):
        return False
    queries = document.get("queries") or {}
    fresh = time.time() - float(document.get("updated_at", 0)) < max_age_s
    return fresh and bool(queries) and all(queries.values())
