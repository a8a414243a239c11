"""RFC 5798 state-machine rules that mutation testing showed no test would notice breaking.

Each test names the section (or keepalived rule) it protects; `scripts/mutation
reconciler/vrrp/fsm.py` runs the mutants against them. Playbooks as in test_vrrp_fsm.py:
events in, exact actions and observable state out.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest
from helpers import PEER, received_advert, started_backup, started_master
from helpers import vrrp_params as params

from reconciler.model.vrrp import UnicastChecksum
from reconciler.vrrp.actions import (
    SendAdvert,
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
    TimerExpired,
)
from reconciler.vrrp.fsm import VirtualRouter
from reconciler.vrrp.packet import (
    VRRP_MULTICAST_IPV4,
    AuthType,
    VrrpVersion,
)
from reconciler.vrrp.params import InstanceParams
from reconciler.vrrp.receive import AdvertRefusal
from reconciler.vrrp.states import State, TimerKind, TransitionReason
from reconciler.vrrp.timers import master_down_interval

OTHER_PEER = IPv4Address("192.0.2.13")
MD, ADV = TimerKind.MASTER_DOWN, TimerKind.ADVER

MDI_100 = 3.609375  # RFC 5798 §6.1 at priority 100 and a 1 s interval
MDI_150 = 3.4140625  # ... at priority 150


def advert(
    priority: int,
    source: IPv4Address = PEER,
    *,
    interval_cs: int = 100,
    version: VrrpVersion = VrrpVersion.V3,
    auth: bytes = b"",
    destination: IPv4Address = VRRP_MULTICAST_IPV4,
    hop_limit: int = 255,
) -> AdvertReceived:
    return received_advert(
        priority,
        source,
        interval_cs=interval_cs,
        version=version,
        auth_type=AuthType.SIMPLE_TEXT if auth else AuthType.NONE,
        auth_data=auth,
        destination=destination,
        hop_limit=hop_limit,
    )


def transition_of(actions: list[Any]) -> Transitioned:
    (transitioned,) = [a for a in actions if isinstance(a, Transitioned)]
    return transitioned


# --- §6.4.1 Initialize: what a machine that has not started reports -------------------


def test_an_instance_not_started_has_no_master_and_no_transition_yet() -> None:
    """§6.4.1: in Initialize nothing is elected; the status reports no master, no
    transition time, and the configured Master_Adver_Interval (§6.1)."""
    fsm = VirtualRouter(params(advert_interval_cs=50))
    assert fsm.state is State.INITIALIZE
    assert fsm.master_address is None
    assert fsm.last_transition_s is None
    assert fsm.master_adver_interval_cs == 50
    assert fsm.followed is None
    assert (fsm.timer_deadline(MD), fsm.timer_deadline(ADV)) == (None, None)


# --- §6.4.2 Backup: the master it follows, and why it takes over ----------------------


def test_a_backup_entered_again_follows_no_master_until_it_hears_one() -> None:
    """§6.4.2: a backup learns the master from its adverts; one that re-enters Backup
    (here after a fault) has not heard any yet."""
    fsm = started_backup()
    fsm.handle(advert(150), 1.0)
    assert fsm.master_address == PEER
    fsm.handle(LinkDown(), 2.0)
    fsm.handle(LinkUp(), 3.0)
    assert fsm.state is State.BACKUP
    assert fsm.master_address is None


def test_a_new_master_follows_no_other_master() -> None:
    """§6.4.3: a master has no master; the one the backup followed is forgotten."""
    fsm = started_backup()
    fsm.handle(advert(150), 1.0)
    fsm.handle(TimerExpired(MD), 1.0 + MDI_100)
    assert fsm.state is State.MASTER
    assert fsm.master_address is None


@pytest.mark.parametrize("first", ["priority zero", "lower priority"])
def test_a_backup_that_hears_a_master_again_takes_over_for_its_silence(first: str) -> None:
    """§6.4.2: the Master_Down_Timer that fires after an accepted advert means the master
    went silent, whatever an earlier advert (a priority 0 release, a lower priority
    discarded for preemption) had made it mean."""
    fsm = started_backup()
    fsm.handle(advert(0 if first == "priority zero" else 50, OTHER_PEER), 1.0)
    fsm.handle(advert(150), 1.2)  # a master we follow
    out = fsm.handle(TimerExpired(MD), 1.2 + MDI_100)
    assert transition_of(out) == Transitioned(
        State.BACKUP, State.MASTER, TransitionReason.MASTER_NO_RESPONSE
    )


@pytest.mark.parametrize("first", ["priority zero", "lower priority"])
def test_a_backup_entered_again_takes_over_for_silence(first: str) -> None:
    """§6.4.1/§6.4.2: entering Backup starts a fresh Master_Down_Timer; when it fires
    without any advert the master is silent, not released or preempted."""
    fsm = started_backup()
    fsm.handle(advert(0 if first == "priority zero" else 50), 1.0)
    fsm.handle(FaultSet("uplink"), 1.1)
    fsm.handle(FaultCleared("uplink"), 2.0)
    out = fsm.handle(TimerExpired(MD), 2.0 + MDI_100)
    assert transition_of(out) == Transitioned(
        State.BACKUP, State.MASTER, TransitionReason.MASTER_NO_RESPONSE
    )


def test_transitions_are_counted_each_time() -> None:
    """reconciler_vrrp_transitions_total counts every transition, not whether one happened."""
    fsm = started_master()
    for t in (11.0, 20.0):
        fsm.handle(advert(150), t)  # yield: HIGHER_PRIORITY
        fsm.handle(TimerExpired(MD), t + MDI_100)  # silence: master again
    key = (State.MASTER, State.BACKUP, TransitionReason.HIGHER_PRIORITY)
    assert fsm.counters.transitions[key] == 2
    again = (State.BACKUP, State.MASTER, TransitionReason.MASTER_NO_RESPONSE)
    assert fsm.counters.transitions[again] == 3


# --- keepalived preempt_delay (§6.4.2 with a delay) ------------------------------------


def test_a_preempt_delay_under_a_second_is_waited_for() -> None:
    """keepalived preempt_delay: a delay of 0.5 s still delays preemption."""
    fsm = started_backup(params(priority=150, preempt_delay_s=0.5))
    assert fsm.handle(advert(100), 1.0) == [StartTimer(MD, MDI_150)]
    assert fsm.handle(advert(100), 1.4) == [StartTimer(MD, MDI_150)]
    assert fsm.handle(advert(100), 1.5) == []  # the delay is over: discard, preempt


def test_an_equal_priority_master_ends_the_preempt_wait() -> None:
    """§6.4.2 accepts an advert of our own priority (we do not outrank that master), so
    a preempt delay started by a lower master starts again after it."""
    fsm = started_backup(params(priority=150, preempt_delay_s=5.0))
    fsm.handle(advert(100), 1.0)  # waits until 6.0
    assert fsm.handle(advert(150), 2.0) == [StartTimer(MD, MDI_150)]
    assert fsm.handle(advert(100), 7.0) == [StartTimer(MD, MDI_150)]  # waits until 12.0
    assert fsm.handle(advert(100), 11.9) == [StartTimer(MD, MDI_150)]
    assert fsm.handle(advert(100), 12.0) == []


def test_reconfiguring_the_preempt_delay_restarts_the_wait() -> None:
    """keepalived preempt_delay: a wait under the old delay is dropped; the next lower
    advert starts one under the new delay."""
    p = params(priority=150, preempt_delay_s=5.0)
    fsm = started_backup(p)
    fsm.handle(advert(100), 1.0)  # waits until 6.0
    fsm.handle(Reconfigure(replace(p, preempt_delay_s=4.0), 150), 2.0)
    assert fsm.handle(advert(100), 6.5) == [StartTimer(MD, MDI_150)]  # waits until 10.5
    assert fsm.handle(advert(100), 10.4) == [StartTimer(MD, MDI_150)]
    assert fsm.handle(advert(100), 10.5) == []


def test_reconfiguring_something_else_keeps_the_preempt_wait() -> None:
    """A revision that leaves preempt and preempt_delay as they were does not give a lower
    master another full delay."""
    p = params(priority=150, preempt_delay_s=5.0)
    fsm = started_backup(p)
    fsm.handle(advert(100), 1.0)  # waits until 6.0
    fsm.handle(Reconfigure(replace(p, accept_mode=True), 150), 2.0)
    assert fsm.handle(advert(100), 5.9) == [StartTimer(MD, MDI_150)]
    assert fsm.handle(advert(100), 6.0) == []


def test_turning_preempt_off_and_on_again_restarts_the_wait() -> None:
    """§6.4.2 Preempt_Mode off drops a running wait: turned on again, the delay runs
    from the next lower advert."""
    p = params(priority=150, preempt_delay_s=5.0)
    fsm = started_backup(p)
    fsm.handle(advert(100), 1.0)  # waits until 6.0
    fsm.handle(Reconfigure(replace(p, preempt=False), 150), 2.0)
    fsm.handle(Reconfigure(p, 150), 3.0)
    assert fsm.handle(advert(100), 6.5) == [StartTimer(MD, MDI_150)]  # waits until 11.5
    assert fsm.handle(advert(100), 11.5) == []


def test_a_backup_entered_again_waits_the_whole_preempt_delay() -> None:
    """keepalived preempt_delay: leaving Backup drops a running wait, so a lower master
    heard once the machine is back in Backup is waited for the whole delay again."""
    fsm = started_backup(params(priority=150, preempt_delay_s=5.0))
    fsm.handle(advert(100), 1.0)  # waits until 6.0
    fsm.handle(LinkDown(), 2.0)
    fsm.handle(LinkUp(), 3.0)
    assert fsm.state is State.BACKUP
    assert fsm.handle(advert(100), 6.5) == [StartTimer(MD, MDI_150)]  # waits until 11.5
    assert fsm.handle(advert(100), 11.4) == [StartTimer(MD, MDI_150)]
    assert fsm.handle(advert(100), 11.5) == []


# --- effective priority bounds (§5.2.4: 1..254 elect, 255 owns, 0 is a release) --------


@pytest.mark.parametrize("priority", [1, 255])
def test_a_priority_change_to_either_end_of_the_range_is_taken(priority: int) -> None:
    """§5.2.4: 1 is the lowest electing priority and 255 the owner's; a master
    advertises either at once."""
    p = params(priority=100)
    fsm = started_master(p)
    assert fsm.handle(PriorityChanged(priority), 10.5) == [
        SendAdvert(p.advert(priority)),
        StartTimer(ADV, 1.0),
    ]
    assert fsm.priority == priority


@pytest.mark.parametrize("priority", [0, 256])
def test_a_priority_change_outside_the_range_is_refused_by_name(priority: int) -> None:
    """§5.2.4: 0 only means "released" (faults use FaultSet) and 256 does not fit."""
    fsm = started_master()
    with pytest.raises(ValueError, match=rf"^effective priority {priority} outside 1\.\.255$"):
        fsm.handle(PriorityChanged(priority), 10.5)
    assert fsm.priority == 100


@pytest.mark.parametrize("priority", [1, 255])
def test_a_reconfigured_priority_at_either_end_of_the_range_is_taken(priority: int) -> None:
    """§5.2.4 and §6.4.3: a master reconfigured to 1 or 255 advertises it at once."""
    p = params(priority=100)
    fsm = started_master(p)
    q = replace(p, priority=priority)
    assert fsm.handle(Reconfigure(q, priority), 10.5) == [
        SendAdvert(q.advert(priority)),
        StartTimer(ADV, 1.0),
    ]


@pytest.mark.parametrize("priority", [0, 256])
def test_a_reconfigured_priority_outside_the_range_is_refused_by_name(priority: int) -> None:
    """§5.2.4: the revision is refused whole, with the priority named, and nothing changes."""
    p = params()
    fsm = started_master(p)
    with pytest.raises(ValueError, match=rf"^effective priority {priority} outside 1\.\.255$"):
        fsm.handle(Reconfigure(replace(p, accept_mode=True), priority), 10.5)
    assert (fsm.params, fsm.priority) == (p, 100)


def test_an_identity_change_is_refused_by_name() -> None:
    """§5.2.3: the VRID names the virtual router; another one is a new machine, and the
    error says so with the instance's name."""
    p = params()
    fsm = started_master(p)
    with pytest.raises(ValueError, match=r"^web: VRID, version or family changed: restart"):
        fsm.handle(Reconfigure(replace(p, vrid=52), 100), 10.5)


