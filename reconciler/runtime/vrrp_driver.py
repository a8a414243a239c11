"""asyncio drivers that run the sans-I/O VRRP state machines against real sockets.

One `InstanceDriver` per VRRP instance feeds its machine the events (adverts from the
socket's `SocketMux`, timers, link and priority changes) and carries out the machine's
actions through its parts: `InstanceTimers` (on the socket's `DeadlineQueue`),
`AdvertSender`, and a `VipWorker` that runs address changes, hooks (`InstanceHooks`)
and announcements (`Announcements`) in order, so a VIP is configured before it is
announced, without holding up adverts. Time is the event loop's clock (monotonic), and
an advert is handled at its kernel receive timestamp so that timers restart from when
the packet arrived, not from when Python got to it (which lets the mux read in batches:
runtime/socket_mux.py).

Where the kernel allows it, a backup does not read its master's repeats at all: once
the machine has followed an advert, the mux arms its bytes in the socket's repeat
filter (``adapters/repeat_filter.py``), the kernel drops copies of it and records when
the last one came, and the driver folds that record in before a Master_Down_Timer may
fire, before the machine handles anything else, and when asked for its status. The
kernel keeps dropping until then, also while another advert waits unread: when the
last repeat folded in came after an advert handled later, the machine is handed that
repeat again after it, so the filter never changes what the machine decides (a
master's answer to a priority-0 advert is such a repeat).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Never, NoReturn

from reconciler.adapters.arp import Announcer
from reconciler.adapters.error_tally import ErrorTally
from reconciler.adapters.netlink import Netlink
from reconciler.adapters.repeat_filter import RepeatFilter
from reconciler.adapters.vrrp_socket import VrrpSocket
from reconciler.model import vrrp as model
from reconciler.observability.status import InstanceStatus, TrackerStatus, TransitionStatus
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.runtime.advert_sender import AdvertSender
from reconciler.runtime.announce import Announcements
from reconciler.runtime.instance_hooks import InstanceHooks
from reconciler.runtime.instance_status import InstanceCapture, instance_status
from reconciler.runtime.notify import Notifier
from reconciler.runtime.socket_mux import MuxCounters, SocketMux
from reconciler.runtime.vip_worker import VipWorker
from reconciler.runtime.vrrp_timers import InstanceTimers
from reconciler.vrrp import actions as act
from reconciler.vrrp.events import (
    AdvertReceived,
    Event,
    Reconfigure,
    Shutdown,
    Startup,
)
from reconciler.vrrp.fsm import VirtualRouter
from reconciler.vrrp.packet import AuthType, VrrpVersion
from reconciler.vrrp.params import InstanceParams
from reconciler.vrrp.states import State, TransitionReason
from reconciler.vrrp.timers import skew_time

__all__ = [
    "InstanceCapture",
    "InstanceDriver",
    "MuxCounters",
    "SocketMux",
    "Tallies",
    "TransitionListener",
    "instance_params",
    "instance_status",
]

log = logging.getLogger("reconciler.vrrp")

IPAddr = IPv4Address | IPv6Address

TransitionListener = Callable[["InstanceDriver", act.Transitioned], None]


def instance_params(spec: model.VrrpInstance, primary: IPAddr) -> InstanceParams:
    """The state machine's parameters for one resolved instance of the model."""
    vips = tuple(v.address.ip for v in spec.vips)
    return InstanceParams(
        name=spec.name,
        vrid=spec.vrid,
        priority=spec.priority,
        advert_interval_cs=spec.advert_interval_cs,
        vips=vips,  # type: ignore[arg-type]
        primary_address=primary,
        version=VrrpVersion(spec.version),
        preempt=spec.preempt,
        preempt_delay_s=spec.preempt_delay.total_seconds(),
        accept_mode=spec.accept,
        answer_lower_priority=spec.answer_lower_priority,
        auth_type=AuthType.SIMPLE_TEXT if spec.auth_password else AuthType.NONE,
        auth_data=(spec.auth_password or "").encode(),
        unicast_peers=spec.unicast_peers,  # type: ignore[arg-type]
        unicast_checksum=spec.unicast_checksum,
        check_unicast_source=spec.unicast_source_check,
        unicast_min_ttl=spec.unicast_min_ttl or 0,
    )


