"""CPU seconds of a benchmarked process and the JVMs it starts, by kind of thread (JIT compilers, Spark tasks, GC,
the rest of the JVM; the Python processes), read from Linux's /proc while it runs: where a short Spark job's CPU
goes beside its wall time."""

from __future__ import annotations

import re
from pathlib import Path

import psutil

from bench.sampling import Sampler

PROC = Path("/proc")
# Thread names as Linux keeps them (the first 15 characters of the Java name), by kind. The first match wins;
# the rest is "driver": py4j's connection threads ("Thread-12", where PySpark's calls are analysed, planned and
# committed), "main", the scheduler, the Iceberg and S3A pools.
KINDS = (
    ("jit", re.compile(r"^C[12] CompilerThre")),
    ("tasks", re.compile(r"^Executor task l")),
    ("gc", re.compile(r"^(GC Thread|G1 |VM Thread)")),
)
POLL_SECONDS = 0.5


def kind_of(thread_name: str) -> str:
    return next((kind for kind, pattern in KINDS if pattern.match(thread_name)), "driver")


def thread_name(pid: int, tid: int) -> str:
    """The name Linux keeps for a thread (psutil gives a thread's CPU times, not its name)."""
    try:
        return (PROC / str(pid) / "task" / str(tid) / "comm").read_text().strip()
    except OSError:
        return ""


class JvmCpu(Sampler):
    """Polls a process and the processes under it until stopped. `by_kind()` sums the last seen CPU of every JVM
    thread (a thread that ended between two polls loses at most POLL_SECONDS of its time) and of the other
    processes, the root included, as "python" (PySpark's driver program and its workers)."""

    def __init__(self, root: int) -> None:
        super().__init__(interval_s=POLL_SECONDS)
        self.root = root
        self._seen: dict[tuple[int, int], tuple[str, float]] = {}
        self._others: dict[int, float] = {}

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for process in processes:
            try:
                # Asked at every poll: spark-submit is a shell script until it execs the JVM under the same pid.
                if process.name() == "java":
                    self._others.pop(process.pid, None)
                    for thread in process.threads():
                        seconds = thread.user_time + thread.system_time
                        self._seen[(process.pid, thread.id)] = (thread_name(process.pid, thread.id), seconds)
                else:
                    times = process.cpu_times()
                    self._others[process.pid] = times.user + times.system
            except psutil.Error:  # ended between the listing and the reading
                continue

    def by_kind(self) -> dict[str, float]:
        totals = {kind: 0.0 for kind, _ in KINDS} | {"driver": 0.0, "python": sum(self._others.values())}
        for name, seconds in self._seen.values():
            totals[kind_of(name)] += seconds
        totals = {kind: round(seconds, 1) for kind, seconds in totals.items()}
        return totals | {"total": round(sum(totals.values()), 1)}
