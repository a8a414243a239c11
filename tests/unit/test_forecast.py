"""Playbooks for the failover forecast: two revisions in, expected masters and VIP moves out."""

from __future__ import annotations

import textwrap

from reconciler.config.load import load_text
from reconciler.model.cluster import Cluster
from reconciler.plan.forecast import (
    Candidate,
    Drain,
    RemovedService,
    Risk,
    VipMove,
    forecast,
    forecast_instance,
)
from reconciler.plan.planner import plan_revision
from reconciler.testing.clusters import cluster_head, nodes

HEAD = cluster_head(nodes(("a", "192.0.2.1"), ("b", "192.0.2.2"), ("c", "192.0.2.3")))


def cluster(body: str) -> Cluster:
    return load_text(HEAD + textwrap.dedent(body), "t.yaml").cluster


WEB = textwrap.dedent(
    """\
    checks:
      up: {tcp: {host: 192.0.2.50, port: 80}}
    vrrp:
      instances:
        web:
          SETTINGS
    """
)


def web(
    settings: str = "priority: {a: 150, b: 100}", vrid: int = 51, vips: str = "192.0.2.100/24"
) -> Cluster:
    """One instance `web`; `settings` are its lines (later lines indented by 6)."""
    lines = f"vrid: {vrid}\n      vips: [{vips}]\n      {settings}"
    return load_text(HEAD + WEB.replace("SETTINGS", lines), "t.yaml").cluster


def test_the_highest_priority_is_master_and_a_priority_change_moves_the_vip() -> None:
    f = forecast_instance(web(), web("priority: {a: 90, b: 100}"), "web")
    assert (f.master_before, f.master_after) == ("a", "b")
    assert f.moves == (VipMove("192.0.2.100/24", "web", "a", "b"),)
    assert f.ranking_after == (Candidate("b", 100, "192.0.2.2"), Candidate("a", 90, "192.0.2.1"))
    assert f.election_changes and not f.restarts and not f.notes


def test_equal_priorities_are_won_by_the_higher_primary_address() -> None:
    f = forecast_instance(None, web("priority: {a: 100, b: 100}"), "web")
    assert f.master_after == "b"  # 192.0.2.2 > 192.0.2.1 (RFC 5798 6.4.3)
    assert f.moves == (VipMove("192.0.2.100/24", "web", None, "b"),)


def test_a_priority_change_that_keeps_the_order_moves_nothing() -> None:
    f = forecast_instance(web(), web("priority: {a: 200, b: 100}"), "web")
    assert (f.master_before, f.master_after, f.moves) == ("a", "a", ())
    assert not f.election_changes


def test_with_preempt_off_the_running_master_keeps_the_vip_and_the_plan_says_so() -> None:
    f = forecast_instance(web(), web("priority: {a: 90, b: 100}\n      preempt: false"), "web")
    assert (f.master_before, f.master_after, f.moves) == ("a", "a", ())
    assert f.election_changes  # b now takes over first when a fails
    assert f.notes == (
        "preempt is off: a keeps the VIPs while it is up, although b has the higher priority "
        "(100); b takes over only when a fails",
    )


def test_an_address_owner_takes_the_vip_even_with_preempt_off() -> None:
    owner = cluster(
        """\
        vrrp:
          instances:
            web:
              vrid: 51
              vips: [192.0.2.2/24]
              preempt: false
              priority: {a: 150, b: 255}
        """
    )
    f = forecast_instance(web(), owner, "web")
    assert (f.master_before, f.master_after) == ("a", "b")
    assert f.ranking_after[0] == Candidate("b", 255, "192.0.2.2")


def test_a_restart_on_the_master_moves_the_vip_away_and_back() -> None:
    f = forecast_instance(web(), web(vrid=52), "web")
    assert f.restarts == (("a", ("vrid",)), ("b", ("vrid",)))
    assert f.moves == (
        VipMove("192.0.2.100/24", "web", "a", "a", via="b", why="web restarts on a"),
    )


def test_a_restarted_master_with_preempt_off_leaves_the_vip_where_it_went() -> None:
    f = forecast_instance(
        web(), web("priority: {a: 150, b: 100}\n      interface: eth1\n      preempt: false"), "web"
    )
    assert (f.master_before, f.master_after) == ("a", "b")
    assert f.moves == (VipMove("192.0.2.100/24", "web", "a", "b"),)
    assert f.notes == ("preempt is off: after its restart a does not take the VIPs back from b",)


def test_healthy_tracking_adds_positive_weights_only() -> None:
    tracked = "priority: {a: 100, b: 90}\n      track: [{check: up, weight: 20}]"
    f = forecast_instance(None, web(tracked), "web")
    assert [c.priority for c in f.ranking_after] == [120, 110]
    down_only = "priority: {a: 100, b: 90}\n      track: [{check: up, weight: -20}]"
    assert [c.priority for c in forecast_instance(None, web(down_only), "web").ranking_after] == [
        100,
        90,
    ]


