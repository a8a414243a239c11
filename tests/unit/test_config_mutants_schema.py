"""Schema errors as the operator reads them, pinned word for word at their location:
one message per JSON Schema keyword, the schema's own `x-error` texts, long values
shortened, and misspelt keys answered with the closest allowed one."""

from __future__ import annotations

import pytest

from reconciler.config.diagnostics import (
    Diagnostic,
    InvalidConfig,
    Location,
    Severity,
    did_you_mean,
)
from reconciler.config.load import load_text
from reconciler.config.schema import _show

TOP = "apiVersion: reconciler/v1\nkind: Cluster\nname: t\n"
HEAD = (
    TOP
    + """nodes:
  a: {address: 192.0.2.11, interface: eth0}
  b: {address: 192.0.2.12, interface: eth0}
"""
)
NAMES = (
    "names are 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)


def _errors(text: str) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        load_text(text, "t.yaml")
    return [f"{d.location.line}:{d.location.column}: {d.message}" for d in caught.value.diagnostics]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: []}\n",
            ["9:24: vrrp.instances.v.vips: needs at least 1 item(s)"],
        ),
        (
            HEAD + "checks:\n  c: {script: {command: []}}\n",
            ["8:25: checks.c.script.command: needs at least 1 item(s)"],
        ),
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], "
            "track: [{check: x, weight: 1.5}]}\n",
            ["9:67: vrrp.instances.v.track[0].weight: expected an integer, got 1.5"],
        ),
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], "
            "unicast_min_ttl: true}\n",
            ["9:57: vrrp.instances.v.unicast_min_ttl: expected an integer, got true"],
        ),
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], label: x}\n",
            [
                "9:40: vrrp.instances.v: unknown key 'label' (allowed here: accept, "
                "advert_interval, answer_lower_priority, authentication, garp, interface, notify, "
                "preempt, preempt_delay, priority, track, unicast, unicast_checksum, "
                "unicast_min_ttl, unicast_source_check, version, vips, vrid)"
            ],
        ),
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [{address: 192.0.2.1/24, "
            "label: 'a b'}]}\n",
            [
                '9:56: vrrp.instances.v.vips[0].label: "a b": labels are 1-15 characters without '
                "spaces"
            ],
        ),
        (
            HEAD + "checks:\n  c: {http: {url: 'ftp://x', digest: xyz, status: 'abc'}}\n",
            [
                '8:19: checks.c.http.url: "ftp://x": url is an absolute http:// or https:// '
                "URL, or a path starting with '/' (then host and port are the real server's)",
                '8:38: checks.c.http.digest: "xyz": digest is the 32-hex-digit MD5 printed by '
                "`reconciler digest URL`",
                '8:51: checks.c.http.status: "abc": status is a code or range list such as '
                '"200", "200-299" or "200,301-302"',
            ],
        ),
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], "
            "interface: 'eth0 x'}\n",
            [
                '9:51: vrrp.instances.v.interface: "eth0 x": interface names are 1-15 '
                "characters without spaces, '/' or ':'"
            ],
        ),
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], version: 2, "
            "authentication: {type: md5, password: x}}\n",
            ['9:75: vrrp.instances.v.authentication.type: must be "pass", got "md5"'],
        ),
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24], version: 2, "
            "authentication: {type: pass, password: ''}}\n",
            [
                "9:91: vrrp.instances.v.authentication.password: must be at least 1 "
                "character(s) long"
            ],
        ),
        (TOP + "nodes: 5\n", ["4:8: nodes: expected a mapping, got 5"]),
        (TOP + "nodes: {}\n", ["4:8: nodes: needs at least 1 entr(y/ies)"]),
        (
            TOP + "nodes: {a: {address: '" + "1" * 100 + "'}}\n",
            ['4:22: nodes.a.address: "' + "1" * 59 + "... (102 characters) is not an IPv4 address"],
        ),
        (
            TOP + "nodes: {a: {address6: 192.0.2.1}}\n",
            ['4:23: nodes.a.address6: "192.0.2.1" is not an IPv6 address'],
        ),
        (TOP + "nodes: {a: {address6: 5}}\n", ["4:23: nodes.a.address6: expected a string, got 5"]),
        (
            "apiVersion: reconciler/v1\nkind: Cluster\nname: " + "x" * 100 + "\nnodes: {a: {}}\n",
            ['3:7: name: "' + "x" * 59 + f"... (102 characters): {NAMES}"],
        ),
        (
            TOP + "nodes: {a: {labels: {x: [1]}}}\n",
            ["4:25: nodes.a.labels.x: expected a string, got a list"],
        ),
        (
            "kind: Cluster\nname: t\nnodes: {a: {}}\n",
            ["1:1: document: missing required key 'apiVersion'"],
        ),
        (
            "apiVersion: 1\nkind: Foo\nname: t\nnodes: {a: {}}\n",
            [
                '1:13: apiVersion: must be "reconciler/v1", got 1',
                '2:7: kind: must be "Cluster", got "Foo"',
            ],
        ),
        (
            TOP + "nodes: {a: {}}\nzzzzzz: 1\n",
            [
                "5:1: document: unknown key 'zzzzzz' (allowed here: apiVersion, checks, "
                "description, director, kind, name, nodes, reconcile, virtual_services, vrrp)"
            ],
        ),
        ("- a\n", ["1:1: document: expected a mapping, got a list"]),
        (
            HEAD + "virtual_services:\n  w: {address: 192.0.2.1, port: 80, real_servers: "
            "[{address: 192.0.2.5}], scheduler_flags: [x, x]}\n",
            [
                '8:93: virtual_services.w.scheduler_flags[0]: "x" is not one of: sh-fallback, '
                "sh-port, mh-fallback, mh-port",
                '8:96: virtual_services.w.scheduler_flags: duplicate item "x"',
                '8:96: virtual_services.w.scheduler_flags[1]: "x" is not one of: sh-fallback, '
                "sh-port, mh-fallback, mh-port",
            ],
        ),
        (
            HEAD + "virtual_services:\n  w: {address: 192.0.2.1, port: 80, real_servers: "
            "[{address: 192.0.2.5}], scheduler_flags: [sh-port, mh-port, sh-port]}\n",
            ['8:111: virtual_services.w.scheduler_flags: duplicate item "sh-port"'],
        ),
        (
            HEAD + "virtual_services:\n  w: {address: 2001:db8::1, port: 80, real_servers: "
            "[{address: 192.0.2.5, check: 5}]}\n",
            [
                "8:75: virtual_services.w.real_servers[0].check: needs one of tcp, http, dns, "
                "script, file, interface",
                "8:82: virtual_services.w.real_servers[0].check: expected a mapping, got 5",
            ],
        ),
        (
            HEAD + "virtual_services:\n  w: {fwmark: 1, address: 192.0.2.1, real_servers: "
            "[{address: 192.0.2.5}]}\n",
            ["8:18: virtual_services.w: give only one of address, fwmark (found address, fwmark)"],
        ),
        (
            HEAD + "virtual_services:\n  w: {address: 192.0.2.1, fwmark: 1, real_servers: "
            "[{address: 192.0.2.5}]}\n",
            ["8:27: virtual_services.w: give only one of address, fwmark (found address, fwmark)"],
        ),
        (
            HEAD + "virtual_services:\n  w: {real_servers: [{address: 192.0.2.5}]}\n",
            ["8:3: virtual_services.w: needs one of address, fwmark"],
        ),
        (
            HEAD + "director: {sysctls: {ip_forward: 3}}\n",
            ["7:34: director.sysctls.ip_forward: expected true or false, got 3"],
        ),
        (
            HEAD + "checks:\n  c: {dns: {name: x, type: ZZ}}\n",
            [
                '8:28: checks.c.dns.type: "ZZ" is not one of: A, AAAA, CNAME, MX, NS, PTR, SOA, '
                "SRV, TXT"
            ],
        ),
        (
            HEAD + "checks:\n  c: {tcp: {}, rise: 0}\n",
            ["8:22: checks.c.rise: 0 is out of range: must be at least 1"],
        ),
        (
            HEAD + "checks:\n  c: {tcp: {host: x}}\n",
            ['8:19: checks.c.tcp.host: "x" is not an IP address'],
        ),
        (
            TOP + "nodes:\n  a: {address: 192.0.2.11, interface: eth0}\n  -b: {}\n",
            [f"6:3: nodes: bad name '-b': {NAMES}"],
        ),
        # A pattern without an x-error text shows the pattern.
        (
            HEAD + "checks:\n  c: {script: {command: [/x], user: 'a b'}}\n",
            ['8:37: checks.c.script.user: "a b" does not match ^[A-Za-z0-9_][A-Za-z0-9_.-]*[$]?$'],
        ),
        # A value that is not a string is a type error only, never also a format error.
        (TOP + "nodes: {a: {address: 5}}\n", ["4:22: nodes.a.address: expected a string, got 5"]),
        (
            HEAD + "checks:\n  c: {tcp: {host: 5}}\n",
            ["8:19: checks.c.tcp.host: expected a string, got 5"],
        ),
        (
            HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [{address: 5}]}\n",
            ["9:35: vrrp.instances.v.vips[0].address: expected a string, got 5"],
        ),
    ],
)
def test_each_schema_rule_says_what_is_wrong_at_the_value(text: str, expected: list[str]) -> None:
    assert _errors(text) == expected


