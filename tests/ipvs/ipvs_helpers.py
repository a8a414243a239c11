"""Helpers of the IPVS tests: ipvsadm, its -Ln output as model values, TCP real servers."""

from __future__ import annotations

import socket
import socketserver
import subprocess
from datetime import timedelta
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path

from reconciler.model.common import Family, IPAddress
from reconciler.model.ipvs import Forwarding, Protocol, ServiceKey
from reconciler.model.kernel import LiveDest, LiveService

VIP = IPv4Address("192.0.2.10")
VIP_LINK = "rclvip0"
REAL_SERVERS = {"a": IPv4Address("127.0.0.2"), "b": IPv4Address("127.0.0.3")}
REAL_PORT = 8080


def ipvsadm(*args: str) -> str:
    proc = subprocess.run(["ipvsadm", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"ipvsadm {' '.join(args)}: rc {proc.returncode}: {proc.stderr}")
    return proc.stdout


class _Handler(socketserver.StreamRequestHandler):
    """Say the server's name, then echo lines until the client closes."""

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, NamedServer)
        self.wfile.write(server.name.encode() + b"\n")
        for line in self.rfile:
            self.wfile.write(line)


class NamedServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, name: str, address: tuple[str, int]) -> None:
        self.name = name
        super().__init__(address, _Handler)


def ask(address: IPv4Address, port: int, timeout: float = 5.0) -> str:
    """Connect, read the greeting (the real server's name), close."""
    with socket.create_connection((str(address), port), timeout=timeout) as s:
        return s.makefile("r").readline().strip()


# --------------------------------------------------------------------------- ipvsadm -Ln

_PROTOCOLS = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
_FORWARD = {"Masq": Forwarding.NAT, "Tunnel": Forwarding.TUNNEL, "Route": Forwarding.DR}


def _endpoint(text: str) -> tuple[IPAddress, int]:
    host, _, port = text.rpartition(":")
    return ip_address(host.strip("[]")), int(port)


def _prefix(family: Family, mask: str) -> int:
    if family is Family.IPV6:
        return int(mask)
    return IPv4Network(f"0.0.0.0/{mask}").prefixlen


def _service(line: str) -> LiveService:
    words = line.split()
    if words[0] == "FWM":
        family = Family.IPV6 if words[2] == "IPv6" else Family.IPV4
        key = ServiceKey(family=family, fwmark=int(words[1]))
        rest = words[3:] if family is Family.IPV6 else words[2:]
    else:
        address, port = _endpoint(words[1])
        key = ServiceKey(Family.of(address), _PROTOCOLS[words[0]], address, port)
        rest = words[2:]
    scheduler, options = rest[0], rest[1:]
    flags: list[str] = []
    if options and options[0].startswith("("):
        flags = options.pop(0).strip("()").split(",")
    if "ops" in options:
        flags.append("ops")
    full = 32 if key.family is Family.IPV4 else 128
    persistent = "persistent" in options
    timeout = int(options[options.index("persistent") + 1]) if persistent else 0
    netmask = _prefix(key.family, options[options.index("mask") + 1]) if "mask" in options else full
    return LiveService(
        service=key,
        scheduler=scheduler,
        scheduler_flags=tuple(sorted(flags)),
        persistent=persistent,
        timeout=timedelta(seconds=timeout),
        netmask=netmask,
    )


def parse_ipvsadm() -> tuple[list[LiveService], list[LiveDest]]:
    """This namespace's IPVS table as ``ipvsadm -Ln`` and ``-Ln --thresholds`` print it."""
    plain = ipvsadm("-Ln").splitlines()[3:]
    thresholds = ipvsadm("-Ln", "--thresholds").splitlines()[3:]
    assert len(plain) == len(thresholds), (plain, thresholds)
    services: list[LiveService] = []
    dests: list[LiveDest] = []
    for line, with_thresholds in zip(plain, thresholds, strict=True):
        if not line.lstrip().startswith("->"):
            services.append(_service(line))
            continue
        _, endpoint, forward, weight, active, inactive = line.split()
        upper, lower = with_thresholds.split()[2:4]
        address, port = _endpoint(endpoint)
        dests.append(
            LiveDest(
                service=services[-1].service,
                address=address,
                port=port,
                weight=int(weight),
                forwarding=_FORWARD[forward],
                upper_threshold=int(upper),
                lower_threshold=int(lower),
                active_connections=int(active),
                inactive_connections=int(inactive),
            )
        )
    return sorted(services, key=lambda s: s.key), sorted(dests, key=lambda d: d.key)


def stats_conns() -> dict[str, int]:
    """Total connections per service/dest line of ``ipvsadm -Ln --stats`` (the endpoint as
    printed: "192.0.2.10:80", "-> 127.0.0.2:8080"); the kernel refreshes them every 2 s."""
    out: dict[str, int] = {}
    for line in ipvsadm("-Ln", "--stats").splitlines()[3:]:
        words = line.split()
        if words[0] == "->":
            out["-> " + words[1]] = int(words[2])
        else:
            out[words[1]] = int(words[2])
    return out


def dest_order() -> list[str]:
    """Dest endpoints ("C6336402:1F90") in the kernel's own list order, from /proc/net/ip_vs
    (ipvsadm sorts them).

    The kernel puts a new or re-added dest at the head of its service's list, so
    an edit that deleted and re-added a dest would move it: the order is the
    kernel-side evidence that an edit happened in place.
    """
    lines = Path("/proc/thread-self/net/ip_vs").read_text().splitlines()[3:]
    return [line.split()[1] for line in lines if "->" in line]
