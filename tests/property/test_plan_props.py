"""Properties of the pure diff and of durations."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import IPv4Address

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model.common import Family, Key
from reconciler.model.durations import format_duration, parse_duration
from reconciler.model.ipvs import Protocol, ServiceKey
from reconciler.model.kernel import LiveDest, LiveService
from reconciler.plan.diff import Action, diff

SVC = ServiceKey(Family.IPV4, Protocol.TCP, IPv4Address("192.0.2.100"), 80)

dests = st.builds(
    LiveDest,
    service=st.just(SVC),
    address=st.integers(1, 6).map(lambda i: IPv4Address(f"198.51.100.{i}")),
    port=st.sampled_from([80, 8080]),
    weight=st.integers(0, 3),
)
services = st.builds(
    LiveService,
    service=st.integers(1, 3).map(
        lambda i: ServiceKey(Family.IPV4, Protocol.TCP, IPv4Address("192.0.2.100"), i)
    ),
    scheduler=st.sampled_from(["rr", "wrr", "wlc"]),
)
resources = st.lists(st.one_of(dests, services), max_size=12)


def _apply(observed: list[LiveDest | LiveService], steps: list) -> dict[tuple[str, Key], object]:  # type: ignore[type-arg]
    state = {(r.kind, r.key): r for r in observed}
    for s in steps:
        ident = (s.kind, s.key)
        if s.action in (Action.CREATE, Action.UPDATE):
            state[ident] = s.after
        elif s.action is Action.DELETE:
            del state[ident]
    return state


@given(resources, resources, st.data())
def test_applying_a_plan_converges_and_spares_foreign_objects(
    desired: list[LiveDest | LiveService],
    observed: list[LiveDest | LiveService],
    data: st.DataObject,
) -> None:
    observed_idx = {(r.kind, r.key): r for r in observed}
    owned = set(data.draw(st.sets(st.sampled_from(sorted(observed_idx) or [("x", ())]))))
    steps = diff(desired, observed, owned)
    after = _apply(list(observed_idx.values()), steps)
    want = {(r.kind, r.key): r for r in desired}
    for ident, r in want.items():
        if ident in observed_idx and ident not in owned:
            assert after[ident] == observed_idx[ident]  # foreign: untouched
        else:
            assert after[ident] == r
    for ident, r in after.items():
        if ident not in want:
            assert ident not in owned and observed_idx[ident] == r  # only foreign leftovers
    # Converged: a second plan has nothing to apply.
    owned_after = owned | {i for i in want if i not in observed_idx}
    again = diff(desired, list(after.values()), owned_after)  # type: ignore[arg-type]
    assert all(s.action is Action.CONFLICT for s in again)


@given(st.integers(0, 10**12))
def test_duration_format_round_trips(micros: int) -> None:
    d = timedelta(microseconds=micros)
    text = format_duration(d)
    if not text.endswith("us"):
        assert parse_duration(text) == d
