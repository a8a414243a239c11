"""What the builder fills in when the file leaves a setting out, and what it keeps when
the file sets it: keepalived's defaults (keepalived.conf(5)), RFC 5798's and IPVS's, so
that a model built from a file equals the state a converged node reports.

Each test compares whole model objects, so that a default changed in build.py, or a
setting read from the wrong key, shows as a difference."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from helpers import TWO_NODES_HEAD as HEAD

from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import Loaded, load_text
from reconciler.model.checks import (
    Check,
    DnsProbe,
    FileProbe,
    HttpProbe,
    InterfaceProbe,
    ScriptProbe,
    TcpProbe,
    TlsOptions,
)
from reconciler.model.common import CheckState, Family
from reconciler.model.ipvs import (
    Endpoint,
    Forwarding,
    Persistence,
    Protocol,
    Quorum,
    RealServer,
    ServiceKey,
    VirtualService,
)
from reconciler.model.vrrp import (
    Garp,
    Hook,
    Notify,
    SyncGroup,
    TrackCheck,
    TrackInterface,
    UnicastChecksum,
    Vip,
    VrrpInstance,
)

IP = ipaddress.ip_address
S1 = timedelta(seconds=1)
S5 = timedelta(seconds=5)


def _load(body: str) -> Loaded:
    return load_text(HEAD + body, "t.yaml")


def _errors(body: str) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        _load(body)
    return [f"{d.location.line}:{d.location.column}: {d.message}" for d in caught.value.diagnostics]


MINIMAL = """checks:
  h: {http: {url: "http://192.0.2.1/"}}
  t: {tcp: {host: 192.0.2.1, port: 80}}
  d: {dns: {name: example.org, server: 192.0.2.53}}
  s: {script: {command: [/bin/true]}}
  f: {file: {path: /run/x}}
  i: {interface: {name: eth0}}
vrrp:
  instances:
    v:
      vrid: 1
      vips: [192.0.2.100/24]
      priority: {a: 200, b: 100}
      track: [{check: h}, {check: t}, {check: d}, {check: s}, {check: f}, {check: i},
              {interface: eth1}]
      notify: {master: [[/bin/m]], backup: [{command: [/bin/b]}]}
      garp: {}
virtual_services:
  web:
    address: 192.0.2.100
    port: 80
    real_servers: [{address: 198.51.100.1}]
"""


def _check(name: str, probe: object) -> Check:
    # keepalived's check defaults: every second, 1s timeout, rise and fall 1, no retries.
    return Check(
        name=name,
        probe=probe,  # type: ignore[arg-type]
        interval=S1,
        timeout=S1,
        rise=1,
        fall=1,
        retries=0,
        retry_delay=S1,
        initial=CheckState.UNKNOWN,
        source_address=None,
        source_interface=None,
    )


def test_left_out_settings_get_keepalived_and_rfc_5798_defaults() -> None:
    loaded = _load(MINIMAL)
    assert loaded.warnings == ()
    nc = loaded.cluster.for_node("a")
    assert nc.checks == (
        _check("d", DnsProbe("example.org", "A", IP("192.0.2.53"), None, "udp", ())),
        _check("f", FileProbe("/run/x")),
        _check(
            "h",
            HttpProbe(
                url="http://192.0.2.1/",
                method="GET",
                status=((200, 299),),
                digest=None,
                regex=None,
                virtualhost=None,
                headers=(),
                tls=None,
            ),
        ),
        _check("i", InterfaceProbe("eth0")),
        _check("s", ScriptProbe(("/bin/true",), user="nobody", shell=False, dynamic_weight=False)),
        _check("t", TcpProbe(IP("192.0.2.1"), 80)),
    )
    (inst,) = nc.instances
    assert inst == VrrpInstance(
        name="v",
        vrid=1,
        version=3,  # RFC 5798
        family=Family.IPV4,
        interface="eth0",
        priority=200,
        advert_interval=S1,  # RFC 5798 5.2.7: 100 centiseconds
        vips=(Vip(ipaddress.ip_interface("192.0.2.100/24"), "eth0", None, "global"),),
        primary_address=IP("192.0.2.11"),
        preempt=True,  # RFC 5798 6.1: Preempt_Mode defaults to True
        preempt_delay=timedelta(0),
        unicast_peers=(),
        unicast_checksum=UnicastChecksum.AUTO,
        unicast_source_check=True,
        unicast_min_ttl=None,
        auth_password=None,
        accept=True,
        answer_lower_priority=True,
        garp=Garp(5, S5, timedelta(0), 1, timedelta(0)),
        track=(
            *(TrackCheck(c, 0) for c in ("h", "t", "d", "s", "f", "i")),
            TrackInterface("eth1", 0),
        ),
        notify=Notify(
            master=(Hook(("/bin/m",), S5, False, "nobody"),),
            backup=(Hook(("/bin/b",), S5, False, "nobody"),),
        ),
        sync_group=None,
    )
    key = ServiceKey(Family.IPV4, Protocol.TCP, IP("192.0.2.100"), 80)
    assert nc.services == (
        VirtualService(
            name="web",
            service=key,
            scheduler="wlc",  # IPVS's default scheduler
            scheduler_flags=(),
            forwarding=Forwarding.NAT,
            persistence=None,
            quorum=Quorum(1, 0, (), ()),
            sorry_server=None,
            sorry_server_inhibit=False,
            alpha=False,
        ),
    )
    assert nc.real_servers == (
        RealServer(
            service=key,
            address=IP("198.51.100.1"),
            port=80,  # the service's port
            weight=1,
            forwarding=Forwarding.NAT,
            upper_threshold=0,
            lower_threshold=0,
            check=None,
            inhibit_on_failure=False,
            notify_up=(),
            notify_down=(),
        ),
    )
    assert loaded.cluster.node_configs[1].instances[0].priority == 100
    assert loaded.cluster.node_configs[1].instances[0].primary_address == IP("192.0.2.12")


SET = """checks:
  h:
    http:
      url: "https://192.0.2.1/x"
      method: HEAD
      status: "200,301-302"
      digest: ABCDEF0123456789ABCDEF0123456789
      regex: ok
      virtualhost: www.example.org
      headers: {X-B: "2", X-A: "1"}
      tls: {verify: false, ca_file: /etc/ca.pem, sni: www.example.org}
    interval: 2s
    timeout: 500ms
    rise: 3
    fall: 4
    retries: 2
    retry_delay: 3s
    initial: up
    source: {address: 192.0.2.11, interface: eth0}
  d: {dns: {name: example.org, type: AAAA, server: 2001:db8::53, port: 5353, protocol: tcp,
            expect: ["2001:db8::1"]}}
  s: {script: {command: [/bin/true, x], user: checker, shell: true, dynamic_weight: true}}
