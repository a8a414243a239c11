"""One VRRP instance's timers on the event loop: deadlines, and the wake-ups for them.

A timer has a deadline and a wake-up asked of the socket's `DeadlineQueue`. A wake-up
may come earlier than its deadline: a backup pushes its Master_Down_Timer on with every
advert, and moving the deadline is a store (``follow``); the early wake re-arms.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from reconciler.runtime.deadlines import DeadlineQueue
from reconciler.vrrp.events import Event, TimerExpired
from reconciler.vrrp.states import TimerKind

# The Master_Down_Timer's instant is what failover time is measured against. epoll waits
# in whole milliseconds, rounded up, and the kernel lets a sleep of a normal task run late
# by 0.1 % of its length (timer slack: 3.6 ms on a 3.6 s timer), so the loop wakes early
# by both (the slack twice over, for margin), then once more shortly before the deadline
# (a short wait has next to no slack), and sleeps out the rest.
PRECISE_WAKE_S = 0.0015
EPOLL_SLACK = 0.002
# Adver_Timer deadlines are rounded down to this grid (VRRPv3's centisecond): instances
# with the same interval then send in the same wake-up and their adverts arrive together,
# so both ends wake once for several. Sending up to 10 ms early is always safe: receivers
# wait three intervals plus Skew_Time.
ADVER_GRID_S = 0.01

# Module constants: an enum member read through its class costs a lookup per use.
_ADVER = TimerKind.ADVER
_MASTER_DOWN = TimerKind.MASTER_DOWN


class InstanceTimers:
    """Runs one instance's timers and feeds ``TimerExpired`` back at each deadline.

    ``expire``: hands the machine an event at a time (the driver's ``feed``).
    ``catch_up``: folds in the adverts the kernel's repeat filter dropped, and ``drain``
    reads the adverts waiting in the socket: both before a Master_Down_Timer may fire,
    since either may push it on.
    """

    def __init__(
        self,
        queue: DeadlineQueue,
        clock: Callable[[], float],
        expire: Callable[[Event, float], None],
        catch_up: Callable[[], None],
        drain: Callable[[], object],
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._expire = expire
        self._catch_up = catch_up
        self._drain = drain
        self._deadlines: dict[TimerKind, float] = {}
        self._armed: dict[TimerKind, float] = {}  # the wake-up asked of the queue

    def start(self, kind: TimerKind, delay_s: float, now: float) -> None:
        deadline = now + delay_s
        if kind is _ADVER:
            deadline = math.floor(deadline / ADVER_GRID_S + 1e-6) * ADVER_GRID_S
        self._arm(kind, deadline, now)

    def cancel(self, kind: TimerKind) -> None:
        self._deadlines.pop(kind, None)
        self._armed.pop(kind, None)

    def follow(self, deadline: float, now: float) -> None:
        """The master repeated itself at ``now``: the Master_Down_Timer moves on to
        ``deadline`` (a store: the wake-up armed before comes first and re-arms)."""
        self._deadlines[_MASTER_DOWN] = deadline
        at = self._armed.get(_MASTER_DOWN)
        if at is None or at > deadline - PRECISE_WAKE_S - EPOLL_SLACK * (deadline - now):
            self._arm(_MASTER_DOWN, deadline, now)  # (rare) moved earlier

    def postpone(self, deadline: float) -> None:
        """The Master_Down_Timer moves on to a later ``deadline``; the wake-up re-arms."""
        self._deadlines[_MASTER_DOWN] = deadline

    def clear(self) -> None:
        """Stop every timer: a pending wake-up finds nothing armed and does nothing."""
        self._armed.clear()
        self._deadlines.clear()

    def _arm(self, kind: TimerKind, deadline: float, now: float) -> None:
        self._deadlines[kind] = deadline
        if kind is _MASTER_DOWN:
            wake = deadline - PRECISE_WAKE_S - EPOLL_SLACK * max(0.0, deadline - now)
        else:
            wake = deadline
        at = self._armed.get(kind)
        if at is not None and at <= wake:
            return  # it wakes first and re-arms then
        self._armed[kind] = wake
        self._queue.call_at(wake, self._wake, kind, wake)

    def _wake(self, kind: TimerKind, at: float) -> None:
        if self._armed.get(kind) != at:
            return  # superseded by an earlier wake-up, or cancelled
        del self._armed[kind]
        deadline = self._deadlines.get(kind)
        if deadline is None:
            return  # cancelled meanwhile
        now = self._clock()
        if kind is _MASTER_DOWN:
            self._catch_up()
            deadline = self._deadlines[kind]
            remaining = deadline - now
            if remaining > 2 * PRECISE_WAKE_S:
                self._arm(kind, deadline, now)  # moved on, or the early wake-up: once more
                return
            if remaining > 0:
                time.sleep(remaining)  # under 3 ms, once per takeover
            # Adverts may be waiting in the socket (it is read in batches): they come
            # first, and one from the master restarts this timer.
            self._drain()
            self._catch_up()  # a repeat the kernel dropped meanwhile counts too
            if kind in self._armed or kind not in self._deadlines:
                return
            if self._deadlines[kind] > deadline:
                self._arm(kind, self._deadlines[kind], self._clock())
                return
        elif at < deadline:
            self._arm(kind, deadline, now)  # the deadline moved on while it waited
            return
        del self._deadlines[kind]
        # Handled at its deadline, not at the (later) moment the loop got to it, so the
        # next Adver_Timer is armed from the schedule and the cadence does not drift.
        self._expire(TimerExpired(kind), deadline)
