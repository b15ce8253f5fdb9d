"""PostgreSQL (Debian's package) as Airflow's metadata database, on 127.0.0.1 with generated passwords.

Why: under concurrent REST triggers Airflow's SQLite database answered HTTP 500 ("database is locked") and
blocked the API server for up to 109 s (tests/dags/test_airflow_roles.py; figures in docs/orchestration.md).
PostgreSQL refuses to run as root, so the server runs as the OS user `postgres`; its data directory
(.platform/data/postgres, 0700) belongs to that user, and the two directories above it are 0710 root:postgres so
that it alone (besides root) may pass through them. No Unix socket; TCP on loopback with SCRAM passwords only.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from pathlib import Path

from local_platform.config import LOOPBACK, PlatformConfig
from local_platform.process import port_open, wait_until
from local_platform.services.base import Endpoint, Service

OS_USER = "postgres"
SUPERUSER = "postgres"
AIRFLOW_DB = "airflow"


class PostgresService(Service):
    name = "postgres"
    process_names = ("postgres",)
    start_timeout = 60.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("PostgreSQL (Airflow metadata)", f"postgresql://{LOOPBACK}:{self.cfg.postgres_port}")]

    @property
    def pgdata(self) -> Path:
        return self.cfg.data_dir / "postgres"

    def bin(self, name: str) -> str:
        return str(self.cfg.postgres_home / "bin" / name)

    def airflow_url(self) -> str:
        """The SQLAlchemy URL of Airflow's metadata database (user and database `airflow`)."""
        password = self.creds.airflow_db_password
        return f"postgresql+psycopg2://{AIRFLOW_DB}:{password}@{LOOPBACK}:{self.cfg.postgres_port}/{AIRFLOW_DB}"

    def server_env(self) -> dict[str, str]:
        return {**self.base_env(), "HOME": pwd.getpwnam(OS_USER).pw_dir, "USER": OS_USER}

    # Setup ---------------------------------------------------------------------------------------------------
    @staticmethod
    def passage_dirs(cfg: PlatformConfig) -> tuple[Path, ...]:
        """The directories the server's OS user passes through to reach its data directory."""
        return (cfg.state_dir, cfg.data_dir)

    def open_path_for_server(self) -> None:
        """.platform and .platform/data: 0710 root:postgres (the server's OS user may pass, nobody else)."""
        gid = grp.getgrnam(OS_USER).gr_gid
        for directory in self.passage_dirs(self.cfg):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chown(directory, -1, gid)
            os.chmod(directory, 0o710)  # noqa: S103 - group postgres may pass (x), not list; others nothing

    def initdb(self) -> None:
        """A new cluster the first time (SCRAM for every TCP login, no socket logins), its superuser password from
        the credentials."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        user = pwd.getpwnam(OS_USER)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.pgdata, user.pw_uid, user.pw_gid)
        # initdb reads the superuser password from a file: one only the server's user can read, removed at once.
        pwfile = self.cfg.data_dir / ".initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchown(fd, user.pw_uid, user.pw_gid)
            os.write(fd, f"{self.creds.postgres_superuser_password}\n".encode())
            os.close(fd)
            result = subprocess.run(
                [self.bin("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}"]
                + ["--auth-host=scram-sha-256", "--auth-local=reject", "--encoding=UTF8", "--locale=C.UTF-8"],
                env=self.server_env(),
                user=OS_USER,
                group=user.pw_gid,
                extra_groups=[],
                capture_output=True,
                text=True,
                cwd="/",
                umask=0o077,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    def ensure_airflow_database(self) -> None:
        """Role `airflow` with its generated password and the database it owns (SQL on stdin, not argv)."""
        password = self.creds.airflow_db_password.replace("'", "''")
        # Role and database `airflow` (AIRFLOW_DB); the password is generated [A-Za-z0-9] (quotes doubled anyway).
        sql = "\n".join(
            [
                "SELECT 'CREATE ROLE airflow LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'airflow')"
                "\\gexec",
                "ALTER ROLE airflow PASSWORD '" + password + "';",  # noqa: S608
                "SELECT 'CREATE DATABASE airflow OWNER airflow' "
                "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'airflow')\\gexec",
            ]
        )
        result = subprocess.run(
            [self.bin("psql"), "-h", LOOPBACK, "-p", str(self.cfg.postgres_port), "-U", SUPERUSER]
            + ["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-f", "-"],
            input=sql,
            env={**self.base_env(), "PGPASSWORD": self.creds.postgres_superuser_password, "PGCONNECT_TIMEOUT": "10"},
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"creating Airflow's database failed:\n{result.stderr[-2000:]}")

    # Lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.open_path_for_server()
        proc = self.process("postgres")
        if not proc.is_running():
            self.initdb()
            argv = [
                self.bin("postgres"),
                "-D",
                str(self.pgdata),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                f"port={self.cfg.postgres_port}",
                "-c",
                "unix_socket_directories=",
                # Small: one local Airflow (a few pools of 5 + overflow); ~30 MB resident when idle.
                "-c",
                "shared_buffers=32MB",
                "-c",
                "max_connections=100",
                "-c",
                "password_encryption=scram-sha-256",
            ]
            proc.start(argv, self.server_env(), self.log_file("postgres"), cwd=Path("/"), user=OS_USER)
        wait_until(self.healthy, self.start_timeout, "PostgreSQL", proc, self.log_file("postgres"))
        self.ensure_airflow_database()

    def healthy(self) -> bool:
        if not port_open(self.cfg.postgres_port):
            return False
        probe = subprocess.run(
            [self.bin("pg_isready"), "-h", LOOPBACK, "-p", str(self.cfg.postgres_port), "-t", "3"],
            capture_output=True,
        )
        return probe.returncode == 0
