"""What the streaming scenarios of the tests and benchmarks share: Kafka topics of their own with each role's
grants, the roles' logins from the platform's connections, and the job as a real process (launched in a session
of its own so that kill -9 reaches Spark's JVM too, killed, stopped, the tail of its log)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from local_platform.connections import connection_definitions
from local_platform.services.kafka import KAFKA_PRINCIPALS
from taxi_anomaly.streaming import provision
from taxi_anomaly.streaming.settings import KafkaSettings
from taxi_anomaly.streaming.topics import Topic

ROLES = ("replay", "streaming", "reader")


class ScenarioBase:
    """Subclasses call `__init__`, then name their topics (`test_topics`) and start their job with `launch`."""

    process: subprocess.Popen[bytes] | None = None

    def __init__(self, platform: Any, log: Path) -> None:
        self.platform, self.log = platform, log
        self.suffix = uuid.uuid4().hex[:8]
        cfg, creds = platform.cfg, platform.creds
        self.admin_settings = KafkaSettings(cfg.kafka_bootstrap, KAFKA_PRINCIPALS["admin"], creds.kafka_admin_password)
        conns = connection_definitions(cfg, creds)
        self.roles = {r: KafkaSettings.from_connection_json(json.dumps(conns[f"tap_kafka_{r}"])) for r in ROLES}
        self.streaming_conn = json.dumps(conns["tap_kafka_streaming"])
        self.topics: dict[str, Topic] = {}

    def test_topics(self, names: tuple[str, ...], partitioned: str) -> dict[str, Topic]:
        """Topics `tap.test-<suffix>.<name>`, an hour of retention; `partitioned` (the input) gets 2 partitions."""
        return {
            name: Topic(
                f"tap.test-{self.suffix}.{name}",
                partitions=2 if name == partitioned else 1,
                retention_ms=3600_000,
                retention_bytes=1 << 28,
            )
            for name in names
        }

    # topics ------------------------------------------------------------------------------------------------
    def create_topics_granting(self, grants: dict[str, dict[str, tuple[str, ...]]]) -> None:
        """Create the topics and the ACLs of `grants` (role -> topic key -> operations); the reader reads all."""
        admin = provision.admin_client(self.admin_settings)
        provision.ensure_topics(admin, tuple(self.topics.values()))
        by_name = {
            role: {self.topics[key].name: operations for key, operations in topics.items()}
            for role, topics in grants.items()
        }
        by_name["reader"] = {topic.name: ("READ",) for topic in self.topics.values()}
        provision.ensure_acls(admin, KAFKA_PRINCIPALS, by_name)

    def delete_topics(self) -> None:
        admin = provision.admin_client(self.admin_settings)
        for future in admin.delete_topics([t.name for t in self.topics.values()]).values():
            future.result()

    # the job -----------------------------------------------------------------------------------------------
    def launch(self, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_job(self) -> None:
        """kill -9 of the job's whole process group (the Python driver and its JVM)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def stop_job(self) -> None:
        """SIGTERM (the job stops its queries), then -9 after 60 s."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"
