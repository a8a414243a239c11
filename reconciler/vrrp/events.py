"""Inputs to the VRRP state machine. The driver builds these; ``now`` travels separately."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.vrrp.packet import ReceivedAdvert
from reconciler.vrrp.states import TimerKind


@dataclass(frozen=True, slots=True)
class Startup:
    """RFC 5798 §6.4.1 Startup event: the instance begins running."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Graceful stop: a master sends a priority-0 advert and releases its VIPs (§6.4.3)."""


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    """A decoded advert for this instance (the driver demultiplexes by family and VRID)."""

    received: ReceivedAdvert


@dataclass(frozen=True, slots=True)
class TimerExpired:
    """A timer the machine started with ``StartTimer`` fired."""

    kind: TimerKind


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The instance's interface lost carrier or went administratively down."""


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The instance's interface is usable again."""


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    """The effective priority changed (tracking weights). 1..255; faults use FaultSet."""

    priority: int


@dataclass(frozen=True, slots=True)
class FaultSet:
    """A tracker with weight 0 failed: the instance must not be master while it is set."""

    source: str


@dataclass(frozen=True, slots=True)
class FaultCleared:
    """The tracker ``source`` recovered."""

    source: str


@dataclass(frozen=True, slots=True)
class SyncGroupMaster:
    """Another member of this instance's sync group became master: follow it (a backup
    becomes master at once), so the group's VIPs stay on one node."""


@dataclass(frozen=True, slots=True)
class SyncGroupBackup:
    """Another member of the sync group left master for backup: follow it."""


Event = (
    Startup
    | Shutdown
    | AdvertReceived
    | TimerExpired
    | LinkDown
    | LinkUp
    | PriorityChanged
    | FaultSet
    | FaultCleared
    | SyncGroupMaster
    | SyncGroupBackup
)
