"""Trino under each access-control mode: the platform's own Trino for the configured mode, a second short-lived
Trino (same metastore, warehouse, certificate and users; its own port, state and OPA if needed) for the other."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from local_platform.config import LOOPBACK
from local_platform.platform import LocalPlatform
from local_platform.services.opa import OpaService
from local_platform.services.trino import TrinoService
from taxi_anomaly.serving.trino_client import TrinoSettings


@dataclass(frozen=True)
class Logins:
    """The platform's Trino users on one Trino."""

    mode: str
    admin: TrinoSettings
    analyst: TrinoSettings
    green_analyst: TrinoSettings

    def reader(self, name: str) -> TrinoSettings:
        return {"analyst": self.analyst, "green_analyst": self.green_analyst}[name]


class AlternateTrino(TrinoService):
    """A second Trino with its own port, PID file, configuration and data directory."""

    name = "trino-alternate"
    process_names = ("trino-alternate",)
    start_timeout = 300.0


# mode -> why its alternate Trino did not start: later tests fail at once instead of waiting for it again.
_START_FAILURES: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _logins(platform: LocalPlatform, mode: str, port: int) -> Logins:
    creds, ca = platform.creds, str(platform.service("trino").ca_file)

    def login(user: str, password: str) -> TrinoSettings:
        return TrinoSettings(host=LOOPBACK, port=port, user=user, password=password, verify=ca)

    return Logins(
        mode,
        login(creds.trino_admin_user, creds.trino_admin_password),
        login(creds.trino_analyst_user, creds.trino_analyst_password),
        login(creds.trino_green_analyst_user, creds.trino_green_analyst_password),
    )


def logins_under(platform: LocalPlatform, mode: str) -> Iterator[Logins]:
    """Logins on a Trino in `mode`; an alternate Trino (and OPA, if it was not running) lives for the caller's scope.

    Cost (measured 2026-12-06 on 2 cores shared with other work): the alternate Trino starts in 65 s at load 12
    (210-300 s at load 20-28), with a 1.5 GB heap (query.max-memory-per-node is 1 GB plus 30 % headroom)."""
    if mode == platform.cfg.trino_access_control:
        yield _logins(platform, mode, platform.cfg.trino_port)
        return
    if mode in _START_FAILURES:
        pytest.fail(f"the Trino in {mode} mode did not start: {_START_FAILURES[mode]}")
    cfg = replace(platform.cfg, trino_access_control=mode, trino_port=_free_port(), trino_heap="1536M")
    started: list[OpaService | TrinoService] = []
    try:
        if cfg.uses_opa:
            opa = OpaService(cfg, platform.creds)
            if not opa.is_running():
                started.append(opa)
            opa.start()
        trino = AlternateTrino(cfg, platform.creds)
        started.append(trino)
        try:
            trino.start()
        except Exception as err:
            _START_FAILURES[mode] = str(err).splitlines()[0]
            raise
        yield _logins(platform, mode, cfg.trino_port)
    finally:
        for service in reversed(started):
            service.stop()
