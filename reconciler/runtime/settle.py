"""Memory settling after a burst of VRRP transitions.

A mass takeover leaves megabytes of freed heap behind (netlink requests,
announcements); once transitions have stopped for a while, the heap is settled
(``adapters.process_memory.settle``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reconciler.adapters import process_memory

SETTLE_AFTER_S = 10.0  # quiet time after the last transition before memory is settled
# Transitions since the last settle that make one worth it: a mass takeover leaves
# megabytes behind, a single failover does not, and a settle (a collection, ~ms) should
# not land in the middle of a node's next election for nothing.
SETTLE_MIN_TRANSITIONS = 50


class MemorySettler:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settle: Callable[[], object] = process_memory.settle,
    ) -> None:
        self._loop = loop
        self._settle_now = settle
        self._handle: asyncio.TimerHandle | None = None
        self._unsettled = 0  # transitions since the last settle

    def on_transition(self) -> None:
        """One more transition: settle once they have stopped for SETTLE_AFTER_S, when
        there were enough of them."""
        self._unsettled += 1
        if self._unsettled < SETTLE_MIN_TRANSITIONS:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(SETTLE_AFTER_S, self._settle)

    def cancel(self) -> None:
        """At stop: no settle after it."""
        if self._handle is not None:
            self._handle.cancel()

    def _settle(self) -> None:
        self._handle = None
        self._unsettled = 0
        self._settle_now()
