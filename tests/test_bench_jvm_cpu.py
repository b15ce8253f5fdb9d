"""bench.jvm_cpu on a real JVM: a main thread busy for 1.5 CPU-s is counted as driver CPU, under a Python parent."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.jvm_cpu import JvmCpu, kind_of

BUSY = """
import java.lang.management.ManagementFactory;

public class Busy {
    public static void main(String[] args) {
        var threads = ManagementFactory.getThreadMXBean();
        long x = 0;
        while (threads.getCurrentThreadCpuTime() < 1_500_000_000L) {
            for (int i = 0; i < 100_000; i++) { x += x * 31 + 7; }
        }
        System.out.println(x == 42 ? "" : "done");
    }
}
"""


def test_thread_names_map_to_kinds() -> None:
    assert kind_of("C2 CompilerThre") == "jit"
    assert kind_of("C1 CompilerThre") == "jit"
    assert kind_of("Executor task l") == "tasks"
    assert kind_of("GC Thread#0") == "gc"
    assert kind_of("G1 Conc#0") == "gc"
    assert kind_of("Thread-4") == "driver"
    assert kind_of("main") == "driver"


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a java on PATH")
def test_a_busy_jvm_under_a_python_parent_is_measured(tmp_path: Path) -> None:
    source = tmp_path / "Busy.java"
    source.write_text(BUSY)
    launcher = f"import subprocess; subprocess.run([{shutil.which('java')!r}, {str(source)!r}], check=True)"
    process = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    with JvmCpu(process.pid) as cpu:
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and out.strip() == "done"
    seconds = cpu.by_kind()
    assert set(seconds) == {"jit", "tasks", "gc", "driver", "python", "total"}
    assert seconds["driver"] >= 1.0  # 1.5 CPU-s of its main thread, less what ran after the last poll
    assert seconds["tasks"] == 0.0
    assert seconds["total"] == pytest.approx(sum(v for k, v in seconds.items() if k != "total"), abs=0.2)
