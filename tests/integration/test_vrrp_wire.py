"""What our speaker puts on the wire, and what it refuses to act on.

A master announces its VIPs (gratuitous ARP / unsolicited NA); garbage and
forged adverts sent at a running master never crash it or change its state,
while one valid higher-priority advert does (proving the forgeries reach it).
"""

from __future__ import annotations

import ipaddress
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from reconciler.testing.netlab import Lab, LabProcess
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, start_ours

pytestmark = pytest.mark.root

VIP4 = ipaddress.ip_interface("192.0.2.100/24")
VIP6 = ipaddress.ip_interface("2001:db8::100/64")

SNIFFER = textwrap.dedent(
    """
    import socket, sys, time, json
    kind, seconds = sys.argv[1], float(sys.argv[2])
    if kind == "arp":
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        s.bind(("eth0", 0))
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.settimeout(0.1)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = s.recv(2048)
        except TimeoutError:
            continue
        print(json.dumps([time.monotonic(), data.hex()]), flush=True)
    """
)


def _captured(output: str) -> list[tuple[float, bytes]]:
    out = []
    for line in output.splitlines():
        if line.startswith("["):
            t, hexdata = json.loads(line)
            out.append((t, bytes.fromhex(hexdata)))
    return out


def _sniff_takeover(
    lab: Lab, instance: Instance, what: str
) -> tuple[list[tuple[float, bytes]], LabProcess]:
    """h1 alone becomes master of `instance` while h2 sniffs `what` ("arp" or "na") for
    3 s: the frames captured, and h1's daemon."""
    h1, h2 = lab.host(1), lab.host(2)
    config = lab.tmpdir / "c.yaml"
    config.write_text(cluster_yaml(lab.hosts, (instance,)))
    sniff = h2.spawn([sys.executable, "-c", SNIFFER, what, "3"])
    sniff.wait_for_output("ready")
    proc = start_ours(h1, config, lab.tmpdir / "s")
    h1.watcher.wait_for(instance.vips[0], timeout=10)
    sniff.wait(10)
    return _captured(sniff.output()), proc


def test_master_sends_a_burst_of_gratuitous_arps(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1 = lab.host(1)
    captured, proc = _sniff_takeover(lab, Instance("web", 61, (VIP4,), {"h1": 150}), "arp")
    garps = [f for _, f in captured if ARP in Ether(f) and Ether(f)[ARP].psrc == "192.0.2.100"]
    assert len(garps) == 5  # keepalived's vrrp_garp_master_repeat default
    for frame in garps:
        eth = Ether(frame)
        assert eth.dst == "ff:ff:ff:ff:ff:ff"
        assert eth[ARP].pdst == "192.0.2.100" and eth[ARP].op == 1
        assert eth[ARP].hwsrc == eth.src == h1.interface("eth0").mac
    proc.stop()


def test_master_sends_unsolicited_neighbour_advertisements(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1 = lab.host(1)
    captured, proc = _sniff_takeover(lab, Instance("web6", 62, (VIP6,), {"h1": 150}), "na")
    nas = []
    for _, payload in captured:
        if payload[0] == 136:  # ICMPv6 raw sockets deliver the ICMPv6 message
            msg = ICMPv6ND_NA(payload)
            if msg.tgt == "2001:db8::100":
                nas.append(msg)
    assert len(nas) == 5
    for na in nas:
        assert na.R == 1 and na.O == 1 and na.S == 0
        assert na[ICMPv6NDOptDstLLAddr].lladdr == h1.interface("eth0").mac
    assert IPv6  # scapy's IPv6 layer is what registered the ND message classes
    proc.stop()


FORGER = textwrap.dedent(
    """
    import ipaddress, os, random, socket, sys
    from reconciler.vrrp.packet import Advert, VrrpVersion, AuthType, encode_advert
    src = ipaddress.ip_address(sys.argv[1]); grp = ipaddress.ip_address("224.0.0.18")
    vip = ipaddress.ip_address("192.0.2.100"); other = ipaddress.ip_address("192.0.2.101")
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.SOL_SOCKET, 25, b"eth0")
    def send(payload, ttl=255):
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        s.sendto(payload, (str(grp), 0))
    def adv(**kw):
        a = dict(version=VrrpVersion.V3, vrid=63, priority=254, advert_interval_cs=10,
                 addresses=(vip,))
        a.update(kw)
        return encode_advert(Advert(**a), src, grp)
    if sys.argv[2] == "forged":
        rnd = random.Random(1)
        for _ in range(300):
            send(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80))))
        good = adv()
        for i in range(len(good)):
            send(good[:i])  # every truncation
        bad = bytearray(good); bad[6] ^= 0xFF; send(bytes(bad))  # checksum
        send(good, ttl=64)  # RFC 5798 7.1: TTL must be 255
        send(adv(vrid=64))  # another virtual router
        send(adv(addresses=(other,)))  # a VIP list with nothing in common with ours
        # (A list that shares a VIP with ours is elected on: RFC 5798 7.1 makes the check a
        # MAY, and a peer in the middle of a VIP-list change sends one; see Reloads.)
        send(adv(advert_interval_cs=100, version=VrrpVersion.V2, auth_type=AuthType.NONE))
        for _ in range(200):  # bit flips of a valid advert
            b = bytearray(good); b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8); send(bytes(b))
    else:
        for _ in range(3):
            send(adv())
    print("sent", flush=True)
    """
)


def test_garbage_and_forged_adverts_change_nothing(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    config = lab.tmpdir / "c.yaml"
    config.write_text(cluster_yaml(lab.hosts, (Instance("web", 63, (VIP4,), {"h1": 150}),)))
    proc = start_ours(h1, config, lab.tmpdir / "s", log_level="debug")
    h1.watcher.wait_for(VIP4, timeout=10)
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    t0 = time.monotonic()
    h2.run([sys.executable, "-c", FORGER, str(h2.ipv4), "forged"], env=env, timeout=60)
    time.sleep(0.5)
    assert proc.alive, proc.output()
    assert h1.watcher.is_present(VIP4)
    assert not [e for e in h1.watcher.events(VIP4) if e.timestamp > t0]
    assert "MASTER -> BACKUP" not in proc.output()
    assert "Traceback" not in proc.output()

    # The same path with one valid higher-priority advert does move it.
    t0 = time.monotonic()
    h2.run([sys.executable, "-c", FORGER, str(h2.ipv4), "valid"], env=env, timeout=60)
    h1.watcher.wait_for(VIP4, present=False, timeout=2, after=t0)
    assert "MASTER -> BACKUP (higher_priority)" in proc.output()
    proc.stop()
