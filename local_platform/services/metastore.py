"""Hive Metastore 2.3 (Thrift, Derby-backed) from pyspark's bundled Hive jars, bound to loopback by a shim."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
from pathlib import Path
from xml.sax.saxutils import escape

from local_platform import artifacts
from local_platform.config import LOOPBACK, REPO_ROOT, PlatformConfig
from local_platform.credentials import Credentials
from local_platform.process import wait_until
from local_platform.services.base import Endpoint, Service

NATIVE_DIR = REPO_ROOT / "local_platform" / "native"


SHIM_SOURCE = NATIVE_DIR / "loopback_bind.c"
TICKET_ENV = "TAP_METASTORE_TICKET"
# The ticket file's path: the shim in the metastore compares open files with it; in-process clients open it
# (taxi_anomaly.metastore_ticket reads the same name; tests/platform/test_metastore_gate.py pins the two).
TICKET_FILE_ENV = "TAP_METASTORE_TICKET_FILE"


def loopback_shim(cfg: PlatformConfig) -> Path:
    """The compiled shim, named by its source's hash (the cache is shared by work trees of different versions)."""
    digest = hashlib.sha256(SHIM_SOURCE.read_bytes()).hexdigest()[:12]
    return cfg.cache_dir / "lib" / f"libloopback_bind-{digest}.so"


def build_loopback_shim(cfg: PlatformConfig) -> Path:
    """Compile the LD_PRELOAD shim (loopback binds + the accept gate, see native/loopback_bind.c) once per source."""
    target = loopback_shim(cfg)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(partial), str(SHIM_SOURCE), "-ldl"],
        check=True,
    )
    partial.replace(target)
    return target


def metastore_client_env(creds: Credentials) -> dict[str, str]:
    """What a process the platform starts needs in its environment to pass the metastore's accept gate."""
    return {TICKET_ENV: creds.metastore_ticket}


def ticket_file(cfg: PlatformConfig) -> Path:
    """The ticket as a file (0600): an in-process client passes the gate while it holds this file open."""
    return cfg.run_dir / "metastore.ticket"


def write_ticket_file(cfg: PlatformConfig, creds: Credentials) -> Path:
    path = ticket_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(creds.metastore_ticket)
    os.chmod(path, 0o600)
    return path.resolve()


class MetastoreTicket:
    """Hold the ticket file open: the metastore then admits this process's connections (`with` block)."""

    def __init__(self, cfg: PlatformConfig) -> None:
        self.path = ticket_file(cfg)
        self._fd: int | None = None

    def __enter__(self) -> MetastoreTicket:
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def s3a_properties(cfg: PlatformConfig, creds: Credentials) -> dict[str, str]:
    """Hadoop S3A settings for MinIO (path-style, plain HTTP on loopback)."""
    return {
        "fs.s3a.endpoint": cfg.minio_endpoint,
        "fs.s3a.endpoint.region": "us-east-1",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "fs.s3a.access.key": creds.minio_root_user,
        "fs.s3a.secret.key": creds.minio_root_password,
    }


def thrift_get_all_databases(port: int, host: str = LOOPBACK, timeout: float = 3.0) -> list[str]:
    """Call ThriftHiveMetastore.get_all_databases over the binary protocol; return the database names."""
    name = b"get_all_databases"
    # Strict binary protocol: version|CALL, method name, seqid, then the empty args struct (T_STOP).
    request = struct.pack(">Ii", 0x80010001, len(name)) + name + struct.pack(">i", 1) + b"\x00"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        reader = sock.makefile("rb")
        (version,) = struct.unpack(">I", reader.read(4))
        if version & 0xFF != 2:  # message type REPLY
            raise RuntimeError(f"metastore answered message type {version & 0xFF}, not a reply")
        (name_len,) = struct.unpack(">i", reader.read(4))
        reader.read(name_len + 4)  # method name, seqid
        field_type, field_id = struct.unpack(">bh", reader.read(3))
        if field_type != 15 or field_id != 0:  # success is field 0, a list
            raise RuntimeError(f"metastore answered with an exception (field {field_id})")
        _elem_type, count = struct.unpack(">bi", reader.read(5))
        names = []
        for _ in range(count):
            (length,) = struct.unpack(">i", reader.read(4))
            names.append(reader.read(length).decode())
        return names


class MetastoreService(Service):
    name = "metastore"
    process_names = ("metastore",)
    start_timeout = 120.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("Thrift", self.cfg.metastore_uri)]

    def hive_site(self) -> dict[str, str]:
        db = self.data_dir() / "metastore_db"
        return {
            "javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={db};create=true",
            "javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.EmbeddedDriver",
            "datanucleus.schema.autoCreateAll": "true",
            "hive.metastore.schema.verification": "false",
            # BoneCP (the 2.3 default) is not among pyspark's jars; HikariCP is.
            "datanucleus.connectionPoolingType": "HikariCP",
            # Async logging needs the LMAX disruptor, which is not bundled either.
            "hive.async.log.enabled": "false",
            "hive.metastore.warehouse.dir": f"s3a://{self.cfg.warehouse_bucket}/hive",
            "hive.metastore.event.db.notification.api.auth": "false",
            **s3a_properties(self.cfg, self.creds),
        }

    def write_config(self) -> Path:
        conf = self.conf_dir()
        body = "".join(
            f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n"
            for k, v in self.hive_site().items()
        )
        site = conf / "hive-site.xml"
        site.touch(mode=0o600)
        site.write_text(f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n')
        return conf

    def classpath(self) -> str:
        jars = [str(self.cfg.downloads_dir / a.filename) for a in artifacts.METASTORE_JARS]
        return os.pathsep.join([str(self.conf_dir()), str(self.cfg.spark_home / "jars" / "*"), *jars])

    def init_txn_tables(self) -> None:
        marker = self.data_dir() / ".txn-tables-created"
        if marker.exists():
            return
        subprocess.run(
            ["java", "-cp", self.classpath(), str(NATIVE_DIR / "InitMetastoreTxnTables.java")],
            env=self.java_env(),
            cwd=self.data_dir(),
            check=True,
            capture_output=True,
            text=True,
        )
        marker.touch()

    def start(self) -> None:
        proc = self.process("metastore")
        ticket = write_ticket_file(self.cfg, self.creds)  # also for a metastore already running: health checks
        if not proc.is_running():
            self.write_config()
            self.init_txn_tables()
            env = {
                **self.java_env(),
                "LD_PRELOAD": str(loopback_shim(self.cfg)),
                **metastore_client_env(self.creds),
                TICKET_FILE_ENV: str(ticket),
            }
            argv = [
                "java",
                f"-Xmx{self.cfg.metastore_heap}",
                "-Djava.net.preferIPv4Stack=true",
                f"-Dderby.system.home={self.data_dir()}",
                "-cp",
                self.classpath(),
                "org.apache.hadoop.hive.metastore.HiveMetaStore",
                "-p",
                str(self.cfg.metastore_port),
            ]
            proc.start(argv, env, self.log_file("metastore"), cwd=self.data_dir())
        wait_until(self.healthy, self.start_timeout, "Hive Metastore", proc, self.log_file("metastore"))

    def healthy(self) -> bool:
        """The metastore lists its databases to this process, which holds the ticket for the call."""
        try:
            with MetastoreTicket(self.cfg):
                return "default" in thrift_get_all_databases(self.cfg.metastore_port)
        except (OSError, RuntimeError, struct.error):
            return False
