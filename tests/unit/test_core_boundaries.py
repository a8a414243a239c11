"""Boundaries of the pure core that a single mutation could move unnoticed: the plan's
order, a backup's transition reasons, repeat counting on the batched path, and the
tracker arithmetic at weight +-1."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from helpers import ME, PEER
from helpers import received_advert as _advert
from helpers import vrrp_params as _params

from reconciler.health.priority import (
    TrackerKind,
    TrackerReading,
    effective_priority,
    tracker_contribution,
)
from reconciler.model.common import CheckState, Family
from reconciler.model.ipvs import Protocol, ServiceKey
from reconciler.model.kernel import LiveAddress, LiveService
from reconciler.plan.diff import Action, diff
from reconciler.vrrp.events import AdvertReceived, Startup, TimerExpired
from reconciler.vrrp.fsm import VirtualRouter
from reconciler.vrrp.packet import ChecksumVerdict
from reconciler.vrrp.states import State, TimerKind, TransitionReason

# --- plan order --------------------------------------------------------------------------


def test_conflicts_come_first_in_a_plan_so_the_reader_sees_them() -> None:
    """plan/diff: a conflict (an object someone else made) is listed before every step,
    even before the address deletions that otherwise open a plan."""
    key = ServiceKey(Family.IPV4, Protocol.TCP, IPv4Address("192.0.2.100"), 80)
    ours_gone = LiveAddress("eth0", IPv4Interface("192.0.2.101/24"))
    new_vip = LiveAddress("eth0", IPv4Interface("192.0.2.102/24"))
    steps = diff(
        [LiveService(key, scheduler="wrr"), new_vip],
        [LiveService(key, scheduler="wlc"), ours_gone],
        {(ours_gone.kind, ours_gone.key)},
    )
    assert [s.action for s in steps] == [Action.CONFLICT, Action.DELETE, Action.CREATE]


# --- backup transition reasons -------------------------------------------------------------


def _reason_of_takeover(*adverts: AdvertReceived) -> TransitionReason:
    fsm = VirtualRouter(_params())
    fsm.handle(Startup(), 0.0)
    now = 0.0
    for a in adverts:
        now += 0.5
        fsm.handle(a, now)
    fsm.handle(TimerExpired(TimerKind.MASTER_DOWN), now + 10)
    assert fsm.state is State.MASTER
    ((_, _, reason),) = [k for k in fsm.counters.transitions if k[1] is State.MASTER]
    return reason


def test_a_backup_that_preempts_a_lower_master_says_preempted() -> None:
    assert _reason_of_takeover(_advert(50)) is TransitionReason.PREEMPTED


def test_following_a_new_master_that_goes_silent_is_master_no_response() -> None:
    """RFC 5798 6.4.2: after a lower-priority master (discarded, we would preempt) a
    higher one appears and is followed; when it goes silent the takeover is for its
    silence, not a preemption."""
    assert _reason_of_takeover(_advert(50), _advert(200)) is TransitionReason.MASTER_NO_RESPONSE


def test_a_release_then_a_new_master_that_goes_silent_is_master_no_response() -> None:
    """A priority-0 advert arms Skew_Time for 'master released'; a master that then speaks
    and goes silent is a master that stopped responding."""
    assert _reason_of_takeover(_advert(0), _advert(200)) is TransitionReason.MASTER_NO_RESPONSE
    assert _reason_of_takeover(_advert(200), _advert(0)) is TransitionReason.MASTER_RELEASED


# --- repeat counting -----------------------------------------------------------------------


def test_repeats_of_an_old_checksum_advert_count_on_every_path() -> None:
    """keepalived's pre-1.3.6 unicast checksum is counted per advert whether the advert is
    handled in full, on the fast path, or as repeats the kernel dropped."""
    fsm = VirtualRouter(_params(unicast_peers=(PEER,)))
    fsm.handle(Startup(), 0.0)
    first = _advert(200, destination=ME, checksum=ChecksumVerdict.VALID_OLD_UNICAST)
    fsm.handle(first, 1.0)
    assert fsm.counters.old_unicast_checksum_received == 1
    assert fsm.follow_repeat(first, 2.0) is not None
    assert fsm.counters.old_unicast_checksum_received == 2
    assert fsm.follow_repeats(first, 5, 3.0) is not None
    assert fsm.counters.old_unicast_checksum_received == 7
    assert fsm.counters.adverts_received == 7
    plain = VirtualRouter(_params(unicast_peers=(PEER,)))
    plain.handle(Startup(), 0.0)
    rfc = _advert(200, destination=ME)
    plain.handle(rfc, 1.0)
    plain.follow_repeats(rfc, 5, 3.0)
    assert plain.counters.old_unicast_checksum_received == 0


# --- tracker arithmetic --------------------------------------------------------------------


def _tracker(weight: int, state: CheckState) -> TrackerReading:
    return TrackerReading("check web", weight, state, kind=TrackerKind.STATE)


def test_weight_plus_one_adds_one_while_up_and_nothing_while_down() -> None:
    """keepalived: a positive weight is added while the check is up."""
    assert tracker_contribution(_tracker(1, CheckState.UP)) == 1
    assert tracker_contribution(_tracker(1, CheckState.DOWN)) == 0
    assert effective_priority(100, [_tracker(1, CheckState.UP)]).priority == 101


def test_weight_minus_one_takes_one_while_down_and_nothing_while_up() -> None:
    """keepalived: a negative weight is added while the check is down."""
    assert tracker_contribution(_tracker(-1, CheckState.DOWN)) == -1
    assert tracker_contribution(_tracker(-1, CheckState.UP)) == 0
    assert effective_priority(100, [_tracker(-1, CheckState.DOWN)]).priority == 99


# --- tracked files and scripts, as keepalived reads them -----------------------------------


def test_a_tracked_file_is_read_like_strtol_on_its_first_127_bytes() -> None:
    """keepalived's track_file: strtol(buf, NULL, 0) over at most 127 bytes."""
    from reconciler.health.priority import parse_track_file  # noqa: PLC0415

    assert parse_track_file(b" " * 126 + b"5") == 5
    assert parse_track_file(b" " * 127 + b"5") == 0  # the 128th byte is never read
    assert parse_track_file(b"X5") == 0  # no digits first: 0, as strtol gives
    assert parse_track_file(b"0x10") == 16
    assert parse_track_file(b"0x1\n") == 1
    assert parse_track_file(b"0x1 z") == 1
    assert parse_track_file(b"-0x1") == -1
    assert parse_track_file(b"0x") == 0 and parse_track_file(b"0xg") == 0
    assert parse_track_file(b"010") == 8  # octal after a leading 0


def test_a_script_exit_status_is_named_in_the_detail() -> None:
    from reconciler.health.priority import script_result  # noqa: PLC0415

    ok = script_result(0, dynamic_weight=False)
    assert ok.ok and ok.detail == "exit status 0"
    assert script_result(1, dynamic_weight=False).detail == "exit status 1"
    assert script_result(-9, dynamic_weight=False).detail == "killed by signal 9"
    assert script_result(255, dynamic_weight=True).weight == 253