def test_each_repeat_of_an_item_is_reported_where_it_is() -> None:
    # The same message at two places is two errors: only exact repeats are merged.
    text = (
        HEAD + "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.1/24]}\n"
        "  sync_groups:\n    g: {members: [v, v, v]}\n"
    )
    assert _errors(text) == [
        '11:22: vrrp.sync_groups.g.members: duplicate item "v"',
        '11:25: vrrp.sync_groups.g.members: duplicate item "v"',
    ]


def test_long_values_are_shown_by_their_start_and_length() -> None:
    assert _show({"a": 1}) == "a mapping"
    assert _show([1]) == "a list"
    assert _show(None) == "null"
    assert _show(True) == "true"
    assert _show("x" * 78) == '"' + "x" * 78 + '"'  # 80 characters with the quotes: whole
    assert _show("x" * 79) == '"' + "x" * 59 + "... (81 characters)"


def test_did_you_mean_offers_only_a_close_name_that_is_not_another_number() -> None:
    assert did_you_mean("adress", ["address", "interface"]) == "address"
    assert did_you_mean("zzz", ["address", "interface"]) is None
    # lb3 is not a misspelt lb2, nor web10 a misspelt web1: numbered names are other things.
    assert did_you_mean("lb3", ["lb2"]) is None
    assert did_you_mean("web10", ["web1"]) is None
    assert did_you_mean("lb2x", ["lb2"]) == "lb2"
    # Cut-off 0.6 of difflib's ratio: "abcd" vs "abxy" is 0.5, "abcde" vs "abcxy" is 0.6.
    assert did_you_mean("abcd", ["abxy"]) is None
    assert did_you_mean("abcde", ["abcxy"]) == "abcxy"
    # The closest of several.
    assert did_you_mean("priorty", ["preempt", "priority", "port"]) == "priority"


