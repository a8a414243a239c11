"""Rise/fall/retry policy: results in, transitions and retry requests out (no clock, no I/O)."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address

import pytest

from reconciler.health.policy import (
    CheckPolicy,
    CheckTransition,
    PolicyStep,
    ProbeResult,
    target_label,
)
from reconciler.model.checks import Check, FileProbe, TcpProbe
from reconciler.model.common import CheckState

UP, DOWN, UNKNOWN = CheckState.UP, CheckState.DOWN, CheckState.UNKNOWN
OK = ProbeResult(ok=True, detail="ok")
FAIL = ProbeResult(ok=False, detail="refused")


def make_check(**kwargs: object) -> Check:
    probe = TcpProbe(IPv4Address("192.0.2.1"), 80)
    return Check(name="web", probe=probe, **kwargs)  # type: ignore[arg-type]


def states_after(policy: CheckPolicy, results: str) -> list[CheckState]:
    """Feed 'o'/'x' results; the state after each one."""
    out = []
    for r in results:
        policy.observe(OK if r == "o" else FAIL)
        out.append(policy.state)
    return out


def transitions(policy: CheckPolicy, results: str) -> list[tuple[int, CheckState, CheckState]]:
    """Feed 'o'/'x' results; (index, old, new) of each transition."""
    out = []
    for i, r in enumerate(results):
        step = policy.observe(OK if r == "o" else FAIL)
        if step.transition is not None:
            out.append((i, step.transition.old, step.transition.new))
    return out


def test_unknown_first_result_decides_either_way() -> None:
    # keepalived's init state: "one success is enough", and one failure is a fault.
    up = CheckPolicy(make_check(rise=3, fall=3))
    assert transitions(up, "o") == [(0, UNKNOWN, UP)]
    down = CheckPolicy(make_check(rise=3, fall=3))
    assert transitions(down, "x") == [(0, UNKNOWN, DOWN)]


def test_rise_and_fall_need_consecutive_results() -> None:
    policy = CheckPolicy(make_check(rise=3, fall=2))
    #                    0123456789012
    results = "oxoxxooxooo"
    assert transitions(policy, results) == [
        (0, UNKNOWN, UP),
        (4, UP, DOWN),  # x at 3 and 4: two in a row
        (10, DOWN, UP),  # o at 8, 9, 10 (the o at 5, 6 was broken by the x at 7)
    ]


def test_fall_1_rise_1_follows_every_result() -> None:
    policy = CheckPolicy(make_check())
    assert states_after(policy, "oxxoo") == [UP, DOWN, DOWN, UP, UP]


def test_initial_down_needs_rise_successes() -> None:
    # keepalived alpha / init_fail: start down, rise successes to come up.
    policy = CheckPolicy(make_check(rise=2, fall=5, initial=DOWN))
    assert policy.state is DOWN
    assert transitions(policy, "oxoo") == [(3, DOWN, UP)]


def test_initial_up_needs_fall_failures() -> None:
    policy = CheckPolicy(make_check(rise=2, fall=3, initial=UP))
    assert transitions(policy, "xxoxxx") == [(5, UP, DOWN)]


def test_results_in_the_current_direction_do_not_transition() -> None:
    policy = CheckPolicy(make_check(rise=2, fall=2, initial=UP))
    assert transitions(policy, "oooooo") == []
    policy = CheckPolicy(make_check(rise=2, fall=2, initial=DOWN))
    assert transitions(policy, "xxxxxx") == []


def test_transition_carries_check_target_and_reason() -> None:
    policy = CheckPolicy(make_check(rise=1, fall=2, initial=UP), target="192.0.2.1:80")
    assert policy.observe(FAIL) == PolicyStep()
    step = policy.observe(ProbeResult(ok=False, detail="connect: connection refused"))
    assert step.transition == CheckTransition(
        check="web",
        target="192.0.2.1:80",
        old=UP,
        new=DOWN,
        reason="2 consecutive failures (fall 2): connect: connection refused",
    )
    assert step.transition.state_changed
    assert policy.last_detail == "connect: connection refused"


def test_retries_delay_the_count_and_ask_for_a_retry() -> None:
    delay = timedelta(milliseconds=250)
    policy = CheckPolicy(make_check(retries=2, retry_delay=delay, fall=1, initial=UP))
    assert policy.observe(FAIL) == PolicyStep(retry_after=delay)
    assert policy.retries_used == 1
    assert policy.observe(FAIL) == PolicyStep(retry_after=delay)
    assert policy.state is UP
    step = policy.observe(FAIL)  # third attempt fails: now it counts, once
    assert step.counted and step.transition is not None
    assert step.transition.new is DOWN
    assert step.transition.reason.startswith("1 consecutive failure (fall 1, each after 2 retries)")
    assert policy.retries_used == 0


def test_a_success_during_retries_resets_the_budget() -> None:
    delay = timedelta(seconds=1)
    policy = CheckPolicy(make_check(retries=1, retry_delay=delay, fall=1, initial=UP))
    assert policy.observe(FAIL).retry_after == delay
    assert policy.observe(OK) == PolicyStep()
    assert policy.observe(FAIL).retry_after == delay  # a full budget again
    assert policy.observe(FAIL).transition is not None


def test_retries_count_each_failure_once_toward_fall() -> None:
    policy = CheckPolicy(make_check(retries=1, fall=2, initial=UP))
    kinds = []
    for _ in range(4):
        step = policy.observe(FAIL)
        kinds.append("retry" if step.retry_after else ("down" if step.transition else "count"))
    assert kinds == ["retry", "count", "retry", "down"]


def test_successes_are_never_retried() -> None:
    policy = CheckPolicy(make_check(retries=3, rise=1, initial=DOWN))
    step = policy.observe(OK)
    assert step.retry_after is None and step.transition is not None


def test_value_changes_while_up_are_published() -> None:
    check = Check(name="prio", probe=FileProbe("/run/prio"))
    policy = CheckPolicy(check)
    first = policy.observe(ProbeResult(ok=True, detail="5", weight=5)).transition
    assert first is not None and (first.old, first.new, first.weight) == (UNKNOWN, UP, 5)
    assert policy.observe(ProbeResult(ok=True, detail="5", weight=5)).transition is None
    changed = policy.observe(ProbeResult(ok=True, detail="7", weight=7)).transition
    assert changed is not None
    assert (changed.old, changed.new, changed.weight) == (UP, UP, 7)
    assert not changed.state_changed
    assert changed.reason == "value 5 -> 7: 7"


def test_value_is_kept_through_a_failure_and_reported_on_recovery() -> None:
    check = Check(name="prio", probe=FileProbe("/run/prio"), rise=2)
    policy = CheckPolicy(check)
    policy.observe(ProbeResult(ok=True, detail="", weight=3))
    down = policy.observe(FAIL).transition
    assert down is not None and down.new is DOWN and down.weight == 3
    assert policy.observe(ProbeResult(ok=True, detail="", weight=4)).transition is None
    up = policy.observe(ProbeResult(ok=True, detail="", weight=6)).transition
    assert up is not None and (up.new, up.weight) == (UP, 6)


def test_a_result_without_a_value_keeps_the_last_one() -> None:
    # Exit 0 of a dynamic-weight script: the configured weight, no new number.
    policy = CheckPolicy(make_check())
    policy.observe(ProbeResult(ok=True, detail="", weight=10))
    assert policy.observe(OK).transition is None
    assert policy.weight == 10


def test_carried_over_state_and_weight() -> None:
    policy = CheckPolicy(make_check(rise=2, fall=2), state=UP, weight=4)
    assert (policy.state, policy.weight) == (UP, 4)
    assert transitions(policy, "xx") == [(1, UP, DOWN)]


@pytest.mark.parametrize("field", ["rise", "fall"])
def test_rejects_impossible_counts(field: str) -> None:
    with pytest.raises(ValueError, match="rise and fall"):
        CheckPolicy(make_check(**{field: 0}))


@pytest.mark.parametrize(
    ("host", "port", "label"),
    [
        (IPv4Address("192.0.2.1"), 80, "192.0.2.1:80"),
        (IPv6Address("2001:db8::1"), 443, "[2001:db8::1]:443"),
        (IPv6Address("2001:db8::1"), None, "2001:db8::1"),
        (IPv4Address("192.0.2.1"), None, "192.0.2.1"),
        (None, None, "-"),
        (None, 53, ":53"),
    ],
)
def test_target_label(host: IPv4Address | IPv6Address | None, port: int | None, label: str) -> None:
    assert target_label(host, port) == label


def test_last_error_is_the_last_failure_and_survives_successes() -> None:
    policy = CheckPolicy(make_check(retries=1, retry_delay=timedelta(milliseconds=10)))
    assert policy.last_error is None
    policy.observe(OK)
    assert policy.last_error is None
    policy.observe(ProbeResult(ok=False, detail="connect: refused"))  # retried, not counted
    assert policy.last_error == "connect: refused"
    policy.observe(ProbeResult(ok=False, detail="timed out after 1s"))
    policy.observe(OK)
    assert (policy.last_error, policy.last_detail) == ("timed out after 1s", "ok")


def test_carried_over_last_error() -> None:
    policy = CheckPolicy(make_check(), state=DOWN, last_error="HTTP 503")
    assert (policy.state, policy.last_error) == (DOWN, "HTTP 503")


def _reasons(policy: CheckPolicy, results: list[ProbeResult]) -> list[str]:
    return [t.reason for r in results if (t := policy.observe(r).transition) is not None]


def test_a_recovery_says_how_many_successes_rise_needed() -> None:
    """keepalived's rise: the reason names the count of consecutive successes (singular
    for one) and the rise it met, then the last probe's detail."""
    http_ok = ProbeResult(ok=True, detail="HTTP 200")
    policy = CheckPolicy(make_check(rise=2, fall=1, initial=DOWN))
    assert _reasons(policy, [http_ok, http_ok]) == ["2 consecutive successes (rise 2): HTTP 200"]
    policy = CheckPolicy(make_check(rise=1, fall=1, initial=DOWN))
    assert _reasons(policy, [http_ok]) == ["1 consecutive success (rise 1): HTTP 200"]
    policy = CheckPolicy(make_check(rise=1, fall=1, initial=UP))
    assert _reasons(policy, [FAIL]) == ["1 consecutive failure (fall 1): refused"]


def test_nothing_observed_yet_has_an_empty_detail() -> None:
    assert CheckPolicy(make_check()).last_detail == ""
