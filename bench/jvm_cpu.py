"""CPU seconds of a benchmarked process and the JVMs it starts, by kind of thread (JIT compilers, Spark tasks, GC,
the rest of the JVM; the Python processes), read from Linux's /proc while it runs: where a short Spark job's CPU
goes beside its wall time."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from bench.sampling import Sampler

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
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


def descendants(root: int) -> Iterator[int]:
    """Pids of the processes under `root` (not `root` itself), from each process's parent field."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(parent, []).append(int(entry.name))
    pending = list(parents.get(root, []))
    while pending:
        pid = pending.pop()
        yield pid
        pending.extend(parents.get(pid, []))


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread of a process: its name and CPU seconds (user + system) so far."""
    threads = {}
    try:
        tids = [int(t.name) for t in (PROC / str(pid) / "task").iterdir()]
    except OSError:
        return {}
    for tid in tids:
        try:
            stat = (PROC / str(pid) / "task" / str(tid) / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        threads[tid] = (stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return threads


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process so far, its ended threads included."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def is_jvm(pid: int) -> bool:
    try:
        return (PROC / str(pid) / "exe").resolve().name == "java"
    except OSError:
        return False


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
        # Checked at every poll: spark-submit is a shell script until it execs the JVM under the same pid.
        for pid in (self.root, *descendants(self.root)):
            if is_jvm(pid):
                self._others.pop(pid, None)
                for tid, seen in thread_cpu(pid).items():
                    self._seen[(pid, tid)] = seen
            elif (seconds := process_cpu(pid)) > 0:
                self._others[pid] = seconds

    def by_kind(self) -> dict[str, float]:
        totals = {kind: 0.0 for kind, _ in KINDS} | {"driver": 0.0, "python": sum(self._others.values())}
        for name, seconds in self._seen.values():
            totals[kind_of(name)] += seconds
        totals = {kind: round(seconds, 1) for kind, seconds in totals.items()}
        return totals | {"total": round(sum(totals.values()), 1)}
