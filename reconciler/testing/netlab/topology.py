"""Building a lab's namespaces: sysctls, veth pairs, bridges and addresses.

Every veth pair is made inside a host namespace with its peer moved straight to
the bridge namespace, so nothing is created in the root namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler.testing.netlab.addressing import HOST_IFINDEX, Segment
from reconciler.testing.netlab.errors import CommandError
from reconciler.testing.netlab.namespaces import Host
from reconciler.testing.netlab.plumbing import DEFAULT_PREFIX, batch_argv, call_in_netns

__all__ = [
    "bridge_commands",
    "configure_sysctls",
    "host_commands",
    "netns_unavailable_reason",
    "run_parallel",
]


def configure_sysctls(bridge_netns: str, host_netns: Sequence[str]) -> None:
    # The bridge namespace is a dumb switch: no IPv6 of its own, and bridged
    # frames are not passed to ip/ip6/arptables (br_netfilter, when loaded,
    # does that by default, adding conntrack and firewall paths to the lab).
    bridge_settings = {
        "net/ipv6/conf/all/disable_ipv6": "1",
        "net/ipv6/conf/default/disable_ipv6": "1",
        "net/bridge/bridge-nf-call-iptables": "0",
        "net/bridge/bridge-nf-call-ip6tables": "0",
        "net/bridge/bridge-nf-call-arptables": "0",
    }
    host_settings = {
        f"net/ipv6/conf/{scope}/{key}": value
        for scope in ("all", "default")
        for key, value in (
            ("accept_dad", "0"),
            ("keep_addr_on_down", "1"),
            # Kept addresses get their prefix route back only after a DAD run
            # delayed by up to router_solicitation_delay (1 s): make it immediate.
            ("router_solicitation_delay", "0"),
        )
    }

    def writer(settings: Mapping[str, str]) -> Callable[[], None]:
        def write() -> None:
            for key, value in settings.items():
                path = Path("/proc/sys") / key
                if key.startswith("net/bridge/") and not path.exists():
                    continue  # br_netfilter is not loaded
                path.write_text(value)

        return write

    call_in_netns(bridge_netns, writer(bridge_settings))
    for netns in host_netns:
        call_in_netns(netns, writer(host_settings))


def host_commands(host: Host, bridge_netns: str) -> list[str]:
    """``ip -batch`` commands, run in ``host``, that plug it into every segment."""
    cmds = ["link set lo up"]
    for iface in host.interfaces:
        cmds += [
            # An ifindex that differs from the peer's keeps both ends' carrier
            # events "urgent" for the kernel's linkwatch: with equal indexes
            # they are batched and a port can stay blocked for up to a second.
            f"link add {iface.ifname} index {HOST_IFINDEX + iface.segment.index}"
            f" address {iface.mac} type veth"
            f" peer name {iface.bridge_port} netns {bridge_netns}",
            f"addr add {iface.ipv4} dev {iface.ifname}",
            f"addr add {iface.ipv6} dev {iface.ifname} nodad",
            f"link set {iface.ifname} up",
        ]
    return cmds


def bridge_commands(segments: Sequence[Segment], hosts: Sequence[Host]) -> list[str]:
    """``ip -batch`` commands, run in the bridge namespace, for bridges and ports."""
    cmds = ["link set lo up"]
    for seg in segments:
        cmds += [
            f"link add {seg.bridge} type bridge stp_state 0 mcast_snooping 0",
            f"link set {seg.bridge} up",
        ]
    for host in hosts:
        for iface in host.interfaces:
            cmds += [
                f"link set {iface.bridge_port} master {iface.segment.bridge}",
                f"link set {iface.bridge_port} up",
            ]
    return cmds


def run_parallel(batches: Sequence[tuple[str, list[str]]]) -> None:
    """Run one ``ip -batch`` per (namespace, commands) at once; raise the first failure."""
    procs = [
        (
            netns,
            subprocess.Popen(
                batch_argv(netns),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            "\n".join(cmds) + "\n",
        )
        for netns, cmds in batches
    ]
    failures: list[CommandError] = []
    for netns, proc, text in procs:
        out, err = proc.communicate(text, timeout=60.0)
        if proc.returncode != 0:
            failures.append(CommandError(netns, proc.returncode, batch_argv(netns), out, err))
    if failures:
        raise failures[0]


def netns_unavailable_reason() -> str | None:
    """Why labs cannot run here (None if they can). Creates one probe namespace."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`) for network namespaces"
    probe = f"{DEFAULT_PREFIX}{os.getpid()}x0p"
    proc = subprocess.run(
        ["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30.0, check=False
    )
    if proc.returncode != 0:
        return f"cannot create network namespaces: {proc.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30.0, check=False)
    return None
