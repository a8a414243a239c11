"""RFC 5798 §6.1 / RFC 3768 §6.1 timer formulas, exact, and §6.2's running timers.

Unit: every duration returned here is a :class:`fractions.Fraction` of **seconds**, so
nothing is truncated (keepalived truncates to whole microseconds; at priority 150 and a
1 s interval it uses 414062 µs where the RFC value is 414062.5 µs). Intervals come in as
integer **centiseconds**, the unit of the v3 Max Adver Int field. Callers convert to
float only at the edge (a timer deadline).

The functions are memoized: a backup recomputes Master_Down_Interval on every advert
(§6.4.2), always from the same few (priority, interval, version) triples, and Fraction
arithmetic costs more than the rest of handling the advert.

:class:`Timers` holds which timers of one virtual router run and until when.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from reconciler.vrrp.actions import StartTimer
from reconciler.vrrp.packet import VrrpVersion
from reconciler.vrrp.states import TimerKind

CENTISECONDS_PER_SECOND = 100
PRIORITY_SPAN = 256  # the "256" of (256 - Priority) in both RFCs


def _check(priority: int, interval_cs: int) -> None:
    if not 0 <= priority <= 255:
        raise ValueError(f"priority {priority} outside 0..255")
    if interval_cs <= 0:
        raise ValueError(f"advertisement interval {interval_cs} cs is not positive")


@lru_cache(maxsize=1024)
def skew_time(
    priority: int, master_adver_interval_cs: int, version: VrrpVersion = VrrpVersion.V3
) -> Fraction:
    """Skew_Time in seconds.

    v3, RFC 5798 §6.1: ((256 - Priority) * Master_Adver_Interval) / 256.
    v2, RFC 3768 §6.1: (256 - Priority) / 256 seconds, independent of the interval.
    """
    _check(priority, master_adver_interval_cs)
    if version is VrrpVersion.V2:
        return Fraction(PRIORITY_SPAN - priority, PRIORITY_SPAN)
    return Fraction(
        (PRIORITY_SPAN - priority) * master_adver_interval_cs,
        PRIORITY_SPAN * CENTISECONDS_PER_SECOND,
    )


@lru_cache(maxsize=1024)
def master_down_interval(
    priority: int, master_adver_interval_cs: int, version: VrrpVersion = VrrpVersion.V3
) -> Fraction:
    """Master_Down_Interval in seconds: (3 * Master_Adver_Interval) + Skew_Time.

    RFC 5798 §6.1 (v3, with the learned Master_Adver_Interval) and RFC 3768 §6.1 (v2,
    where the interval is the configured Advertisement_Interval).
    """
    return Fraction(3 * master_adver_interval_cs, CENTISECONDS_PER_SECOND) + skew_time(
        priority, master_adver_interval_cs, version
    )


@lru_cache(maxsize=1024)
def interval_seconds(interval_cs: int) -> Fraction:
    """An advertisement interval in centiseconds, as exact seconds."""
    return Fraction(interval_cs, CENTISECONDS_PER_SECOND)


class Timers:
    """The running timers of one virtual router (kind -> deadline, seconds) and their
    lengths in float seconds.

    A backup restarts the same timer with every advert: the lengths by (priority,
    Master_Adver_Interval) and the ``StartTimer`` actions by (kind, seconds) are
    memoized, because the Fraction arithmetic and building the action cost more than the
    rest of it. The version is fixed for the router's life (Reconfigure may not change it).
    """

    __slots__ = ("_down_s", "_skew_s", "_start_actions", "deadlines", "version")

    def __init__(self, version: VrrpVersion) -> None:
        self.version = version
        self.deadlines: dict[TimerKind, float] = {}
        self._down_s: dict[tuple[int, int], float] = {}
        self._skew_s: dict[tuple[int, int], float] = {}
        self._start_actions: dict[tuple[TimerKind, float], StartTimer] = {}

    def start(self, kind: TimerKind, now: float, delay_s: float) -> StartTimer:
        """(Re)start ``kind`` at ``now``; the action that tells the driver."""
        self.deadlines[kind] = now + delay_s
        action = self._start_actions.get((kind, delay_s))
        if action is None:
            action = self._start_actions[(kind, delay_s)] = StartTimer(kind, delay_s)
        return action

    def stop(self, kind: TimerKind) -> bool:
        """Stop ``kind`` (cancelled or fired); whether it was running."""
        return self.deadlines.pop(kind, None) is not None

    def master_down_s(self, priority: int, master_adver_interval_cs: int) -> float:
        """Master_Down_Interval in seconds."""
        key = (priority, master_adver_interval_cs)
        seconds = self._down_s.get(key)
        if seconds is None:
            seconds = self._down_s[key] = float(master_down_interval(*key, self.version))
        return seconds

    def skew_s(self, priority: int, master_adver_interval_cs: int) -> float:
        """Skew_Time in seconds."""
        key = (priority, master_adver_interval_cs)
        seconds = self._skew_s.get(key)
        if seconds is None:
            seconds = self._skew_s[key] = float(skew_time(*key, self.version))
        return seconds
