"""The kernel repeat filter never changes what a backup decides.

The real ``SocketMux`` and ``InstanceDriver`` run on an event loop whose clock is
virtual (it jumps to the next timer instead of sleeping), over the project's own seams
faked: a socket that packets "arrive" on at their time, and the repeat filter as the
kernel runs it (``KernelFilter``: an armed advert's byte-identical copies are dropped
and counted with the time of the last; anything else reaches the socket). The same
packets, at the same times, go to a backup without the filter and to one with it; both
must go through the same transitions at the same instants and count the same adverts.

The packets: its master's adverts every second (an answer at once to a priority-0
advert, RFC 5798 §6.4.3, which restarts its Adver_Timer), priority-0 adverts forged by a
host that is not a member, the master's own priority-0 advert when it stops, a crash and a
return, a higher-priority router, the master at a lower priority, adverts refused by the
§7.1 checks or malformed, and bursts of another cluster's adverts that make the backup
read its socket in batches (so adverts wait unread while the kernel drops repeats).
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from types import SimpleNamespace
from typing import Any
from unittest import mock

from hypothesis import event as note_event
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.adapters.outcome import WriteOutcome
from reconciler.adapters.repeat_filter import PATTERN_MAX, Seen, normalize
from reconciler.adapters.vrrp_socket import Datagram
from reconciler.config.load import load_text
from reconciler.model.kernel import LiveAddress
from reconciler.runtime import vrrp_timers
from reconciler.runtime.vrrp_driver import InstanceDriver, SocketMux, instance_params
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml
from reconciler.vrrp import actions as act
from reconciler.vrrp.packet import Advert, VrrpVersion, encode_advert, multicast_group
from reconciler.vrrp.states import State, TransitionReason

VRID = 51
MASTER = IPv4Address("192.0.2.11")
ME = IPv4Address("192.0.2.12")
HIGHER = IPv4Address("192.0.2.13")  # another router, at priority 200
FORGER = IPv4Address("192.0.2.99")  # no member of the cluster
GROUP = multicast_group(MASTER)
VIP = IPv4Interface("192.0.2.100/32")
INTERVAL_S = 1.0
END_S = 40.0  # virtual seconds of events; the master (unless it stops) and the run go on
RUN_S = END_S + 5


# --- the seams -------------------------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):
    """Ready file descriptors at once; a wait for nothing moves the clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self.now += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


class KernelFilter:
    """``adapters.repeat_filter.RepeatFilter`` as the eBPF program decides, per packet."""

    family = 4

    def __init__(self) -> None:
        self._patterns: dict[int, bytes] = {}
        self._seen: dict[int, Seen] = {}

    # what the driver calls
    def arm(self, vrid: int, packet: bytes) -> bool:
        if len(packet) > PATTERN_MAX or len(packet) < 8:
            self.disarm(vrid)
            return False
        self._patterns[vrid] = packet
        return True

    def disarm(self, vrid: int) -> None:
        self._patterns.pop(vrid, None)

    def armed(self, vrid: int) -> bool:
        return vrid in self._patterns

    def seen(self, vrid: int) -> Seen:
        return self._seen.get(vrid, Seen(0, 0.0))

    def dropped(self, vrid: int) -> int:
        return self.seen(vrid).dropped

    def close(self) -> None:
        self._patterns.clear()

    # what the kernel does with a packet arriving at ``at``: True if it drops it
    def drops(self, data: bytes, at: float) -> bool:
        vrid = data[21] if len(data) > 21 else -1
        pattern = self._patterns.get(vrid)
        if pattern is None or normalize(4, data)[: len(pattern)] != pattern:
            return False
        self._seen[vrid] = Seen(self.seen(vrid).dropped + 1, at)
        return True


class FakeSocket:
    """``VrrpSocket``: packets arrive (``arrive``) and wait until read; its descriptor is
    readable while they wait, so the mux wakes for them as for a real socket."""

    interface = "eth0"
    family = 4

    def __init__(self, kernel_filter: KernelFilter | None) -> None:
        self._filter = kernel_filter
        self._readable, self._wake = socket.socketpair()
        self._readable.setblocking(False)
        self.waiting: list[Datagram] = []
        self.sent: list[bytes] = []

    def arrive(self, data: bytes, at: float) -> None:
        if self._filter is not None and self._filter.drops(data, at):
            return
        self.waiting.append(Datagram(data, None, None, None, at))
        self._wake.send(b"x")

    def fileno(self) -> int:
        return self._readable.fileno()

    def receive(self, limit: int = 256) -> list[Datagram]:
        try:
            while self._readable.recv(4096):
                pass
        except BlockingIOError:
            pass
        batch, self.waiting = self.waiting[:limit], self.waiting[limit:]
        if self.waiting:
            self._wake.send(b"x")
        return batch

    def send(self, payload: bytes, source: object, destination: object) -> None:
        self.sent.append(payload)

    def close(self) -> None:
        self._readable.close()
        self._wake.close()


