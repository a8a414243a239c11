"""The plan's rules that mutation testing showed no test would notice breaking.

Each test names the rule it protects; `scripts/mutation reconciler/plan` runs the
mutants against them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from ipaddress import IPv4Address

from reconciler.model.checks import Check, TcpProbe
from reconciler.model.common import Family
from reconciler.model.ipvs import Protocol, RealServer, ServiceKey
from reconciler.plan.diff import Action, FieldChange, Step, diff, field_changes, order

VIP = IPv4Address("192.0.2.200")
SERVICE = ServiceKey(Family.IPV4, Protocol.TCP, VIP, 80)


def _check(name: str, interval_s: float = 1.0) -> Check:
    return Check(name, TcpProbe(None, None), interval=timedelta(seconds=interval_s))


def _rs(port: int, *, weight: int = 1, check: Check | None = None) -> RealServer:
    return RealServer(SERVICE, IPv4Address("198.51.100.10"), port, weight=weight, check=check)


# ---------------------------------------------------------------- diff: order of a plan


def test_conflicts_come_before_every_step_even_node_creation() -> None:
    """The reader must see what will not be applied before what will: a conflict sorts
    ahead of the first phase (creating the node's settings)."""
    node_first = Step(Action.CREATE, "node", ("director1",), None, _rs(1))
    clash = Step(Action.CONFLICT, "ipvs_dest", ("x",), _rs(2), _rs(2))
    assert order([node_first, clash]) == [clash, node_first]


def test_a_kind_without_a_phase_is_applied_after_every_known_phase() -> None:
    """Unknown (kind, action) pairs go last rather than failing to sort."""
    unknown = Step(Action.CREATE, "route", ("r",), None, _rs(1))
    last_known = Step(Action.DELETE, "node", ("director1",), _rs(2), None)
    first_known = Step(Action.CREATE, "node", ("director1",), None, _rs(3))
    assert order([unknown, last_known, first_known]) == [first_known, last_known, unknown]


# ---------------------------------------------------------------- diff: changed fields


def test_a_real_server_switching_to_another_check_is_one_change_of_the_whole_check() -> None:
    """A named resource is identified by its name: check `a` -> `b` is another check, not
    an edit of `a`'s name and interval (field_changes' documented rule)."""
    before = _rs(80, check=_check("a", 1.0))
    after = _rs(80, check=_check("b", 2.0))
    assert field_changes(before, after) == (FieldChange("check", before.check, after.check),)


def test_the_same_check_edited_is_compared_field_by_field() -> None:
    before = _rs(80, check=_check("a", 1.0))
    after = _rs(80, check=_check("a", 2.0))
    assert field_changes(before, after) == (
        FieldChange("check.interval", timedelta(seconds=1), timedelta(seconds=2)),
    )


def test_two_unrelated_resources_differ_as_one_change_of_the_whole_object() -> None:
    """At the top level the whole object has the empty path."""
    a, b = _check("a"), _check("b")
    assert field_changes(a, b) == (FieldChange("", a, b),)


# ---------------------------------------------------------------- diff: ownership


def test_a_foreign_object_equal_to_ours_is_reported_with_both_versions() -> None:
    """Never claimed, never removed: the conflict carries the observed and the desired
    object, so status can show the two side by side."""
    theirs = _rs(9000, weight=5)
    ours = replace(theirs)
    assert diff([ours], [theirs], owned=set()) == [
        Step(Action.CONFLICT, theirs.kind, theirs.key, theirs, ours)
    ]
