"""Command line of the local platform: python -m local_platform {setup,up,down,status,logs,env,stream-up,...}."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from local_platform.config import load_config
from local_platform.platform import LocalPlatform


def _status(platform: LocalPlatform) -> int:
    rows = platform.status()
    print(f"{'service':<10} {'health':<10} {'pid(s)':<34} url(s)")
    for row in rows:
        health = "healthy" if row.healthy else ("UNHEALTHY" if row.running else "stopped")
        pids = ", ".join(
            f"{name.removeprefix(row.name + '-') or row.name}={pid or '-'}" for name, pid in row.pids.items()
        )
        print(f"{row.name:<10} {health:<10} {pids:<34} {'; '.join(row.urls)}")
    print(f"\ncredentials: {platform.cfg.credentials_file}   logs: {platform.cfg.log_dir}")
    return 0 if all(r.healthy for r in rows) else 1


def _logs(platform: LocalPlatform) -> int:
    print(f"Logs of the local platform are under {platform.cfg.log_dir}:")
    for path in sorted(platform.cfg.log_dir.glob("*.log")):
        print(f"  {path}  ({path.stat().st_size // 1024} KiB)")
    print(f"  {platform.cfg.log_dir / 'airflow'}/  (Airflow task and DAG-processor logs)")
    print("Follow one with: tail -f <file>")
    return 0


def _env(platform: LocalPlatform, service: str) -> int:
    """Print `export` lines for a service's client environment (e.g. `eval "$(make env SERVICE=airflow)"`)."""
    from local_platform.spark import spark_env

    if service == "airflow":
        env = platform.service("airflow").env()  # type: ignore[attr-defined]
        # The login clients of the REST API use (make demo): the operator, who may trigger and pause DAGs.
        env["TAP_AIRFLOW_API_USER"] = platform.creds.airflow_operator_user
        env["TAP_AIRFLOW_API_PASSWORD"] = platform.creds.airflow_operator_password
    elif service == "spark":
        env = spark_env(platform.cfg)
    elif service == "jupyter":
        env = {"TAP_JUPYTER_URL": platform.cfg.jupyter_url}
    else:
        print(f"env: unknown service {service!r}; choose airflow, spark or jupyter", file=sys.stderr)
        return 2
    for key, value in sorted(env.items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="install venvs, JVM artifacts, MinIO/mc, generate credentials (idempotent)")
    sub.add_parser("up", help="start every service and wait until each is healthy")
    sub.add_parser("down", help="stop exactly the processes `up` started")
    sub.add_parser("status", help="each service's health, PIDs and URLs (exit 1 unless all healthy)")
    sub.add_parser("logs", help="where the logs are")
    sub.add_parser("stream-up", help="start the streaming job (needs the platform up and a promoted model)")
    sub.add_parser("stream-down", help="stop the streaming job")
    env_p = sub.add_parser("env", help="print the client environment of a service as export lines")
    env_p.add_argument("service", choices=["airflow", "spark", "jupyter"])
    args = parser.parse_args(argv)

    platform = LocalPlatform(load_config())
    started = time.monotonic()
    if args.command == "setup":
        platform.setup()
    elif args.command == "up":
        platform.up()
        print(f"local platform up in {time.monotonic() - started:.0f} s\n")
        return _status(platform)
    elif args.command == "down":
        stopped = platform.down()
        print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    elif args.command == "status":
        return _status(platform)
    elif args.command == "logs":
        return _logs(platform)
    elif args.command == "stream-up":
        platform.service("stream").start()
        return _status(platform)
    elif args.command == "stream-down":
        stopped = platform.service("stream").stop()
        print(f"stopped: {', '.join(stopped) if stopped else 'the streaming job was not running'}")
    elif args.command == "env":
        return _env(platform, args.service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