def test_reconfigurations_are_counted_each_time() -> None:
    """Each revision applied in place counts (the status's "reconfigured")."""
    p = params()
    fsm = started_backup(p)
    fsm.handle(Reconfigure(replace(p, accept_mode=True), 100), 1.0)
    fsm.handle(Reconfigure(p, 100), 2.0)
    assert fsm.counters.reconfigured == 2


# --- §6.4.2 Master_Adver_Interval after a reconfiguration ----------------------------


@pytest.mark.parametrize(
    "p",
    [
        params(learn_master_adver_interval=False),
        params(version=VrrpVersion.V2, auth_type=AuthType.SIMPLE_TEXT, auth_data=b"pw"),
    ],
    ids=["v3 not learning", "v2"],
)
def test_a_backup_that_learns_nothing_takes_a_reconfigured_interval_at_once(
    p: InstanceParams,
) -> None:
    """RFC 3768 §6.1 (v2), and v3 without learning: Master_Adver_Interval is the
    configured interval, so the new one applies with the next advert."""
    fsm = started_backup(p)
    q = replace(p, advert_interval_cs=200)
    fsm.handle(Reconfigure(q, 100), 1.0)
    assert fsm.master_adver_interval_cs == 200
    auth = q.auth_data if q.version is VrrpVersion.V2 else b""
    theirs = advert(150, interval_cs=200, version=q.version, auth=auth)
    assert fsm.handle(theirs, 2.0) == [
        StartTimer(MD, float(master_down_interval(100, 200, q.version)))
    ]


