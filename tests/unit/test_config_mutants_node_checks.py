"""The programs a node would run, each with where it is written, the path the messages
name and the account it runs as; and the VIP subnet warning's facts (own VIPs, link-local
and loopback addresses are no subnet of an interface)."""

from __future__ import annotations

import ipaddress

from reconciler.config.diagnostics import Location, Severity
from reconciler.config.load import load_text
from reconciler.config.node_checks import (
    InterfaceAddress,
    ProgramUse,
    missing_program,
    programs_for_node,
    vip_subnet_warnings,
)

PROGRAMS = """apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {address: 192.0.2.11, interface: eth0}
  b: {address: 192.0.2.12, interface: eth0}
checks:
  alive: {script: {command: [/bin/alive], user: chk}}
  sh: {script: {command: ["'unclosed"], shell: true}}
  blank: {script: {command: ["  "], shell: true}}
  tcp: {tcp: {host: 192.0.2.1, port: 1}}
vrrp:
  defaults:
    notify: {user: du, fault: [[/bin/dfault]]}
  sync_groups:
    g: {members: [web], notify: {user: gu, backup: [[/bin/gb]]}}
    h: {members: [other]}
  instances:
    web:
      vrid: 51
      priority: {a: 150, b: 100}
      vips: [192.0.2.100/24]
      track: [{check: alive}, {check: sh}, {check: blank}, {check: tcp}]
      notify:
        user: nu
        master: [[/bin/m1], {command: [/bin/m2], user: hu}]
        stop: [[/bin/st]]
    other:
      vrid: 52
      priority: {a: 100, b: 90}
      vips: [192.0.2.101/24]
virtual_services:
  web:
    address: 192.0.2.100
    port: 80
    check: {script: {command: [/bin/vc], user: vcu}}
    quorum: {user: qu, up: [[/bin/qup]], down: [{command: [/bin/qdown], user: qd}]}
    real_servers:
      - address: 198.51.100.2
        check: {script: {command: [/bin/rc]}}
        notify: {user: ru, up: [[/bin/rup]], down: [[/bin/rdown]]}
      - address: 198.51.100.3
        check: {tcp: {}}
  onb:
    address: 192.0.2.101
    port: 81
    nodes: [b]
    quorum: {up: [[/bin/onb]]}
    real_servers: [{address: 198.51.100.4}]
"""


def _use(program: str, line: int, column: int, role: str, where: str, user: str) -> ProgramUse:
    return ProgramUse(program, Location("p.yaml", line, column), role, where, user)


def test_every_program_is_listed_with_its_location_path_and_user() -> None:
    loaded = load_text(PROGRAMS, "p.yaml")
    notify = "vrrp.instances.web.notify"
    vs = "virtual_services.web"
    assert programs_for_node(loaded, "a") == [
        # A hook's own user beats its block's user, which beats nobody.
        _use("/bin/m1", 26, 19, "notify hook", f"{notify}.master", "nu"),
        _use("/bin/m2", 26, 40, "notify hook", f"{notify}.master", "hu"),
        _use("/bin/st", 27, 17, "notify hook", f"{notify}.stop", "nu"),
        # The defaults' hooks run for `other`, which has no notify of its own.
        _use("/bin/dfault", 14, 33, "notify hook", "vrrp.defaults.notify.fault", "du"),
        _use("/bin/gb", 16, 54, "sync group notify hook", "vrrp.sync_groups.g.notify.backup", "gu"),
        # Shell scripts whose words do not parse, or are blank, name no program.
        _use("/bin/alive", 8, 30, "check script", "checks.alive", "chk"),
        _use("/bin/vc", 36, 32, "check script", f"{vs}.check", "vcu"),
        _use("/bin/qup", 37, 30, "quorum hook", f"{vs}.quorum.up", "qu"),
        _use("/bin/qdown", 37, 60, "quorum hook", f"{vs}.quorum.down", "qd"),
        _use("/bin/rc", 40, 36, "check script", f"{vs}.real_servers[0].check", "nobody"),
        _use(
            "/bin/rup", 41, 34, "real server notify hook", f"{vs}.real_servers[0].notify.up", "ru"
        ),
        _use(
            "/bin/rdown",
            41,
            54,
            "real server notify hook",
            f"{vs}.real_servers[0].notify.down",
            "ru",
        ),
    ]
    on_b = [u.program for u in programs_for_node(loaded, "b")]
    assert "/bin/onb" in on_b and on_b.count("/bin/m1") == 1


