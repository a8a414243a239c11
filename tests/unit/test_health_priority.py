"""Tracker arithmetic as keepalived does it: priority, FAULT, file values, scripts, quorum."""

from __future__ import annotations

import pytest

from reconciler.health.policy import ProbeResult
from reconciler.health.priority import (
    Priority,
    TrackerKind,
    TrackerReading,
    effective_priority,
    parse_track_file,
    quorum_up,
    real_server_weight,
    script_result,
    tracker_contribution,
)
from reconciler.model.common import CheckState

UP, DOWN, UNKNOWN = CheckState.UP, CheckState.DOWN, CheckState.UNKNOWN


def state(name: str, weight: int, st: CheckState) -> TrackerReading:
    return TrackerReading(name=name, weight=weight, state=st)


def value(name: str, weight: int, v: int | None, st: CheckState = UP) -> TrackerReading:
    return TrackerReading(name=name, weight=weight, state=st, value=v, kind=TrackerKind.VALUE)


# ---------------------------------------------------------------------- state trackers


@pytest.mark.parametrize(
    ("weight", "st", "contribution"),
    [
        (-60, UP, 0),
        (-60, DOWN, -60),  # negative weight applies while down
        (20, UP, 20),  # positive weight applies while up
        (20, DOWN, 0),
        (0, UP, 0),
        (0, DOWN, None),  # weight 0 and down: FAULT
        (-60, UNKNOWN, 0),
        (20, UNKNOWN, 0),
        (0, UNKNOWN, 0),
    ],
)
def test_state_tracker_contribution(weight: int, st: CheckState, contribution: int | None) -> None:
    assert tracker_contribution(state("t", weight, st)) == contribution


def test_no_trackers_is_the_configured_priority() -> None:
    assert effective_priority(150, []) == Priority(150)


def test_weights_add_up() -> None:
    trackers = [state("nginx", -60, DOWN), state("eth1", -50, UP), state("bonus", 10, UP)]
    assert effective_priority(150, trackers) == Priority(100)


@pytest.mark.parametrize(
    ("configured", "trackers", "expected"),
    [
        (100, [state("a", -200, DOWN)], 1),  # clamped at 1, never 0 (0 means "resign")
        (100, [state("a", -99, DOWN)], 1),
        (100, [state("a", -98, DOWN)], 2),
        (250, [state("a", 10, UP)], 254),  # clamped at 254: 255 is for the owner only
        (254, [state("a", 1, UP)], 254),
        (1, [state("a", -5, DOWN)], 1),
    ],
)
def test_clamped_to_1_254(configured: int, trackers: list[TrackerReading], expected: int) -> None:
    result = effective_priority(configured, trackers)
    assert result.priority == expected
    assert not result.fault


def test_an_owner_is_never_moved() -> None:
    assert effective_priority(255, [state("a", -100, DOWN), state("b", 10, UP)]) == Priority(255)


def test_an_owner_still_faults_on_a_weight_0_tracker() -> None:
    result = effective_priority(255, [state("link", 0, DOWN)])
    assert result.priority == 255
    assert result.fault and result.faults == ("link",)


def test_weight_0_down_is_fault_and_other_weights_still_count() -> None:
    result = effective_priority(150, [state("a", 0, DOWN), state("b", -20, DOWN)])
    assert result == Priority(130, faults=("a",))
    assert result.fault


def test_weight_0_unknown_is_pending_not_fault() -> None:
    result = effective_priority(150, [state("a", 0, UNKNOWN), state("b", 0, UP)])
    assert result == Priority(150, pending=("a",))
    assert not result.fault


def test_configured_priority_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        effective_priority(0, [])


# ---------------------------------------------------------------------- file trackers


@pytest.mark.parametrize(
    ("weight", "v", "contribution"),
    [
        (10, 3, 30),  # value x weight
        (-10, 3, -30),
        (10, -3, -30),
        (5, 0, 0),
        (1, 253, 253),
        (1, 1000, 253),  # clamped to 253 (keepalived)
        (-1, 253, -253),
        (-1, 254, None),  # -254 is keepalived's fault marker
        (-2, 500, None),
        (0, 0, 0),  # weight 0: zero is fine
        (0, 7, None),  # weight 0: non-zero is FAULT
        (0, -1, None),
    ],
)
def test_file_tracker_contribution(weight: int, v: int, contribution: int | None) -> None:
    assert tracker_contribution(value("f", weight, v)) == contribution


def test_file_tracker_before_the_first_read_adds_nothing() -> None:
    assert tracker_contribution(value("f", 0, None, UNKNOWN)) == 0
    assert tracker_contribution(value("f", 10, 5, UNKNOWN)) == 0
    assert effective_priority(100, [value("f", 0, None, UNKNOWN)]).pending == ("f",)


def test_file_tracker_keeps_its_value_while_the_check_is_down() -> None:
    # keepalived ignores an unreadable number and keeps the last one
    assert tracker_contribution(value("f", 10, 2, DOWN)) == 20


def test_file_and_state_trackers_combine() -> None:
    result = effective_priority(100, [value("f", 10, 4), state("c", -30, DOWN)])
    assert result == Priority(110)


