"""Defaults and rules of the split builder that mutation testing found unpinned: an HTTP
check's URL and TLS verification, a real server's hooks (timeout, user, no
before_release), its thresholds, a port-0 service with persistence, a tunnel service's
sorry server, an explicit unicast_source_check, and every service on a dropped VIP."""

from __future__ import annotations

from datetime import timedelta

from helpers import TWO_NODES_HEAD as HEAD
from helpers import located_errors as _errors

from reconciler.config.load import Loaded, load_text
from reconciler.model.checks import HttpProbe, TlsOptions
from reconciler.model.vrrp import Hook

SERVICE = "virtual_services:\n  web:\n    address: 192.0.2.100\n    port: 80\n"


def _load(body: str) -> Loaded:
    return load_text(HEAD + body, "t.yaml")


def test_an_http_check_defaults_to_the_path_slash_and_verifies_tls() -> None:
    loaded = _load(
        SERVICE + "    real_servers:\n"
        "      - {address: 192.0.2.21, check: {http: {}}}\n"
        "      - {address: 192.0.2.22, check: {http: {tls: {}}}}\n"
        "      - {address: 192.0.2.23, check: {http: {tls: {ca_file: /ca}}}}\n"
    )
    probes = []
    for rs in loaded.cluster.node_configs[0].real_servers:
        assert rs.check is not None and isinstance(rs.check.probe, HttpProbe)
        probes.append(rs.check.probe)
    assert [p.url for p in probes] == ["/", "/", "/"]
    assert [p.tls for p in probes] == [
        None,
        TlsOptions(verify=True),
        TlsOptions(verify=True, ca_file="/ca"),
    ]


def test_a_real_server_hook_runs_after_the_change_with_the_default_timeout() -> None:
    body = SERVICE + (
        "    real_servers:\n"
        "      - {address: 192.0.2.21, notify: {up: [[/x]], down: [{command: [/y]}]}}\n"
    )
    (rs,) = _load(body).cluster.node_configs[0].real_servers
    assert rs.notify_up == (Hook(("/x",), timeout=timedelta(seconds=5)),)
    assert rs.notify_down == (Hook(("/y",), timeout=timedelta(seconds=5)),)
    # Only VRRP's backup, fault and stop hooks run before the VIPs are released.
    assert _errors(
        SERVICE + "    real_servers:\n"
        "      - {address: 192.0.2.21, notify: {up: [{command: [/x], before_release: true}]}}\n"
    ) == [
        "12:77: virtual_services.web.real_servers[0].notify.up[0].before_release: only backup, "
        "fault and stop hooks run before the VIPs are released"
    ]


def test_real_server_hooks_run_as_root_are_warned_about() -> None:
    loaded = _load(
        SERVICE + "    real_servers:\n"
        "      - {address: 192.0.2.21, notify: {user: root, up: [[/x]]}}\n"
    )
    assert loaded.cluster.node_configs[0].real_servers[0].notify_up[0].user == "root"
    assert [str(w) for w in loaded.warnings] == [
        "t.yaml:12:46: warning: virtual_services.web.real_servers[0].notify.user: these hooks "
        "are run as root: a mistake or a compromised program owns the node; prefer an "
        "unprivileged user (the default is nobody)"
    ]


def test_either_threshold_alone_is_valid() -> None:
    body = SERVICE + "    real_servers: [{address: 192.0.2.21, lower_threshold: 5}]\n"
    (rs,) = _load(body).cluster.node_configs[0].real_servers
    assert (rs.lower_threshold, rs.upper_threshold) == (5, 0)
    body = SERVICE + "    real_servers: [{address: 192.0.2.21, upper_threshold: 5}]\n"
    (rs,) = _load(body).cluster.node_configs[0].real_servers
    assert (rs.lower_threshold, rs.upper_threshold) == (0, 5)


def test_port_0_with_persistence_is_a_valid_all_ports_service() -> None:
    body = (
        SERVICE.replace("port: 80", "port: 0")
        + "    persistence: 60s\n    real_servers: [{address: 192.0.2.21}]\n"
    )
    (svc,) = _load(body).cluster.node_configs[0].services
    assert svc.service.port == 0
    assert svc.persistence is not None and svc.persistence.timeout == timedelta(seconds=60)


def test_a_tunnel_service_may_have_a_sorry_server_of_the_other_family() -> None:
    body = (
        SERVICE.replace("port: 80", "port: 80\n    forwarding: tunnel")
        + "    sorry_server: {address: '2001:db8::9'}\n    real_servers: [{address: 192.0.2.21}]\n"
    )
    (svc,) = _load(body).cluster.node_configs[0].services
    assert str(svc.sorry_server) == "[2001:db8::9]:80"


def test_unicast_source_check_is_what_the_file_says() -> None:
    loaded = _load(
        "vrrp:\n  instances:\n"
        "    v: {vrid: 1, vips: [192.0.2.1/24], priority: {a: 2, b: 1}, unicast: true,"
        " unicast_source_check: true}\n"
        "    w: {vrid: 2, vips: [192.0.2.2/24], priority: {a: 2, b: 1}, unicast: true,"
        " unicast_source_check: false}\n"
    )
    instances = loaded.cluster.node_configs[0].instances
    assert [(i.name, i.unicast_source_check) for i in instances] == [("v", True), ("w", False)]


def test_a_service_on_a_dropped_vip_is_found_after_one_that_is_not() -> None:
    body = (
        "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.200/24], priority: {a: 2, b: 1},"
        " accept: false}\n"
        "virtual_services:\n"
        "  x: {address: 192.0.2.100, port: 80, real_servers: [{address: 192.0.2.21}]}\n"
        "  y: {address: 192.0.2.200, port: 80, real_servers: [{address: 192.0.2.21}]}\n"
    )
    assert _errors(body) == [
        "12:16: virtual_services.y: 192.0.2.200 is a VIP of instance 'v', which has accept: "
        "false: node a drops every packet to it, so this service would get no traffic (set "
        "accept: true)"
    ]


def test_unicast_false_needs_no_member_address() -> None:
    # The nodes have no address6: only unicast adverts would need it.
    body = (
        "vrrp:\n  instances:\n    v: {vrid: 1, vips: ['2001:db8::1/64'], priority: {a: 2, b: 1},"
        " unicast: false}\n"
    )
    (inst,) = _load(body).cluster.node_configs[0].instances
    assert inst.unicast_peers == ()