@dataclass(frozen=True)
class Tallies:
    """The failures of what a takeover does, shared by the node's instances: counted by
    kind, logged once per kind and interface (adapters/error_tally.py)."""

    advert_send: ErrorTally
    vip_add: ErrorTally
    vip_remove: ErrorTally
    announce: ErrorTally

    @classmethod
    def fresh(cls) -> Tallies:
        return cls(
            ErrorTally("advert_send", log),
            ErrorTally("vip_add", log),
            ErrorTally("vip_remove", log),
            ErrorTally("announce", log),
        )

    def all(self) -> tuple[ErrorTally, ...]:
        return (self.advert_send, self.vip_add, self.vip_remove, self.announce)


def _unknown(action: Never) -> NoReturn:
    raise TypeError(f"unknown VRRP action: {action!r}")


class InstanceDriver:
    """Runs one instance's state machine with real timers, sockets and addresses."""

    def __init__(
        self,
        spec: model.VrrpInstance,
        params: InstanceParams,
        mux: SocketMux,
        netlink: Netlink,
        announcer: Announcer,
        ownership: OwnershipStore,
        loop: asyncio.AbstractEventLoop,
        on_transition: TransitionListener | None = None,
        notifier: Notifier | None = None,
        tallies: Tallies | None = None,
    ) -> None:
        self.spec = spec
        self.params = params
        self.machine = machine = VirtualRouter(params)
        self.mux = mux
        self.sock: VrrpSocket = mux.sock
        self.loop = loop
        self.on_transition = on_transition
        self.tallies = tallies = tallies if tallies is not None else Tallies.fresh()
        self._timers = InstanceTimers(mux.deadlines, loop.time, self.feed, self.absorb, mux.drain)
        self._sender = AdvertSender(mux.sock, params, spec.interface, tallies.advert_send)
        self._hooks = InstanceHooks(spec, notifier, lambda: machine.priority)
        self._announcements = Announcements(
            loop, announcer, spec, params.vips, lambda: machine.state is State.MASTER
        )
        self._worker = VipWorker(
            spec,
            netlink,
            ownership,
            self._hooks,
            self._announcements,
            tallies.vip_add,
            tallies.vip_remove,
            loop,
        )
        self._budget_priority = -1  # the priority and interval reaction_budget_s is for
        self._budget_interval_cs = -1
        self.reaction_budget_s = 0.0
        self.late_repeats = 0  # repeats dropped in the kernel handed again (_after_advert)
        self.last_transition_unix_s: float | None = None
        self.last_transition: TransitionStatus | None = None
        self.last_advert_mono: float | None = None  # last advert handed to the machine
        # The advert the kernel drops repeats of for us, the filter, and its drop count
        # when last folded in (see the module docstring).
        self.offloaded: AdvertReceived | None = None
        self._filter: RepeatFilter | None = None
        self._filter_dropped = 0
        # The repeat last folded in (``absorb``) and the time the kernel dropped it, while
        # it is the latest advert the machine was handed: an advert that came before it
        # but is read after it gets it handed again (``_after_advert``).
        self._folded: AdvertReceived | None = None
        self._folded_at = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def holds_vips(self) -> bool:
        """The VIPs belong on this node: master, or still releasing them."""
        return self.machine.state is State.MASTER or self._worker.releasing

    @property
    def effective_priority(self) -> int:
        return self.machine.priority

    @property
    def faults(self) -> frozenset[str]:
        return frozenset(self.machine.faults)

    # ------------------------------------------------------------ events in
    def start(self) -> None:
        self.feed(Startup())

    def reconfigure(self, spec: model.VrrpInstance, params: InstanceParams, priority: int) -> None:
        """Apply a new revision of this instance in place (same VRID, interface, family
        and version: ``model.vrrp.restart_reasons`` is empty). ``priority``: the effective
        priority under it, trackers applied.

        The machine decides what moves (``Reconfigure``); here the encoded adverts are
        dropped (the next one is built from the new params), the kernel stops dropping
        repeats of the advert followed so far (feeding any event but an advert ends that),
        and the batching window follows the new interval. Hooks, GARP settings and VIP
        attributes are read from ``spec`` when they are used.
        """
        self._worker.reconfigure(spec)
        self._hooks.reconfigure(spec)
        self._announcements.reconfigure(spec, params.vips)
        self.spec = spec
        self.params = params
        self._sender.reconfigure(params)
        self.feed(Reconfigure(params, priority))
        self._timing_changed()

    def feed(self, event: Event, now: float | None = None) -> None:
        t = self.loop.time() if now is None else now
        m = self.machine
        if type(event) is AdvertReceived:
            deadline = m.follow_repeat(event, t)
            if deadline is not None:  # the master repeated itself: the timer moves on
                self.last_advert_mono = t
                self._timers.follow(deadline, t)
                return
        if self.offloaded is not None:
            # Anything else may change what a repeat means (state, priority, master):
            # the kernel stops dropping them first, and those it dropped count before it
            # (an advert that came before the last of them hands that one again after).
            self._end_offload()
        if type(event) is not AdvertReceived:
            self._perform(m.handle(event, t), t)
        else:
            latest, self.last_advert_mono = self.last_advert_mono, t
            self._perform(m.handle(event, t), t)
            self._after_advert(t, latest)
        if (
            m.priority != self._budget_priority
            or m.master_adver_interval_cs != self._budget_interval_cs
        ):
            self._timing_changed()

    def _timing_changed(self) -> None:
        """Skew_Time moved: the socket's batching window depends on it."""
        m = self.machine
        self._budget_priority = m.priority
        self._budget_interval_cs = m.master_adver_interval_cs
        # The shortest delay an advert can start is Skew_Time, after a priority-0 advert.
        skew = skew_time(min(m.priority, 254), m.master_adver_interval_cs, self.params.version)
        interval_s = min(m.master_adver_interval_cs, self.params.advert_interval_cs) / 100
        self.reaction_budget_s = min(float(skew) / 4, interval_s / 20)
        self.mux.timing_changed()

    # ------------------------------------------------------------ kernel repeat filter
    def offload(self, event: AdvertReceived, repeat_filter: RepeatFilter, dropped: int) -> None:
        """The kernel now drops repeats of ``event`` (armed by the mux when the filter's
        count for this VRID was ``dropped``)."""
        self.offloaded = event
        self._filter = repeat_filter
        self._filter_dropped = dropped

    def absorb(self) -> None:
        """Hand the machine the repeats the kernel dropped since the last call."""
        event, filt = self.offloaded, self._filter
        if event is None or filt is None:
            return
        seen = filt.seen(self.spec.vrid)
        count = seen.dropped - self._filter_dropped
        if count <= 0:
            return
        self._filter_dropped = seen.dropped
        deadline = self.machine.follow_repeats(event, count, seen.last_seen_s)
        if deadline is not None:
            self.last_advert_mono = self._folded_at = seen.last_seen_s
            self._folded = event
            self._timers.postpone(deadline)

    def _after_advert(self, t: float, latest: float | None) -> None:
        """An advert that arrived at ``t`` was handled (not a repeat of the followed one).

        Repeats are folded in when the driver looks (``absorb``), and the kernel keeps
        dropping them until then, also while another advert waits unread in the socket:
        a master's immediate answer to a priority-0 advert (RFC 5798 §6.4.3) is such a
        repeat. If the last repeat folded in came after this advert, the machine must see
        it after this one, as it would have without the filter: handed again at its time
        (``refollow``), it restarts the Master_Down_Timer that a priority-0 advert had
        cut to Skew_Time, and follows its master again. That holds while it is still the
        latest advert the machine was handed (``latest``, before this one: no repeat was
        read in user space since).
        """
        folded, at = self._folded, self._folded_at
        if folded is None:
            return
        if t < at and latest == at:
            self.late_repeats += 1
            log.debug(
                "%s: a repeat the kernel dropped came %.6fs after an advert read since: "
                "handed again after it",
                self.spec.name,
                at - t,
            )
            self.last_advert_mono = at
            self._perform(self.machine.refollow(folded, at), at)
        else:
            self._folded = None

    def _end_offload(self) -> None:
        if self._filter is not None:
            self._filter.disarm(self.spec.vrid)
        self.absorb()
        self.offloaded = None

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Graceful stop: priority-0 advert, VIPs released, worker drained."""
        self.feed(Shutdown())
        self._announcements.cancel()
        self._timers.clear()
        await self._worker.stop(timeout_s)

    # ------------------------------------------------------------ actions out
    def _perform(self, actions: list[act.Action], now: float) -> None:
        if len(actions) == 1 and type(actions[0]) is act.StartTimer:
            timer = actions[0]  # a backup following its master: most adverts
            self._timers.start(timer.kind, timer.delay_s, now)
            return
        moved = None
        for a in actions:
            if isinstance(a, act.Transitioned):
                moved = a
        for a in actions:
            if isinstance(a, act.StartTimer):
                self._timers.start(a.kind, a.delay_s, now)
            elif isinstance(a, act.SendAdvert):
                self._sender.send(a)
            elif isinstance(a, act.CancelTimer):
                self._timers.cancel(a.kind)
            elif isinstance(a, act.Transitioned):
                pass  # below, once the advert is out and the VIP work queued
            elif isinstance(a, act.RemoveVips):
                if moved is not None:
                    self._worker.release(a.addresses, moved.to_state)
                else:
                    self._worker.remove(a)
            elif isinstance(a, act.AddVips):
                self._worker.add(a)
            elif isinstance(a, act.SendGratuitous):
                self._worker.announce(a)
            else:
                _unknown(a)
        if moved is not None:
            # Logging, listeners (tracing, sync groups, a reconcile pass woken) after the
            # rest: the VIP work is queued first, so its worker runs before a reconcile
            # pass can take the netlink socket for a dump.
            self._transitioned(moved)
            self._worker.notify(moved)

    def _transitioned(self, t: act.Transitioned) -> None:
        self.last_transition_unix_s = time.time()
        self.last_transition = TransitionStatus(
            t.from_state.name, t.to_state.name, t.reason.value, self.last_transition_unix_s
        )
        level = logging.INFO if t.reason is not TransitionReason.STARTUP else logging.DEBUG
        log.log(
            level,
            "%s: %s -> %s (%s), priority %d",
            self.spec.name,
            t.from_state.name,
            t.to_state.name,
            t.reason.value,
            self.machine.priority,
        )
        if t.from_state is State.MASTER:
            self._announcements.cancel()
        if self.on_transition is not None:
            self.on_transition(self, t)

    # ------------------------------------------------------------ status
    def capture(self) -> InstanceCapture:
        """What the instance's status says, read now (on the loop): `instance_status`
        builds the status from it, on any thread. A scrape of /metrics reads every
        instance, so only this part runs on the loop (a few plain reads and copies)."""
        self.absorb()
        m = self.machine
        c = m.counters
        return InstanceCapture(
            self.spec,
            m.state,
            m.priority,
            m.master_address,
            self.last_transition_unix_s,
            self.last_transition,
            c.adverts_received,
            c.adverts_sent,
            dict(c.refused) if c.refused else {},
            dict(c.transitions),
            tuple(m.faults) if m.faults else (),
            c.address_mismatch_received,
            c.reconfigured,
        )

    def status(self, trackers: tuple[TrackerStatus, ...] = ()) -> InstanceStatus:
        """A snapshot; ``trackers``: what each tracker does to the priority (the node's
        tracking knows, not the driver)."""
        return instance_status(self.capture(), trackers)
