"""Warnings: valid files that are likely not what was meant, printed by validate and plan as
FILE:LINE:COL: warning: ..., exit 0 (validate --strict: 1; plan --strict: 2)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.config.diagnostics import InvalidConfig, Severity, did_you_mean
from reconciler.config.load import load_text
from reconciler.config.node_checks import (
    InterfaceAddress,
    programs_for_node,
    vip_subnet_warnings,
)

# An interface name no test machine has: the subnet warning has no facts to go on.
IFACE = "rcfgtest0"


def _cluster(instances: str, extra: str = "") -> str:
    head = f"""\
        apiVersion: reconciler/v1
        kind: Cluster
        name: w
        nodes:
          a: {{address: 192.0.2.11, interface: {IFACE}}}
          b: {{address: 192.0.2.12, interface: {IFACE}}}
        """
    return textwrap.dedent(head) + textwrap.dedent(extra) + textwrap.dedent(instances)


def _warnings(text: str) -> list[str]:
    loaded = load_text(text, "w.yaml")
    assert all(w.severity is Severity.WARNING for w in loaded.warnings)
    return [str(w) for w in loaded.warnings]


WHY = (
    "between equal priorities the node with the higher primary address becomes master "
    "(RFC 5798 6.4.3); give the preferred node a higher priority"
)


def test_equal_priorities_in_a_map_are_a_warning_at_the_second_node() -> None:
    text = _cluster("""\
        vrrp:
          instances:
            web:
              vrid: 51
              priority: {a: 100, b: 100}
              vips: [192.0.2.100/24]
        """)
    assert _warnings(text) == [
        f"w.yaml:11:29: warning: vrrp.instances.web.priority: a and b both have priority 100: {WHY}"
    ]


def test_one_priority_for_every_node_or_none_at_all_is_a_warning() -> None:
    text = _cluster("""\
        vrrp:
          defaults: {priority: 120}
          instances:
            web:
              vrid: 51
              vips: [192.0.2.100/24]
            db:
              vrid: 52
              priority: 90
              vips: [192.0.2.101/24]
        """)
    assert _warnings(text) == [
        f"w.yaml:8:24: warning: vrrp.instances.web: every node (a, b) runs it with priority 120: "
        f"{WHY}",
        f"w.yaml:15:17: warning: vrrp.instances.db: every node (a, b) runs it with priority 90: "
        f"{WHY}",
    ]
    text = text.replace("  defaults: {priority: 120}\n", "")
    assert _warnings(text)[0] == (
        "w.yaml:9:5: warning: vrrp.instances.web: no priority is set, so every node (a, b) "
        f"runs it with priority 100: {WHY}"
    )


def test_distinct_priorities_and_single_node_instances_are_quiet() -> None:
    text = _cluster("""\
        vrrp:
          instances:
            web:
              vrid: 51
              priority: {a: 150, b: 100}
              vips: [192.0.2.100/24]
            solo:
              vrid: 52
              priority: {a: 100}
              vips: [192.0.2.101/24]
        """)
    assert _warnings(text) == []


def test_unknown_keys_suggest_the_close_name() -> None:
    text = _cluster("""\
        vrrp:
          instances:
            web:
              vrid: 51
              priority: {a: 150, b: 100}
              advert_intreval: 1s
              vips: [192.0.2.100/24]
        """)
    with pytest.raises(InvalidConfig) as exc:
        load_text(text, "w.yaml")
    assert [str(d) for d in exc.value.diagnostics] == [
        "w.yaml:12:7: vrrp.instances.web: unknown key 'advert_intreval' "
        "(did you mean 'advert_interval'?)"
    ]


def test_did_you_mean_only_for_a_likely_typo() -> None:
    assert did_you_mean("advert_intreval", ["advert_interval", "vrid"]) == "advert_interval"
    assert did_you_mean("ngnix", ["nginx"]) == "nginx"
    assert did_you_mean("lb3", ["lb1", "lb2"]) is None  # another node, not a typo
    assert did_you_mean("colour", ["vrid", "vips"]) is None


def test_an_integral_float_is_not_an_integer() -> None:
    text = _cluster("""\
        vrrp:
          instances:
            web:
              vrid: 51.0
              priority: {a: 150, b: 100}
              vips: [192.0.2.100/24]
        """)
    with pytest.raises(InvalidConfig) as exc:
        load_text(text, "w.yaml")
    assert [str(d) for d in exc.value.diagnostics] == [
        "w.yaml:10:13: vrrp.instances.web.vrid: expected an integer, got 51.0"
    ]


EQUAL = _cluster("""\
    vrrp:
      instances:
        web:
          vrid: 51
          priority: {a: 100, b: 100}
          vips: [192.0.2.100/24]
    """)


def test_validate_prints_warnings_and_exits_0_or_1_under_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "w.yaml"
    f.write_text(EQUAL)
    warning = f"{f}:11:29: warning: vrrp.instances.web.priority: a and b both have priority 100"
    assert main(["validate", str(f)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(warning) and out.out.endswith(f"\n{f}: OK (1 warning)\n")
    assert main(["validate", "--strict", str(f)]) == 1
    out = capsys.readouterr()
    assert out.out.startswith(warning) and out.out.count("\n") == 1
    assert out.err == f"{f}: invalid under --strict (1 warning)\n"
    # A file without warnings is still just OK under --strict.
    good = Path(__file__).resolve().parents[2] / "examples/lvs-nat.yaml"
    assert main(["validate", "--strict", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: OK\n"


def test_plan_prints_warnings_to_stderr_and_honours_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "w.yaml"
    f.write_text(EQUAL)
    assert main(["plan", str(f), "--node", "a"]) == 1  # changes: a fresh node
    out = capsys.readouterr()
    assert "create vrrp_instance web" in out.out and ": warning:" not in out.out
    assert out.err.startswith(f"{f}:11:29: warning: vrrp.instances.web.priority: a and b")
    assert main(["plan", "--strict", str(f), "--node", "a"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.endswith(f"{f}: has warnings and --strict is given; nothing planned\n")


HOOKS = _cluster(
    """\
    vrrp:
      defaults:
        notify: {stop: [[{bin}/defaults-stop]]}
      sync_groups:
        g: {members: [web], notify: {master: [[{bin}/group-master]]}}
      instances:
        web:
          vrid: 51
          priority: {a: 150, b: 100}
          vips: [192.0.2.100/24]
          track: [{check: alive, weight: -10}]
          notify:
            master: [[{bin}/ok, --flag], {command: [{bin}/missing]}, [{bin}/not-executable]]
            backup: [[{bin}]]
            fault: [[rcfg-no-such-program-in-path]]
            stop: [[sh, -c, "true"]]
        other:
          vrid: 52
          priority: {b: 100}
          vips: [192.0.2.101/24]
          notify: {master: [[{bin}/only-on-b]]}
    virtual_services:
      web:
        address: 192.0.2.100
        port: 80
        check: {script: {command: ["{bin}/inline-check x", "y"], shell: true}}
        quorum: {up: [[{bin}/quorum-up]]}
        real_servers:
          - address: 198.51.100.2
            check: alive
            notify: {down: [[{bin}/rs-down]]}
    """,
    """\
    checks:
      alive:
        script: {command: [{bin}/alive]}
      unused:
        script: {command: [{bin}/unused]}
    """,
)


def test_programs_the_node_runs_are_listed_where_they_are_written(tmp_path: Path) -> None:
    loaded = load_text(HOOKS.replace("{bin}", str(tmp_path)), "h.yaml")
    uses = [
        (u.program.removeprefix(f"{tmp_path}/"), u.role) for u in programs_for_node(loaded, "a")
    ]
    assert uses == [
        ("ok", "notify hook"),
        ("missing", "notify hook"),
        ("not-executable", "notify hook"),
        (str(tmp_path), "notify hook"),
        ("rcfg-no-such-program-in-path", "notify hook"),
        ("sh", "notify hook"),
        ("group-master", "sync group notify hook"),
        ("alive", "check script"),
        ("inline-check", "check script"),  # shell: the first word of the joined command
        ("quorum-up", "quorum hook"),
        ("rs-down", "real server notify hook"),
    ]  # not: 'defaults-stop' (web has its own notify), 'only-on-b', 'unused'
    on_b = {u.program.removeprefix(f"{tmp_path}/") for u in programs_for_node(loaded, "b")}
    assert {"only-on-b", "ok", "alive"} <= on_b


@pytest.fixture
def hook_dir() -> Iterator[Path]:
    """A directory for hook programs that nobody may reach and run: root's, mode 0755,
    in /tmp (sticky), unlike pytest's tmp_path below a 0700 directory."""
    if os.geteuid() != 0:
        pytest.skip("programs that nobody may run are root's: needs root")
    path = Path(tempfile.mkdtemp(prefix="rcfg-hooks-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_validate_on_a_node_warns_about_programs_it_cannot_run(
    hook_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, mode in (("ok", 0o755), ("alive", 0o700), ("not-executable", 0o644)):
        (hook_dir / name).write_text("#!/bin/sh\n")
        (hook_dir / name).chmod(mode)
    for name in ("group-master", "inline-check", "quorum-up", "rs-down"):
        (hook_dir / name).write_text("#!/bin/sh\n")
        (hook_dir / name).chmod(0o755)
    f = hook_dir / "h.yaml"
    f.write_text(HOOKS.replace("{bin}", str(hook_dir)))
    assert main(["validate", "--node", "a", str(f)]) == 0
    lines = capsys.readouterr().out.splitlines()
    found = [line.split(": warning: ", 1)[1] for line in lines if ": warning: " in line]
    assert found == [
        # Mode 0700: root could run it, the check's user (nobody) cannot.
        f"checks.alive: check script '{hook_dir}/alive' is not executable by nobody on this "
        "machine",
        f"vrrp.instances.web.notify.master: notify hook '{hook_dir}/missing' does not exist "
        "on this machine",
        f"vrrp.instances.web.notify.master: notify hook '{hook_dir}/not-executable' is not "
        "executable by nobody on this machine",
        f"vrrp.instances.web.notify.backup: notify hook '{hook_dir}' is not a regular file on "
        "this machine",
        "vrrp.instances.web.notify.fault: notify hook 'rcfg-no-such-program-in-path' is not "
        "found in PATH on this machine",
    ]
    assert lines[1].startswith(f"{f}:24:")  # at the program, on its own line
    assert lines[-1] == f"{f}: OK (5 warnings)"
    # Without --node nothing is checked on this machine.
    assert main(["validate", str(f)]) == 0
    assert capsys.readouterr().out == f"{f}: OK\n"
    assert main(["validate", "--strict", "--node", "a", str(f)]) == 1
    capsys.readouterr()


def test_validate_on_an_unknown_node_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "w.yaml"
    f.write_text(EQUAL)
    assert main(["validate", "--node", "z", str(f)]) == 2
    assert capsys.readouterr().err == f"unknown node 'z': {f} has a, b\n"


def _addr(interface: str, text: str) -> InterfaceAddress:
    return InterfaceAddress(interface, ipaddress.ip_interface(text))


def test_a_vip_outside_every_subnet_of_its_interface_is_a_warning() -> None:
    text = _cluster("""\
        vrrp:
          instances:
            web:
              vrid: 51
              priority: {a: 150, b: 100}
              vips:
                - 192.0.2.100/24
                - 203.0.113.7/24
                - {address: 198.51.100.9/24, dev: other0}
            v6:
              vrid: 51
              priority: {a: 150, b: 100}
              vips: [2001:db8::100/64, 2001:db8:1::5/64]
        """)
    loaded = load_text(text, "v.yaml")
    facts = [
        _addr(IFACE, "192.0.2.11/24"),
        _addr(IFACE, "203.0.113.7/24"),  # the VIP itself, held now: not a subnet of its own
        _addr(IFACE, "2001:db8::11/64"),
        _addr(IFACE, "fe80::1/64"),
        _addr("lo", "127.0.0.1/8"),
    ]
    assert [str(d) for d in vip_subnet_warnings(loaded, "a", facts)] == [
        "v.yaml:14:11: warning: vrrp.instances.web.vips[1]: 203.0.113.7 is outside every "
        f"subnet of {IFACE} on this machine (192.0.2.0/24): hosts on that link will not "
        "reach it directly",
        "v.yaml:19:32: warning: vrrp.instances.v6.vips[1]: 2001:db8:1::5 is outside every "
        f"subnet of {IFACE} on this machine (2001:db8::/64): hosts on that link will not "
        "reach it directly",
    ]  # other0 has no address here: unknown, no warning
    assert vip_subnet_warnings(loaded, "a", []) == []


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "path", sorted((EXAMPLES / "warnings").glob("*.yaml")), ids=lambda p: p.name
)
def test_warning_examples_give_exactly_their_warnings(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    rel = path.relative_to(EXAMPLES.parent)
    expected = path.with_suffix(".expected").read_text()
    assert ": warning: " in expected
    assert main(["validate", str(rel)]) == 0
    assert capsys.readouterr().out == expected
    assert main(["validate", "--strict", str(rel)]) == 1


ROOT_HOOKS = _cluster(
    """\
    vrrp:
      instances:
        web:
          vrid: 51
          priority: {a: 150, b: 100}
          vips: [192.0.2.100/24]
          notify:
            user: root
            master: [[/usr/local/bin/on-master]]
            backup: [{command: [/usr/local/bin/on-backup], user: backup-hooks}]
        api:
          vrid: 52
          priority: {a: 150, b: 100}
          vips: [192.0.2.101/24]
          notify:
            master: [[/usr/local/bin/on-master], {command: [/bin/true], user: root}]
    virtual_services:
      web:
        address: 192.0.2.100
        port: 80
        check: {script: {command: [/usr/local/bin/check], user: root}}
        quorum: {user: root, up: [[/usr/local/bin/up]]}
        real_servers:
          - address: 198.51.100.2
            notify: {user: rs-hooks, down: [[/usr/local/bin/down]]}
    """
)


def test_hooks_and_scripts_run_as_nobody_unless_the_file_says_otherwise() -> None:
    cluster = load_text(ROOT_HOOKS, "r.yaml").cluster.for_node("a")
    web, api = sorted(cluster.instances, key=lambda i: i.name, reverse=True)
    assert [h.user for h in web.notify.master] == ["root"]  # the block's user
    assert [h.user for h in web.notify.backup] == ["backup-hooks"]  # the hook's own
    assert [h.user for h in api.notify.master] == ["nobody", "root"]
    (svc,) = cluster.services
    assert [h.user for h in svc.quorum.up] == ["root"]
    (rs,) = cluster.real_servers
    assert [h.user for h in rs.notify_down] == ["rs-hooks"]
    assert rs.check is not None and getattr(rs.check.probe, "user", None) == "root"


def test_root_for_a_hook_or_script_is_allowed_with_a_warning_where_it_is_written() -> None:
    why = (
        "a mistake or a compromised program owns the node; prefer an unprivileged user "
        "(the default is nobody)"
    )
    assert _warnings(ROOT_HOOKS) == [
        f"w.yaml:14:15: warning: vrrp.instances.web.notify.user: these hooks are run as root: "
        f"{why}",
        f"w.yaml:22:75: warning: vrrp.instances.api.notify.master[1].user: this hook is run as "
        f"root: {why}",
        f"w.yaml:27:61: warning: virtual_services.web.check.script.user: this check script is "
        f"run as root: {why}",
        f"w.yaml:28:20: warning: virtual_services.web.quorum.user: these hooks are run as root: "
        f"{why}",
    ]