def test_a_v2_backup_takes_over_a_released_master_after_the_v2_skew_time() -> None:
    """RFC 3768 §6.1: v2 Skew_Time is (256 - Priority) / 256 s whatever the interval
    (v3's scales with Master_Adver_Interval, RFC 5798 §6.1)."""
    p = params(
        version=VrrpVersion.V2,
        advert_interval_cs=300,
        auth_type=AuthType.SIMPLE_TEXT,
        auth_data=b"pw",
    )
    fsm = started_backup(p)
    release = advert(0, interval_cs=300, version=VrrpVersion.V2, auth=p.auth_data)
    assert fsm.handle(release, 1.0) == [StartTimer(MD, 156 / 256)]


# --- §6.4.3 a master's reconfiguration goes on the wire when the wire changes ---------


@pytest.mark.parametrize(
    "change",
    [
        {"primary_address": IPv4Address("192.0.2.14")},
        {"unicast_peers": (PEER, OTHER_PEER)},
        {"unicast_checksum": UnicastChecksum.OLD},
    ],
    ids=["source address", "unicast peers", "unicast checksum"],
)
def test_a_master_advertises_a_reconfigured_sender_at_once(change: dict[str, Any]) -> None:
    """§6.4.3: the adverts are the master's presence; a new source, new peers or another
    checksum must reach the backups now, not one interval later."""
    p = params(unicast_peers=(PEER,))
    fsm = started_master(p)
    q = replace(p, **change)
    out = fsm.handle(Reconfigure(q, 100), 10.5)
    old = q.unicast_checksum is UnicastChecksum.OLD
    assert out == [SendAdvert(q.advert(100), old_unicast_checksum=old), StartTimer(ADV, 1.0)]


