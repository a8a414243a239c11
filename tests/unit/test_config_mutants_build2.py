"""Builder rules and defaults that no other test pinned: each test names the rule it
protects and asserts the located error (`FILE:LINE:COL: message`), the warning, or the
value in the built model that a change to config/build*.py would alter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import TWO_NODES_HEAD as HEAD

from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import Loaded, load_text
from reconciler.model.checks import HttpProbe, TlsOptions
from reconciler.model.vrrp import Hook


def _load(body: str, head: str = HEAD) -> Loaded:
    return load_text(head + body, "t.yaml")


def _errors(body: str, head: str = HEAD) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        _load(body, head)
    return [str(d) for d in caught.value.diagnostics]


def _warnings(body: str) -> list[str]:
    return [str(d) for d in _load(body).warnings]


# --- durations (build_context) -------------------------------------------------------


def test_a_duration_finer_than_a_microsecond_is_refused_at_its_value_and_only_there() -> None:
    # The pattern of the schema lets it through; the builder refuses it where it is
    # written, and goes on with 0s, which is within preempt_delay's 0s-1000s: one error.
    body = """vrrp:
  instances:
    v:
      vrid: 1
      vips: [192.0.2.1/24]
      priority: {a: 2, b: 1}
      preempt_delay: 0.0000001s
"""
    assert _errors(body) == [
        "t.yaml:13:22: vrrp.instances.v.preempt_delay: '0.0000001s' is finer than a microsecond"
    ]


# --- checks (build_checks) -----------------------------------------------------------

RS_CHECK = """virtual_services:
  w:
    address: 192.0.2.100
    port: 80
    real_servers:
      - address: 198.51.100.1
        check: {CHECK}
"""


def _rs_probe(check: str) -> object:
    cluster = _load(RS_CHECK.replace("{CHECK}", check)).cluster
    (server,) = cluster.for_node("a").real_servers
    assert server.check is not None
    return server.check.probe


def test_an_http_check_without_url_requests_slash_of_the_real_server() -> None:
    probe = _rs_probe("{http: {}}")
    assert isinstance(probe, HttpProbe)
    assert probe.url == "/"


def test_https_checks_verify_the_certificate_unless_told_not_to() -> None:
    probe = _rs_probe("{http: {url: /, tls: {sni: example.org}}}")
    assert isinstance(probe, HttpProbe)
    assert probe.tls == TlsOptions(verify=True, ca_file=None, sni="example.org")
    probe = _rs_probe("{http: {url: /, tls: {verify: false}}}")
    assert isinstance(probe, HttpProbe)
    assert probe.tls == TlsOptions(verify=False, ca_file=None, sni=None)


# --- VRRP instances (build_vrrp) -----------------------------------------------------

NO_ADDRESS_HEAD = """apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {address: 192.0.2.11, interface: eth0}
  b: {interface: eth0}
"""


def test_multicast_needs_no_member_address_even_with_unicast_false_written() -> None:
    # Only unicast adverts go to the members' addresses; `unicast: false` is multicast.
    body = """vrrp:
  instances:
    v: {vrid: 1, vips: [192.0.2.1/24], priority: {a: 2, b: 1}, unicast: false}
"""
    cluster = _load(body, NO_ADDRESS_HEAD).cluster
    for node in ("a", "b"):
        (inst,) = cluster.for_node(node).instances
        assert inst.unicast_peers == ()
    assert _errors(body.replace("false", "true"), NO_ADDRESS_HEAD) == [
        "t.yaml:9:73: vrrp.instances.v: unicast needs every member's address: "
        "nodes.b.address is not set"
    ]


@pytest.mark.parametrize("value", [True, False])
def test_unicast_source_check_is_kept_as_written(value: bool) -> None:
    body = f"""vrrp:
  instances:
    v: {{vrid: 1, vips: [192.0.2.1/24], priority: {{a: 2, b: 1}}, unicast: true,
        unicast_source_check: {str(value).lower()}}}
"""
    (inst,) = _load(body).cluster.for_node("a").instances
    assert inst.unicast_source_check is value


# --- IPVS (build_services) -----------------------------------------------------------


def test_every_service_on_a_dropped_vip_is_reported_after_one_that_is_not() -> None:
    # `plain` comes first on the node and is on no VIP; `web` is on a VIP of an
    # accept: false instance and must still be reported.
    body = """vrrp:
  instances:
    v: {vrid: 1, vips: [192.0.2.200/24], priority: {a: 2, b: 1}, accept: false}
virtual_services:
  plain:
    address: 192.0.2.10
    port: 80
    real_servers: [{address: 198.51.100.1}]
  web:
    address: 192.0.2.200
    port: 80
    real_servers: [{address: 198.51.100.1}]
