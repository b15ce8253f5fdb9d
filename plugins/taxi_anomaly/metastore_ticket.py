"""In-process Hive Metastore clients (pyiceberg, the health check) hold the local platform's ticket file open while
they talk to the metastore: its accept gate admits a connection whose process holds that file (docs/security.md).

The gate also admits a process whose start-up environment carries the ticket, but a process that rewrites its title
(Airflow's task workers, through setproctitle) overwrites that part of its memory: measured on the local platform,
/proc/PID/environ of a task worker read as 4,856 fragments of its title, and every scheduled metastore call was
refused until the tasks held the file. Where no ticket file is configured (Kubernetes), this does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

TICKET_FILE_ENV = "TAP_METASTORE_TICKET_FILE"


@contextmanager
def metastore_ticket() -> Iterator[None]:
    """Hold the ticket file (TAP_METASTORE_TICKET_FILE) open for the `with` block, if one is configured."""
    path = os.environ.get(TICKET_FILE_ENV)
    if not path:
        yield
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield
    finally:
        os.close(fd)
