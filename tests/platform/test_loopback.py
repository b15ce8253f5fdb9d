"""Nothing the local platform started listens on a non-loopback address."""

from __future__ import annotations

import ipaddress

import psutil
import pytest

pytestmark = pytest.mark.platform


def _platform_processes(platform, services=None) -> list[psutil.Process]:
    procs = []
    for service in platform.services if services is None else services:
        for tracked in service.processes:
            pid = tracked.pid
            assert pid is not None, f"{tracked.name} is not running"
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
    return procs


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _bound(procs: list[psutil.Process]) -> list[tuple[str, int, str, int]]:
    bound = []
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        for conn in conns:
            if conn.status in (psutil.CONN_LISTEN, psutil.CONN_NONE) and conn.laddr:
                bound.append((proc.name(), proc.pid, conn.laddr.ip, conn.laddr.port))
    return bound


def test_every_socket_of_the_platform_is_bound_to_loopback(platform):
    procs = _platform_processes(platform)
    assert len(procs) >= len(platform.services)
    bound = _bound(procs)
    listening_ports = {port for _, _, _, port in bound}
    cfg = platform.cfg
    assert set(cfg.listening_ports) <= listening_ports
    exposed = [b for b in bound if not _is_loopback(b[2])]
    assert not exposed, f"sockets bound beyond loopback: {exposed}"
    # Airflow's log servers (8793/8794) bind every interface when they run: they must not run at all.
    assert cfg.airflow_worker_log_port not in listening_ports
    assert cfg.airflow_trigger_log_port not in listening_ports


def test_every_socket_of_hdfs_spark_connect_and_jupyterlab_is_bound_to_loopback(platform, hdfs, jupyter):
    services = [platform.service(name) for name in ("hdfs", "spark-connect", "jupyter")]
    bound = _bound(_platform_processes(platform, services))
    assert set(platform.cfg.optional_ports) <= {port for _, _, _, port in bound}
    exposed = [b for b in bound if not _is_loopback(b[2])]
    assert not exposed, f"sockets bound beyond loopback: {exposed}"
