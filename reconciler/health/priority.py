"""Tracker arithmetic (pure): effective VRRP priority, real-server weight, quorum.

Every rule here is keepalived's, so a mixed cluster elects the same master:

State trackers (a check or an interface; keepalived ``track_script`` and
``track_interface``), ``vrrp_track.c``:

* weight > 0 is added while the tracker is UP, weight < 0 while it is DOWN;
* weight 0 puts the instance in FAULT while the tracker is DOWN;
* a tracker in UNKNOWN (no result yet) adds nothing and causes no fault. A
  weight-0 tracker in UNKNOWN is reported in :attr:`Priority.pending`:
  keepalived holds such an instance in INIT until the tracker reports.

Value trackers (a ``file`` check; keepalived ``track_file``), ``track_file.c``:

* weight != 0: the tracker adds ``value x weight``, clamped to -254..253; a
  product of -254 or less puts the instance in FAULT (keepalived treats the
  clamped -254 as its fault marker);
* weight 0: a non-zero value means FAULT, zero means fine;
* the value is the last number read (a missing file reads as 0), whatever the
  check's up/down state: keepalived ignores an unreadable number and keeps the
  previous one, and so does this (an invalid read makes the probe fail, which
  leaves the remembered value alone). Only UNKNOWN (nothing read yet) adds
  nothing.

Sum and clamp: ``configured + contributions``, clamped to 1..254. An address
owner (configured 255) is never moved, but a weight-0 tracker still puts it in
FAULT (keepalived's ``down_instance`` does not look at the priority). The result
lists every tracker's term (:class:`Contribution`): status and metrics show
those, so they cannot disagree with the priority they explain.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.health.policy import ProbeResult
from reconciler.model.common import CheckState

PRIORITY_OWNER = 255
PRIORITY_MIN = 1
PRIORITY_MAX_BACKUP = 254  # highest priority a non-owner can reach
_FILE_FAULT = -254  # a file contribution at or below this is keepalived's fault marker
_FILE_MAX = 253

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_HEX_DIGITS = "0123456789abcdefABCDEF"


class TrackerKind(enum.Enum):
    STATE = "state"  # checks and interfaces: up/down moves the priority
    VALUE = "value"  # file checks: the number read moves the priority


@dataclass(frozen=True)
class TrackerReading:
    """One tracker of a VRRP instance as it stands now."""

    name: str  # for reasons and metrics: "check nginx", "interface eth1"
    weight: int
    state: CheckState
    value: int | None = None  # VALUE trackers: last number read; None before the first read
    kind: TrackerKind = TrackerKind.STATE


@dataclass(frozen=True)
class Contribution:
    """What one tracker does to the priority now: the term it adds to the sum, or FAULT."""

    tracker: TrackerReading
    points: int  # added to the configured priority before the clamp; 0 when it holds FAULT
    fault: bool = False  # it puts the instance in FAULT


@dataclass(frozen=True)
class Priority:
    """The effective priority of an instance and whether trackers hold it in FAULT."""

    priority: int  # 1..254, or 255 for an address owner
    faults: tuple[str, ...] = ()  # trackers that put the instance in FAULT
    pending: tuple[str, ...] = ()  # weight-0 trackers with no result yet
    # Every tracker in the order given, with its term of the sum: why the priority is what
    # it is (status shows them; equality of two results is about the outcome only).
    contributions: tuple[Contribution, ...] = field(default=(), compare=False)

    @property
    def fault(self) -> bool:
        return bool(self.faults)


def tracker_contribution(tracker: TrackerReading) -> int | None:
    """What one tracker adds to the priority; None when it puts the instance in FAULT."""
    if tracker.kind is TrackerKind.VALUE:
        if tracker.state is CheckState.UNKNOWN or tracker.value is None:
            return 0
        if tracker.weight == 0:
            return None if tracker.value != 0 else 0
        product = max(_FILE_FAULT, min(_FILE_MAX, tracker.value * tracker.weight))
        return None if product == _FILE_FAULT else product
    if tracker.state is CheckState.UNKNOWN:
        return 0
    up = tracker.state is CheckState.UP
    if tracker.weight == 0:
        return 0 if up else None
    if tracker.weight > 0:
        return tracker.weight if up else 0
    return 0 if up else tracker.weight


def effective_priority(configured: int, trackers: Iterable[TrackerReading]) -> Priority:
    """keepalived's effective priority: configured + contributions, clamped to 1..254."""
    if not PRIORITY_MIN <= configured <= PRIORITY_OWNER:
        raise ValueError(f"configured priority {configured} is outside 1..255")
    total = configured
    faults: list[str] = []
    pending: list[str] = []
    terms: list[Contribution] = []
    for tracker in trackers:
        contribution = tracker_contribution(tracker)
        if contribution is None:
            faults.append(tracker.name)
            terms.append(Contribution(tracker, 0, fault=True))
            continue
        terms.append(Contribution(tracker, contribution))
        total += contribution
        if tracker.weight == 0 and tracker.state is CheckState.UNKNOWN:
            pending.append(tracker.name)
    if configured == PRIORITY_OWNER:
        priority = PRIORITY_OWNER
    else:
        priority = max(PRIORITY_MIN, min(PRIORITY_MAX_BACKUP, total))
    return Priority(
        priority=priority,
        faults=tuple(faults),
        pending=tuple(pending),
        contributions=tuple(terms),
    )