class FakeNetlink:
    def begin_add(self, a: LiveAddress) -> None:
        return None

    async def add_address(self, a: LiveAddress) -> WriteOutcome:
        return WriteOutcome.CREATED

    async def delete_address(self, a: LiveAddress) -> WriteOutcome:
        return WriteOutcome.DELETED


class FakeAnnouncer:
    def announce(self, vips: object) -> None:
        pass


class FakeOwnership:
    def __init__(self) -> None:
        self.owned: frozenset[tuple[str, tuple[str, ...]]] = frozenset()

    def claim(self, idents: Any) -> None:
        self.owned |= set(idents)

    def update(self, add: Any = (), remove: Any = ()) -> None:
        self.owned = (self.owned | set(add)) - set(remove)


# --- packets ---------------------------------------------------------------------------


def _packet(source: IPv4Address, priority: int, *, ttl: int = 255, vrid: int = VRID) -> bytes:
    advert = Advert(VrrpVersion.V3, vrid, priority, round(INTERVAL_S * 100), (VIP.ip,))
    payload = encode_advert(advert, source, GROUP)
    fields = (0x45, 0xC0, 20 + len(payload), 0, 0x4000, ttl, 112, 0, source.packed, GROUP.packed)
    header = struct.pack("!BBHHHBBH4s4s", *fields)
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + payload


MASTER_ADVERT = _packet(MASTER, 150)
MASTER_GOODBYE = _packet(MASTER, 0)
MASTER_LOWER = _packet(MASTER, 90)  # its tracker failed: we preempt it
FORGED_GOODBYE = _packet(FORGER, 0)
HIGHER_ADVERT = _packet(HIGHER, 200)
REFUSED = _packet(FORGER, 200, ttl=64)  # RFC 5798 §7.1: TTL must be 255
MALFORMED = MASTER_ADVERT[:-1] + bytes([MASTER_ADVERT[-1] ^ 1])  # checksum
OTHER_CLUSTER = _packet(IPv4Address("192.0.2.50"), 100, vrid=52)


@dataclass(frozen=True)
class Scenario:
    first_s: float  # the master's first advert
    crash_s: float | None  # it stops advertising (no goodbye)
    goodbye_s: float | None  # it stops with a priority-0 advert
    back_after_s: float | None  # and comes back this much later
    # (kind, time, the master's answer delay): packets, and when /status is read
    extras: tuple[tuple[str, float, float], ...]

    def packets(self) -> list[tuple[float, bytes]]:
        """Every packet on the link, by arrival time (s since start)."""
        out: list[tuple[float, bytes]] = []
        stop = min((s for s in (self.crash_s, self.goodbye_s) if s is not None), default=RUN_S)
        if stop == self.goodbye_s:
            out.append((stop, MASTER_GOODBYE))
        up = [(self.first_s, stop)]
        if self.back_after_s is not None:
            up.append((stop + self.back_after_s, RUN_S))
        forged = [(t, delay) for kind, t, delay in self.extras if kind.startswith("forged")]
        for start, end in up:
            # The master sends when its Adver_Timer fires, and at once when it hears a
            # priority-0 advert (§6.4.3); either restarts the Adver_Timer.
            answers = sorted(t + delay for t, delay in forged if start <= t < end)
            regular = start
            while True:
                sent = min(regular, answers[0]) if answers else regular
                if sent >= end:
                    break
                if answers and answers[0] == sent:
                    answers.pop(0)
                out.append((sent, MASTER_ADVERT))
                regular = sent + INTERVAL_S
        for kind, t, _ in self.extras:
            if kind in ("noise", "forged_busy"):
                # another cluster's adverts every 5 ms for half a second: read in batches
                first = t - 0.2 if kind == "forged_busy" else t
                out += [(first + 0.005 * i, OTHER_CLUSTER) for i in range(100)]
            if kind in _EXTRA:
                out.append((t, _EXTRA[kind]))
        # No two packets arrive at the same instant (kernel stamps are nanoseconds): the
        # order here is the order on the wire.
        wire: list[tuple[float, bytes]] = []
        for at, data in sorted(out, key=lambda p: p[0]):
            wire.append((max(at, wire[-1][0] + 1e-6) if wire else at, data))
        return wire


_EXTRA = {
    "forged": FORGED_GOODBYE,
    "forged_busy": FORGED_GOODBYE,
    "higher": HIGHER_ADVERT,
    "lower": MASTER_LOWER,
    "refused": REFUSED,
    "malformed": MALFORMED,
}

scenarios = st.builds(
    Scenario,
    st.floats(0.0, 1.0),
    st.one_of(st.none(), st.floats(5.0, END_S)),
    st.one_of(st.none(), st.floats(5.0, END_S)),
    st.one_of(st.none(), st.floats(0.0, 8.0)),
    st.lists(
        st.tuples(
            st.sampled_from(
                ["forged"] * 3
                + ["forged_busy"] * 3
                + ["higher", "lower", "refused", "malformed", "noise", "status", "status"]
            ),
            st.floats(0.5, END_S - 2),
            # the master's answer: at once (a microsecond), a kernel's or a loaded host's
            # reaction time, or later than Skew_Time
            st.sampled_from([1e-6, 0.0002, 0.002, 0.03, 0.2, 0.7]),
        ),
        max_size=20,
    ).map(tuple),
)


