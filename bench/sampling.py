"""A background thread that samples something at a fixed interval while a `with` block runs (bench measurements)."""

from __future__ import annotations

import threading
from typing import Self


class Sampler:
    """Calls `sample()` every `interval_s` seconds from a daemon thread, from entering the `with` block until it
    ends (the thread is joined on exit, so the last sample is taken before the block's caller reads the results)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
