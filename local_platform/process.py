"""Start, track and stop the local platform's background processes by PID file, and wait for their health."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Every process of the platform creates files for its owner only (data, databases, logs): 0600 files, 0700 dirs.
PRIVATE_UMASK = 0o077


def make_private(root: Path, keep: tuple[Path, ...] = ()) -> int:
    """Strip group and other permissions from everything under root (state written before the umask was set),
    except the directories in `keep` (whose modes a service sets itself); returns how many entries changed. Owner
    bits are kept (an executable stays executable for its owner)."""
    changed, kept = 0, {str(path) for path in keep}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, ""]:
            path = os.path.join(dirpath, name) if name else dirpath
            if path in kept:
                continue
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:  # a running service removed it meanwhile
                continue
            if stat.S_ISLNK(mode) or not mode & 0o077:
                continue
            os.chmod(path, stat.S_IMODE(mode) & 0o700)
            changed += 1
    return changed


def _start_time(pid: int) -> str | None:
    """Kernel start time of a process (field 22 of /proc/PID/stat): with the PID it identifies one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are space separated.
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class TrackedProcess:
    """A process the platform started; its PID file lives at `pidfile`."""

    name: str
    pidfile: Path

    def read(self) -> tuple[int, str] | None:
        try:
            data = json.loads(self.pidfile.read_text())
            return int(data["pid"]), str(data["start_time"])
        except (OSError, ValueError, KeyError):
            return None

    @property
    def pid(self) -> int | None:
        """PID of the running process we started, or None (no PID file, process gone, or PID reused)."""
        record = self.read()
        if record is None:
            return None
        pid, started = record
        return pid if _start_time(pid) == started else None

    def is_running(self) -> bool:
        return self.pid is not None

    def start(
        self, argv: Sequence[str], env: dict[str, str], log_file: Path, cwd: Path | None = None, user: str | None = None
    ) -> int:
        """Start argv in its own session (so it and its children form one process group), logging to log_file;
        as another OS user (and that user's group) if `user` is given."""
        log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with os.fdopen(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,
                user=user,
                group=_primary_group(user) if user else None,
                extra_groups=[] if user else None,
            )
        started = _start_time(proc.pid) or ""
        self.pidfile.write_text(json.dumps({"pid": proc.pid, "start_time": started, "argv": list(argv)}))
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the process group we started (SIGTERM, then SIGKILL after timeout). True if something was stopped."""
        pid = self.pid
        if pid is None:
            self.pidfile.unlink(missing_ok=True)  # stale: the process is gone or the PID was reused
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _start_time(pid) is None and not _group_alive(pid):
                break
            _reap(pid)
            time.sleep(0.2)
        else:
            _signal_group(pid, signal.SIGKILL)
            time.sleep(0.5)
        _reap(pid)
        self.pidfile.unlink(missing_ok=True)
        return True


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def http_ok(url: str, timeout: float = 3.0, accept: Callable[[int, bytes], bool] | None = None) -> bool:
    """True if GET url answers (2xx, or whatever `accept` says)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            return accept(resp.status, body) if accept else 200 <= resp.status < 300
    except urllib.error.HTTPError as exc:
        return accept(exc.code, b"") if accept else False
    except (OSError, ValueError):
        return False


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    proc: TrackedProcess | None = None,
    log_file: Path | None = None,
    interval: float = 0.5,
) -> None:
    """Poll check() until true; fail fast with the log tail if the tracked process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not proc.is_running():
            raise RuntimeError(f"{what}: process exited during start-up.{_tail(log_file)}")
        time.sleep(interval)
    raise TimeoutError(f"{what}: not healthy after {timeout:.0f} s.{_tail(log_file)}")


def _tail(log_file: Path | None, lines: int = 25) -> str:
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"\nLast lines of {log_file}:\n" + "\n".join(text)
