"""Backpressure: a bounded number of requests run on the model, a bounded number wait; the rest are refused at
once (the caller answers 503 with a degraded answer instead of letting requests pile up)."""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


class Ticket:
    """An admitted request. ``run``/``slot`` wait for a worker; ``close`` (idempotent) leaves the gate."""

    def __init__(self, gate: "Gate"):
        self._gate = gate
        self._closed = False

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        g = self._gate
        g._sem.acquire()
        with g._lock:
            g._running += 1
        try:
            yield
        finally:
            with g._lock:
                g._running -= 1
            g._sem.release()

    def run(self, fn: Callable[[], T]) -> T:
        with self.slot():
            return fn()

    def close(self) -> None:
        with self._gate._lock:
            if not self._closed:
                self._closed = True
                self._gate._inflight -= 1


class Gate:
    def __init__(self, workers: int, max_queue: int):
        self.workers, self.max_queue = workers, max_queue
        self._sem = threading.Semaphore(workers)
        self._lock = threading.Lock()
        self._inflight = 0
        self._running = 0

    def try_admit(self) -> Ticket | None:
        with self._lock:
            if self._inflight >= self.workers + self.max_queue:
                return None
            self._inflight += 1
        return Ticket(self)

    @property
    def queue_depth(self) -> int:
        with self._lock:
            return max(self._inflight - self._running, 0)

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def capacity(self) -> int:
        return self.workers + self.max_queue
