"""Kafka 4 in KRaft mode (one combined broker + controller) from pinned Maven Central jars, SASL everywhere.

Clients authenticate with SCRAM-SHA-512 on 127.0.0.1:kafka_port, one principal per role (KAFKA_PRINCIPALS); the
controller listener takes only the broker itself (SASL/PLAIN, a principal of its own). The StandardAuthorizer
denies whatever no ACL allows; the topics and the ACLs of each role are created after start by
`taxi_anomaly.streaming.provision` (run in the platform's venv, which has the Kafka admin client).
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import subprocess
import uuid
from pathlib import Path

from local_platform import artifacts
from local_platform.config import LOOPBACK, REPO_ROOT
from local_platform.process import wait_until
from local_platform.services.base import Endpoint, Service

# Role -> SCRAM user name. The admin is the broker's own inter-broker identity and the only super user besides
# the controller principal; the other roles get exactly the ACLs of taxi_anomaly/streaming/topics.py.
KAFKA_PRINCIPALS = {
    "admin": "tap-admin",
    "replay": "tap-replay",
    "streaming": "tap-streaming",
    "reader": "tap-reader",
}
CONTROLLER_PRINCIPAL = "tap-controller"
SCRAM_MECHANISM = "SCRAM-SHA-512"


def kafka_password(creds: object, role: str) -> str:
    return str(getattr(creds, f"kafka_{role}_password"))


def api_versions_ok(port: int, host: str = LOOPBACK, timeout: float = 3.0) -> bool:
    """Send an ApiVersions v0 request (allowed before SASL authentication) and check the error code is 0."""
    client_id = b"tap-health"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            reader = sock.makefile("rb")
            (size,) = struct.unpack(">i", reader.read(4))
            correlation_id, error_code = struct.unpack(">ih", reader.read(6))
            reader.read(size - 6)
            return correlation_id == 7 and error_code == 0
    except (OSError, struct.error):
        return False


def _jaas(module: str, **options: str) -> str:
    body = " ".join(f'{key}="{value}"' for key, value in options.items())
    return f"org.apache.kafka.common.security.{module} required {body};"


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 (22 characters), as `kafka-storage random-uuid`
    makes them, and like Kafka's ids never starting with '-' (the storage tool would read it as an option: one
    fresh install in 64 failed to format its log directory)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService(Service):
    name = "kafka"
    process_names = ("kafka",)
    start_timeout = 120.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("bootstrap (SASL_PLAINTEXT, SCRAM-SHA-512)", self.cfg.kafka_bootstrap)]

    @property
    def log_dirs(self) -> Path:
        return self.data_dir() / "kraft-logs"

    def server_properties(self) -> dict[str, str]:
        cfg, creds = self.cfg, self.creds
        admin = KAFKA_PRINCIPALS["admin"]
        controller_password = creds.kafka_controller_password
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{LOOPBACK}:{cfg.kafka_controller_port}",
            "listeners": f"CLIENT://{LOOPBACK}:{cfg.kafka_port},CONTROLLER://{LOOPBACK}:{cfg.kafka_controller_port}",
            "advertised.listeners": f"CLIENT://{LOOPBACK}:{cfg.kafka_port}",
            "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "CLIENT",
            "controller.listener.names": "CONTROLLER",
            "listener.name.client.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "sasl.mechanism.controller.protocol": "PLAIN",
            f"listener.name.client.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": _jaas(
                "scram.ScramLoginModule", username=admin, password=kafka_password(creds, "admin")
            ),
            "listener.name.controller.plain.sasl.jaas.config": _jaas(
                "plain.PlainLoginModule",
                username=CONTROLLER_PRINCIPAL,
                password=controller_password,
                **{f"user_{CONTROLLER_PRINCIPAL}": controller_password},
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{admin};User:{CONTROLLER_PRINCIPAL}",
            "allow.everyone.if.no.acl.found": "false",
            "auto.create.topics.enable": "false",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }

    def write_config(self) -> Path:
        conf = self.conf_dir()
        props = conf / "server.properties"
        props.touch(mode=0o600)
        props.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        (conf / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.console.type = Console\n"
            "appender.console.name = STDOUT\n"
            "appender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.stdout.ref = STDOUT\n"
            "logger.kafka.name = kafka\n"
            "logger.kafka.level = INFO\n"
            "logger.apache.name = org.apache.kafka\n"
            "logger.apache.level = WARN\n"
        )
        return props

    def java(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java",
            f"-Xmx{heap}",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={self.conf_dir() / 'log4j2.properties'}",
            "-cp",
            artifacts.kafka_classpath(self.cfg),
            main_class,
            *args,
        ]

    def format_storage(self, props: Path) -> None:
        """Format the KRaft log directory once, with the SCRAM credentials of every role in its first metadata."""
        if (self.log_dirs / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        scram = []
        for role, user in KAFKA_PRINCIPALS.items():
            scram += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={kafka_password(self.creds, role)}]"]
        argv = self.java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), *scram)
        result = subprocess.run(argv, env=self.java_env(), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"Kafka storage format failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    def provision_env(self) -> dict[str, str]:
        """What the provisioning module needs: where the broker is, the admin login and each role's principal."""
        return {
            **self.base_env(),
            "PYTHONPATH": str(REPO_ROOT / "plugins"),
            "TAP_KAFKA_BOOTSTRAP": self.cfg.kafka_bootstrap,
            "TAP_KAFKA_ADMIN_USER": KAFKA_PRINCIPALS["admin"],
            "TAP_KAFKA_ADMIN_PASSWORD": kafka_password(self.creds, "admin"),
            "TAP_KAFKA_PRINCIPALS": json.dumps(KAFKA_PRINCIPALS),
        }

    def provision(self) -> None:
        """Create the topics and ACLs (idempotent) with the admin client in the platform's venv."""
        result = subprocess.run(
            [str(self.cfg.python), "-m", "taxi_anomaly.streaming.provision"],
            env=self.provision_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"Kafka topic/ACL provisioning failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            )

    def start(self) -> None:
        proc = self.process("kafka")
        if not proc.is_running():
            props = self.write_config()
            self.format_storage(props)
            argv = self.java("kafka.Kafka", str(props), heap=self.cfg.kafka_heap)
            proc.start(argv, self.java_env(), self.log_file("kafka"), cwd=self.data_dir())
        wait_until(self.healthy, self.start_timeout, "Kafka", proc, self.log_file("kafka"))
        self.provision()

    def healthy(self) -> bool:
        return api_versions_ok(self.cfg.kafka_port)
