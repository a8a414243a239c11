"""The builder's semantic rules at both sides of each boundary, every error pinned word
for word at its location: RFC 5798 / RFC 3768 advertisement intervals, keepalived's
preempt_delay bound, IPVS's rules for ports, families, persistence, thresholds and
quorum, and references between parts of the file. An empty list: the file is valid."""

from __future__ import annotations

import pytest
from helpers import located_errors as _errors


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # preempt_delay is at most 1000s (keepalived)
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, preempt_delay: 1000s}\n"
            ),
            [],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, preempt_delay: 1001s}\n"
            ),
            [
                "9:79: vrrp.instances.v: preempt_delay must be at most 1000s",
            ],
        ),
        # RFC 5798 5.2.7: 12 bits of centiseconds
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, advert_interval: 40950ms}\n"
            ),
            [],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, advert_interval: 40960ms}\n"
            ),
            [
                (
                    "9:81: vrrp.instances.v: VRRPv3 advert_interval must be 10ms to 40.95s "
                    "in steps of 10ms (got 40960ms)"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, advert_interval: 10ms}\n"
            ),
            [],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, advert_interval: 0s}\n"
            ),
            [
                (
                    "9:81: vrrp.instances.v: VRRPv3 advert_interval must be 10ms to 40.95s "
                    "in steps of 10ms (got 0s)"
                ),
            ],
        ),
        # RFC 3768 5.3.7: 8 bits of seconds
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, version: 2, advert_interval: 255s}\n"
            ),
            [],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, version: 2, advert_interval: 256s}\n"
            ),
            [
                (
                    "9:93: vrrp.instances.v: VRRPv2 advert_interval must be whole seconds "
                    "from 1s to 255s (got 256s); keepalived would silently round it"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, version: 2, advert_interval: 1s}\n"
            ),
            [],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, version: 2, advert_interval: 0s}\n"
            ),
            [
                (
                    "9:93: vrrp.instances.v: VRRPv2 advert_interval must be whole seconds "
                    "from 1s to 255s (got 0s); keepalived would silently round it"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, version: 2, advert_interval: 1500ms}\n"
            ),
            [
                (
                    "9:93: vrrp.instances.v: VRRPv2 advert_interval must be whole seconds "
                    "from 1s to 255s (got 1500ms); keepalived would silently round it"
                ),
            ],
        ),
        # a default applies, and is reported where it is written
        (
            (
                "vrrp:\n  defaults: {version: 2}\n  instances:\n    v: {vrid: 1, vips: "
                "['2001:db8::1/64'], priority: {a: 2, b: 1}}\n"
            ),
            [
                (
                    "8:23: vrrp.instances.v: VRRPv2 (RFC 3768) carries only IPv4; use "
                    "version 3 for IPv6 VIPs"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: ['2001:db8::1/64'], "
                "priority: {a: 2, b: 1}, version: 2}\n"
            ),
            [
                (
                    "9:77: vrrp.instances.v: VRRPv2 (RFC 3768) carries only IPv4; use "
                    "version 3 for IPv6 VIPs"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  defaults: {authentication: {type: pass, password: x}}\n  "
                "instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: {a: 2, "
                "b: 1}}\n"
            ),
            [
                (
                    "8:14: vrrp.instances.v: authentication needs VRRPv2; VRRPv3 has none "
                    "(RFC 5798 9)"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  defaults: {advert_interval: 5ms}\n  instances:\n    v: "
                "{vrid: 1, vips: [192.0.2.1/24], priority: {a: 2, b: 1}}\n"
            ),
            [
                (
                    "8:31: vrrp.instances.v: VRRPv3 advert_interval must be 10ms to 40.95s "
                    "in steps of 10ms (got 5ms)"
                ),
            ],
        ),
        # IPVS services
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "family: ipv4\n    real_servers: [{address: 198.51.100.1}]\n"
            ),
            [
                (
                    "11:5: virtual_services.w: family only applies to a fwmark service "
                    "(the address says it)"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "persistence: {netmask: 33}\n    real_servers: [{address: "
                "198.51.100.1}]\n"
            ),
            [
                "11:28: virtual_services.w.persistence.netmask: at most 32 for ipv4",
            ],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "persistence: {netmask: 32}\n    real_servers: [{address: "
                "198.51.100.1}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w: {address: '2001:db8::5', port: 80, "
                "persistence: {netmask: 128}, real_servers: [{address: "
                "'2001:db8::6'}]}\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "scheduler: rr\n    real_servers: [{address: 198.51.100.1, "
                "upper_threshold: 5, lower_threshold: 6}]\n"
            ),
            [
                (
                    "12:81: virtual_services.w.real_servers[0].lower_threshold: must not "
                    "exceed upper_threshold"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "scheduler: rr\n    real_servers: [{address: 198.51.100.1, "
                "upper_threshold: 5, lower_threshold: 5}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "scheduler: rr\n    real_servers: [{address: 198.51.100.1, "
                "upper_threshold: 0, lower_threshold: 6}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "quorum: {min_weight: 2, hysteresis: 1}\n    real_servers: [{address: "
                "198.51.100.1}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "quorum: {min_weight: 2, hysteresis: 2}\n    real_servers: [{address: "
                "198.51.100.1}]\n"
            ),
            [
                ("11:41: virtual_services.w.quorum.hysteresis: must be less than min_weight (2)"),
            ],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "quorum: {hysteresis: 0}\n    real_servers: [{address: 198.51.100.1}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "quorum: {up: [{command: [/x], before_release: true}]}\n    "
                "real_servers: [{address: 198.51.100.1}]\n"
            ),
            [
                (
                    "11:51: virtual_services.w.quorum.up[0].before_release: only backup, "
                    "fault and stop hooks run before the VIPs are released"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "forwarding: tunnel\n    real_servers: [{address: 198.51.100.1, port: "
                "81}]\n"
            ),
            [
                (
                    "12:50: virtual_services.w.real_servers[0].port: tunnel forwarding "
                    "cannot change the port; IPVS sends to the service port 80 (use nat to "
                    "remap ports)"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "forwarding: tunnel\n    real_servers: [{address: 198.51.100.1, port: "
                "80}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "forwarding: dr\n    real_servers: [{address: 198.51.100.1, "
                "forwarding: nat, port: 81}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "forwarding: tunnel\n    real_servers: [{address: 198.51.100.1}, "
                "{address: '2001:db8::1'}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "sorry_server: {address: '2001:db8::1'}\n    real_servers: [{address: "
                "198.51.100.1}]\n"
            ),
            [
                (
                    "11:29: virtual_services.w.sorry_server.address: 2001:db8::1 is ipv6 "
                    "but the service is ipv4; only tunnel forwarding can mix families"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "sorry_server: {address: 198.51.100.1}\n    real_servers: [{address: "
                "198.51.100.1}]\n"
            ),
            [
                (
                    "11:29: virtual_services.w.sorry_server: 198.51.100.1:80 is also real "
                    "server [0]; the sorry server only takes traffic when the real servers "
                    "are down"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w:\n    address: 192.0.2.1\n    port: 80\n    "
                "sorry_server: {address: 198.51.100.1, port: 81}\n    real_servers: "
                "[{address: 198.51.100.1}]\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w: {fwmark: 3, port: 80, real_servers: "
                "[{address: '192.0.2.6'}]}\n"
            ),
            [
                "8:18: virtual_services.w: port does not apply to a fwmark service",
            ],
        ),
        (
            (
                "virtual_services:\n  w: {fwmark: 3, real_servers: [{address: "
                "'192.0.2.6', forwarding: dr, port: 99}, {address: 192.0.2.6, port: "
                "99, forwarding: dr}]}\n"
            ),
            [
                (
                    "8:93: virtual_services.w.real_servers[1]: 192.0.2.6:99 is already "
                    "real server [0]"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w: {address: 192.0.2.1, port: 80, real_servers: "
                "[{address: 192.0.2.6, forwarding: dr, port: 99}, {address: "
                "192.0.2.6}]}\n"
            ),
            [
                (
                    "8:95: virtual_services.w.real_servers[0].port: dr forwarding cannot "
                    "change the port; IPVS sends to the service port 80 (use nat to remap "
                    "ports)"
                ),
                (
                    "8:110: virtual_services.w.real_servers[1]: 192.0.2.6:80 is already "
                    "real server [0]"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w: {address: 192.0.2.1, port: 80, nodes: [a], "
                "real_servers: [{address: 192.0.2.6}]}\n  x: {address: 192.0.2.1, "
                "port: 80, nodes: [b], real_servers: [{address: 192.0.2.6}]}\n"
            ),
            [],
        ),
        (
            (
                "virtual_services:\n  w: {address: 192.0.2.1, port: 80, nodes: [a, b], "
                "real_servers: [{address: 192.0.2.6}]}\n  x: {address: 192.0.2.1, "
                "port: 80, nodes: [b], real_servers: [{address: 192.0.2.6}]}\n"
            ),
            [
                (
                    "9:3: virtual_services.x: the same service (tcp/192.0.2.1:80) is "
                    "already defined as 'w'"
                ),
            ],
        ),
        (
            (
                "virtual_services:\n  w: {address: 192.0.2.1, port: 80, real_servers: "
                "[{address: 192.0.2.6}]}\n  x: {address: 192.0.2.1, port: 80, "
                "protocol: udp, real_servers: [{address: 192.0.2.6}]}\n"
            ),
            [],
        ),
        # checks
        (
            (
                "checks:\n  c: {tcp: {}, interval: 0s}\nvirtual_services:\n  w: "
                "{address: 192.0.2.1, port: 80, real_servers: [{address: 192.0.2.6, "
                "check: c}]}\n"
            ),
            [
                "8:26: checks.c.interval: must be greater than 0",
            ],
        ),
        (
            (
                "checks:\n  c: {http: {}}\nvirtual_services:\n  w: {address: "
                "192.0.2.1, port: 80, real_servers: [{address: 192.0.2.6, check: c}]}\n"
            ),
            [],
        ),
        (
            (
                "checks:\n  c: {http: {}}\nvrrp:\n  instances:\n    v: {vrid: 1, vips: "
                "[192.0.2.1/24], priority: {a: 2, b: 1}, track: [{check: c}]}\n"
            ),
            [
                (
                    "8:7: checks.c.http.url: a check used for VRRP tracking needs an "
                    "absolute http:// or https:// URL"
                ),
            ],
        ),
        (
            (
                "checks:\n  c: {http: {url: /x}}\nvrrp:\n  instances:\n    v: {vrid: "
                "1, vips: [192.0.2.1/24], priority: {a: 2, b: 1}, track: [{check: "
                "c}]}\n"
            ),
            [
                (
                    "8:19: checks.c.http.url: a check used for VRRP tracking needs an "
                    "absolute http:// or https:// URL"
                ),
            ],
        ),
        (
            (
                "checks:\n  c: {dns: {name: x}}\nvrrp:\n  defaults: {track: [{check: "
                "c}]}\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}}\n"
            ),
            [
                "8:7: checks.c.dns: a check used for VRRP tracking needs a server",
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, track: [{check: nope}]}\n"
            ),
            [
                (
                    "9:80: vrrp.instances.v.track[0].check: unknown check 'nope' (checks: "
                    "none defined)"
                ),
            ],
        ),
        # VRRP instances
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}}\n    w: {vrid: 1, vips: [192.0.2.2/24], priority: {a: "
                "2, b: 1}, interface: eth1}\n    x: {vrid: 1, vips: "
                "['2001:db8::1/64'], priority: {a: 2, b: 1}}\n"
            ),
            [],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2}}\n    w: {vrid: 1, vips: [192.0.2.2/24], priority: {b: 2}}\n"
            ),
            [],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}}\n    w: {vrid: 1, vips: [192.0.2.2/24], priority: {a: "
                "2, b: 1}}\n    x: {vrid: 1, vips: [192.0.2.3/24], priority: {a: 2, b: "
                "1}}\n"
            ),
            [
                (
                    "10:15: vrrp.instances.w.vrid: VRID 1 is already used by instance 'v' "
                    "on node 'a' interface eth0 (ipv4); a VRID must be unique per "
                    "interface and address family"
                ),
                (
                    "11:15: vrrp.instances.x.vrid: VRID 1 is already used by instance 'v' "
                    "on node 'a' interface eth0 (ipv4); a VRID must be unique per "
                    "interface and address family"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.11/24], "
                "priority: {a: 255, b: 1}}\n"
            ),
            [],
        ),
        (
            ("vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.11/24], priority: 255}\n"),
            [
                (
                    "9:51: vrrp.instances.v: priority 255 is only for the address owner, "
                    "and node 'b' does not have a VIP as its address; use 1-254"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24, "
                "'2001:db8::1/64', {address: '2001:db8::2/64'}], priority: {a: 2, b: "
                "1}}\n"
            ),
            [
                (
                    "9:39: vrrp.instances.v.vips: mixes IPv4 and IPv6 VIPs; put "
                    "2001:db8::1 in an instance of its own (RFC 5798 allows one address "
                    "family per virtual router)"
                ),
                (
                    "9:67: vrrp.instances.v.vips: mixes IPv4 and IPv6 VIPs; put "
                    "2001:db8::2 in an instance of its own (RFC 5798 allows one address "
                    "family per virtual router)"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [{address: 192.0.2.1/24}, "
                "{address: 192.0.2.1/24}], priority: {a: 2, b: 1}}\n"
            ),
            [
                "9:60: vrrp.instances.v.vips: 192.0.2.1 is listed twice",
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, b: 1}, notify: {master: [{command: [/x], before_release: "
                "true}], backup: [{command: [/x], before_release: true}]}}\n"
            ),
            [
                (
                    "9:114: vrrp.instances.v.notify.master[0].before_release: only backup, "
                    "fault and stop hooks run before the VIPs are released"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  sync_groups:\n    g: {members: [vv]}\n  instances:\n    v: "
                "{vrid: 1, vips: [192.0.2.1/24], priority: {a: 2, b: 1}}\n"
            ),
            [
                (
                    "9:19: vrrp.sync_groups.g.members: unknown instance 'vv' (did you mean "
                    "'v'? instances: v)"
                ),
            ],
        ),
        (
            "vrrp:\n  sync_groups:\n    g: {members: [vv]}\n",
            [
                (
                    "9:19: vrrp.sync_groups.g.members: unknown instance 'vv' (instances: "
                    "none defined)"
                ),
            ],
        ),
        (
            (
                "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], priority: "
                "{a: 2, bb: 1}, interface: {aa: x}}\n"
            ),
            [
                (
                    "9:57: vrrp.instances.v.priority: unknown node 'bb' (did you mean 'b'? "
                    "nodes: a, b)"
                ),
                (
                    "9:77: vrrp.instances.v.interface: unknown node 'aa' (did you mean "
                    "'a'? nodes: a, b)"
                ),
            ],
        ),
    ],
)
def test_each_rule_holds_exactly_at_its_boundary(body: str, expected: list[str]) -> None:
    assert _errors(body) == expected
