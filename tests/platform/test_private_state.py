"""Platform state is private to its owner: a process running as `nobody` reads none of it.

The services run with umask 077 (local_platform.process.PRIVATE_UMASK) and `make up` strips group/other bits
from state written before; checked on a process started the way services are, on an old tree, and on the
running platform's own files (MinIO's data, the Airflow and Superset databases, the logs).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_platform.process import TrackedProcess, make_private

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def nobody_reads(path: Path) -> bool:
    """True if a process running as nobody can read the file (or list the directory)."""
    command = ["ls", str(path)] if path.is_dir() else ["head", "-c", "1", str(path)]
    return subprocess.run([*NOBODY, *command], capture_output=True).returncode == 0


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory that nobody may enter (unlike pytest's tmp_path, whose parent is 0700)."""
    with tempfile.TemporaryDirectory(prefix="tap-private-") as name:
        os.chmod(name, 0o755)  # noqa: S103 - deliberately open: nobody must get past it
        yield Path(name)


def test_nobody_helper_can_read_what_is_world_readable(open_dir):
    public = open_dir / "public.txt"
    public.write_text("x")
    public.chmod(0o644)
    assert nobody_reads(public)  # the probe itself works, so the denials below mean something


def test_a_service_process_creates_private_files(open_dir):
    state = open_dir / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)  # noqa: S103 - as an old install left it
    script = "import os, sys; os.makedirs(sys.argv[1] + '/data'); open(sys.argv[1] + '/data/db', 'w').write('x')"
    proc = TrackedProcess("writer", open_dir / "writer.pid")
    proc.start([sys.executable, "-c", script, str(state)], dict(os.environ), state / "writer.log")
    for _ in range(100):
        if (state / "data" / "db").exists() and not proc.is_running():
            break
        subprocess.run(["sleep", "0.05"])
    for path, mode in ((state / "data", 0o700), (state / "data" / "db", 0o600), (state / "writer.log", 0o600)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
        assert not nobody_reads(path), path


def test_make_private_fixes_an_old_tree(open_dir):
    old = open_dir / "old"
    (old / "logs").mkdir(parents=True)
    log, tool = old / "logs" / "a.log", old / "tool.sh"
    log.write_text("secret")
    tool.write_text("#!/bin/sh\n")
    for path, mode in ((old, 0o755), (old / "logs", 0o755), (log, 0o644), (tool, 0o755)):
        path.chmod(mode)
    assert nobody_reads(log)
    assert make_private(old) == 4
    assert not nobody_reads(log) and not nobody_reads(old / "logs")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and stat.S_IMODE(tool.stat().st_mode) == 0o700
    assert make_private(old) == 0  # idempotent


@pytest.mark.platform
def test_the_running_platforms_state_is_private(platform):
    """Nothing is open to others; the only group access is PostgreSQL's passage (0710 root:postgres) to its data
    directory, for the OS user it must run as."""
    import grp

    from local_platform.services.postgres import PostgresService

    state = platform.cfg.state_dir
    passage = set(PostgresService.passage_dirs(platform.cfg))
    postgres_gid = grp.getgrnam("postgres").gr_gid
    for path in passage:
        assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_gid) == (0o710, postgres_gid), path
    readable = [
        str(path)
        for path in [state, *state.rglob("*")]
        if not path.is_symlink() and path.exists() and path not in passage and path.stat().st_mode & 0o077
    ]
    assert not readable, f"readable by group/others: {readable[:20]}"
    samples = [
        state / "data" / "postgres" / "global" / "pg_control",
        state / "data" / "superset" / "superset.db",
        next((state / "data" / "minio").rglob("xl.meta")),
        platform.cfg.log_dir / "airflow-api-server.log",
    ]
    assert all(path.exists() for path in samples), samples
    # Even reached through an open directory (a hard link beside the state dir), the files refuse nobody.
    with tempfile.TemporaryDirectory(prefix=".tap-private-", dir=state.parent) as name:
        os.chmod(name, 0o755)  # noqa: S103 - deliberately open: nobody must get past it
        for path in samples:
            link = Path(name) / path.name
            os.link(path, link)
            assert not nobody_reads(link), f"{path} is readable by nobody"
    assert not nobody_reads(state)
