"""Many timers behind one event-loop timer.

Every VRRP instance runs a timer that is restarted all the time: a master's Adver_Timer
after each advert, a backup's Master_Down_Timer with each advert it hears. As asyncio
timers, each restart allocates a handle and pushes it on the loop's heap, whose
comparisons are Python calls. Here the deadlines live in one ``heapq`` of plain tuples
(compared in C), and the loop holds a single timer for the earliest of them.

Entries are never removed: a callback that no longer wants a wake-up ignores it (the
instance driver compares the time it was called for with the time it last asked for).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any


class DeadlineQueue:
    """``call_at(when, fn, *args)`` without a loop timer per call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()  # ties fire in the order they were added
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = 0.0
        self._running = False
        # asyncio runs a timer once the clock is within this of it; so do we.
        self._resolution = time.get_clock_info("monotonic").resolution

    def call_at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), fn, args))
        if not self._running and (self._handle is None or when < self._handle_at):
            self._rearm(when)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()

    def _rearm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_at(when, self._run)
        self._handle_at = when

    def _run(self) -> None:
        self._handle = None
        heap = self._heap
        self._running = True  # callbacks add entries; the loop timer is set once, after
        try:
            # What the loop itself treats as due now (asyncio's end_time).
            due = self.loop.time() + self._resolution
            while heap and heap[0][0] < due:
                _when, _seq, fn, args = heapq.heappop(heap)
                fn(*args)
        finally:
            self._running = False
            if heap:
                self._rearm(heap[0][0])