vrrp:
  defaults:
    advert_interval: 2s
    preempt: false
    preempt_delay: 10s
    accept: false
    answer_lower_priority: false
    unicast_checksum: rfc
    unicast_source_check: false
    unicast_min_ttl: 255
    version: 2
  sync_groups:
    g: {members: [v], notify: {master: [[/bin/g]], timeout: 2s, user: grp}}
  instances:
    v:
      vrid: 7
      vips: [{address: 192.0.2.100/24, dev: eth1, label: "eth1:v", scope: link}]
      interface: {a: eth2}
      priority: 150
      unicast: true
      authentication: {type: pass, password: secret}
      track: [{check: h, weight: -20}, {check: d, weight: 10}, {check: s}, {interface: eth1,
              weight: -5}]
      garp: {master_repeat: 2, master_delay: 1s, master_refresh: 60s,
             master_refresh_repeat: 3, interval: 10ms}
      notify:
        timeout: 3s
        user: hooks
        master: [[/bin/m]]
        backup: [{command: [/bin/b], timeout: 1s, before_release: true, user: other}]
        fault: [[/bin/f]]
        stop: [[/bin/s]]
"""


def test_settings_given_in_the_file_are_kept() -> None:
    loaded = _load(SET)
    nc = loaded.cluster.for_node("a")
    by = {c.name: c for c in nc.checks}
    assert by["h"] == Check(
        name="h",
        probe=HttpProbe(
            url="https://192.0.2.1/x",
            method="HEAD",
            status=((200, 200), (301, 302)),
            digest="abcdef0123456789abcdef0123456789",
            regex="ok",
            virtualhost="www.example.org",
            headers=(("X-A", "1"), ("X-B", "2")),
            tls=TlsOptions(verify=False, ca_file="/etc/ca.pem", sni="www.example.org"),
        ),
        interval=timedelta(seconds=2),
        timeout=timedelta(milliseconds=500),
        rise=3,
        fall=4,
        retries=2,
        retry_delay=timedelta(seconds=3),
        initial=CheckState.UP,
        source_address=IP("192.0.2.11"),
        source_interface="eth0",
    )
    assert by["d"].probe == DnsProbe(
        "example.org", "AAAA", IP("2001:db8::53"), 5353, "tcp", ("2001:db8::1",)
    )
    assert by["s"].probe == ScriptProbe(("/bin/true", "x"), "checker", True, True)
    (inst,) = nc.instances
    assert inst == VrrpInstance(
        name="v",
        vrid=7,
        version=2,
        family=Family.IPV4,
        interface="eth2",
        priority=150,
        advert_interval=timedelta(seconds=2),
        vips=(Vip(ipaddress.ip_interface("192.0.2.100/24"), "eth1", "eth1:v", "link"),),
        primary_address=IP("192.0.2.11"),
        preempt=False,
        preempt_delay=timedelta(seconds=10),
        unicast_peers=(IP("192.0.2.12"),),
        unicast_checksum=UnicastChecksum.RFC,
        unicast_source_check=False,
        unicast_min_ttl=255,
        auth_password="secret",
        accept=False,
        answer_lower_priority=False,
        garp=Garp(2, S1, timedelta(seconds=60), 3, timedelta(milliseconds=10)),
        track=(
            TrackCheck("h", -20),
            TrackCheck("d", 10),
            TrackCheck("s", 0),
            TrackInterface("eth1", -5),
        ),
        notify=Notify(
            master=(Hook(("/bin/m",), timedelta(seconds=3), False, "hooks"),),
            backup=(Hook(("/bin/b",), S1, True, "other"),),
            fault=(Hook(("/bin/f",), timedelta(seconds=3), False, "hooks"),),
            stop=(Hook(("/bin/s",), timedelta(seconds=3), False, "hooks"),),
        ),
        sync_group="g",
    )
    assert nc.sync_groups == (
        SyncGroup(
            "g", ("v",), Notify(master=(Hook(("/bin/g",), timedelta(seconds=2), False, "grp"),))
        ),
    )
    # Node b has no per-node interface: it uses its own.
    assert loaded.cluster.for_node("b").instances[0].interface == "eth0"
    assert loaded.cluster.for_node("b").instances[0].unicast_peers == (IP("192.0.2.11"),)


SERVICES = """checks:
  named: {tcp: {port: 8080}}