def test_vips_added_and_removed_stay_on_the_master() -> None:
    more = web(vips="192.0.2.100/24, 192.0.2.101/24")
    assert forecast_instance(web(), more, "web").moves == (
        VipMove("192.0.2.101/24", "web", None, "a"),
    )
    assert forecast_instance(more, web(), "web").moves == (
        VipMove("192.0.2.101/24", "web", "a", None),
    )
    assert forecast_instance(web(), None, "web").moves == (
        VipMove("192.0.2.100/24", "web", "a", None),
    )


def test_a_node_joining_with_a_higher_priority_preempts() -> None:
    f = forecast_instance(web(), web("priority: {a: 150, b: 100, c: 200}"), "web")
    assert (f.master_before, f.master_after) == ("a", "c")


def _services(servers: str, extra: str = "") -> Cluster:
    return cluster(
        f"""\
        virtual_services:
          web:
            address: 192.0.2.100
            port: 80
            real_servers: [{servers}]
          dns:
            address: 192.0.2.100
            port: 53
            protocol: udp
            real_servers: [{servers}]
        {extra}"""
    )


def test_removed_tcp_real_servers_drain_and_removed_services_are_listed() -> None:
    old = _services("{address: 198.51.100.1}, {address: 198.51.100.2}")
    new = _services("{address: 198.51.100.1}")
    plans = [plan_revision(n, old, new, source="a", target="b") for n in ("a", "b")]
    fc = forecast(old, new, plans)
    # UDP servers go at once; only the TCP one drains, on every node.
    assert fc.drains == (
        Drain("a", "tcp/192.0.2.100:80 -> 198.51.100.2:80"),
        Drain("b", "tcp/192.0.2.100:80 -> 198.51.100.2:80"),
    )
    assert fc.risks == (Risk.DRAIN,)
    gone = cluster("virtual_services: {}\n")
    plans = [plan_revision("a", new, gone, source="a", target="b")]
    fc = forecast(new, gone, plans)
    assert fc.removed_services == (
        RemovedService("a", "tcp/192.0.2.100:80 (web)"),
        RemovedService("a", "udp/192.0.2.100:53 (dns)"),
    )
    assert fc.risks == (Risk.DRAIN, Risk.SERVICE_REMOVED)


def _group(front_vrid: int = 61, back_priority: str = "{a: 150, b: 100}") -> Cluster:
    return cluster(
        f"""\
        vrrp:
          instances:
            front:
              vrid: {front_vrid}
              priority: {{a: 150, b: 100}}
              vips: [192.0.2.100/24]
            back:
              vrid: 62
              priority: {back_priority}
              vips: [192.0.2.200/24]
          sync_groups:
            g: {{members: [front, back]}}
        """
    )


def test_a_sync_group_follows_a_member_that_restarts_on_the_master() -> None:
    old, new = _group(), _group(front_vrid=63)
    fc = forecast(old, new, [])
    assert fc.moves == (
        VipMove(
            "192.0.2.200/24",
            "back",
            "a",
            "a",
            via="b",
            why="front restarts on a, and sync group g follows",
        ),
        VipMove("192.0.2.100/24", "front", "a", "a", via="b", why="front restarts on a"),
    )
    assert fc.risks == (Risk.VIP_MOVE, Risk.RESTART)


def test_a_sync_group_whose_members_expect_different_masters_is_flagged() -> None:
    fc = forecast(_group(), _group(back_priority="{a: 100, b: 150}"), [])
    note = (
        "sync group g: its instances expect different masters (back on b, front on a); the "
        "group follows whichever leaves MASTER first, so the VIPs may all end on either node"
    )
    assert [f.notes for f in fc.instances] == [(note,), (note,)]


def test_a_restart_on_the_master_that_also_loses_the_election_moves_the_vip_once() -> None:
    f = forecast_instance(web(), web("priority: {a: 90, b: 100}", vrid=52), "web")
    assert f.moves == (VipMove("192.0.2.100/24", "web", "a", "b"),)


def test_a_restart_with_no_other_member_says_the_vips_blink() -> None:
    f = forecast_instance(web("priority: {a: 150}"), web("priority: {a: 150}", vrid=52), "web")
    assert (f.moves, f.restarts) == ((), (("a", ("vrid",)),))
    assert f.notes == ("no other node runs it: the VIPs leave a during the restart and come back",)


# ---------------------------------------------------------------- election edges


def test_a_tracker_of_weight_1_adds_1() -> None:
    tracked = "priority: {a: 100, b: 90}\n      track: [{check: up, weight: 1}]"
    assert [c.priority for c in forecast_instance(None, web(tracked), "web").ranking_after] == [
        101,
        91,
    ]


