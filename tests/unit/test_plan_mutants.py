"""The plan's rules that mutation testing showed no test would notice breaking.

Each test names the rule it protects; `scripts/mutation reconciler/plan` runs the
mutants against them.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address

from reconciler.config.load import load_text
from reconciler.model.checks import Check, TcpProbe
from reconciler.model.cluster import Cluster
from reconciler.model.common import Family
from reconciler.model.ipvs import Protocol, RealServer, ServiceKey
from reconciler.plan.diff import Action, FieldChange, Step, diff, field_changes, order
from reconciler.plan.planner import plan_revision
from reconciler.testing.clusters import Node, cluster_head

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


# ---------------------------------------------------------------- planner: node settings and checks


def _cluster(
    body: str = "", *, address: str = "192.0.2.1", address6: str = "2001:db8::1"
) -> Cluster:
    head = cluster_head((Node("a", address, address6=address6), Node("b", "192.0.2.2")))
    return load_text(head + textwrap.dedent(body), "t.yaml").cluster


def test_a_node_address_change_is_planned_on_that_node() -> None:
    """The node's own addresses are its advert sources: a new one is a node change."""
    old = _cluster()
    new = _cluster(address="192.0.2.9", address6="2001:db8::9")
    (step,) = plan_revision("a", old, new, source="old", target="new").steps
    assert (step.action, step.kind) == (Action.UPDATE, "node")
    assert step.changes == (
        FieldChange("address", IPv4Address("192.0.2.1"), IPv4Address("192.0.2.9")),
        FieldChange("address6", IPv6Address("2001:db8::1"), IPv6Address("2001:db8::9")),
    )


def _checks(app: str = "1s", web: str = "1s", track: bool = True) -> Cluster:
    """`app` is tracked by instance `front` and checks two real servers; `web` only
    checks one real server (so it is no resource of its own, only embedded)."""
    tracking = "track: [{check: app, weight: 10}]" if track else ""
    return _cluster(
        f"""\
        checks:
          app: {{tcp: {{host: 198.51.100.10, port: 8080}}, interval: {app}}}
          web: {{tcp: {{}}, interval: {web}}}
        vrrp:
          instances:
            front:
              vrid: 51
              priority: {{a: 150, b: 100}}
              vips: [192.0.2.100/24]
              {tracking}
        virtual_services:
          app:
            address: 192.0.2.100
            port: 80
            check: app
            real_servers:
              - {{address: 198.51.100.10, port: 8080}}
              - {{address: 198.51.100.11, port: 8080}}
          web:
            address: 192.0.2.100
            port: 443
            check: web
            real_servers: [{{address: 198.51.100.12, port: 8443}}]
        """
    )


APP_SERVERS = (
    "ipvs_dest tcp/192.0.2.100:80 -> 198.51.100.10:8080",
    "ipvs_dest tcp/192.0.2.100:80 -> 198.51.100.11:8080",
)


def test_a_tracked_check_used_by_real_servers_is_one_step_listing_every_user() -> None:
    """The check's own step (it is tracked) takes the real servers folded into it: one
    step, its trackers first, then its servers; a check only real servers use gets its
    own step with both versions."""
    old, new = _checks(), _checks(app="2s", web="3s")
    steps = plan_revision("a", old, new, source="old", target="new").steps
    old_app, new_app = old.for_node("a").checks[0], new.for_node("a").checks[0]
    assert [(s.action, s.kind, s.key) for s in steps] == [
        (Action.UPDATE, "check", ("app",)),
        (Action.UPDATE, "check", ("web",)),
    ]
    app, web = steps
    assert (app.before, app.after) == (old_app, new_app)
    assert app.used_by == ("vrrp_instance front (track)", *APP_SERVERS)
    assert app.changes == (FieldChange("interval", timedelta(seconds=1), timedelta(seconds=2)),)
    old_web, new_web = (
        next(rs.check for rs in c.for_node("a").real_servers if rs.port == 8443) for c in (old, new)
    )
    assert (web.before, web.after) == (old_web, new_web)
    assert web.used_by == ("ipvs_dest tcp/192.0.2.100:443 -> 198.51.100.12:8443",)
    assert web.changes == (FieldChange("interval", timedelta(seconds=1), timedelta(seconds=3)),)


def test_only_a_changed_check_lists_its_users() -> None:
    """A check that starts being tracked is created: its step says what it is, and the
    instance's own update names the new tracker; nothing is `used by` a new check."""
    steps = plan_revision("a", _checks(track=False), _checks(), source="old", target="new").steps
    created = [s for s in steps if s.action is Action.CREATE]
    assert [(s.kind, s.key, s.used_by) for s in created] == [("check", ("app",), ())]


def test_a_check_newly_tracked_and_changed_keeps_its_change_for_the_real_servers() -> None:
    """Created on the node for its new tracker, and its edit is still shown once, on an
    update step naming the real servers it reaches (not folded into the creation)."""
    old, new = _checks(track=False), _checks(app="2s")
    steps = plan_revision("a", old, new, source="old", target="new").steps
    checks = [(s.action, s.used_by, s.changes) for s in steps if s.kind == "check"]
    assert checks == [
        (Action.CREATE, (), ()),
        (
            Action.UPDATE,
            ("vrrp_instance front (track)", *APP_SERVERS),
            (FieldChange("interval", timedelta(seconds=1), timedelta(seconds=2)),),
        ),
    ]