virtual_services:
  web:
    address: 192.0.2.100
    port: 443
    protocol: udp
    scheduler: rr
    scheduler_flags: [sh-port, sh-fallback]
    forwarding: dr
    persistence: {timeout: 60s, netmask: 24}
    quorum:
      min_weight: 3
      hysteresis: 1
      user: q
      up: [[/bin/up]]
      down: [{command: [/bin/down], timeout: 2s}]
    sorry_server: {address: 198.51.100.9}
    sorry_server_inhibit: true
    alpha: true
    inhibit_on_failure: true
    check: named
    real_servers:
      - {address: 198.51.100.1, weight: 5, upper_threshold: 100, lower_threshold: 50,
         notify: {timeout: 1s, user: rs, up: [[/bin/rup]], down: [[/bin/rdown]]}}
      - {address: 198.51.100.2, forwarding: nat, port: 8443, inhibit_on_failure: false,
         check: false}
      - {address: 198.51.100.3, check: {tcp: {}}}
  marked:
    fwmark: 5
    family: ipv6
    persistence: 5m
    real_servers: [{address: "2001:db8::1", port: 81}]
"""


def test_service_settings_given_in_the_file_are_kept() -> None:
    nc = _load(SERVICES).cluster.for_node("a")
    key = ServiceKey(Family.IPV4, Protocol.UDP, IP("192.0.2.100"), 443)
    mark = ServiceKey(Family.IPV6, fwmark=5)
    by = {s.name: s for s in nc.services}
    assert by["web"] == VirtualService(
        name="web",
        service=key,
        scheduler="rr",
        scheduler_flags=("sh-fallback", "sh-port"),
        forwarding=Forwarding.DR,
        persistence=Persistence(timedelta(seconds=60), 24),
        quorum=Quorum(
            3,
            1,
            (Hook(("/bin/up",), S5, False, "q"),),
            (Hook(("/bin/down",), timedelta(seconds=2), False, "q"),),
        ),
        sorry_server=Endpoint(IP("198.51.100.9"), 443, Forwarding.DR),
        sorry_server_inhibit=True,
        alpha=True,
    )
    # A fwmark service's persistence covers the whole address (/128 for IPv6) by default.
    assert by["marked"].persistence == Persistence(timedelta(minutes=5), 128)
    assert by["marked"].service == mark
    servers = {(r.service, r.address): r for r in nc.real_servers}
    named = Check(
        "named", TcpProbe(None, 8080), S1, S1, 1, 1, 0, S1, CheckState.UNKNOWN, None, None
    )
    assert servers[key, IP("198.51.100.1")] == RealServer(
        service=key,
        address=IP("198.51.100.1"),
        port=443,
        weight=5,
        forwarding=Forwarding.DR,
        upper_threshold=100,
        lower_threshold=50,
        check=named,
        inhibit_on_failure=True,
        notify_up=(Hook(("/bin/rup",), S1, False, "rs"),),
        notify_down=(Hook(("/bin/rdown",), S1, False, "rs"),),
    )
    second = servers[key, IP("198.51.100.2")]
    assert (second.port, second.forwarding, second.check, second.inhibit_on_failure) == (
        8443,
        Forwarding.NAT,
        None,
        False,
    )
    third = servers[key, IP("198.51.100.3")]
    # An inline check is named after its service and server.
    assert third.check == Check(
        "web/198.51.100.3:443",
        TcpProbe(None, None),
        S1,
        S1,
        1,
        1,
        0,
        S1,
        CheckState.UNKNOWN,
        None,
        None,
    )
    assert third.forwarding is Forwarding.DR and third.port == 443
    # A fwmark service keeps each real server's own port, whatever the forwarding.
    (six,) = (r for r in nc.real_servers if r.service == mark)
    assert (six.port, six.forwarding) == (81, Forwarding.NAT)
