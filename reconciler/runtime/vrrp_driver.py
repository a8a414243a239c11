"""asyncio drivers that run the sans-I/O VRRP state machines against real sockets.

One `InstanceDriver` per VRRP instance turns the machine's actions into
sends, timers (`loop.call_at`), address changes and announcements; one
`SocketMux` per interface and family reads adverts, decodes them once and
hands each to the instance with that VRID. Time is the event loop's clock
(monotonic), and an advert is handled at its kernel receive timestamp so that
timers restart from when the packet arrived, not from when Python got to it.

That is what lets a socket be read in batches: while adverts come faster than
one per window, a mux reads its socket every few milliseconds instead of waking
for each packet (a wake-up costs more than the advert), and the delay changes no
timer because each advert still counts from its arrival. The window is a quarter of the
shortest Skew_Time among the socket's instances (so a priority-0 advert is
acted on in time) and a twentieth of the shortest advert interval (how late a
master may answer or yield to an advert), at most ``MAX_BATCH_S``; and before a
Master_Down_Timer fires the socket is read first, so a waiting advert is never
missed.

Where the kernel allows it, a backup does not read its master's repeats at all: once
the machine has followed an advert, the mux arms its bytes in the socket's repeat
filter (``adapters/repeat_filter.py``), the kernel drops copies of it and records when
the last one came, and the driver folds that record in before a Master_Down_Timer may
fire, before the machine handles anything else, and when asked for its status. The
kernel keeps dropping until then, also while another advert waits unread: when the
last repeat folded in came after an advert handled later, the machine is handed that
repeat again after it, so the filter never changes what the machine decides (a
master's answer to a priority-0 advert is such a repeat).

Address changes and announcements run on a per-instance serial worker so a
VIP is configured before it is announced, without holding up adverts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from reconciler.adapters.arp import Announcer
from reconciler.adapters.error_tally import ErrorTally
from reconciler.adapters.netlink import ADDRESS_ERRORS, Netlink
from reconciler.adapters.outcome import WriteOutcome
from reconciler.adapters.repeat_filter import (
    IPV6_HEADER_LEN,
    PATTERN_MAX,
    RepeatFilter,
    ipv6_packet,
    normalize,
)
from reconciler.adapters.vrrp_socket import Datagram, VrrpSocket
from reconciler.model import vrrp as model
from reconciler.model.kernel import LiveAddress
from reconciler.model.vrrp import Hook
from reconciler.observability.status import (
    InstanceStatus,
    SocketStatus,
    TrackerStatus,
    TransitionStatus,
)
from reconciler.plan.live import live_vip
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.runtime.deadlines import DeadlineQueue
from reconciler.runtime.notify import Notifier
from reconciler.vrrp import actions as act
from reconciler.vrrp.events import (
    AdvertReceived,
    Event,
    Reconfigure,
    Shutdown,
    Startup,
    TimerExpired,
)
from reconciler.vrrp.fsm import VirtualRouter as Machine
from reconciler.vrrp.packet import (
    Advert,
    AuthType,
    MalformedAdvert,
    ReceivedAdvert,
    VrrpVersion,
    decode_ipv4,
    decode_ipv6,
    encode_advert,
    multicast_group,
)
from reconciler.vrrp.params import InstanceParams, UnicastChecksum
from reconciler.vrrp.receive import Refusal
from reconciler.vrrp.states import State, TimerKind, TransitionReason
from reconciler.vrrp.timers import skew_time

log = logging.getLogger("reconciler.vrrp")

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
MAX_BATCH_S = 0.05  # the longest adverts wait in a busy socket (see the module docstring)
DRAIN_LIMIT = 512  # packets handled per read of a socket
BATCH_MIN = 2  # adverts waiting at a wake-up that make polling worth it
IDLE_POLLS = 3  # empty reads in a row before a socket goes back to waking per packet
_DECODED_CACHE_MAX = 1024

IPAddr = IPv4Address | IPv6Address
_STATE_NAMES = {s: s.name for s in State}
_TRANSITION_KEYS: dict[tuple[State, State, TransitionReason], tuple[str, str, str]] = {}


def _transition_key(key: tuple[State, State, TransitionReason]) -> tuple[str, str, str]:
    """(from, to, reason) as status names them; the keys are few (enums)."""
    text = _TRANSITION_KEYS.get(key)
    if text is None:
        text = _TRANSITION_KEYS[key] = (key[0].name, key[1].name, key[2].value)
    return text


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
        unicast_checksum={
            model.UnicastChecksum.AUTO: UnicastChecksum.AUTO,
            model.UnicastChecksum.OLD: UnicastChecksum.OLD,
            model.UnicastChecksum.RFC: UnicastChecksum.NEVER,
        }[spec.unicast_checksum],
        check_unicast_source=spec.unicast_source_check,
        unicast_min_ttl=spec.unicast_min_ttl or 0,
    )


@dataclass(frozen=True)
class _Release:
    """Remove VIPs on leaving MASTER for `to_state`, after its before-release hooks."""

    addresses: tuple[IPAddr, ...]
    to_state: State


@dataclass(frozen=True)
class _Adding:
    """VIP adds under way: the requests went out (``Netlink.begin_add``) when the
    instance became master, or when the worker got to them; None: to be sent by
    ``Netlink.add_address``. ``before``: what was ours before they were claimed."""

    lives: tuple[LiveAddress, ...]
    started: tuple[asyncio.Future[WriteOutcome] | None, ...]
    before: frozenset[tuple[str, tuple[str, ...]]]


@dataclass(frozen=True)
class _Notify:
    """Run the notify hooks of a state entered (after the address work queued before)."""

    from_state: State
    to_state: State
    reason: TransitionReason


_HOOK_STATE = {
    State.MASTER: "master",
    State.BACKUP: "backup",
    State.FAULT: "fault",
    State.INITIALIZE: "stop",
}


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


@dataclass
class MuxCounters:
    malformed: Counter[str]
    unknown_vrid: int = 0
    read: int = 0  # packets read from the socket (the repeat filter's drops are not)


class SocketMux:
    """Reads one raw socket and dispatches adverts to instances by VRID."""

    def __init__(
        self,
        sock: VrrpSocket,
        loop: asyncio.AbstractEventLoop,
        repeat_filter: RepeatFilter | None = None,
    ) -> None:
        self.sock = sock
        self.loop = loop
        self.repeat_filter = repeat_filter  # attached to sock by the caller
        self.instances: dict[int, InstanceDriver] = {}
        self.counters = MuxCounters(Counter())
        # Decoded adverts, as (VRID, the event handed on), by their bytes: a master
        # repeats the same advert, and decoding (checksum, addresses) is pure; the machine
        # also skips the receive checks for the advert it validated last. Bounded; forged
        # traffic only clears it.
        self._decoded: dict[object, tuple[int, AdvertReceived]] = {}
        self._window_s: float | None = None  # batching window; None: to be recomputed
        self._resume: asyncio.TimerHandle | None = None
        self._idle_polls = 0
        self._last_readable = -math.inf
        self.deadlines = DeadlineQueue(loop)  # the timers of the instances on this socket
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._readable)
        self._reading = True

    def attach(self, driver: InstanceDriver) -> None:
        self.instances[driver.spec.vrid] = driver
        self._window_s = None

    def detach(self, vrid: int) -> None:
        self.instances.pop(vrid, None)
        self._window_s = None
        if self.repeat_filter is not None:
            self.repeat_filter.disarm(vrid)

    def timing_changed(self) -> None:
        """An instance's Skew_Time changed (priority or learned interval)."""
        self._window_s = None

    def close(self) -> None:
        self.deadlines.close()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._reading:
            self.loop.remove_reader(self._fd)
            self._reading = False
        self.sock.close()
        if self.repeat_filter is not None:
            self.repeat_filter.close()

    def status(self) -> SocketStatus:
        return SocketStatus(
            interface=self.sock.interface,
            family="ipv4" if self.sock.family == 4 else "ipv6",
            malformed=dict(self.counters.malformed),
            unknown_vrid=self.counters.unknown_vrid,
            read=self.counters.read,
            repeat_filter=self.repeat_filter is not None,
        )

    def drain(self) -> int:
        """Handle the adverts waiting in the socket; how many there were.

        At most ``DRAIN_LIMIT`` at a time, so a flood cannot starve the timers: a busy
        socket stays in polling mode and is read again a window later.
        """
        batch = self.sock.receive(DRAIN_LIMIT)
        self.counters.read += len(batch)
        decoded = self._decoded
        instances = self.instances
        ipv4 = self.sock.family == 4
        for dgram in batch:
            data = dgram.data
            key: object
            if ipv4:
                # What decoding depends on: version and header length, fragment fields,
                # TTL, then addresses, options and payload. Not the identification or the
                # header checksum, which change per packet (the kernel has verified the
                # checksum); the length is that of the bytes, the protocol the socket's.
                key = (data[0], data[6], data[7], data[8], data[12:])
            else:
                key = (data, dgram.source, dgram.destination, dgram.hop_limit)
            cached = decoded.get(key)
            if cached is not None:  # the common case inline: an advert seen before
                driver = instances.get(cached[0])
                if driver is not None:
                    event = cached[1]
                    driver.feed(event, dgram.received_at)
                    if driver.offloaded is not event and self.repeat_filter is not None:
                        self._offload(driver, event, dgram)
                    continue
            self._dispatch(dgram, key, cached)  # new, malformed, or not ours
        return len(batch)

    def _offload(self, driver: InstanceDriver, event: AdvertReceived, dgram: Datagram) -> None:
        """The machine followed a repeat of ``event``: let the kernel drop the next ones."""
        filt = self.repeat_filter
        if filt is None or driver.machine.followed is not event:
            return
        if self.sock.family == 4:
            packet = dgram.data
        elif len(dgram.data) + IPV6_HEADER_LEN > PATTERN_MAX:
            return  # too long to compare in the kernel: read in user space
        else:
            assert dgram.source is not None and dgram.destination is not None
            assert dgram.hop_limit is not None
            packet = ipv6_packet(
                dgram.data, dgram.source.packed, dgram.destination.packed, dgram.hop_limit
            )
        vrid = driver.spec.vrid
        dropped = filt.dropped(vrid)  # before arming: every drop after it is this advert's
        if filt.arm(vrid, normalize(self.sock.family, packet)):
            driver.offload(event, filt, dropped)

    def window_s(self) -> float:
        """How long adverts may wait unread: a quarter of the shortest Skew_Time, and
        at most a twentieth of the shortest advert interval (a master answering or
        yielding to an advert is late by up to this)."""
        if self._window_s is None:
            budget = min((d.reaction_budget_s for d in self.instances.values()), default=0.0)
            self._window_s = min(MAX_BATCH_S, budget)
        return self._window_s

    def _readable(self) -> None:
        now = self.loop.time()
        waiting = self.drain()
        window = self.window_s()
        # Adverts come faster than one per window (several were waiting, or this wake-up
        # follows the last within a window): read them in batches from now on. Sparse
        # adverts (one instance, a quiet link) keep waking per packet: polling would
        # only add wake-ups.
        dense = waiting >= BATCH_MIN or now - self._last_readable < window
        self._last_readable = now
        if dense and window > 0:
            self.loop.remove_reader(self._fd)
            self._reading = False
            self._resume = self.loop.call_later(window, self._poll)

    def _poll(self) -> None:
        """The window is over: read what came; keep polling while adverts keep coming
        (a short lull does not end it: switching costs two epoll_ctl calls)."""
        self._resume = None
        self._idle_polls = 0 if self.drain() else self._idle_polls + 1
        if self._idle_polls < IDLE_POLLS:
            self._resume = self.loop.call_later(self.window_s(), self._poll)
        else:
            self._idle_polls = 0
            self.loop.add_reader(self._fd, self._readable)
            self._reading = True

    def _dispatch(
        self, dgram: Datagram, key: object, cached: tuple[int, AdvertReceived] | None
    ) -> None:
        """Decode (unless ``cached``), count what is refused, hand the rest on."""
        data = dgram.data
        if cached is None:
            received: ReceivedAdvert
            try:
                if self.sock.family == 4:
                    received = decode_ipv4(data)
                else:
                    assert isinstance(dgram.source, IPv6Address)
                    assert isinstance(dgram.destination, IPv6Address)
                    assert dgram.hop_limit is not None
                    received = decode_ipv6(data, dgram.source, dgram.destination, dgram.hop_limit)
            except MalformedAdvert as exc:
                self.counters.malformed[exc.reason.value] += 1
                return
            if len(self._decoded) >= _DECODED_CACHE_MAX:
                self._decoded.clear()
            cached = self._decoded[key] = (received.advert.vrid, AdvertReceived(received))
        vrid, event = cached
        driver = self.instances.get(vrid)
        if driver is None:
            self.counters.unknown_vrid += 1  # another cluster's VRID on this link
            return
        driver.feed(event, dgram.received_at)