def test_diagnostics_print_as_file_line_column_and_sort_in_file_order() -> None:
    loc = Location("f.yaml", 3, 7)
    assert str(loc) == "f.yaml:3:7"
    assert str(Diagnostic(loc, "bad")) == "f.yaml:3:7: bad"
    assert str(Diagnostic(loc, "odd", Severity.WARNING)) == "f.yaml:3:7: warning: odd"
    assert Diagnostic(loc, "bad").severity is Severity.ERROR
    assert Diagnostic(loc, "m").sort_key() == ("f.yaml", 3, 7, "m")
    later = [
        Diagnostic(Location("f.yaml", 10, 1), "c"),
        Diagnostic(Location("f.yaml", 3, 9), "b"),
        Diagnostic(Location("f.yaml", 3, 7), "z"),
        Diagnostic(Location("f.yaml", 3, 7), "a"),
        Diagnostic(Location("e.yaml", 99, 1), "e"),
    ]
    exc = InvalidConfig(later)
    assert [d.message for d in exc.diagnostics] == ["e", "a", "z", "b", "c"]
    assert str(exc) == (
        "e.yaml:99:1: e\nf.yaml:3:7: a\nf.yaml:3:7: z\nf.yaml:3:9: b\nf.yaml:10:1: c"
    )