@pytest.mark.parametrize(
    ("content", "parsed"),
    [
        (b"42\n", 42),
        (b"  -17", -17),
        (b"+5", 5),
        (b"0x1F", 31),  # strtol base 0: hex
        (b"0X10", 16),
        (b"010", 8),  # ... octal
        (b"09", 0),  # octal stops at 9
        (b"0x", 0),  # no hex digit: the 0, then stop
        (b"12abc", 12),  # stops at the first non-digit
        (b"abc", 0),  # no digits at all: 0
        (b"", 0),  # empty file: 0
        (b"\t\n 7", 7),
        (b"- 5", 0),  # no space allowed after the sign
        (b"2147483648", 2147483648),  # INT32_MAX + 1 is still accepted by keepalived
        (b"2147483649", None),  # beyond: ignored
        (b"-2147483648", -2147483648),
        (b"-2147483649", None),
        (b" " * 130 + b"5", 0),  # only the first 127 bytes are read
    ],
)
def test_parse_track_file_is_strtol(content: bytes, parsed: int | None) -> None:
    assert parse_track_file(content) == parsed


# ---------------------------------------------------------------------- scripts


@pytest.mark.parametrize(
    ("code", "dynamic", "ok", "weight"),
    [
        (0, False, True, None),
        (1, False, False, None),
        (2, False, False, None),  # without dynamic weight any non-zero code is down
        (0, True, True, None),  # exit 0: up, configured weight stays
        (1, True, False, None),
        (2, True, True, 0),  # 2..255: up with weight code - 2
        (12, True, True, 10),
        (255, True, True, 253),
        (-9, True, False, None),  # killed by a signal
    ],
)
def test_script_exit_codes(code: int, dynamic: bool, ok: bool, weight: int | None) -> None:
    result = script_result(code, dynamic_weight=dynamic)
    assert (result.ok, result.weight) == (ok, weight)


def test_script_result_details() -> None:
    assert script_result(12, dynamic_weight=True) == ProbeResult(
        ok=True, detail="exit status 12: weight 10", weight=10
    )
    assert script_result(-15, dynamic_weight=False).detail == "killed by signal 15"


# ---------------------------------------------------------------------- real servers


@pytest.mark.parametrize(
    ("st", "dynamic", "weight"),
    [
        (UP, None, 5),
        (UP, 20, 20),  # misc_dynamic replaces the configured weight
        (UP, 0, 0),
        (DOWN, None, None),  # out of the pool
        (DOWN, 20, None),
        (UNKNOWN, None, 5),  # keepalived adds servers at start-up (no alpha)
        (UNKNOWN, 20, 5),
    ],
)
def test_real_server_weight(st: CheckState, dynamic: int | None, weight: int | None) -> None:
    assert real_server_weight(5, st, dynamic) == weight


# ---------------------------------------------------------------------- quorum


def test_quorum_start_up_uses_the_gain_threshold() -> None:
    assert quorum_up([3, 2], quorum=4, hysteresis=1, previous=None)  # 5 >= 4 + 1
    assert not quorum_up([3, 1], quorum=4, hysteresis=1, previous=None)  # 4 < 5


def test_quorum_hysteresis_walk() -> None:
    quorum, hysteresis = 4, 1
    up: bool | None = None
    seen = []
    for total in [4, 5, 4, 3, 2, 3, 4, 5]:
        up = quorum_up([total], quorum, hysteresis, up)
        seen.append(up)
    # gain at >= 5, keep down to 3, lose below 3, stay down until 5 again
    assert seen == [False, True, True, True, False, False, False, True]


def test_quorum_is_lost_at_zero_even_when_the_threshold_is_not_positive() -> None:
    assert quorum_up([1], quorum=1, hysteresis=2, previous=True)  # 1 >= -1
    assert not quorum_up([], quorum=1, hysteresis=2, previous=True)  # sum 0: lost
    assert not quorum_up([0, 0], quorum=1, hysteresis=2, previous=True)


def test_quorum_without_hysteresis() -> None:
    assert quorum_up([1], quorum=1, hysteresis=0, previous=False)
    assert not quorum_up([0], quorum=1, hysteresis=0, previous=True)


def test_contributions_say_what_each_tracker_adds() -> None:
    """Status shows these terms ("check nginx down: -60"): they come from the arithmetic."""
    trackers = [
        state("check nginx", -60, DOWN),
        state("interface eth1", -50, UP),
        state("check bonus", 10, UP),
        state("check gate", 0, DOWN),
        value("check maintenance", -1, 7),
        state("check new", -30, UNKNOWN),
    ]
    result = effective_priority(150, trackers)
    assert [(c.tracker.name, c.points, c.fault) for c in result.contributions] == [
        ("check nginx", -60, False),
        ("interface eth1", 0, False),
        ("check bonus", 10, False),
        ("check gate", 0, True),
        ("check maintenance", -7, False),
        ("check new", 0, False),
    ]
    assert [c.tracker for c in result.contributions] == trackers
    # the terms add up to the priority (here inside 1..254, so unclamped)
    assert result.priority == 150 + sum(c.points for c in result.contributions) == 93
    assert result.faults == ("check gate",)


def test_contributions_before_the_clamp() -> None:
    result = effective_priority(100, [state("a", -200, DOWN)])
    assert result.priority == 1
    assert [c.points for c in result.contributions] == [-200]
