"""The actions one ``VirtualRouter.handle`` call returns, built in order.

The machine decides; :class:`Outbox` builds the actions and keeps what building them
needs across calls: the running timers (``Timers``) and the adverts we send by priority,
built once per revision (a master sends the same few adverts all its life). It counts
what it sends.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from reconciler.vrrp.actions import (
    Action,
    AddVips,
    CancelTimer,
    RemoveVips,
    SendAdvert,
    SendGratuitous,
    Transitioned,
)
from reconciler.vrrp.counters import InstanceCounters
from reconciler.vrrp.packet import Advert
from reconciler.vrrp.params import PRIORITY_STOP, InstanceParams
from reconciler.vrrp.states import State, TimerKind, TransitionReason
from reconciler.vrrp.timers import Timers, interval_seconds

_Addresses = tuple[IPv4Address, ...] | tuple[IPv6Address, ...]


class Outbox:
    """The actions of the event being handled (``actions``, at ``now``)."""

    __slots__ = ("_adverts", "_params", "actions", "counters", "now", "timers")

    def __init__(self, params: InstanceParams, counters: InstanceCounters) -> None:
        self._params = params
        self.counters = counters
        self.timers = Timers(params.version)
        self.now = 0.0
        self.actions: list[Action] = []
        self._adverts: dict[int, Advert] = {}  # what we send, by priority

    def begin(self, now: float) -> None:
        """A new event, at ``now``: a new list of actions."""
        self.now = now
        self.actions = []

    def reconfigure(self, params: InstanceParams) -> None:
        """A new revision: adverts are built again from it."""
        self._params = params
        self._adverts.clear()

    def start_timer(self, kind: TimerKind, delay_s: float) -> None:
        self.actions.append(self.timers.start(kind, self.now, delay_s))

    def cancel_timer(self, kind: TimerKind) -> None:
        if self.timers.stop(kind):
            self.actions.append(CancelTimer(kind))

    def send_advert(self, priority: int) -> None:
        params = self._params
        advert = self._adverts.get(priority)
        if advert is None:
            advert = self._adverts[priority] = params.advert(priority)
        self.actions.append(
            SendAdvert(advert, old_unicast_checksum=params.sends_old_unicast_checksum)
        )
        self.counters.adverts_sent += 1
        if priority == PRIORITY_STOP:
            self.counters.priority_zero_sent += 1

    def start_adver_timer(self) -> None:
        """The Adver_Timer, at the configured Advertisement_Interval (§6.4.3)."""
        self.start_timer(TimerKind.ADVER, float(interval_seconds(self._params.advert_interval_cs)))

    def advertise(self, priority: int) -> None:
        """A master's round, §6.4.3: send our advert and restart the Adver_Timer."""
        self.send_advert(priority)
        self.start_adver_timer()

    def add_vips(self, addresses: _Addresses) -> None:
        """Configure and announce ``addresses`` (§6.4.1 / §6.4.2: gratuitous ARP or NA)."""
        self.actions.append(AddVips(addresses))
        self.actions.append(SendGratuitous(addresses))

    def remove_vips(self, addresses: _Addresses) -> None:
        self.actions.append(RemoveVips(addresses))

    def transitioned(self, old: State, to: State, reason: TransitionReason) -> None:
        self.counters.transitions[(old, to, reason)] += 1
        self.actions.append(Transitioned(old, to, reason))
