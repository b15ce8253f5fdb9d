"""Superset (own virtualenv) under gunicorn on loopback, with its metadata DB, admin user and Trino database."""

from __future__ import annotations

import hashlib
import subprocess
import urllib.parse

from local_platform.config import LOOPBACK, REPO_ROOT
from local_platform.process import http_ok, wait_until
from local_platform.services.base import Endpoint, Service
from local_platform.services.trino import ca_file_path

SUPERSET_INCLUDE = REPO_ROOT / "include" / "superset"
DATABASE_ASSET = SUPERSET_INCLUDE / "assets" / "databases" / "trino.yaml"


class SupersetService(Service):
    name = "superset"
    process_names = ("superset",)
    start_timeout = 180.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("UI / REST API", self.cfg.superset_url)]

    def env(self) -> dict[str, str]:
        data = self.data_dir()
        cache = data / "cache"
        cache.mkdir(exist_ok=True)
        return {
            **self.base_env(),
            "SUPERSET_CONFIG_PATH": str(SUPERSET_INCLUDE / "superset_config.py"),
            "SUPERSET_SECRET_KEY": self.creds.superset_secret_key,
            "SUPERSET_METADATA_DB_URI": f"sqlite:///{data / 'superset.db'}",
            "SUPERSET_CACHE_DIR": str(cache),
            "FLASK_APP": "superset.app:create_app()",
            # Trino is HTTPS-only with a per-install certificate: superset_config.py makes Trino connections trust it.
            "TAP_TRINO_CA_FILE": str(ca_file_path(self.cfg)),
            "PATH": f"{self.cfg.superset_venv_dir / 'bin'}:{self.base_env().get('PATH', '')}",
        }

    def trino_uri(self) -> str:
        """Superset reads Trino as the read-only analyst (include/trino/access-control.json says what it may read)."""
        user = urllib.parse.quote(self.creds.trino_analyst_user, safe="")
        password = urllib.parse.quote(self.creds.trino_analyst_password, safe="")
        return f"trino://{user}:{password}@{LOOPBACK}:{self.cfg.trino_port}/iceberg"

    def superset(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.cfg.superset_venv_dir / "bin" / "superset"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            cwd=self.data_dir(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"superset {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")

    def initialise(self) -> None:
        """First start only: metadata schema, roles, the admin user and the Trino database connection."""
        marker = self.data_dir() / ".initialised"
        if marker.exists():
            return
        self.superset("db", "upgrade")
        self.superset(
            "fab",
            "create-admin",
            "--username",
            self.creds.superset_admin_user,
            "--firstname",
            "Platform",
            "--lastname",
            "Admin",
            "--email",
            "platform-admin@localhost",
            "--password",
            self.creds.superset_admin_password,
        )
        self.superset("init")
        marker.touch()

    def register_trino_database(self) -> None:
        """Create or update the database `trino` (name, uuid, extra of its asset file) whenever its URI changed.

        The password reaches Superset only here, on stdin of include/superset/register_database.py; the assets
        import (taxi_anomaly.serving) finds the database by uuid and keeps it, so no request carries it (Superset
        logs request form fields in its action log).
        """
        marker = self.data_dir() / ".trino-database"
        fingerprint = hashlib.sha256(f"{self.trino_uri()}|{DATABASE_ASSET.read_text()}".encode()).hexdigest()
        if marker.exists() and marker.read_text() == fingerprint:
            return
        result = subprocess.run(
            [str(self.cfg.superset_venv_dir / "bin" / "python"), str(SUPERSET_INCLUDE / "register_database.py")]
            + [str(DATABASE_ASSET)],
            input=self.trino_uri(),
            env=self.env(),
            capture_output=True,
            text=True,
            cwd=self.data_dir(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"registering Superset's Trino database failed:\n{result.stderr[-4000:]}")
        marker.write_text(fingerprint)

    def start(self) -> None:
        proc = self.process("superset")
        if not proc.is_running():
            self.initialise()
            self.register_trino_database()
            argv = [
                str(self.cfg.superset_venv_dir / "bin" / "gunicorn"),
                "--bind",
                f"{LOOPBACK}:{self.cfg.superset_port}",
                "--workers",
                str(self.cfg.superset_workers),
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--timeout",
                "120",
                "--limit-request-line",
                "0",
                "--limit-request-field_size",
                "0",
                "superset.app:create_app()",
            ]
            proc.start(argv, self.env(), self.log_file("superset"), cwd=self.data_dir())
        wait_until(self.healthy, self.start_timeout, "Superset", proc, self.log_file("superset"), interval=1.0)

    def healthy(self) -> bool:
        return http_ok(f"{self.cfg.superset_url}/health")
