"""Playbooks for the VRRP state machine: events in, exact actions out. No sockets, no sleeps."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from helpers import ME, PEER, VIPS, started_backup, started_master
from helpers import received_advert as advert
from helpers import vrrp_params as params

from reconciler.model.vrrp import UnicastChecksum
from reconciler.vrrp.actions import (
    AddVips,
    CancelTimer,
    RemoveVips,
    SendAdvert,
    SendGratuitous,
    StartTimer,
    Transitioned,
)
from reconciler.vrrp.events import (
    AdvertReceived,
    FaultCleared,
    FaultSet,
    LinkDown,
    LinkUp,
    PriorityChanged,
    Reconfigure,
    Shutdown,
    Startup,
    SyncGroupBackup,
    SyncGroupMaster,
    TimerExpired,
)
from reconciler.vrrp.fsm import VirtualRouter
from reconciler.vrrp.packet import (
    VRRP_MULTICAST_IPV6,
    AuthType,
    ChecksumVerdict,
    VrrpVersion,
)
from reconciler.vrrp.params import InstanceParams
from reconciler.vrrp.receive import AdvertRefusal
from reconciler.vrrp.states import State, TimerKind, TransitionReason
from reconciler.vrrp.timers import master_down_interval

LOW_PEER = IPv4Address("192.0.2.10")  # lower address than ME
MD, ADV = TimerKind.MASTER_DOWN, TimerKind.ADVER

# RFC 5798 §6.1 at a 1 s interval (exact binary fractions, so float equality is exact)
MDI_100 = 3.609375
MDI_150 = 3.4140625
SKEW_100 = 0.609375


def sent(p: InstanceParams, priority: int, *, old: bool = False) -> SendAdvert:
    return SendAdvert(p.advert(priority), old_unicast_checksum=old)


def become_master(p: InstanceParams, reason: TransitionReason, from_state: State) -> list[Any]:
    return [
        Transitioned(from_state, State.MASTER, reason),
        sent(p, p.priority),
        AddVips(p.vips),
        SendGratuitous(p.vips),
        StartTimer(ADV, p.advert_interval_cs / 100),
    ]


# --- startup, master down ------------------------------------------------------------


def test_startup_enters_backup_and_arms_master_down_interval() -> None:
    p = params()
    fsm = VirtualRouter(p)
    assert fsm.handle(Startup(), 0.0) == [
        RemoveVips(VIPS),
        Transitioned(State.INITIALIZE, State.BACKUP, TransitionReason.STARTUP),
        StartTimer(MD, MDI_100),
    ]
    assert fsm.timer_deadline(MD) == MDI_100


def test_backup_becomes_master_when_master_down_timer_fires() -> None:
    p = params()
    fsm = started_backup(p)
    assert fsm.handle(TimerExpired(MD), MDI_100) == become_master(
        p, TransitionReason.MASTER_NO_RESPONSE, State.BACKUP
    )
    assert fsm.master_adver_interval_cs == 100
    assert fsm.last_transition_s == MDI_100


def test_master_advertises_every_interval() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(TimerExpired(ADV), 11.0) == [sent(p, 100), StartTimer(ADV, 1.0)]
    assert fsm.handle(TimerExpired(ADV), 12.0) == [sent(p, 100), StartTimer(ADV, 1.0)]
    assert fsm.counters.adverts_sent == 3


def test_master_crash_seen_by_backup_after_master_down_interval() -> None:
    p = params()
    fsm = started_backup(p)
    for t in (1.0, 2.0, 3.0):  # a priority-150 master advertises
        assert fsm.handle(advert(150), t) == [StartTimer(MD, MDI_100)]
        assert fsm.master_address == PEER
    assert fsm.timer_deadline(MD) == 3.0 + MDI_100
    # ... then crashes: silence until the Master_Down_Timer fires
    assert fsm.handle(TimerExpired(MD), 3.0 + MDI_100) == become_master(
        p, TransitionReason.MASTER_NO_RESPONSE, State.BACKUP
    )


# --- graceful stop -------------------------------------------------------------------


def test_graceful_shutdown_of_master_sends_priority_zero_and_releases_vips() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(Shutdown(), 20.0) == [
        CancelTimer(ADV),
        sent(p, 0),
        RemoveVips(VIPS),
        Transitioned(State.MASTER, State.INITIALIZE, TransitionReason.SHUTDOWN),
    ]
    assert fsm.counters.priority_zero_sent == 1
    # not running any more: timers and adverts are ignored, startup works again
    assert fsm.handle(TimerExpired(ADV), 21.0) == []
    assert fsm.handle(advert(150), 21.0) == []
    assert fsm.handle(Startup(), 22.0)[1] == Transitioned(
        State.INITIALIZE, State.BACKUP, TransitionReason.STARTUP
    )


def test_backup_takes_over_skew_time_after_priority_zero() -> None:
    p = params()
    fsm = started_backup(p)
    fsm.handle(advert(150), 1.0)
    assert fsm.handle(advert(0), 1.5) == [StartTimer(MD, SKEW_100)]
    assert fsm.counters.priority_zero_received == 1
    assert fsm.handle(TimerExpired(MD), 1.5 + SKEW_100) == become_master(
        p, TransitionReason.MASTER_RELEASED, State.BACKUP
    )


def test_a_repeat_folded_in_before_a_priority_zero_advert_it_answers_is_followed_after_it() -> None:
    """The master's answer to a priority-0 advert (§6.4.3), dropped by the kernel as a
    repeat and folded in before the priority-0 advert that was still unread: handed again
    at its time, it restarts the Master_Down_Timer that the priority-0 advert cut to
    Skew_Time, and is not counted twice."""
    fsm = started_backup()
    followed = advert(150)
    fsm.handle(followed, 1.0)
    assert fsm.follow_repeats(followed, 2, 1.5005) == 1.5005 + MDI_100
    assert fsm.handle(advert(0, IPv4Address("192.0.2.99")), 1.5) == [StartTimer(MD, SKEW_100)]
    assert fsm.refollow(followed, 1.5005) == [StartTimer(MD, MDI_100)]
    assert fsm.timer_deadline(MD) == 1.5005 + MDI_100
    assert fsm.followed is followed and fsm.master_address == PEER
    assert fsm.counters.adverts_received == 4  # the first, two repeats, priority 0
    assert fsm.counters.priority_zero_received == 1


def test_shutdown_of_backup_cancels_master_down_timer() -> None:
    fsm = started_backup()
    assert fsm.handle(Shutdown(), 1.0) == [
        CancelTimer(MD),
        Transitioned(State.BACKUP, State.INITIALIZE, TransitionReason.SHUTDOWN),
    ]


def test_master_answers_priority_zero_at_once() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(advert(0), 10.3) == [sent(p, 100), StartTimer(ADV, 1.0)]
    assert fsm.state is State.MASTER


# --- preemption ----------------------------------------------------------------------


def test_master_yields_to_higher_priority_and_learns_its_interval() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(advert(150, interval_cs=200), 10.5) == [
        CancelTimer(ADV),
        RemoveVips(VIPS),
        Transitioned(State.MASTER, State.BACKUP, TransitionReason.HIGHER_PRIORITY),
        StartTimer(MD, 6 + 2 * SKEW_100),  # MDI with the learned 2 s interval
    ]
    assert fsm.master_adver_interval_cs == 200
    assert fsm.master_address == PEER


def test_preempt_return_of_higher_priority_node() -> None:
    """The 150 node restarts while a 100 node is master: it discards the lower adverts
    and takes over after its own Master_Down_Interval."""
    p = params(priority=150)
    fsm = VirtualRouter(p)
    assert fsm.handle(Startup(), 0.0)[-1] == StartTimer(MD, MDI_150)
    for t in (0.5, 1.5, 2.5):
        assert fsm.handle(advert(100), t) == []  # discarded: the timer keeps running
    assert fsm.master_address == PEER
    assert fsm.handle(TimerExpired(MD), MDI_150) == become_master(
        p, TransitionReason.PREEMPTED, State.BACKUP
    )


def test_nopreempt_backup_follows_a_lower_priority_master() -> None:
    p = params(priority=150, preempt=False)
    fsm = started_backup(p)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert fsm.handle(advert(100), t) == [StartTimer(MD, MDI_150)]
    assert fsm.state is State.BACKUP
    assert fsm.timer_deadline(MD) == 5.0 + MDI_150


def test_preempt_delay_waits_before_preempting() -> None:
    p = params(priority=150, preempt_delay_s=5.0)
    fsm = started_backup(p)
    # the first lower-priority advert starts the delay; until it ends we follow that master
    assert fsm.handle(advert(100), 1.0) == [StartTimer(MD, MDI_150)]
    for t in (2.0, 3.0, 4.0, 5.0, 5.9):
        assert fsm.handle(advert(100), t) == [StartTimer(MD, MDI_150)]
    # delay over (1.0 + 5.0): discard, and the Master_Down_Timer runs out
    assert fsm.handle(advert(100), 6.0) == []
    assert fsm.handle(advert(100), 7.0) == []
    assert fsm.handle(TimerExpired(MD), 5.9 + MDI_150) == become_master(
        p, TransitionReason.PREEMPTED, State.BACKUP
    )


def test_preempt_delay_restarts_after_a_higher_priority_master() -> None:
    p = params(priority=150, preempt_delay_s=5.0)
    fsm = started_backup(p)
    fsm.handle(advert(100), 1.0)  # delay runs until 6.0
    fsm.handle(advert(200), 2.0)  # a higher master: delay forgotten
    assert fsm.handle(advert(100), 8.0) == [StartTimer(MD, MDI_150)]  # starts again: 13.0
    assert fsm.handle(advert(100), 12.9) == [StartTimer(MD, MDI_150)]
    assert fsm.handle(advert(100), 13.0) == []


def test_backup_accepts_equal_priority_without_tie_break() -> None:
    # §6.4.2 accepts priority >= ours; the address tie-break is the master's (§6.4.3)
    fsm = started_backup()
    assert fsm.handle(advert(100, LOW_PEER), 1.0) == [StartTimer(MD, MDI_100)]


# --- equal priority, owner, lower priority -------------------------------------------


def test_equal_priority_higher_address_wins() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(advert(100, PEER), 10.5) == [
        CancelTimer(ADV),
        RemoveVips(VIPS),
        Transitioned(State.MASTER, State.BACKUP, TransitionReason.HIGHER_ADDRESS),
        StartTimer(MD, MDI_100),
    ]


def test_equal_priority_lower_address_is_answered() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(advert(100, LOW_PEER), 10.5) == [sent(p, 100), StartTimer(ADV, 1.0)]
    assert fsm.state is State.MASTER


def test_equal_priority_ipv6_compares_link_local_addresses() -> None:
    me6 = IPv6Address("fe80::11")
    vips6 = (IPv6Address("2001:db8::100"),)
    p = params(primary_address=me6, vips=vips6)
    fsm = started_master(p)
    lower = advert(100, IPv6Address("fe80::10"), vips=vips6, destination=VRRP_MULTICAST_IPV6)
    assert fsm.handle(lower, 10.5) == [sent(p, 100), StartTimer(ADV, 1.0)]
    higher = advert(100, IPv6Address("fe80::12"), vips=vips6, destination=VRRP_MULTICAST_IPV6)
    assert fsm.handle(higher, 10.6)[2] == Transitioned(
        State.MASTER, State.BACKUP, TransitionReason.HIGHER_ADDRESS
    )


def test_address_owner_becomes_master_at_once() -> None:
    p = params(priority=255)
    fsm = VirtualRouter(p)
    assert fsm.handle(Startup(), 0.0) == become_master(
        p, TransitionReason.ADDRESS_OWNER, State.INITIALIZE
    )


def test_master_answers_lower_priority_advert() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(advert(50), 10.4) == [sent(p, 100), StartTimer(ADV, 1.0)]
    assert fsm.timer_deadline(ADV) == 11.4


def test_master_discards_lower_priority_advert_when_told_to() -> None:
    fsm = started_master(params(answer_lower_priority=False))
    assert fsm.handle(advert(50), 10.4) == []
    assert fsm.timer_deadline(ADV) == 11.0


# --- Master_Adver_Interval learning (v3) ---------------------------------------------


def test_backup_learns_master_adver_interval_and_reverts_as_master() -> None:
    p = params()
    fsm = started_backup(p)
    mdi_2s = 6 + 2 * SKEW_100  # 7.21875 s: keepalived measured 7219.1 ms
    assert fsm.handle(advert(150, interval_cs=200), 1.0) == [StartTimer(MD, mdi_2s)]
    assert fsm.master_adver_interval_cs == 200
    assert fsm.handle(advert(0, interval_cs=200), 2.0) == [StartTimer(MD, 2 * SKEW_100)]
    actions = fsm.handle(TimerExpired(MD), 2.0 + 2 * SKEW_100)
    assert actions == become_master(p, TransitionReason.MASTER_RELEASED, State.BACKUP)
    assert fsm.master_adver_interval_cs == 100  # advertises its configured interval


def test_interval_learning_can_be_disabled() -> None:
    fsm = started_backup(params(learn_master_adver_interval=False))
    assert fsm.handle(advert(150, interval_cs=200), 1.0) == [StartTimer(MD, MDI_100)]


def test_sub_second_interval_timers() -> None:
    p = params(advert_interval_cs=10)
    fsm = VirtualRouter(p)
    assert fsm.handle(Startup(), 0.0)[-1] == StartTimer(MD, 0.3609375)
    assert fsm.handle(advert(150, interval_cs=10), 0.1) == [StartTimer(MD, 0.3609375)]
    assert fsm.handle(advert(0, interval_cs=10), 0.2) == [StartTimer(MD, 0.0609375)]
    assert fsm.handle(TimerExpired(MD), 0.3)[-1] == StartTimer(ADV, 0.1)


# --- FAULT ---------------------------------------------------------------------------


def test_link_down_on_master_enters_fault_and_link_up_waits_master_down() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(LinkDown(), 20.0) == [
        CancelTimer(ADV),
        sent(p, 0),
        RemoveVips(VIPS),
        Transitioned(State.MASTER, State.FAULT, TransitionReason.LINK_DOWN),
    ]
    assert fsm.handle(advert(150), 20.5) == []  # not listening in FAULT
    assert fsm.handle(TimerExpired(ADV), 21.0) == []
    assert fsm.handle(LinkUp(), 25.0) == [
        Transitioned(State.FAULT, State.BACKUP, TransitionReason.FAULT_CLEARED),
        StartTimer(MD, MDI_100),
    ]


def test_link_down_on_backup() -> None:
    fsm = started_backup()
    assert fsm.handle(LinkDown(), 1.0) == [
        CancelTimer(MD),
        Transitioned(State.BACKUP, State.FAULT, TransitionReason.LINK_DOWN),
    ]


def test_fault_is_left_only_when_every_cause_clears() -> None:
    fsm = started_backup()
    assert fsm.handle(FaultSet("nginx"), 1.0)[-1] == Transitioned(
        State.BACKUP, State.FAULT, TransitionReason.TRACKER_FAULT
    )
    assert fsm.handle(LinkDown(), 2.0) == []
    assert fsm.handle(FaultSet("dns"), 2.5) == []
    assert fsm.handle(FaultCleared("nginx"), 3.0) == []
    assert fsm.handle(LinkUp(), 4.0) == []
    assert fsm.faults == {"dns"}
    assert fsm.handle(FaultCleared("dns"), 5.0) == [
        Transitioned(State.FAULT, State.BACKUP, TransitionReason.FAULT_CLEARED),
        StartTimer(MD, MDI_100),
    ]


def test_startup_while_link_down_enters_fault() -> None:
    fsm = VirtualRouter(params())
    assert fsm.handle(LinkDown(), 0.0) == []
    assert fsm.handle(Startup(), 0.1) == [
        RemoveVips(VIPS),
        Transitioned(State.INITIALIZE, State.FAULT, TransitionReason.LINK_DOWN),
    ]
    assert fsm.handle(Shutdown(), 0.2) == [
        Transitioned(State.FAULT, State.INITIALIZE, TransitionReason.SHUTDOWN)
    ]


def test_owner_leaving_fault_goes_straight_to_master() -> None:
    p = params(priority=255)
    fsm = VirtualRouter(p)
    fsm.handle(Startup(), 0.0)
    fsm.handle(FaultSet("uplink"), 1.0)
    assert fsm.state is State.FAULT
    assert fsm.handle(FaultCleared("uplink"), 2.0) == become_master(
        p, TransitionReason.FAULT_CLEARED, State.FAULT
    )


def test_fault_resets_learned_interval() -> None:
    fsm = started_backup()
    fsm.handle(advert(150, interval_cs=300), 1.0)
    fsm.handle(LinkDown(), 2.0)
    assert fsm.handle(LinkUp(), 3.0)[-1] == StartTimer(MD, MDI_100)


# --- priority changes ----------------------------------------------------------------


def test_priority_change_is_advertised_at_once_by_master() -> None:
    p = params(priority=150)
    fsm = started_master(p)
    assert fsm.handle(PriorityChanged(90), 10.2) == [
        SendAdvert(p.advert(90)),
        StartTimer(ADV, 1.0),
    ]
    assert fsm.handle(PriorityChanged(90), 10.3) == []  # no change, nothing to say
    # the backup at 100 now outranks us and we yield to its advert
    assert fsm.handle(advert(100), 10.5)[2] == Transitioned(
        State.MASTER, State.BACKUP, TransitionReason.HIGHER_PRIORITY
    )


def test_priority_change_in_backup_applies_to_the_next_advert() -> None:
    fsm = started_backup(params(priority=100))
    assert fsm.handle(PriorityChanged(150), 1.0) == []
    assert fsm.handle(advert(120), 1.1) == []  # now lower than us: discarded (preempt)
    assert fsm.handle(advert(200), 1.2) == [StartTimer(MD, MDI_150)]


def test_priority_change_rejects_zero() -> None:
    fsm = started_backup()
    with pytest.raises(ValueError):
        fsm.handle(PriorityChanged(0), 1.0)


# --- refusals, counters, stale timers ------------------------------------------------

REFUSED = [
    (advert(150, hop_limit=64), AdvertRefusal.BAD_TTL),
    (
        advert(150, version=VrrpVersion.V2, interval_cs=100, auth_data=b""),
        AdvertRefusal.VERSION_MISMATCH,
    ),
    (advert(150, vrid=52), AdvertRefusal.VRID_MISMATCH),
    (advert(150, vips=(IPv4Address("192.0.2.101"),)), AdvertRefusal.ADDRESS_MISMATCH),
    (advert(150, destination=PEER), AdvertRefusal.UNEXPECTED_DESTINATION),
    (advert(150, source=ME), AdvertRefusal.OWN_ADDRESS),
    (
        advert(
            150,
            IPv6Address("fe80::1"),
            vips=(IPv6Address("2001:db8::1"),),
            destination=VRRP_MULTICAST_IPV6,
        ),
        AdvertRefusal.FAMILY_MISMATCH,
    ),
]


@pytest.mark.parametrize(("event", "refusal"), REFUSED)
@pytest.mark.parametrize("start", ["backup", "master"])
def test_refused_advert_never_changes_state(
    event: AdvertReceived, refusal: AdvertRefusal, start: str
) -> None:
    fsm = started_backup() if start == "backup" else started_master()
    state, deadlines = fsm.state, (fsm.timer_deadline(MD), fsm.timer_deadline(ADV))
    for priority in (0, 150):
        received = replace(event.received, advert=replace(event.received.advert, priority=priority))
        if priority == 0 and refusal is AdvertRefusal.ADDRESS_MISMATCH:
            continue
        assert fsm.handle(AdvertReceived(received), 10.5) == []
    assert fsm.state is state
    assert (fsm.timer_deadline(MD), fsm.timer_deadline(ADV)) == deadlines
    assert fsm.counters.refused[refusal] >= 1


def test_owner_advert_may_carry_a_different_address_list() -> None:
    fsm = started_backup()
    other = (IPv4Address("192.0.2.101"), IPv4Address("192.0.2.102"))
    assert fsm.handle(advert(255, vips=other), 1.0) == [StartTimer(MD, MDI_100)]


def test_counters() -> None:
    fsm = started_master()
    fsm.handle(advert(50), 10.1)
    fsm.handle(advert(50, vrid=9), 10.2)
    fsm.handle(advert(150), 10.3)
    counters = fsm.counters
    assert counters.adverts_received == 3
    assert counters.adverts_sent == 2  # on becoming master, and the answer to 50
    assert counters.refused == {AdvertRefusal.VRID_MISMATCH: 1}
    assert counters.transitions == {
        (State.INITIALIZE, State.BACKUP, TransitionReason.STARTUP): 1,
        (State.BACKUP, State.MASTER, TransitionReason.MASTER_NO_RESPONSE): 1,
        (State.MASTER, State.BACKUP, TransitionReason.HIGHER_PRIORITY): 1,
    }


def test_stale_timer_is_ignored_and_counted() -> None:
    fsm = started_backup()
    assert fsm.handle(TimerExpired(ADV), 1.0) == []
    fsm.handle(Shutdown(), 2.0)
    assert fsm.handle(TimerExpired(MD), 4.0) == []
    assert fsm.counters.stale_timer_events == 2


def test_startup_when_running_is_ignored() -> None:
    fsm = started_backup()
    assert fsm.handle(Startup(), 1.0) == []


# --- VRRPv2 and unicast ----------------------------------------------------------------


def v2_params(**overrides: Any) -> InstanceParams:
    return params(
        version=VrrpVersion.V2, auth_type=AuthType.SIMPLE_TEXT, auth_data=b"secret", **overrides
    )


def v2_advert(priority: int, **overrides: Any) -> AdvertReceived:
    kwargs: dict[str, Any] = {
        "version": VrrpVersion.V2,
        "auth_type": AuthType.SIMPLE_TEXT,
        "auth_data": b"secret",
    }
    kwargs.update(overrides)
    return advert(priority, **kwargs)


def test_v2_instance_playbook() -> None:
    p = v2_params()
    fsm = started_backup(p)
    assert fsm.handle(v2_advert(150), 1.0) == [StartTimer(MD, MDI_100)]
    assert fsm.handle(v2_advert(0), 2.0) == [StartTimer(MD, SKEW_100)]
    actions = fsm.handle(TimerExpired(MD), 2.0 + SKEW_100)
    assert actions[1] == SendAdvert(p.advert(100))
    assert actions[1].advert.auth_data == b"secret\0\0"


def test_v2_skew_is_independent_of_the_interval() -> None:
    fsm = VirtualRouter(v2_params(advert_interval_cs=300))
    assert fsm.handle(Startup(), 0.0)[-1] == StartTimer(MD, 9 + SKEW_100)


@pytest.mark.parametrize(
    ("event", "refusal"),
    [
        (v2_advert(150, auth_data=b"wrong"), AdvertRefusal.AUTH_MISMATCH),
        (v2_advert(150, auth_type=AuthType.NONE, auth_data=b""), AdvertRefusal.AUTH_MISMATCH),
        (v2_advert(150, interval_cs=200), AdvertRefusal.INTERVAL_MISMATCH),
    ],
)
def test_v2_refusals(event: AdvertReceived, refusal: AdvertRefusal) -> None:
    fsm = started_backup(v2_params())
    assert fsm.handle(event, 1.0) == []
    assert fsm.counters.refused == {refusal: 1}


def unicast_params(mode: UnicastChecksum, **overrides: Any) -> InstanceParams:
    return params(unicast_peers=(PEER,), unicast_checksum=mode, **overrides)


@pytest.mark.parametrize(
    ("mode", "verdict", "refused"),
    [
        (UnicastChecksum.AUTO, ChecksumVerdict.VALID, False),
        (UnicastChecksum.AUTO, ChecksumVerdict.VALID_OLD_UNICAST, False),
        (UnicastChecksum.OLD, ChecksumVerdict.VALID, True),
        (UnicastChecksum.OLD, ChecksumVerdict.VALID_OLD_UNICAST, False),
        (UnicastChecksum.RFC, ChecksumVerdict.VALID, False),
        (UnicastChecksum.RFC, ChecksumVerdict.VALID_OLD_UNICAST, True),
    ],
)
def test_unicast_checksum_modes(
    mode: UnicastChecksum, verdict: ChecksumVerdict, refused: bool
) -> None:
    fsm = started_backup(unicast_params(mode))
    event = advert(150, destination=ME, checksum=verdict, hop_limit=64)
    assert fsm.handle(event, 1.0) == ([] if refused else [StartTimer(MD, MDI_100)])
    assert fsm.counters.refused == ({AdvertRefusal.CHECKSUM_MODE: 1} if refused else {})
    old_seen = not refused and verdict is ChecksumVerdict.VALID_OLD_UNICAST
    assert fsm.counters.old_unicast_checksum_received == int(old_seen)


def test_unicast_old_mode_sends_old_checksums() -> None:
    p = unicast_params(UnicastChecksum.OLD)
    fsm = started_master(p)
    assert fsm.handle(TimerExpired(ADV), 11.0)[0] == sent(p, 100, old=True)


def test_unicast_refuses_multicast_and_unknown_sources() -> None:
    fsm = started_backup(unicast_params(UnicastChecksum.AUTO, check_unicast_source=True))
    assert fsm.handle(advert(150), 1.0) == []  # to 224.0.0.18
    assert fsm.handle(advert(150, IPv4Address("192.0.2.99"), destination=ME), 1.1) == []
    assert fsm.counters.refused == {
        AdvertRefusal.UNEXPECTED_DESTINATION: 1,
        AdvertRefusal.UNKNOWN_UNICAST_SOURCE: 1,
    }


# --- parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": ""},
        {"vrid": 0},
        {"priority": 0},
        {"priority": 256},
        {"advert_interval_cs": 0},
        {"advert_interval_cs": 4096},
        {"vips": (IPv6Address("2001:db8::1"),)},
        {"vips": (VIPS[0], VIPS[0])},
        {"preempt_delay_s": -1.0},
        {"auth_type": AuthType.SIMPLE_TEXT},
        {"version": VrrpVersion.V2, "advert_interval_cs": 150},
        {"version": VrrpVersion.V2, "auth_data": b"123456789"},
        {"unicast_peers": (IPv6Address("2001:db8::2"),)},
    ],
)
def test_params_reject_invalid(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        params(**overrides)


def test_params_derived_properties() -> None:
    p = params(priority=255, unicast_peers=(PEER,))
    assert (p.family, p.is_owner, p.unicast) == (4, True, True)
    with pytest.raises(ValueError):
        params(
            version=VrrpVersion.V2,
            primary_address=IPv6Address("fe80::1"),
            vips=(IPv6Address("2001:db8::1"),),
        )


def test_sync_group_master_makes_a_backup_master_at_once() -> None:
    inst = started_backup()
    out = inst.handle(SyncGroupMaster(), 0.5)
    # The Master_Down_Timer is still running: leaving Backup cancels it.
    assert out == [
        CancelTimer(MD),
        *become_master(inst.params, TransitionReason.SYNC_GROUP, State.BACKUP),
    ]
    assert inst.state is State.MASTER


def test_sync_group_backup_makes_a_master_backup() -> None:
    inst = started_master()
    out = inst.handle(SyncGroupBackup(), 5.0)
    p = inst.params
    assert out == [
        CancelTimer(TimerKind.ADVER),
        RemoveVips(p.vips),
        Transitioned(State.MASTER, State.BACKUP, TransitionReason.SYNC_GROUP),
        StartTimer(TimerKind.MASTER_DOWN, float(master_down_interval(p.priority, 100))),
    ]


def test_sync_group_events_are_ignored_where_they_mean_nothing() -> None:
    assert started_master().handle(SyncGroupMaster(), 1.0) == []
    assert started_backup().handle(SyncGroupBackup(), 1.0) == []


# --- address lists that differ (RFC 5798 §7.1 MAY) ------------------------------------

VIP_B = IPv4Address("192.0.2.101")


@pytest.mark.parametrize("theirs", [(*VIPS, VIP_B), (VIP_B, *VIPS)], ids=["last", "first"])
def test_a_list_sharing_an_address_is_elected_on_and_counted(
    theirs: tuple[IPv4Address, ...],
) -> None:
    """A peer that has taken a VIP change before (or after) us: its adverts still elect,
    so the VIPs both lists name are never on two nodes."""
    fsm = started_backup()
    event = advert(150, vips=theirs)
    assert fsm.handle(event, 1.0) == [StartTimer(MD, MDI_100)]
    assert fsm.master_address == PEER
    # the fast path counts the repeats as handle does
    assert fsm.follow_repeat(event, 2.0) == 2.0 + MDI_100
    assert fsm.follow_repeats(event, 3, 5.0) == 5.0 + MDI_100
    assert fsm.counters.address_mismatch_received == 5
    assert not fsm.counters.refused


def test_a_master_yields_to_a_higher_priority_list_that_differs() -> None:
    p = params()
    fsm = started_master(p)
    out = fsm.handle(advert(150, vips=(*VIPS, VIP_B)), 11.0)
    assert Transitioned(State.MASTER, State.BACKUP, TransitionReason.HIGHER_PRIORITY) in out
    assert fsm.counters.address_mismatch_received == 1


# --- Reconfigure: a new revision applied in place -------------------------------------


def test_reconfigure_master_priority_sends_at_once_and_moves_no_vip() -> None:
    p = params(priority=150)
    fsm = started_master(p)
    q = replace(p, priority=120)
    assert fsm.handle(Reconfigure(q, 120), 10.5) == [sent(q, 120), StartTimer(ADV, 1.0)]
    assert (fsm.state, fsm.priority, fsm.params) == (State.MASTER, 120, q)
    assert fsm.handle(TimerExpired(ADV), 11.5) == [sent(q, 120), StartTimer(ADV, 1.0)]
    assert fsm.counters.reconfigured == 1


def test_reconfigure_master_to_a_lower_priority_loses_the_vips_as_the_rfc_says() -> None:
    """A master at 150 reconfigured to 90 next to a preempting backup at 100: the backup
    discards the lower adverts, takes over after its Master_Down_Interval, and its first
    advert makes us yield: the VIPs move once, no priority 0 is sent."""
    p = params(priority=150)
    master = started_master(p)
    backup = started_backup(params(priority=100, primary_address=PEER))
    backup.handle(advert(150, ME), 10.0)
    out = master.handle(Reconfigure(replace(p, priority=90), 90), 10.2)
    (advert_out, _timer) = out
    assert isinstance(advert_out, SendAdvert) and advert_out.priority == 90
    assert backup.handle(advert(90, ME), 10.2) == []  # §6.4.2: preempt, discarded
    assert backup.timer_deadline(MD) == 10.0 + MDI_100
    took = backup.handle(TimerExpired(MD), 10.0 + MDI_100)
    assert Transitioned(State.BACKUP, State.MASTER, TransitionReason.PREEMPTED) in took
    yielded = master.handle(advert(100, PEER), 13.7)
    assert yielded == [
        CancelTimer(ADV),
        RemoveVips(VIPS),
        Transitioned(State.MASTER, State.BACKUP, TransitionReason.HIGHER_PRIORITY),
        StartTimer(MD, float(master_down_interval(90, 100))),
    ]
    assert master.counters.priority_zero_sent == 0


def test_reconfigure_master_vips_adds_and_removes_only_the_difference() -> None:
    a, b, c = (IPv4Address(f"192.0.2.{n}") for n in (100, 101, 102))
    p = params(vips=(a, b))
    fsm = started_master(p)
    q = replace(p, vips=(a, c))
    assert fsm.handle(Reconfigure(q, 100), 10.5) == [
        sent(q, 100),  # the new list from this advert on
        StartTimer(ADV, 1.0),
        AddVips((c,)),
        SendGratuitous((c,)),
        RemoveVips((b,)),
    ]
    # a later release takes the new list
    assert RemoveVips((a, c)) in fsm.handle(Shutdown(), 12.0)


def test_reconfigure_master_interval_advertises_it_at_once() -> None:
    p = params()
    fsm = started_master(p)
    q = replace(p, advert_interval_cs=50)
    assert fsm.handle(Reconfigure(q, 100), 10.5) == [sent(q, 100), StartTimer(ADV, 0.5)]
    assert fsm.master_adver_interval_cs == 50
    assert fsm.handle(TimerExpired(ADV), 11.0) == [sent(q, 100), StartTimer(ADV, 0.5)]


def test_reconfigure_backup_learns_the_new_interval_from_the_master() -> None:
    """RFC 5798 §6.4.2: a backup's Master_Adver_Interval is the master's, learned from
    its adverts; a backup reconfigured first keeps following the old one until then."""
    p = params()
    fsm = started_backup(p)
    fsm.handle(advert(150), 1.0)
    q = replace(p, advert_interval_cs=50)
    assert fsm.handle(Reconfigure(q, 100), 1.5) == []
    assert fsm.master_adver_interval_cs == 100
    assert fsm.handle(advert(150, interval_cs=50), 2.0) == [
        StartTimer(MD, float(master_down_interval(100, 50)))
    ]
    assert fsm.master_adver_interval_cs == 50


def test_reconfigure_backup_priority_preempts_with_the_next_advert() -> None:
    p = params(priority=100)
    fsm = started_backup(p)
    fsm.handle(advert(150), 1.0)
    assert fsm.handle(Reconfigure(replace(p, priority=200), 200), 1.5) == []
    assert fsm.handle(advert(150), 2.0) == []  # §6.4.2: lower now, discarded
    out = fsm.handle(TimerExpired(MD), 1.0 + MDI_100)
    assert Transitioned(State.BACKUP, State.MASTER, TransitionReason.PREEMPTED) in out


def test_reconfigure_backup_vips_accepts_the_new_list_and_moves_nothing() -> None:
    p = params()
    fsm = started_backup(p)
    fsm.handle(advert(150), 1.0)
    q = replace(p, vips=(*VIPS, VIP_B))
    assert fsm.handle(Reconfigure(q, 100), 1.5) == []
    assert fsm.handle(advert(150), 2.0) == [StartTimer(MD, MDI_100)]  # the old list
    assert fsm.handle(advert(150, vips=q.vips), 3.0) == [StartTimer(MD, MDI_100)]
    assert fsm.counters.address_mismatch_received == 1


def test_reconfigure_with_nothing_the_wire_sees_sends_nothing() -> None:
    p = params()
    fsm = started_master(p)
    assert fsm.handle(Reconfigure(replace(p, accept_mode=True), 100), 10.5) == []


def test_reconfigure_in_fault_and_initialize_is_kept_for_the_start() -> None:
    p = params()
    fsm = VirtualRouter(p)
    q = replace(p, priority=255)
    assert fsm.handle(Reconfigure(q, 255), 0.0) == []
    assert fsm.handle(Startup(), 0.0)[0] == Transitioned(
        State.INITIALIZE, State.MASTER, TransitionReason.ADDRESS_OWNER
    )
    fault = started_backup(p)
    fault.handle(FaultSet("x"), 1.0)
    assert fault.handle(Reconfigure(replace(p, advert_interval_cs=50), 100), 1.5) == []
    assert fault.handle(FaultCleared("x"), 2.0) == [
        Transitioned(State.FAULT, State.BACKUP, TransitionReason.FAULT_CLEARED),
        StartTimer(MD, float(master_down_interval(100, 50))),
    ]


@pytest.mark.parametrize(
    "change",
    [{"vrid": 52}, {"version": VrrpVersion.V2}, {"primary_address": IPv6Address("fe80::1")}],
    ids=["vrid", "version", "family"],
)
def test_reconfigure_refuses_an_identity_change(change: dict[str, Any]) -> None:
    p = params()
    fsm = started_master(p)
    new = (
        replace(p, **change, vips=(IPv6Address("2001:db8::1"),))
        if "primary_address" in change
        else replace(p, **change)
    )
    with pytest.raises(ValueError):
        fsm.handle(Reconfigure(new, 100), 10.5)
    assert fsm.params is p