def test_a_missing_program_is_a_warning_at_the_program() -> None:
    use = _use("/bin/m1", 26, 19, "notify hook", "vrrp.instances.web.notify.master", "nu")
    d = missing_program(use, "does not exist")
    assert d.severity is Severity.WARNING
    assert str(d) == (
        "p.yaml:26:19: warning: vrrp.instances.web.notify.master: notify hook '/bin/m1' does "
        "not exist on this machine"
    )


VIPS = """apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {address: 192.0.2.11, interface: eth0}
  b: {address: 192.0.2.12, interface: eth0}
vrrp:
  instances:
    web:
      vrid: 51
      priority: {a: 150, b: 100}
      vips: [192.0.2.100/24, 198.51.100.7/24, 203.0.113.9/24]
    far:
      vrid: 52
      priority: {b: 100}
      vips: [203.0.113.1/24]
"""


def _addr(interface: str, text: str) -> InterfaceAddress:
    return InterfaceAddress(interface, ipaddress.ip_interface(text))


def test_the_subnets_of_an_interface_are_its_own_addresses_only() -> None:
    loaded = load_text(VIPS, "v.yaml")
    facts = [
        _addr("eth0", "198.51.100.11/24"),
        _addr("eth0", "192.0.2.11/24"),
        # Another node's VIP held here (instance `far` runs on b only) is no subnet either.
        _addr("eth0", "203.0.113.1/24"),
        _addr("eth0", "169.254.1.1/16"),
        _addr("eth0", "127.0.0.2/8"),
    ]
    assert [str(d) for d in vip_subnet_warnings(loaded, "a", facts)] == [
        "v.yaml:12:47: warning: vrrp.instances.web.vips[2]: 203.0.113.9 is outside every subnet "
        "of eth0 on this machine (192.0.2.0/24, 198.51.100.0/24): hosts on that link will not "
        "reach it directly"
    ]
    # Only addresses of another family, or on another interface: nothing known, no warning.
    assert vip_subnet_warnings(loaded, "a", [_addr("eth0", "2001:db8::1/64")]) == []
    assert vip_subnet_warnings(loaded, "a", [_addr("eth1", "10.0.0.1/8")]) == []
    # A link-local or loopback address alone is no subnet: nothing known either.
    assert vip_subnet_warnings(loaded, "a", [_addr("eth0", "169.254.1.1/16")]) == []
    assert vip_subnet_warnings(loaded, "a", [_addr("eth0", "127.0.0.2/8")]) == []


BARE = """apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {address: 192.0.2.11, interface: eth0}
  b: {address: 192.0.2.12, interface: eth0}
"""


def test_a_file_without_hooks_or_scripts_names_no_program() -> None:
    # No vrrp, checks or virtual_services at all.
    assert programs_for_node(load_text(BARE, "p.yaml"), "a") == []
    # Sections without the parts that name programs: no defaults, sync groups, quorum,
    # real server notify; a service on another node comes first and is skipped.
    text = BARE + (
        "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.100/24]}\n"
        "virtual_services:\n"
        "  other: {address: 192.0.2.100, port: 81, nodes: [b], quorum: {up: [[/bin/b]]},\n"
        "          real_servers: [{address: 198.51.100.1}]}\n"
        "  mine: {address: 192.0.2.100, port: 80, real_servers: [{address: 198.51.100.1,\n"
        "         check: {script: {command: ['/bin/my check', x]}}}]}\n"
    )
    (use,) = programs_for_node(load_text(text, "p.yaml"), "a")
    # Not run by a shell: argv[0] is the program, spaces and all.
    assert use.program == "/bin/my check"


def test_a_shell_script_names_the_first_word_of_its_joined_command() -> None:
    text = BARE + (
        "checks:\n  c: {script: {command: [/bin/first, second], shell: true}}\n"
        "vrrp:\n  instances:\n    v: {vrid: 1, vips: [192.0.2.100/24], track: [{check: c}]}\n"
    )
    (use,) = programs_for_node(load_text(text, "p.yaml"), "a")
    assert (use.program, use.location) == ("/bin/first", Location("p.yaml", 8, 26))


def test_the_subnet_warning_points_at_the_address_of_a_vip_written_as_a_mapping() -> None:
    text = BARE + (
        "vrrp:\n  instances:\n    v:\n      vrid: 1\n"
        "      vips: [{dev: eth0, address: 203.0.113.9/24}]\n"
    )
    (d,) = vip_subnet_warnings(load_text(text, "v.yaml"), "a", [_addr("eth0", "192.0.2.11/24")])
    assert d.severity is Severity.WARNING
    assert d.location == Location("v.yaml", 11, 35)
