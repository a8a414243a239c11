"""Outputs of the VRRP state machine: what the driver must do, in list order."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from reconciler.vrrp.packet import Advert
from reconciler.vrrp.states import State, TimerKind, TransitionReason


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send ``advert`` to the multicast group, or to every unicast peer.

    ``old_unicast_checksum``: encode the v3 checksum with the multicast group as the
    pseudo-header destination (keepalived's ``old_unicast_checksum`` peers need it).
    """

    advert: Advert
    old_unicast_checksum: bool = False

    @property
    def priority(self) -> int:
        return self.advert.priority


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start the timer ``kind`` to fire ``delay_s`` seconds after the ``now`` handled.

    Starting a running timer replaces it. The driver feeds ``TimerExpired(kind)`` back.
    """

    kind: TimerKind
    delay_s: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class AddVips:
    """Configure the virtual addresses (the instance became master)."""

    addresses: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]


@dataclass(frozen=True, slots=True)
class RemoveVips:
    """Remove the virtual addresses (the instance stopped being master)."""

    addresses: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]


@dataclass(frozen=True, slots=True)
class SendGratuitous:
    """Announce the VIPs: gratuitous ARP (IPv4) or unsolicited NA with the Router flag
    (IPv6), RFC 5798 §6.4.1/§6.4.2. Repeats and delays are the driver's policy."""

    addresses: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]


@dataclass(frozen=True, slots=True)
class Transitioned:
    """The state changed. Emitted between the old state's exit and new state's entry."""

    from_state: State
    to_state: State
    reason: TransitionReason


Action = (
    SendAdvert | StartTimer | CancelTimer | AddVips | RemoveVips | SendGratuitous | Transitioned
)