# ---------------------------------------------------------------------- file values


def parse_track_file(content: bytes) -> int | None:
    """The number in a tracked file as keepalived reads it, or None to ignore the read.

    keepalived reads at most 127 bytes and parses them with ``strtol(buf, NULL, 0)``:
    leading white space, an optional sign, then hex after ``0x``, octal after a
    leading ``0``, else decimal; parsing stops at the first character that is not a
    digit of the base, and no digits at all read as 0 (so an empty file is 0). A
    number outside INT32_MIN..INT32_MAX+1 is logged and ignored (None here).
    """
    text = content[:127].decode("latin-1")
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    sign = 1
    if i < n and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    base = 10
    if text[i : i + 2] in ("0x", "0X") and i + 2 < n and text[i + 2] in _HEX_DIGITS:
        base, i = 16, i + 2
    elif text[i : i + 1] == "0":
        base = 8
    digits = _HEX_DIGITS if base == 16 else "0123456789"[:base]
    start = i
    while i < n and text[i] in digits:
        i += 1
    value = sign * int(text[start:i], base) if i > start else 0
    if not INT32_MIN <= value <= INT32_MAX + 1:
        return None
    return value


# ---------------------------------------------------------------------- scripts


def script_result(exit_code: int, *, dynamic_weight: bool, detail: str = "") -> ProbeResult:
    """A script's exit status as a probe result (keepalived MISC_CHECK / ``misc_dynamic``).

    Exit 0 is up with no weight (the configured one stays). With ``dynamic_weight``,
    exit 2..255 is up with weight ``code - 2`` (0..253), which replaces the real
    server's weight. Anything else is down: exit 1, other codes without
    ``dynamic_weight``, and death by a signal (a negative ``exit_code``, as asyncio
    reports it).
    """
    what = detail or (
        f"killed by signal {-exit_code}" if exit_code < 0 else f"exit status {exit_code}"
    )
    if exit_code == 0:
        return ProbeResult(ok=True, detail=what)
    if dynamic_weight and 2 <= exit_code <= 255:
        return ProbeResult(ok=True, detail=f"{what}: weight {exit_code - 2}", weight=exit_code - 2)
    return ProbeResult(ok=False, detail=what)


# ---------------------------------------------------------------------- IPVS


def real_server_weight(
    configured: int, state: CheckState, dynamic_weight: int | None
) -> int | None:
    """The weight a real server should have, or None when it belongs out of the pool.

    UP uses the dynamic weight when the check reported one (``misc_dynamic``), else
    the configured weight. DOWN is out (the caller may keep it at weight 0 instead
    when ``inhibit_on_failure`` is set). UNKNOWN is in at the configured weight, as
    keepalived adds every real server at start-up; give the check ``initial: down``
    (keepalived ``alpha``) to start servers out of the pool instead.
    """
    if state is CheckState.DOWN:
        return None
    if state is CheckState.UP and dynamic_weight is not None:
        return dynamic_weight
    return configured


def quorum_up(
    live_weights: Iterable[int], quorum: int, hysteresis: int, previous: bool | None
) -> bool:
    """keepalived's quorum with hysteresis (``ipwrapper.c`` ``update_quorum_state``).

    ``live_weights`` are the weights of real servers in the pool. Gained when
    the sum reaches ``quorum + hysteresis``; lost when it drops below
    ``quorum - hysteresis`` or to 0. ``previous`` None is the start-up decision,
    which uses the gain threshold.
    """
    total = sum(max(0, w) for w in live_weights)
    if previous is None or not previous:
        return total >= quorum + hysteresis
    return not (total == 0 or total < quorum - hysteresis)