"""
    assert _errors(body) == [
        "t.yaml:16:14: virtual_services.web: 192.0.2.200 is a VIP of instance 'v', which has "
        "accept: false: node a drops every packet to it, so this service would get no "
        "traffic (set accept: true)"
    ]


def test_port_0_is_accepted_with_persistence() -> None:
    # IPVS: a service on every port (port 0) must be persistent.
    body = """virtual_services:
  w:
    address: 192.0.2.100
    port: 0
    persistence: 60s
    real_servers: [{address: 198.51.100.1}]
"""
    (svc,) = _load(body).cluster.for_node("a").services
    assert svc.service.port == 0
    assert svc.persistence is not None
    assert svc.persistence.timeout == timedelta(seconds=60)
    assert _errors(body.replace("    persistence: 60s\n", "")) == [
        "t.yaml:10:11: virtual_services.w: port 0 (all ports) needs persistence, as in IPVS"
    ]


SORRY = """virtual_services:
  w:
    address: 192.0.2.100
    port: 80
    forwarding: {SERVICE}
    sorry_server: {SORRY}
    real_servers: [{address: 198.51.100.1}]
"""


def test_a_sorry_server_of_the_other_family_needs_tunnel_forwarding_of_its_own() -> None:
    # IPVS mixes families only for a tunnel destination; the sorry server's forwarding
    # is its own if written, else the service's.
    def sorry(service: str, endpoint: str) -> str:
        return SORRY.replace("{SERVICE}", service).replace("{SORRY}", endpoint)

    for service, endpoint in (
        ("tunnel", "{address: '2001:db8::9'}"),
        ("nat", "{address: '2001:db8::9', forwarding: tunnel}"),
    ):
        (svc,) = _load(sorry(service, endpoint)).cluster.for_node("a").services
        assert svc.sorry_server is not None
    assert _errors(sorry("tunnel", "{address: '2001:db8::9', forwarding: nat}")) == [
        "t.yaml:12:29: virtual_services.w.sorry_server.address: 2001:db8::9 is ipv6 but the "
        "service is ipv4; only tunnel forwarding can mix families"
    ]


def test_a_lower_threshold_alone_is_accepted() -> None:
    # lower_threshold is compared only with an upper_threshold that is set (0: no limit).
    body = """virtual_services:
  w:
    address: 192.0.2.100
    port: 80
    real_servers: [{address: 198.51.100.1, lower_threshold: 5}]
"""
    (server,) = _load(body).cluster.for_node("a").real_servers
    assert (server.lower_threshold, server.upper_threshold) == (5, 0)


RS_NOTIFY = """virtual_services:
  w:
    address: 192.0.2.100
    port: 80
    real_servers:
      - address: 198.51.100.1
        notify: {NOTIFY}
"""


def _rs_notify(notify: str) -> str:
    return RS_NOTIFY.replace("{NOTIFY}", notify)


def test_real_server_hooks_default_to_5s_and_nobody() -> None:
    body = _rs_notify("{up: [[/bin/up]], down: [{command: [/bin/down]}]}")
    (server,) = _load(body).cluster.for_node("a").real_servers
    assert server.notify_up == (Hook(("/bin/up",), timedelta(seconds=5), user="nobody"),)
    assert server.notify_down == (Hook(("/bin/down",), timedelta(seconds=5), user="nobody"),)


def test_real_server_hooks_run_as_root_are_warned_about() -> None:
    assert _warnings(_rs_notify("{user: root, up: [[/bin/up]]}")) == [
        "t.yaml:13:24: warning: virtual_services.w.real_servers[0].notify.user: these hooks "
        "are run as root: a mistake or a compromised program owns the node; prefer an "
        "unprivileged user (the default is nobody)"
    ]


def test_real_server_hooks_never_run_before_a_release() -> None:
    # before_release is for VRRP backup, fault and stop hooks: a real server releases no VIP.
    body = _rs_notify("{up: [{command: [/bin/up], before_release: true}]}")
    assert _errors(body) == [
        "t.yaml:13:60: virtual_services.w.real_servers[0].notify.up[0].before_release: only "
        "backup, fault and stop hooks run before the VIPs are released"
    ]


def test_an_upper_threshold_alone_is_accepted() -> None:
    # keepalived's uthreshold without lthreshold: the lower one is 0, never above it.
    body = """virtual_services:
  w:
    address: 192.0.2.100
    port: 80
    real_servers: [{address: 198.51.100.1, upper_threshold: 100}]
"""
    (server,) = _load(body).cluster.for_node("a").real_servers
    assert (server.lower_threshold, server.upper_threshold) == (0, 100)
