"""What every local service provides: its processes, how to prepare and start them, and how to check health."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from local_platform.config import PlatformConfig
from local_platform.credentials import Credentials
from local_platform.process import TrackedProcess


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str


class Service:
    """A local service made of one or more tracked processes.

    Subclasses set `name` and implement `start()` (idempotent: starts only what is not running) and
    `healthy()`. Stopping is generic: every tracked process group is stopped by its PID file.
    """

    name: str = ""
    process_names: tuple[str, ...] = ()
    start_timeout: float = 120.0

    def __init__(self, cfg: PlatformConfig, creds: Credentials) -> None:
        self.cfg = cfg
        self.creds = creds

    # Layout ------------------------------------------------------------------------------------------------
    def process(self, name: str) -> TrackedProcess:
        return TrackedProcess(name, self.cfg.run_dir / f"{name}.pid")

    @property
    def processes(self) -> list[TrackedProcess]:
        return [self.process(n) for n in self.process_names]

    def log_file(self, name: str) -> Path:
        return self.cfg.log_dir / f"{name}.log"

    def data_dir(self) -> Path:
        path = self.cfg.data_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def conf_dir(self) -> Path:
        path = self.cfg.conf_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def base_env(self) -> dict[str, str]:
        """A minimal environment: PATH and locale from the caller, nothing of the caller's secrets or venv."""
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")
        return {k: os.environ[k] for k in keep if k in os.environ}

    def java_env(self) -> dict[str, str]:
        """base_env with the platform's JDK for the JVM services (cfg.java_home first on PATH)."""
        env = self.base_env()
        java_home = str(self.cfg.java_home)
        return {**env, "JAVA_HOME": java_home, "PATH": f"{java_home}/bin{os.pathsep}{env.get('PATH', '')}"}

    # Behaviour ---------------------------------------------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def is_running(self) -> bool:
        return all(p.is_running() for p in self.processes)

    def stop(self) -> list[str]:
        """Stop this service's processes (reverse start order); return the names of those that were running."""
        return [p.name for p in reversed(self.processes) if p.stop()]
