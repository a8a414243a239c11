#!/usr/bin/env python3
"""Capture golden VRRP adverts from Debian's keepalived into ``*.json`` beside this file.

Needs root, ``ip``, ``tcpdump``, ``keepalived`` and scapy (pcap reading only). Everything
happens inside two temporary network namespaces joined by a veth pair created inside
them, with documentation addresses only; nothing touches the root namespace's links.
keepalived runs in the foreground (``-n``) with its own pid files, is stopped by its PID
(SIGTERM, so its priority-0 advert is captured too), and the namespaces are deleted at the
end, also on failure.

Run:  python3 tests/data/vrrp/capture_keepalived.py [NAME ...]
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP  # test-only tooling: reads the pcap
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

HERE = Path(__file__).resolve().parent
NS_KA = "rvtest-ka"
NS_CAP = "rvtest-cap"
KA_V4, CAP_V4 = "192.0.2.11", "192.0.2.12"
KA_V6, CAP_V6 = "2001:db8::11", "2001:db8::12"
KA_LL, CAP_LL = "fe80::11", "fe80::12"

INSTANCE = """\
global_defs {{
    router_id ka
}}

vrrp_instance VI_eth0_51 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int {advert_int}
    version {version}
{extra}    virtual_ipaddress {{
{vips}    }}
}}
"""

V4_VIPS = ["192.0.2.100", "192.0.2.101", "192.0.2.102"]
V6_VIPS = ["2001:db8::100", "2001:db8::101", "2001:db8::102"]


def conf(*, version: int, advert_int: str = "1", vips: list[str], extra: str = "") -> str:
    return INSTANCE.format(
        advert_int=advert_int,
        version=version,
        extra="".join(f"    {line}\n" for line in extra.splitlines()),
        vips="".join(f"        {v} dev eth0\n" for v in vips),
    )


# name -> (description, keepalived.conf, adverts to wait for before SIGTERM)
SCENARIOS: dict[str, tuple[str, str, int]] = {
    "v3_ipv4_multicast_1s_1vip": (
        "VRRPv3 IPv4 multicast, advert_int 1 s, 1 VIP",
        conf(version=3, vips=V4_VIPS[:1]),
        2,
    ),
    "v3_ipv4_multicast_100ms_1vip": (
        "VRRPv3 IPv4 multicast, advert_int 0.1 s, 1 VIP",
        conf(version=3, advert_int="0.1", vips=V4_VIPS[:1]),
        3,
    ),
    "v3_ipv4_multicast_1s_3vip": (
        "VRRPv3 IPv4 multicast, advert_int 1 s, 3 VIPs",
        conf(version=3, vips=V4_VIPS),
        2,
    ),
    "v2_ipv4_multicast_1s_1vip_noauth": (
        "VRRPv2 IPv4 multicast, advert_int 1 s, 1 VIP, no authentication",
        conf(version=2, vips=V4_VIPS[:1]),
        2,
    ),
    "v2_ipv4_multicast_1s_1vip_pass": (
        "VRRPv2 IPv4 multicast, advert_int 1 s, 1 VIP, auth_type PASS",
        conf(
            version=2,
            vips=V4_VIPS[:1],
            extra="authentication {\n    auth_type PASS\n    auth_pass secret\n}",
        ),
        2,
    ),
    "v2_ipv4_multicast_1s_3vip_pass": (
        "VRRPv2 IPv4 multicast, advert_int 1 s, 3 VIPs, auth_type PASS",
        conf(
            version=2,
            vips=V4_VIPS,
            extra="authentication {\n    auth_type PASS\n    auth_pass secret\n}",
        ),
        2,
    ),
    "v3_ipv4_unicast_1s_1vip": (
        "VRRPv3 IPv4 unicast (RFC checksum: pseudo-header dst = peer), 1 VIP",
        conf(
            version=3,
            vips=V4_VIPS[:1],
            extra=f"unicast_src_ip {KA_V4}\nunicast_peer {{\n    {CAP_V4}\n}}",
        ),
        2,
    ),
    "v3_ipv4_unicast_1s_1vip_old_checksum": (
        "VRRPv3 IPv4 unicast with old_unicast_checksum (pseudo-header dst = 224.0.0.18)",
        conf(
            version=3,
            vips=V4_VIPS[:1],
            extra=(
                f"unicast_src_ip {KA_V4}\nunicast_peer {{\n    {CAP_V4}\n}}\nold_unicast_checksum"
            ),
        ),
        2,
    ),
    "v3_ipv6_multicast_1s_1vip": (
        "VRRPv3 IPv6 multicast (link-local source), advert_int 1 s, 1 VIP",
        conf(version=3, vips=V6_VIPS[:1]),
        2,
    ),
    "v3_ipv6_multicast_1s_3vip": (
        "VRRPv3 IPv6 multicast (link-local source), advert_int 1 s, 3 VIPs",
        conf(version=3, vips=V6_VIPS),
        2,
    ),
    "v3_ipv6_unicast_1s_1vip": (
        "VRRPv3 IPv6 unicast, 1 VIP",
        conf(
            version=3,
            vips=V6_VIPS[:1],
            extra=f"unicast_src_ip {KA_V6}\nunicast_peer {{\n    {CAP_V6}\n}}",
        ),
        2,
    ),
}


def run(*args: str) -> None:
    subprocess.run(args, check=True)


@contextlib.contextmanager
def lab() -> Iterator[None]:
    for ns in (NS_KA, NS_CAP):
        if (
            ns
            in subprocess.run(
                ["ip", "netns", "list"], check=False, capture_output=True, text=True
            ).stdout
        ):
            raise SystemExit(f"namespace {ns} already exists; not touching it")
    try:
        run("ip", "netns", "add", NS_KA)
        run("ip", "netns", "add", NS_CAP)
        # The veth pair is created inside NS_KA, its peer moved straight into NS_CAP.
        run("ip", "-n", NS_KA, "link", "add", "eth0", "type", "veth",
            "peer", "name", "eth0", "netns", NS_CAP)  # fmt: skip
        for ns, v4, v6, ll in ((NS_KA, KA_V4, KA_V6, KA_LL), (NS_CAP, CAP_V4, CAP_V6, CAP_LL)):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "set", "eth0", "addrgenmode", "none")
            run("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", "eth0")
            run("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
            run("ip", "-n", ns, "addr", "add", f"{ll}/64", "dev", "eth0", "nodad")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
        yield
    finally:
        for ns in (NS_KA, NS_CAP):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def capture(name: str, description: str, config: str, adverts: int) -> dict[str, Any]:

    with tempfile.TemporaryDirectory(prefix="rvcap-") as tmp:
        d = Path(tmp)
        (d / "keepalived.conf").write_text(config)
        pcap = d / "cap.pcap"
        tcpdump = subprocess.Popen(
            ["ip", "netns", "exec", NS_CAP, "tcpdump", "-i", "eth0", "-n", "-U",
             "-w", str(pcap), "ip proto 112 or ip6 proto 112"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)
        ka = subprocess.Popen(
            ["ip", "netns", "exec", NS_KA, "keepalived", "-n", "-l", "-D", "-G", "-P",
             "-f", str(d / "keepalived.conf"), "-p", str(d / "keepalived.pid"),
             "-r", str(d / "vrrp.pid"), "-c", str(d / "checkers.pid"),
             "-b", str(d / "bfd.pid")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        interval_s = 0.1 if "100ms" in name else 1.0
        try:
            # BACKUP for Master_Down_Interval (~3.61 s at priority 100), then adverts.
            time.sleep(3.8 * interval_s + 0.3 + adverts * interval_s)
        finally:
            stop(ka)  # graceful: keepalived sends its priority-0 advert
            time.sleep(0.5)
            stop(tcpdump, signal.SIGINT)
        log = ka.stdout.read().decode(errors="replace") if ka.stdout else ""
        for pidfile in ("keepalived.pid", "vrrp.pid", "checkers.pid", "bfd.pid"):
            if (d / pidfile).exists():
                pid = int((d / pidfile).read_text().split()[0])
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 0)
                    raise SystemExit(f"keepalived {pidfile} {pid} still running")
        packets = []
        for frame in rdpcap(str(pcap)):
            if IP in frame:
                ip = frame[IP]
                raw = bytes(ip)[: ip.len]
                packets.append({
                    "family": 4, "source": ip.src, "destination": ip.dst, "hop_limit": ip.ttl,
                    "ip_packet_hex": raw.hex(), "vrrp_hex": raw[ip.ihl * 4 :].hex(),
                })  # fmt: skip
            elif IPv6 in frame:
                ip6 = frame[IPv6]
                payload = bytes(ip6.payload)[: ip6.plen]
                packets.append({
                    "family": 6, "source": ip6.src, "destination": ip6.dst,
                    "hop_limit": ip6.hlim, "vrrp_hex": payload.hex(),
                })  # fmt: skip
    if not packets:
        print(log, file=sys.stderr)
        raise SystemExit(f"{name}: no adverts captured")
    return {
        "name": name,
        "description": description,
        "producer": subprocess.run(
            ["keepalived", "--version"], check=False, capture_output=True, text=True
        ).stderr.splitlines()[0],
        "command": "keepalived -n -l -D -G -P -f keepalived.conf -p keepalived.pid "
        "-r vrrp.pid -c checkers.pid -b bfd.pid (then SIGTERM)",
        "keepalived_conf": config,
        "packets": packets,
    }


def main(names: list[str]) -> None:
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    chosen = names or list(SCENARIOS)
    with lab():
        for name in chosen:
            description, config, adverts = SCENARIOS[name]
            result = capture(name, description, config, adverts)
            (HERE / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
            print(f"{name}: {len(result['packets'])} packets")


if __name__ == "__main__":
    main(sys.argv[1:])
