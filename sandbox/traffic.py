"""Steady HTTP load through the sandbox's HAProxy, counted: the demo's and benchmark B5's
"no request fails while nodes drain"."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, List


class Load:
    """``threads`` clients sending GETs through HAProxy until stopped; counts answers 200
    (``ok``, and per answering node in ``served``) and everything else (``failed``,
    ``errors``). Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, world: Any, threads: int = 3, pause: float = 0.01,
                 name: str = "load") -> None:
        self.world = world
        self.pause = pause
        self.ok = 0
        self.failed = 0
        self.errors: List[str] = []
        self.served: Counter = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True, name=name)
                         for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.world.http_get(timeout=5)
                good, why = status == 200, "HTTP %d" % status
            except OSError as exc:
                good, why = False, repr(exc)
            with self._lock:
                if good:
                    self.ok += 1
                    self.served[body] += 1
                else:
                    self.failed += 1
                    self.errors.append(why)
            time.sleep(self.pause)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
