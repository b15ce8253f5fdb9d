"""Airflow 3 as four processes (api-server, scheduler, dag-processor, triggerer) with the platform's connections.

Logins are FAB's (apache-airflow-providers-fab): the users of `users()` with generated passwords, roles Admin,
User (the operator: triggers and pauses DAGs) and Viewer; nobody anonymous (no AUTH_ROLE_PUBLIC).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.request
from pathlib import Path

from local_platform.config import LOOPBACK, REPO_ROOT
from local_platform.connections import airflow_connections
from local_platform.process import http_ok, wait_until
from local_platform.services.base import Endpoint, Service
from local_platform.services.postgres import PostgresService
from local_platform.spark import spark_env

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


class AirflowService(Service):
    name = "airflow"
    process_names = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
    start_timeout = 180.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("UI / REST API", self.cfg.airflow_url)]

    @property
    def home(self) -> Path:
        path = self.cfg.state_dir / "airflow"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self) -> dict[str, str]:
        """The environment every Airflow process (and `airflow` CLI call) of the local platform runs with."""
        venv_bin = self.cfg.venv_dir / "bin"
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__FERNET_KEY": self.creds.airflow_fernet_key,
            "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
            # FAB's limiter on its login form (POST /auth/login/); the REST token endpoint is throttled by the
            # platform's plugin (taxi_anomaly.orchestration.login_throttle), which FAB's limiter does not cover.
            "AIRFLOW__FAB__AUTH_RATE_LIMITED": "True",
            "AIRFLOW__FAB__AUTH_RATE_LIMIT": "5 per 40 second",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.cfg.airflow_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": PostgresService(self.cfg, self.creds).airflow_url(),
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(self.cfg.airflow_port),
            "AIRFLOW__API__BASE_URL": self.cfg.airflow_url,
            "AIRFLOW__API__SECRET_KEY": self.creds.airflow_api_secret_key,
            "AIRFLOW__API_AUTH__JWT_SECRET": self.creds.airflow_jwt_secret,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.cfg.log_dir / "airflow"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.cfg.airflow_worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.cfg.airflow_trigger_log_port),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # Besides the TLC's CDN, the one source downloads may come from (taxi_anomaly.ingest.settings).
            "TAP_MIRROR_URL": self.cfg.mirror_url,
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        settings.update(spark_env(self.cfg, self.creds))
        settings.update(airflow_connections(self.cfg, self.creds))
        return {**self.base_env(), **settings}

    def users(self) -> list[dict[str, str]]:
        """The FAB users the platform creates, with their roles and generated passwords."""
        c = self.creds
        logins = [
            (c.airflow_admin_user, c.airflow_admin_password, "Admin", "Admin"),
            (c.airflow_operator_user, c.airflow_operator_password, "User", "Operator"),
            (c.airflow_viewer_user, c.airflow_viewer_password, "Viewer", "Viewer"),
        ]
        return [
            {
                "username": user,
                "password": password,
                "role": role,
                "firstname": "Platform",
                "lastname": lastname,
                "email": f"{user}@localhost",
            }
            for user, password, role, lastname in logins
        ]

    def sync_users(self) -> None:
        """Create or update the users when they (or their passwords) changed; passwords go through stdin."""
        users = json.dumps(self.users())
        marker = self.home / ".fab-users"
        fingerprint = hashlib.sha256(f"{users}|{self.cfg.postgres_port}".encode()).hexdigest()
        if marker.exists() and marker.read_text() == fingerprint:
            return
        result = subprocess.run(
            [str(self.cfg.python), "-m", "local_platform.airflow_users"],
            input=users,
            env={**self.env(), "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
        if result.returncode != 0:
            raise RuntimeError(f"creating Airflow's users failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        marker.write_text(fingerprint)

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.cfg.venv_dir / "bin" / "airflow"), *args],
            env=self.env(),
            check=check,
            capture_output=True,
            text=True,
            cwd=self.home,
        )

    def migrate(self) -> None:
        """`airflow db migrate` once per metadata database and auth manager (an install that ran on SQLite gets a
        new, empty PostgreSQL database: its run history stays in the old airflow.db)."""
        marker = self.home / ".db-migrated"
        done = f"{FAB_AUTH_MANAGER} on postgres:{self.cfg.postgres_port}"
        if marker.exists() and marker.read_text() == done:
            return
        result = self.airflow("db", "migrate", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        marker.write_text(done)

    def start(self) -> None:
        self.migrate()
        self.sync_users()
        airflow_bin = str(self.cfg.venv_dir / "bin" / "airflow")
        # The scheduler and triggerer would start log servers bound to all interfaces (host="" is hard-coded);
        # with LocalExecutor on one machine the API server reads task logs from disk, so skip them.
        commands = {
            "airflow-api-server": [
                airflow_bin,
                "api-server",
                "--host",
                LOOPBACK,
                "--port",
                str(self.cfg.airflow_port),
                "--workers",
                "1",
            ],
            "airflow-scheduler": [airflow_bin, "scheduler", "--skip-serve-logs"],
            "airflow-dag-processor": [airflow_bin, "dag-processor"],
            "airflow-triggerer": [airflow_bin, "triggerer", "--skip-serve-logs"],
        }
        env = self.env()
        for name, argv in commands.items():
            proc = self.process(name)
            if not proc.is_running():
                proc.start(argv, env, self.log_file(name), cwd=self.home)
        api = self.process("airflow-api-server")
        wait_until(self.healthy, self.start_timeout, "Airflow", api, self.log_file("airflow-api-server"), interval=1.0)

    def health_report(self) -> dict:
        with urllib.request.urlopen(f"{self.cfg.airflow_url}/api/v2/monitor/health", timeout=5) as resp:
            return json.loads(resp.read())

    def healthy(self) -> bool:
        if not http_ok(f"{self.cfg.airflow_url}/api/v2/monitor/health"):
            return False
        report = self.health_report()
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all(report.get(c, {}).get("status") == "healthy" for c in components)