# --- keepalived old_unicast_checksum applies to v3 unicast only ----------------------


@pytest.mark.parametrize(
    "p",
    [
        params(unicast_checksum=UnicastChecksum.OLD),
        params(
            version=VrrpVersion.V2,
            auth_type=AuthType.SIMPLE_TEXT,
            auth_data=b"pw",
            unicast_peers=(PEER,),
            unicast_checksum=UnicastChecksum.OLD,
        ),
    ],
    ids=["v3 multicast", "v2 unicast"],
)
def test_the_old_unicast_checksum_is_never_sent_outside_v3_unicast(p: InstanceParams) -> None:
    """keepalived's old checksum is a v3 unicast quirk (reference §3c): multicast uses
    the RFC 5798 §5.2.8 checksum, and v2 (RFC 3768) has a checksum without a pseudo-header."""
    fsm = started_master(p)
    assert fsm.handle(TimerExpired(ADV), 11.0)[0] == SendAdvert(p.advert(100))


# --- stale timers and refusals are counted each time ----------------------------------


def test_stale_timers_are_counted_each_time_in_backup_and_master() -> None:
    """§6.2: Backup runs only the Master_Down_Timer and Master only the Adver_Timer; the
    other firing (a race with a transition) is ignored, counted each time."""
    backup = started_backup()
    assert backup.handle(TimerExpired(ADV), 1.0) == []
    assert backup.handle(TimerExpired(ADV), 2.0) == []
    assert backup.counters.stale_timer_events == 2
    master = started_master()
    assert master.handle(TimerExpired(MD), 11.0) == []
    assert master.handle(TimerExpired(MD), 12.0) == []
    assert master.counters.stale_timer_events == 2
    assert master.timer_deadline(ADV) == 11.0


