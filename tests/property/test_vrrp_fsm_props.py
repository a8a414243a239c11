"""Property tests for the VRRP state machine: invariants over random event sequences."""

from __future__ import annotations

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
    Shutdown,
    Startup,
    TimerExpired,
)
from reconciler.vrrp.fsm import VrrpInstance
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
    st.sampled_from([VIPS, VIPS, VIPS, (IPv4Address("192.0.2.101"),)]),
)
events = st.one_of(
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
    fsm = VrrpInstance(params)
    now = 0.0
    steps = [(Startup(), 0.0, False), *steps]
    holding_vips = False
    running: dict[TimerKind, float] = {}
    for drawn, step, fire_running in steps:
        event = drawn
        now += step
        if fire_running and running:  # usually feed back a timer that is really running
            kind = min(running, key=lambda k: running[k])
            now = max(now, running[kind])
            event = TimerExpired(kind)
        before = fsm.state
        refused = isinstance(event, AdvertReceived) and (
            validate_advert(params, event.received) is not None
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
                holding_vips = True
            elif isinstance(action, RemoveVips):
                holding_vips = False
            elif isinstance(action, StartTimer):
                assert action.delay_s > 0
                running[action.kind] = now + action.delay_s
            elif isinstance(action, CancelTimer):
                assert running.pop(action.kind, None) is not None
            elif isinstance(action, SendAdvert):
                assert action.priority in (0, fsm.priority)
                assert action.advert.advert_interval_cs == params.advert_interval_cs
        # only the master holds the VIPs; exactly its state's timer runs
        assert holding_vips == (fsm.state is State.MASTER)
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