# --- the runs --------------------------------------------------------------------------


def _backup_spec() -> Any:
    hosts = tuple(
        SimpleNamespace(name=f"h{i}", ipv4=f"192.0.2.1{i}", ipv6=f"2001:db8::1{i}") for i in (1, 2)
    )
    inst = Instance("web", VRID, (VIP,), {"h1": 150, "h2": 100}, advert_interval_s=INTERVAL_S)
    text = cluster_yaml(hosts, (inst,))  # type: ignore[arg-type]  # names and addresses
    return load_text(text, "c.yaml").cluster.for_node("h2").instances[0]


SPEC = _backup_spec()

Transition = tuple[State, State, TransitionReason, float]


@dataclass(frozen=True)
class Outcome:
    transitions: tuple[Transition, ...]
    adverts_received: int
    read: int
    late_repeats: int


async def _run(scenario: Scenario, with_filter: bool) -> Outcome:
    loop = asyncio.get_running_loop()
    kernel = KernelFilter() if with_filter else None
    sock = FakeSocket(kernel)
    mux = SocketMux(sock, loop, kernel)  # type: ignore[arg-type]
    transitions: list[Transition] = []
    t0 = loop.time()

    def record(driver: InstanceDriver, t: act.Transitioned) -> None:
        at = driver.machine.last_transition_s
        assert at is not None
        transitions.append((t.from_state, t.to_state, t.reason, round(at - t0, 9)))

    driver = InstanceDriver(
        SPEC,
        instance_params(SPEC, ME),
        mux,
        FakeNetlink(),  # type: ignore[arg-type]
        FakeAnnouncer(),  # type: ignore[arg-type]
        FakeOwnership(),  # type: ignore[arg-type]
        loop,
        on_transition=record,
    )
    mux.attach(driver)
    for at, data in scenario.packets():
        loop.call_at(t0 + at, sock.arrive, data, t0 + at)
    for kind, at, _ in scenario.extras:
        if kind == "status":  # /status or /metrics: repeats are folded in then too
            loop.call_at(t0 + at, driver.status)
    driver.start()
    await asyncio.sleep(RUN_S)
    # The kernel counts a repeat it drops when it arrives; without the filter the same
    # advert counts once the mux reads it. One that arrives as the run ends (the master's
    # phase can put it at RUN_S to the last float bit) would still wait unread in one
    # backup and be counted in the other: both read what arrived before they are compared.
    mux.drain()
    status = driver.status()
    outcome = Outcome(
        tuple(transitions), status.adverts_received, mux.counters.read, driver.late_repeats
    )
    await driver.stop(timeout_s=1)
    mux.close()
    return outcome


def simulate(scenario: Scenario, with_filter: bool) -> Outcome:
    loop = VirtualTimeLoop()
    # The Master_Down_Timer wakes exactly at its deadline here: the early wake-up and the
    # busy wait for the last milliseconds are for a real clock's slack.
    with (
        mock.patch.object(vrrp_timers, "PRECISE_WAKE_S", 0.0),
        mock.patch.object(vrrp_timers, "EPOLL_SLACK", 0.0),
    ):
        try:
            return loop.run_until_complete(_run(scenario, with_filter))
        finally:
            loop.close()


@settings(max_examples=150, deadline=None)
@given(scenarios)
# The master back at 7 - 7e-15 s: its last advert arrives at the instant the run ends.
@example(Scenario(0.0, None, 5.0, 1.999999999999993, ()))
def test_the_repeat_filter_changes_no_transition(scenario: Scenario) -> None:
    without = simulate(scenario, with_filter=False)
    with_ = simulate(scenario, with_filter=True)
    assert with_.transitions == without.transitions
    assert with_.adverts_received == without.adverts_received
    assert with_.read <= without.read
    note_event(f"takeovers: {min(sum(t[1] is State.MASTER for t in without.transitions), 3)}+")
    note_event(f"late repeats handed again: {min(with_.late_repeats, 2)}+")


def test_a_forged_goodbye_answered_at_once_moves_nothing() -> None:
    """The case of the lab test (tests/integration/test_repeat_filter.py), read in a
    batch: the master's answer arrives with the forged priority-0 advert, before the
    backup has read it, and the kernel drops it as a repeat."""
    forged = tuple(("forged_busy", 2.5 + 0.8 * i, 1e-6) for i in range(40))
    scenario = Scenario(0.0, None, None, None, forged)
    without = simulate(scenario, with_filter=False)
    with_ = simulate(scenario, with_filter=True)
    assert without.transitions == with_.transitions
    assert [t[:2] for t in with_.transitions] == [(State.INITIALIZE, State.BACKUP)]
    assert with_.late_repeats > 0
    assert with_.read < without.read
