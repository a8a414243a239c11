"""Inputs to the VRRP state machine. The driver builds these; ``now`` travels separately."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.vrrp.packet import ReceivedAdvert
from reconciler.vrrp.params import InstanceParams
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


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """A new revision of this instance, applied in place (no restart, no priority 0).

    ``params`` keep the instance's identity (VRID, version, address family); a change of
    those needs a new machine. ``priority`` is the effective priority under the new
    configuration (its trackers applied), 1..255. A master advertises the new values at
    once, adds and announces the VIPs that are new and releases only those that went; a
    backup takes the new priority with the next advert, as after ``PriorityChanged``.
    """

    params: InstanceParams
    priority: int


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
    | Reconfigure
)
