"""Property tests for the VRRP state machine: invariants over random event sequences."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from hypothesis import event as note_event
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.vrrp.actions import (
    AddVips,
    CancelTimer,
    RemoveVips,
    SendAdvert,
    StartTimer,
    Transitioned,
)
from reconciler.vrrp.events import (
    AdvertReceived,
    Event,
    FaultCleared,
    FaultSet,
    LinkDown,
    LinkUp,
    PriorityChanged,
    Reconfigure,
    Shutdown,
    Startup,
    TimerExpired,
)
from reconciler.vrrp.fsm import VirtualRouter
from reconciler.vrrp.packet import (
    VRRP_MULTICAST_IPV4,
    Advert,
    ChecksumVerdict,
    ReceivedAdvert,
    VrrpVersion,
)
from reconciler.vrrp.params import InstanceParams
from reconciler.vrrp.receive import validate_advert
from reconciler.vrrp.states import State, TimerKind

ME = IPv4Address("192.0.2.11")
VIPS = (IPv4Address("192.0.2.100"),)
VIP_B, VIP_C = IPv4Address("192.0.2.101"), IPv4Address("192.0.2.102")
PEERS = [IPv4Address("192.0.2.10"), IPv4Address("192.0.2.12"), ME]

adverts = st.builds(
    lambda priority, source, vrid, ttl, interval, vips: AdvertReceived(
        ReceivedAdvert(
            Advert(VrrpVersion.V3, vrid, priority, interval, vips),
            source,
            VRRP_MULTICAST_IPV4,
            ttl,
            ChecksumVerdict.VALID,
        )
    ),
    st.sampled_from([0, 1, 50, 99, 100, 101, 150, 255]),
    st.sampled_from(PEERS),
    st.sampled_from([51, 51, 51, 52]),
    st.sampled_from([255, 255, 255, 64]),
    st.sampled_from([10, 100, 200]),
    st.sampled_from([VIPS, VIPS, VIPS, (VIP_B,), (*VIPS, VIP_B), (VIP_C,)]),
)


def _reconfigure(priority: int, interval: int, vips: tuple[IPv4Address, ...]) -> Reconfigure:
    """The params are completed from the running ones in ``test_invariants``."""
    return Reconfigure(
        InstanceParams("p", 51, priority, interval, vips, ME),
        priority,  # type: ignore[arg-type]
    )


reconfigures = st.builds(
    _reconfigure,
    st.sampled_from([1, 100, 150, 254, 255]),
    st.sampled_from([10, 100, 200]),
    st.sampled_from([VIPS, (VIP_B,), (*VIPS, VIP_B), (VIP_C, VIP_B)]),
)
events = st.one_of(
    reconfigures,
    adverts,
    adverts,
    st.builds(TimerExpired, st.sampled_from(TimerKind)),
    st.sampled_from([LinkDown(), LinkUp(), FaultSet("a"), FaultCleared("a")]),
    st.builds(PriorityChanged, st.integers(1, 255)),
    st.sampled_from([Shutdown(), Startup(), Startup()]),
)
instances = st.builds(
    lambda priority, preempt, delay, answer, learn: InstanceParams(
        name="p",
        vrid=51,
        priority=priority,
        advert_interval_cs=100,
        vips=VIPS,
        primary_address=ME,
        preempt=preempt,
        preempt_delay_s=delay,
        answer_lower_priority=answer,
        learn_master_adver_interval=learn,
    ),
    st.sampled_from([1, 100, 150, 254, 255]),
    st.booleans(),
    st.sampled_from([0.0, 0.0, 2.5]),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=300)
@given(
    instances,
    st.lists(st.tuples(events, st.floats(0, 5), st.booleans()), max_size=60),
)
def test_invariants(params: InstanceParams, steps: list[tuple[Event, float, bool]]) -> None:
    fsm = VirtualRouter(params)
    now = 0.0
    steps = [(Startup(), 0.0, False), *steps]
    held: set[IPv4Address] = set()
    running: dict[TimerKind, float] = {}
    for drawn, step, fire_running in steps:
        event = drawn
        now += step
        if isinstance(event, Reconfigure):  # keep the drawn instance's other settings
            new = event.params
            event = Reconfigure(
                replace(
                    fsm.params,
                    priority=new.priority,
                    advert_interval_cs=new.advert_interval_cs,
                    vips=new.vips,
                ),
                event.priority,
            )
        staying = (
            set(fsm.params.vips) & set(event.params.vips)
            if isinstance(event, Reconfigure)
            else set()
        )
        if fire_running and running:  # usually feed back a timer that is really running
            kind = min(running, key=lambda k: running[k])
            now = max(now, running[kind])
            event = TimerExpired(kind)
        before = fsm.state
        refused = isinstance(event, AdvertReceived) and (
            validate_advert(fsm.params, event.received) is not None
        )
        if isinstance(event, TimerExpired):
            running.pop(event.kind, None)
        actions = fsm.handle(event, now)
        if refused:
            assert actions == []
            assert fsm.state is before
        transitions = [a for a in actions if isinstance(a, Transitioned)]
        assert len(transitions) <= 1
        if transitions:
            assert transitions[0].from_state is before
            assert transitions[0].to_state is fsm.state
            assert before is not fsm.state
        else:
            assert fsm.state is before
        for action in actions:
            if isinstance(action, AddVips):
                held |= set(action.addresses)
            elif isinstance(action, RemoveVips):
                # a VIP named before and after a reconfiguration is never released by it
                assert not staying & set(action.addresses)
                held -= set(action.addresses)
            elif isinstance(action, StartTimer):
                assert action.delay_s > 0
                running[action.kind] = now + action.delay_s
            elif isinstance(action, CancelTimer):
                assert running.pop(action.kind, None) is not None
            elif isinstance(action, SendAdvert):
                assert action.priority in (0, fsm.priority)
                assert action.advert.advert_interval_cs == fsm.params.advert_interval_cs
                assert action.advert.addresses == fsm.params.vips
        # only the master holds the VIPs (those it is configured with now); exactly its
        # state's timer runs
        assert held == (set(fsm.params.vips) if fsm.state is State.MASTER else set())
        expected = {
            State.MASTER: {TimerKind.ADVER},
            State.BACKUP: {TimerKind.MASTER_DOWN},
        }.get(fsm.state, set())
        assert set(running) == expected
        for kind, deadline in running.items():
            assert fsm.timer_deadline(kind) == deadline
        if fsm.state is State.FAULT:
            assert fsm.faulted
    note_event(f"ended in {fsm.state.name}")


# A small pool of advert *objects*: the driver hands the very same object again for a
# byte-identical advert, which is what ``follow_repeat`` keys on.
_ADVERT_POOL = [
    AdvertReceived(
        ReceivedAdvert(
            Advert(VrrpVersion.V3, 51, priority, interval, VIPS),
            source,
            VRRP_MULTICAST_IPV4,
            255,
            ChecksumVerdict.VALID,
        )
    )
    for priority in (0, 100, 150, 254)
    for source in PEERS[:2]
    for interval in (100, 200)
]
pooled_events = st.one_of(
    st.sampled_from(_ADVERT_POOL),
    st.sampled_from(_ADVERT_POOL),
    st.sampled_from(_ADVERT_POOL),
    events,
)


@settings(max_examples=300)
@given(
    instances,
    st.lists(
        st.tuples(
            pooled_events,
            st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 5)),
            st.integers(1, 4),  # the same event this many times in a row
        ),
        max_size=40,
    ),
)
def test_follow_repeat_is_handle(
    params: InstanceParams, steps: list[tuple[Event, float, int]]
) -> None:
    """The fast path does exactly what the full ``handle`` does for the same events."""
    full, fast = VirtualRouter(params), VirtualRouter(params)
    now = 0.0
    used = 0
    sequence = [(Startup(), 0.0)] + [(e, step) for e, step, n in steps for _ in range(n)]
    for event, step in sequence:
        now += step
        expected = full.handle(event, now)
        deadline = fast.follow_repeat(event, now) if isinstance(event, AdvertReceived) else None
        if deadline is None:
            assert fast.handle(event, now) == expected
        else:
            used += 1
            assert len(expected) == 1
            assert isinstance(expected[0], StartTimer)
            assert expected[0].kind is TimerKind.MASTER_DOWN
            assert now + expected[0].delay_s == deadline
        for attr in ("state", "priority", "master_address", "master_adver_interval_cs"):
            assert getattr(fast, attr) == getattr(full, attr), attr
        assert fast.counters == full.counters
        assert fast.faulted == full.faulted
        for kind in TimerKind:
            assert fast.timer_deadline(kind) == full.timer_deadline(kind)
    note_event(f"fast path used: {min(used, 3)}+")


@settings(max_examples=300)
@given(
    instances,
    st.lists(
        st.tuples(
            pooled_events,
            st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 5)),
            st.integers(1, 4),
        ),
        max_size=40,
    ),
)
def test_follow_repeats_is_handle_for_each(
    params: InstanceParams, steps: list[tuple[Event, float, int]]
) -> None:
    """Repeats the kernel dropped, folded in at once before the next other event (as the
    driver does), leave the machine as handling each of them would have."""
    full, batched = VirtualRouter(params), VirtualRouter(params)
    now = 0.0
    offloaded: AdvertReceived | None = None
    pending, last = 0, 0.0
    folded = 0
    sequence = [(Startup(), 0.0)] + [(e, step) for e, step, n in steps for _ in range(n)]
    for event, step in sequence:
        now += step
        full.handle(event, now)
        if event is offloaded:  # dropped in the kernel: only counted there
            pending, last = pending + 1, now
            continue
        if offloaded is not None:
            if pending:
                folded += 1
                assert batched.follow_repeats(offloaded, pending, last) is not None
            offloaded, pending = None, 0
        if batched.follow_repeat(event, now) is None:  # type: ignore[arg-type]
            batched.handle(event, now)
        elif isinstance(event, AdvertReceived):
            offloaded = event  # the second copy was followed: the mux arms the filter
    if offloaded is not None and pending:
        assert batched.follow_repeats(offloaded, pending, last) is not None
    for attr in ("state", "priority", "master_address", "master_adver_interval_cs"):
        assert getattr(batched, attr) == getattr(full, attr), attr
    assert batched.counters == full.counters
    for kind in TimerKind:
        assert batched.timer_deadline(kind) == full.timer_deadline(kind)
    note_event(f"folded: {min(folded, 3)}+")


def test_follow_repeats_of_an_advert_no_longer_followed_counts_nothing() -> None:
    params = InstanceParams(
        name="t",
        vrid=51,
        priority=100,
        advert_interval_cs=100,
        vips=VIPS,
        primary_address=ME,
    )
    fsm = VirtualRouter(params)
    fsm.handle(Startup(), 0.0)
    advert, other = _ADVERT_POOL[4], _ADVERT_POOL[8]  # priority 100, then 150
    fsm.handle(advert, 1.0)
    down = fsm.timer_deadline(TimerKind.MASTER_DOWN)
    assert fsm.followed is advert and down is not None
    assert fsm.follow_repeats(advert, 3, 4.0) == down + 3.0
    assert fsm.counters.adverts_received == 4
    fsm.handle(other, 5.0)  # another advert: no longer the followed one
    assert fsm.followed is other
    assert fsm.follow_repeats(advert, 3, 6.0) is None
    assert fsm.counters.adverts_received == 5