def test_stale_timers_are_counted_each_time_when_not_running() -> None:
    """§6.4.1: Initialize runs no timer; a late one is ignored and counted each time."""
    fsm = VirtualRouter(params())
    fsm.handle(TimerExpired(MD), 1.0)
    fsm.handle(TimerExpired(ADV), 2.0)
    assert fsm.counters.stale_timer_events == 2


def test_refusals_are_counted_each_time() -> None:
    """§7.1: every advert refused is counted by reason (reconciler_vrrp_adverts_invalid_total)."""
    fsm = started_backup()
    for t in (1.0, 2.0, 3.0):
        assert fsm.handle(advert(150, hop_limit=64), t) == []
    assert fsm.counters.refused == {AdvertRefusal.BAD_TTL: 3}
    assert fsm.counters.adverts_received == 3


# --- the backup fast path (follow_repeat/follow_repeats) -----------------------------


def test_folding_in_no_repeats_changes_nothing() -> None:
    """No repeat dropped by the kernel: nothing to count, the timer stays (§6.4.2)."""
    fsm = started_backup()
    followed = advert(150)
    fsm.handle(followed, 1.0)
    assert fsm.follow_repeats(followed, 0, 2.0) is None
    assert fsm.counters.adverts_received == 1
    assert fsm.timer_deadline(MD) == 1.0 + MDI_100


def test_folding_in_one_repeat_restarts_the_master_down_timer() -> None:
    """§6.4.2: one repeat of the followed master's advert restarts the Master_Down_Timer
    like any accepted advert."""
    fsm = started_backup()
    followed = advert(150)
    fsm.handle(followed, 1.0)
    assert fsm.follow_repeats(followed, 1, 2.0) == 2.0 + MDI_100
    assert fsm.counters.adverts_received == 2


def test_folding_in_older_repeats_never_moves_the_master_down_timer_earlier() -> None:
    """§6.4.2: the Master_Down_Timer runs from the last advert heard; repeats folded in
    late, from before one already handled, leave it where that one put it."""
    fsm = started_backup()
    followed = advert(150)
    fsm.handle(followed, 1.0)
    assert fsm.follow_repeat(followed, 5.0) == 5.0 + MDI_100
    assert fsm.follow_repeats(followed, 2, 4.0) == 5.0 + MDI_100
    assert fsm.timer_deadline(MD) == 5.0 + MDI_100
    assert fsm.counters.adverts_received == 4


def test_any_other_event_ends_the_fast_path() -> None:
    """§6.4.2 is what the fast path repeats; after any other event (here a new priority,
    which changes Master_Down_Interval) the full handling must run again."""
    fsm = started_backup()
    followed = advert(150)
    fsm.handle(followed, 1.0)
    before = fsm.followed
    assert before is followed
    fsm.handle(PriorityChanged(120), 1.5)
    assert fsm.followed is None
    assert fsm.follow_repeat(followed, 2.0) is None


def test_priority_zero_adverts_are_counted_each_time_sent_and_received() -> None:
    """§6.4.3 Shutdown / §6.4.2 a released master: every priority-0 advert counts
    (InstanceCounters.priority_zero_sent/_received), not whether there was one."""
    fsm = started_master()
    fsm.handle(LinkDown(), 11.0)  # keepalived: a master entering FAULT sends priority 0
    fsm.handle(LinkUp(), 12.0)
    fsm.handle(TimerExpired(MD), 12.0 + MDI_100)
    fsm.handle(Shutdown(), 20.0)  # and so does one that stops
    assert fsm.counters.priority_zero_sent == 2
    backup = started_backup()
    backup.handle(advert(0), 1.0)
    backup.handle(advert(0, OTHER_PEER), 1.1)
    assert backup.counters.priority_zero_received == 2