def test_a_tie_is_won_by_the_higher_address_not_the_node_name() -> None:
    """RFC 5798 6.4.3: between equal priorities the higher primary IP address wins."""
    swapped = load_text(
        HEAD.replace("192.0.2.1,", "192.0.2.9,")
        + WEB.replace(
            "SETTINGS", "vrid: 51\n      vips: [192.0.2.100/24]\n      priority: {a: 100, b: 100}"
        ),
        "t.yaml",
    ).cluster
    f = forecast_instance(None, swapped, "web")
    assert [c.node for c in f.ranking_after] == ["a", "b"]
    assert f.notes == ()  # the addresses are in the file: the forecast is sure


def _v6(priority: str) -> Cluster:
    return web(f"priority: {priority}", vips="2001:db8::100/64")


def test_an_ipv6_tie_says_either_node_may_become_master() -> None:
    """IPv6 adverts come from link-local addresses the file does not give, so a tie
    cannot be decided from it: the forecast picks by name and says so."""
    f = forecast_instance(None, _v6("{a: 100, b: 100}"), "web")
    assert f.ranking_after == (Candidate("b", 100, None), Candidate("a", 100, None))
    assert f.notes == (
        "b and a have the same priority and the tie is decided by their primary addresses, "
        "which the file does not give (IPv6 link-local): either may become master",
    )
    assert forecast_instance(None, _v6("{a: 100, b: 90}"), "web").notes == ()
    three = forecast_instance(None, _v6("{a: 100, b: 100, c: 100}"), "web")
    assert three.notes[0].startswith("c and b have the same priority")


def test_an_address_owner_restarting_takes_its_vips_back_even_with_preempt_off() -> None:
    """RFC 5798 6.4.1: priority 255 becomes master at once, preempt or not."""
    owner = "priority: {a: 255, b: 100}\n      preempt: false"
    f = forecast_instance(
        web(owner, vips="192.0.2.1/24"), web(owner, vips="192.0.2.1/24", vrid=52), "web"
    )
    assert (f.master_before, f.master_after) == ("a", "a")
    assert f.moves == (VipMove("192.0.2.1/24", "web", "a", "a", via="b", why="web restarts on a"),)


def test_vips_added_or_removed_during_a_restart_do_not_pass_through_the_backup() -> None:
    """Only a VIP held before and after goes a -> b -> a; one that appears or goes away
    simply does so on the master."""
    before = web(vips="192.0.2.100/24, 192.0.2.101/24")
    after = web(vips="192.0.2.100/24, 192.0.2.102/24", vrid=52)
    assert forecast_instance(before, after, "web").moves == (
        VipMove("192.0.2.100/24", "web", "a", "a", via="b", why="web restarts on a"),
        VipMove("192.0.2.101/24", "web", "a", None),
        VipMove("192.0.2.102/24", "web", None, "a"),
    )


def test_a_cluster_file_removed_removes_every_vip_and_has_no_drain_timeout() -> None:
    fc = forecast(web(), None, [])
    assert fc.moves == (VipMove("192.0.2.100/24", "web", "a", None),)
    assert fc.drain_timeout is None


def test_a_real_server_removed_beside_other_changes_still_drains() -> None:
    """Every delete of a node's plan is read, whatever steps come before it."""
    old = _services("{address: 198.51.100.1}, {address: 198.51.100.2}")
    new = _services("{address: 198.51.100.1, weight: 5}, {address: 198.51.100.3}")
    fc = forecast(old, new, [plan_revision("a", old, new, source="a", target="b")])
    assert fc.drains == (Drain("a", "tcp/192.0.2.100:80 -> 198.51.100.2:80"),)


# ---------------------------------------------------------------- sync groups


def _three(alpha_vrid: int = 61, beta_vips: str = "[192.0.2.102/24]") -> Cluster:
    return cluster(
        f"""\
        vrrp:
          defaults:
            priority: {{a: 150, b: 100}}
          instances:
            alpha: {{vrid: {alpha_vrid}, vips: [192.0.2.101/24]}}
            beta: {{vrid: 62, vips: {beta_vips}}}
            gamma: {{vrid: 63, vips: [192.0.2.103/24]}}
          sync_groups:
            g: {{members: [alpha, beta, gamma]}}
        """
    )


def test_a_member_with_vip_changes_of_its_own_keeps_them_and_the_rest_follow() -> None:
    """alpha restarts on a: gamma follows it through b; beta, whose VIPs change in the
    same revision, shows its own changes."""
    old, new = _three(), _three(63 + 1, "[192.0.2.102/24, 192.0.2.104/24]")
    fc = forecast(old, new, [])
    why = "alpha restarts on a"
    assert fc.moves == (
        VipMove("192.0.2.101/24", "alpha", "a", "a", via="b", why=why),
        VipMove("192.0.2.104/24", "beta", None, "a"),
        VipMove(
            "192.0.2.103/24", "gamma", "a", "a", via="b", why=f"{why}, and sync group g follows"
        ),
    )
