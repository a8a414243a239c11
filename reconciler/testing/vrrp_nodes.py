"""Run VRRP speakers in a lab: our daemon or Debian's keepalived, per host.

Used by the integration tests and by bench/failover.py, so that both speakers
are started, configured and measured the same way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from reconciler.adapters.repeat_filter import FilterUnavailable, RepeatFilter
from reconciler.testing.netlab import CommandError, Host, LabProcess

KEEPALIVED = "/usr/sbin/keepalived"


def keepalived_available() -> bool:
    return Path(KEEPALIVED).exists() or shutil.which("keepalived") is not None


@dataclass(frozen=True)
class Instance:
    """One VRRP instance as both speakers are configured for it."""

    name: str
    vrid: int
    vips: tuple[IPv4Interface | IPv6Interface, ...]
    priorities: dict[str, int] = field(hash=False)  # host name -> priority
    version: int = 3
    advert_interval_s: float = 0.1
    unicast: bool = False
    preempt: bool = True
    preempt_delay_s: float = 0.0
    interface: str = "eth0"
    # VRRPv2 simple password (keepalived: authentication { auth_type PASS }).
    auth_pass: str | None = None
    # VRRPv3 unicast checksum: ours "auto" / "rfc" / "old"; keepalived gets
    # old_unicast_checksum for "old" and old_unicast_checksum never for "rfc".
    unicast_checksum: str = "auto"
    accept: bool = True  # RFC 5798 Accept_Mode (keepalived: accept / no_accept)

    @property
    def family(self) -> int:
        return self.vips[0].version


def cluster_yaml(
    hosts: tuple[Host, ...],
    instances: tuple[Instance, ...],
    sync_groups: dict[str, tuple[str, ...]] | None = None,
) -> str:
    """The desired-state file for our daemon."""
    lines = ["apiVersion: reconciler/v1", "kind: Cluster", "name: lab", "nodes:"]
    for h in hosts:
        lines.append(f'  {h.name}: {{address: {h.ipv4}, address6: "{h.ipv6}", interface: eth0}}')
    lines += ["vrrp:", "  instances:"]
    for i in instances:
        prio = ", ".join(f"{n}: {p}" for n, p in i.priorities.items())
        vips = ", ".join(f'"{v}"' for v in i.vips)
        interval = f"{round(i.advert_interval_s * 1000)}ms"
        lines += [
            f"    {i.name}:",
            f"      vrid: {i.vrid}",
            f"      version: {i.version}",
            f"      interface: {i.interface}",
            f"      advert_interval: {interval}",
            f"      priority: {{{prio}}}",
            f"      vips: [{vips}]",
            f"      unicast: {str(i.unicast).lower()}",
            f"      preempt: {str(i.preempt).lower()}",
            f"      preempt_delay: {round(i.preempt_delay_s * 1000)}ms",
        ]
        if not i.accept:
            lines.append("      accept: false")
        if i.unicast_checksum != "auto":
            lines.append(f"      unicast_checksum: {i.unicast_checksum}")
        if i.auth_pass is not None:
            lines.append(f'      authentication: {{type: pass, password: "{i.auth_pass}"}}')
    if sync_groups:
        lines.append("  sync_groups:")
        for g, members in sync_groups.items():
            lines += [f"    {g}:", f"      members: [{', '.join(members)}]"]
    return "\n".join(lines) + "\n"


def keepalived_conf(host: Host, peers: tuple[Host, ...], instances: tuple[Instance, ...]) -> str:
    """keepalived.conf for `host`, following the reference templates."""
    out = ["global_defs {", f"    router_id {host.name}", "}", ""]
    for i in instances:
        if host.name not in i.priorities:
            continue
        interval = f"{i.advert_interval_s:g}"
        out += [
            f"vrrp_instance {i.name} {{",
            "    state BACKUP",
            f"    interface {i.interface}",
            f"    virtual_router_id {i.vrid}",
            f"    priority {i.priorities[host.name]}",
            f"    advert_int {interval}",
            f"    version {i.version}",
        ]
        if not i.preempt:
            out.append("    nopreempt")
        if not i.accept:
            out.append("    no_accept")
        if i.preempt_delay_s:
            out.append(f"    preempt_delay {i.preempt_delay_s:g}")
        if i.unicast:
            own: IPv4Address | IPv6Address = host.ipv4 if i.family == 4 else host.ipv6
            out.append(f"    unicast_src_ip {own}")
            out.append("    unicast_peer {")
            for p in peers:
                if p.name != host.name and p.name in i.priorities:
                    out.append(f"        {p.ipv4 if i.family == 4 else p.ipv6}")
            out.append("    }")
            if i.unicast_checksum == "old":
                out.append("    old_unicast_checksum")
            elif i.unicast_checksum == "rfc":
                out.append("    old_unicast_checksum never")
        if i.auth_pass is not None:
            out += [
                "    authentication {",
                "        auth_type PASS",
                f"        auth_pass {i.auth_pass}",
                "    }",
            ]
        out.append("    virtual_ipaddress {")
        out += [f"        {v} dev {i.interface}" for v in i.vips]
        out += ["    }", "}", ""]
    return "\n".join(out)


@functools.cache
def repeat_filter_unavailable_reason() -> str | None:
    """Why the kernel repeat filter cannot load here (no CAP_BPF, kernel before 5.5), or
    None: tests of it skip with this reason."""
    try:
        RepeatFilter.create(4).close()
    except FilterUnavailable as exc:
        return f"the kernel repeat filter cannot load here: {exc}"
    return None


def node_status(host: Host, port: int = 9650) -> dict[str, Any]:
    """Our daemon's /status on ``host`` (its default address, in the host's namespace)."""
    code = (
        "import sys, urllib.request;"
        f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}/status', timeout=5)"
        ".read().decode())"
    )
    doc = json.loads(host.run([sys.executable, "-c", code], timeout=30).stdout)
    assert isinstance(doc, dict)
    return doc


def wait_following(host: Host, *, adverts: int = 3, timeout: float = 10.0) -> dict[str, Any]:
    """Wait until our daemon on ``host`` is up and its (only) instance has been handed
    ``adverts`` adverts: a backup that really follows its master. Returns that /status.
    (Sleeping a fixed time instead loses the race on a loaded machine, where a Python
    start-up can take over a second.)"""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(CommandError):  # /status is not up yet
            doc = node_status(host)
            (inst,) = doc["instances"]
            if inst["adverts_received"] >= adverts:
                return doc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host.name} does not follow a master within {timeout:g}s")
        time.sleep(0.05)


def start_ours(
    host: Host,
    config: Path,
    state_dir: Path,
    *,
    log_level: str = "info",
    env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    prefix: tuple[str, ...] = (),
) -> LabProcess:
    """Our daemon on ``host``; ``prefix`` runs it under a wrapper (``prlimit ...``)."""
    return host.spawn(
        [
            *prefix,
            sys.executable,
            "-m",
            "reconciler",
            "run",
            str(config),
            "--node",
            host.name,
            "--state-dir",
            str(state_dir),
            "--log-level",
            log_level,
            *extra_args,
        ],
        name=f"reconciler-{host.name}",
        env=env,
    )


def start_ours_git(
    host: Host,
    url: str,
    state_dir: Path,
    *,
    path: str = "cluster.yaml",
    interval: str = "30s",
    log_level: str = "info",
    env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> LabProcess:
    """Our daemon on ``host`` following branch main of the repository at ``url``
    (``run --git``), polling every ``interval``; ``extra_args`` for verification and
    ``--refresh-hook``."""
    return host.spawn(
        [
            sys.executable,
            "-m",
            "reconciler",
            "run",
            "--git",
            url,
            "--path",
            path,
            "--interval",
            interval,
            "--node",
            host.name,
            "--state-dir",
            str(state_dir),
            "--log-level",
            log_level,
            *extra_args,
        ],
        name=f"reconciler-{host.name}",
        env=env,
    )


def start_keepalived(host: Host, conf_text: str, workdir: Path) -> LabProcess:
    """keepalived in the foreground with its own pid files (never the system service's)."""
    workdir.mkdir(parents=True, exist_ok=True)
    # A restart after a crash starts like after a reboot (/run is empty then): the
    # crashed children may linger as unreaped zombies here, and keepalived takes a
    # pid file naming one for "daemon is already running".
    for name in ("keepalived.pid", "vrrp.pid", "checkers.pid", "bfd.pid"):
        (workdir / name).unlink(missing_ok=True)
    conf = workdir / "keepalived.conf"
    conf.write_text(conf_text)
    return host.spawn(
        [
            KEEPALIVED,
            "-n",
            "-l",
            "-D",
            "-G",
            "-P",
            "-f",
            str(conf),
            "-p",
            str(workdir / "keepalived.pid"),
            "-r",
            str(workdir / "vrrp.pid"),
            "-c",
            str(workdir / "checkers.pid"),
            "-b",
            str(workdir / "bfd.pid"),
        ],
        name=f"keepalived-{host.name}",
    )