class InstanceCapture(NamedTuple):
    """An instance's state and counters as `InstanceDriver.capture` read them.

    A NamedTuple rather than a frozen dataclass: one is built per instance per scrape on
    the event loop, and a tuple costs a fraction of a frozen dataclass's ``__init__``.
    """

    spec: model.VrrpInstance
    state: State
    effective_priority: int
    master_address: IPAddr | None
    last_transition_unix_s: float | None
    last_transition: TransitionStatus | None
    adverts_received: int
    adverts_sent: int
    refused: dict[Refusal, int]
    transitions: dict[tuple[State, State, TransitionReason], int]
    faults: tuple[str, ...]
    address_mismatch: int
    reconfigured: int


def instance_status(c: InstanceCapture, trackers: tuple[TrackerStatus, ...] = ()) -> InstanceStatus:
    """The status of a captured instance (pure: runs on any thread)."""
    spec = c.spec
    return InstanceStatus(
        name=spec.name,
        vrid=spec.vrid,
        interface=spec.interface,
        family=str(spec.family),
        state=_STATE_NAMES[c.state],
        state_code=int(c.state),
        priority=spec.priority,
        effective_priority=c.effective_priority,
        master_address=str(c.master_address) if c.master_address else None,
        vips=tuple(str(v.address) for v in spec.vips),
        last_transition_unix_s=c.last_transition_unix_s,
        adverts_received=c.adverts_received,
        adverts_sent=c.adverts_sent,
        refused={r.value: n for r, n in c.refused.items()},
        transitions={_transition_key(k): n for k, n in c.transitions.items()},
        faults=tuple(sorted(c.faults)),
        trackers=trackers,
        sync_group=spec.sync_group,
        accept_mode=spec.accepts_vip_traffic,
        last_transition=c.last_transition,
        address_mismatch=c.address_mismatch,
        reconfigured=c.reconfigured,
    )


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
        self.machine = Machine(params)
        self.mux = mux
        self.sock: VrrpSocket = mux.sock
        self.netlink = netlink
        self.announcer = announcer
        self.ownership = ownership
        self.loop = loop
        self.on_transition = on_transition
        self.notifier = notifier
        self.tallies = tallies if tallies is not None else Tallies.fresh()
        # Running timers: their deadlines, and the loop handles that wake us for them. A
        # handle may wake earlier than its deadline (a backup pushes the Master_Down_Timer
        # on with every advert; moving the deadline is a store, and the early wake re-arms).
        self._deadlines: dict[TimerKind, float] = {}
        self._armed: dict[TimerKind, float] = {}  # the wake-up asked of mux.deadlines
        # Encoded adverts by (priority, old checksum): what we send rarely changes.
        self._packets: dict[tuple[int, bool], tuple[Advert, list[tuple[bytes, IPAddr]]]] = {}
        self._budget_priority = -1  # the priority and interval reaction_budget_s is for
        self._budget_interval_cs = -1
        self.reaction_budget_s = 0.0
        self._garp_handles: list[asyncio.TimerHandle] = []
        self._work: asyncio.Queue[act.Action | _Adding | _Release | _Notify | None] = (
            asyncio.Queue()
        )
        self._worker_busy = False
        self._worker = loop.create_task(self._run_worker(), name=f"vrrp-{spec.name}-worker")
        self._vips = {v.address.ip: v for v in spec.vips}
        self.send_errors = 0
        self.address_errors = 0
        self.late_repeats = 0  # repeats dropped in the kernel handed again (_after_advert)
        self.last_transition_unix_s: float | None = None
        self.last_transition: TransitionStatus | None = None
        self._releasing = 0  # VIP releases queued or running (before_release hooks first)
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
        return self.machine.state is State.MASTER or self._releasing > 0

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
        # A VIP that went is released by the worker, later: keep how to find it.
        self._vips = {**self._vips, **{v.address.ip: v for v in spec.vips}}
        self.spec = spec
        self.params = params
        self._packets.clear()
        self.feed(Reconfigure(params, priority))
        self._timing_changed()

    def feed(self, event: Event, now: float | None = None) -> None:
        t = self.loop.time() if now is None else now
        m = self.machine
        if type(event) is AdvertReceived:
            deadline = m.follow_repeat(event, t)
            if deadline is not None:  # the master repeated itself: the timer moves on
                self.last_advert_mono = t
                self._deadlines[TimerKind.MASTER_DOWN] = deadline
                at = self._armed.get(TimerKind.MASTER_DOWN)
                if at is None or at > deadline - PRECISE_WAKE_S - EPOLL_SLACK * (deadline - t):
                    self._arm(TimerKind.MASTER_DOWN, deadline, t)  # (rare) moved earlier
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
            self._deadlines[TimerKind.MASTER_DOWN] = deadline  # later: the wake-up re-arms

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
        for handle in self._garp_handles:
            handle.cancel()
        self._armed.clear()  # a pending wake-up finds nothing armed and does nothing
        self._deadlines.clear()
        self._work.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), timeout_s)
        except TimeoutError:
            self._worker.cancel()
            log.error("%s: address work did not finish in %.1fs", self.spec.name, timeout_s)

    # ------------------------------------------------------------ actions out
    def _perform(self, actions: list[act.Action], now: float) -> None:
        if len(actions) == 1 and type(actions[0]) is act.StartTimer:
            self._start(actions[0], now)  # a backup following its master: most adverts
            return
        moved = None
        for a in actions:
            if isinstance(a, act.Transitioned):
                moved = a
        for a in actions:
            if isinstance(a, act.StartTimer):
                self._start(a, now)
            elif isinstance(a, act.SendAdvert):
                self._send(a)
            elif isinstance(a, act.CancelTimer):
                self._deadlines.pop(a.kind, None)
                self._armed.pop(a.kind, None)
            elif isinstance(a, act.Transitioned):
                pass  # below, once the advert is out and the VIP work queued
            elif isinstance(a, act.RemoveVips) and moved is not None:
                self._releasing += 1
                self._work.put_nowait(_Release(a.addresses, moved.to_state))
            elif isinstance(a, act.AddVips) and self._worker_idle():
                # Nothing queued before it (no release of these VIPs in flight): the
                # add requests go out now, not when the worker runs.
                self._work.put_nowait(self._begin_add_vips(a.addresses))
            else:
                self._work.put_nowait(a)
        if moved is not None:
            # Logging, listeners (tracing, sync groups, a reconcile pass woken) after the
            # rest: the VIP work is queued first, so its worker runs before a reconcile
            # pass can take the netlink socket for a dump.
            self._transitioned(moved)
            self._work.put_nowait(_Notify(moved.from_state, moved.to_state, moved.reason))

    # ------------------------------------------------------------ timers
    def _start(self, a: act.StartTimer, now: float) -> None:
        deadline = now + a.delay_s
        if a.kind is TimerKind.ADVER:
            deadline = math.floor(deadline / ADVER_GRID_S + 1e-6) * ADVER_GRID_S
        self._arm(a.kind, deadline, now)

    def _arm(self, kind: TimerKind, deadline: float, now: float) -> None:
        self._deadlines[kind] = deadline
        if kind is TimerKind.MASTER_DOWN:
            wake = deadline - PRECISE_WAKE_S - EPOLL_SLACK * max(0.0, deadline - now)
        else:
            wake = deadline
        at = self._armed.get(kind)
        if at is not None and at <= wake:
            return  # it wakes first and re-arms then
        self._armed[kind] = wake
        self.mux.deadlines.call_at(wake, self._wake, kind, wake)

    def _wake(self, kind: TimerKind, at: float) -> None:
        if self._armed.get(kind) != at:
            return  # superseded by an earlier wake-up, or cancelled
        del self._armed[kind]
        deadline = self._deadlines.get(kind)
        if deadline is None:
            return  # cancelled meanwhile
        now = self.loop.time()
        if kind is TimerKind.MASTER_DOWN:
            if self.offloaded is not None:
                self.absorb()
                deadline = self._deadlines[kind]
            remaining = deadline - now
            if remaining > 2 * PRECISE_WAKE_S:
                self._arm(kind, deadline, now)  # moved on, or the early wake-up: once more
                return
            if remaining > 0:
                time.sleep(remaining)  # under 3 ms, once per takeover
            # Adverts may be waiting in the socket (it is read in batches): they come
            # first, and one from the master restarts this timer.
            self.mux.drain()
            self.absorb()  # a repeat the kernel dropped meanwhile counts too
            if kind in self._armed or kind not in self._deadlines:
                return
            if self._deadlines[kind] > deadline:
                self._arm(kind, self._deadlines[kind], self.loop.time())
                return
        elif at < deadline:
            self._arm(kind, deadline, now)  # the deadline moved on while it waited
            return
        del self._deadlines[kind]
        # Handled at its deadline, not at the (later) moment the loop got to it, so the
        # next Adver_Timer is armed from the schedule and the cadence does not drift.
        self.feed(TimerExpired(kind), deadline)

    def _send(self, a: act.SendAdvert) -> None:
        source = self.params.primary_address
        key = (a.advert.priority, a.old_unicast_checksum)
        cached = self._packets.get(key)
        if cached is None or cached[0] is not a.advert:
            destinations: tuple[IPAddr, ...] = self.params.unicast_peers or (
                multicast_group(source),
            )
            packets = [
                (
                    encode_advert(
                        a.advert, source, dst, old_unicast_checksum=a.old_unicast_checksum
                    ),
                    dst,
                )
                for dst in destinations
            ]
            cached = self._packets[key] = (a.advert, packets)
        for payload, dst in cached[1]:
            try:
                self.sock.send(payload, source, dst)
            except OSError as exc:
                # A link going down makes sends fail (LinkDown handling follows), and so
                # does a firewall or a full queue: for every advert of every instance.
                self.send_errors += 1
                self.tallies.advert_send.record(exc, self.spec.interface)

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
            for handle in self._garp_handles:
                handle.cancel()
            self._garp_handles.clear()
        if self.on_transition is not None:
            self.on_transition(self, t)

    # ------------------------------------------------------------ serial worker
    def _worker_idle(self) -> bool:
        return not self._worker_busy and self._work.empty() and self._releasing == 0

    async def _run_worker(self) -> None:
        while (a := await self._work.get()) is not None:
            self._worker_busy = True
            try:
                if isinstance(a, act.AddVips):
                    await self._finish_add_vips(self._begin_add_vips(a.addresses))
                elif isinstance(a, _Adding):
                    await self._finish_add_vips(a)
                elif isinstance(a, _Release):
                    try:
                        await self._before_release(a.to_state)
                        await self._remove_vips(a.addresses)
                    finally:
                        self._releasing -= 1
                elif isinstance(a, act.RemoveVips):
                    await self._remove_vips(a.addresses)
                elif isinstance(a, _Notify):
                    self._notify(a)
                elif isinstance(a, act.SendGratuitous):
                    self._announce_schedule(a.addresses)
            except Exception as exc:
                self.address_errors += 1
                tally = self._address_tally(a) if isinstance(exc, ADDRESS_ERRORS) else None
                if tally is not None:
                    # The kernel or the link refused: for every instance alike, so counted
                    # by kind and logged once per kind.
                    tally.record(exc, self.spec.interface)
                else:  # a bug: its traceback
                    log.exception("%s: %s failed", self.spec.name, type(a).__name__)
            finally:
                self._worker_busy = False

    def _address_tally(self, work: object) -> ErrorTally | None:
        if isinstance(work, act.AddVips | _Adding):
            return self.tallies.vip_add
        if isinstance(work, act.RemoveVips | _Release):
            return self.tallies.vip_remove
        return None

    def _hooks(self, state: State) -> tuple[Hook, ...]:
        if state is State.INITIALIZE:
            return self.spec.notify.stop
        return tuple(getattr(self.spec.notify, _HOOK_STATE[state]))

    def hook_env(self, state: State, from_state: State | None = None) -> dict[str, str]:
        env = {
            "RECONCILER_INSTANCE": self.spec.name,
            "RECONCILER_STATE": _HOOK_STATE[state],
            "RECONCILER_PRIORITY": str(self.machine.priority),
            "RECONCILER_VRID": str(self.spec.vrid),
            "RECONCILER_INTERFACE": self.spec.interface,
        }
        if from_state is not None:
            env["RECONCILER_FROM_STATE"] = _HOOK_STATE[from_state]
        return env

    async def _before_release(self, to_state: State) -> None:
        """Hooks marked before_release run, and are waited for (each up to its timeout),
        before the VIPs go: e.g. to drain sessions or tell a peer."""
        hooks = tuple(h for h in self._hooks(to_state) if h.before_release)
        if hooks and self.notifier is not None:
            await self.notifier.run_now(hooks, self.hook_env(to_state, State.MASTER))

    def _notify(self, n: _Notify) -> None:
        if n.to_state is State.INITIALIZE and n.reason is not TransitionReason.SHUTDOWN:
            return
        hooks = tuple(h for h in self._hooks(n.to_state) if not h.before_release)
        if hooks and self.notifier is not None:
            self.notifier.submit(self.spec.name, hooks, self.hook_env(n.to_state, n.from_state))

    def _live(self, ip: IPAddr) -> LiveAddress:
        return live_vip(self._vips[ip])

    def _begin_add_vips(self, addresses: tuple[IPAddr, ...]) -> _Adding:
        lives = tuple(self._live(ip) for ip in addresses)
        before = self.ownership.owned
        # Claimed before the add (in memory: an fsync here would delay the takeover) so a
        # reconcile pass running meanwhile sees them as ours; written down right after
        # (and listed as pending in the record since start, for a crash in between).
        self.ownership.claim({(live.kind, live.key) for live in lives})
        return _Adding(lives, tuple(self.netlink.begin_add(live) for live in lives), before)

    async def _finish_add_vips(self, adding: _Adding) -> None:
        before = adding.before
        foreign = set()
        for live, started in zip(adding.lives, adding.started, strict=True):
            if started is None:
                outcome = await self.netlink.add_address(live)
            else:
                outcome = await self.netlink.finish_add(live, started)
            ident = (live.kind, live.key)
            if outcome is not WriteOutcome.CREATED and ident not in before:
                foreign.add(ident)
                log.warning(
                    "%s: VIP %s is already on %s and was not added by us; leaving it alone",
                    self.spec.name,
                    live.address,
                    live.interface,
                )
        self.ownership.update(remove=foreign)

    async def _remove_vips(self, addresses: tuple[IPAddr, ...]) -> None:
        removed = set()
        for ip in addresses:
            live = self._live(ip)
            ident = (live.kind, live.key)
            if ident not in self.ownership.owned:
                continue  # never remove an address someone else configured
            await self.netlink.delete_address(live)
            removed.add(ident)
        self.ownership.update(remove=removed)

    def _announce_schedule(self, addresses: tuple[IPAddr, ...]) -> None:
        """keepalived's policy: a burst now, a second burst after master_delay, then
        a refresh every master_refresh while master."""
        garp = self.spec.garp
        self._burst(addresses, garp.master_repeat)
        if garp.master_delay > timedelta(0) and garp.master_repeat:
            self._garp_handles.append(
                self.loop.call_later(
                    garp.master_delay.total_seconds(),
                    self._burst_if_master,
                    addresses,
                    garp.master_repeat,
                )
            )
        if garp.master_refresh > timedelta(0):
            self._schedule_refresh(addresses)

    def _schedule_refresh(self, addresses: tuple[IPAddr, ...]) -> None:
        garp = self.spec.garp

        def refresh() -> None:
            if self.state is State.MASTER:
                self._burst(addresses, garp.master_refresh_repeat)
                self._schedule_refresh(addresses)

        self._garp_handles.append(
            self.loop.call_later(garp.master_refresh.total_seconds(), refresh)
        )

    def _burst_if_master(self, addresses: tuple[IPAddr, ...], count: int) -> None:
        if self.state is State.MASTER:
            self._burst(addresses, count)

    def _burst(self, addresses: tuple[IPAddr, ...], count: int) -> None:
        gap = self.spec.garp.interval.total_seconds()
        for i in range(count):
            if gap and i:
                self._garp_handles.append(
                    self.loop.call_later(gap * i, self._announce_now, addresses)
                )
            else:
                self._announce_now(addresses)

    def _announce_now(self, addresses: tuple[IPAddr, ...]) -> None:
        if self.state is not State.MASTER:
            return
        vips = self.params.vips
        if any(a not in vips for a in addresses):  # a later burst or refresh, after a reload
            addresses = tuple(a for a in addresses if a in vips)
            if not addresses:
                return
        try:
            self.announcer.announce(addresses)  # type: ignore[arg-type]
        except OSError as exc:
            log.warning("%s: announcement failed: %s", self.spec.name, exc)
