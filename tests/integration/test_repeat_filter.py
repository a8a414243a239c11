"""The kernel repeat filter on a real raw socket: armed repeats are dropped and
counted with their time, everything else still reaches the socket.

A sender in one namespace sends adverts through our raw socket; a receiver in the
other arms the first one it reads and reports what it read afterwards and what the
filter recorded.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.adapters.repeat_filter import PATTERN_MAX, RepeatFilter, Seen
from reconciler.testing.netlab import Lab
from reconciler.testing.vrrp_nodes import (
    Instance,
    cluster_yaml,
    node_status,
    repeat_filter_unavailable_reason,
    start_ours,
    wait_following,
)

pytestmark = pytest.mark.root

VIP4 = ipaddress.ip_interface("192.0.2.100/24")

RECEIVER = textwrap.dedent(
    """
    import json, select, sys, time
    from reconciler.adapters.repeat_filter import RepeatFilter, ipv6_packet, normalize
    from reconciler.adapters.vrrp_socket import VrrpSocket
    family, seconds = int(sys.argv[1]), float(sys.argv[2])
    sock = VrrpSocket("eth0", family)
    filt = RepeatFilter.create(family)
    filt.attach(sock.sock)
    print("ready", flush=True)
    read = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        select.select([sock.fileno()], [], [], 0.05)
        for d in sock.receive(64):
            packet = d.data if family == 4 else ipv6_packet(
                d.data, d.source.packed, d.destination.packed, d.hop_limit)
            read.append([d.data.hex(), d.received_at])
            if len(read) == 1:
                vrid = d.data[21] if family == 4 else d.data[1]
                filt.arm(vrid, normalize(family, packet))
                print("armed", flush=True)
    seen = filt.seen(7)
    print(json.dumps({"read": read, "dropped": seen.dropped, "last": seen.last_seen_s,
                      "now": time.monotonic()}), flush=True)
    """
)

SENDER = textwrap.dedent(
    """
    import ipaddress, socket, sys, time
    from reconciler.adapters.vrrp_socket import VrrpSocket
    from reconciler.vrrp.packet import Advert, VrrpVersion, encode_advert, multicast_group
    family, source, vip, phase = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    sock = VrrpSocket("eth0", family)
    src = ipaddress.ip_address(source)
    dst = multicast_group(src)
    def advert(priority, vrid=7):
        a = Advert(VrrpVersion.V3, vrid, priority, 100, (ipaddress.ip_address(vip),))
        return encode_advert(a, src, dst)
    if phase == "first":
        sock.send(advert(100), src, dst)
    else:
        for _ in range(5):
            sock.send(advert(100), src, dst)   # repeats: dropped
            time.sleep(0.01)
        forged = bytearray(advert(100))
        forged[7] ^= 0xFF
        sock.send(bytes(forged), src, dst)      # one byte off (checksum): passes
        if family == 4:
            sock.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 254)
        else:
            sock.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 254)
        sock.send(advert(100), src, dst)         # TTL 254 (off-link): passes
        if family == 4:
            sock.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        else:
            sock.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        time.sleep(0.01)
        sock.send(advert(0), src, dst)          # priority 0: passes
        sock.send(advert(100, vrid=8), src, dst)  # another VRID: passes
        time.sleep(0.01)
        before = time.monotonic()
        sock.send(advert(100), src, dst)         # still armed: dropped
        print(before, time.monotonic(), flush=True)
    """
)


@pytest.mark.parametrize("family", [4, 6])
def test_armed_repeats_are_dropped_counted_and_timed(make_lab, family: int) -> None:  # type: ignore[no-untyped-def]
    if reason := repeat_filter_unavailable_reason():
        pytest.skip(reason)
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    if family == 6:
        h1.link_local()
        h2.link_local()
        source, vip = str(h1.link_local()), "2001:db8::100"
    else:
        source, vip = str(h1.ipv4), "192.0.2.100"
    receiver = h2.spawn([sys.executable, "-c", RECEIVER, str(family), "3"])
    receiver.wait_for_output("ready")
    h1.run([sys.executable, "-c", SENDER, str(family), source, vip, "first"])
    receiver.wait_for_output("armed")
    sent = h1.run([sys.executable, "-c", SENDER, str(family), source, vip, "rest"])
    before, after = map(float, sent.stdout.split()[-2:])
    receiver.wait(10)
    result = json.loads(receiver.output().splitlines()[-1])
    read = [bytes.fromhex(h) for h, _ in result["read"]]
    vrrp = [p[20:] if family == 4 else p for p in read]
    # The first (armed), then only those that differ: a forged checksum, a hop limit of
    # 254 (both refused later, in user space), priority 0 and VRID 8.
    assert [(v[1], v[2]) for v in vrrp] == [(7, 100)] * 3 + [(7, 0), (8, 100)]
    assert vrrp[1][6:8] != vrrp[0][6:8]
    if family == 4:
        assert read[2][8] == 254
    assert result["dropped"] == 6
    # The last drop is the last packet sent (same clock: CLOCK_MONOTONIC, one machine;
    # veth delivers within the sending system call).
    assert before <= result["last"] <= after + 0.05
    assert result["last"] > result["read"][-1][1]


def test_an_advert_too_long_to_compare_is_not_armed() -> None:
    if reason := repeat_filter_unavailable_reason():
        pytest.skip(reason)
    filt = RepeatFilter.create(6)
    try:
        assert filt.arm(9, bytes(PATTERN_MAX))
        assert filt.armed(9)
        assert not filt.arm(9, bytes(PATTERN_MAX + 1))  # and the old pattern is disarmed
        assert not filt.armed(9)
        assert filt.seen(9) == Seen(0, 0.0)
    finally:
        filt.close()


PRIORITY_ZERO_FORGER = textwrap.dedent(
    """
    import ipaddress, socket, sys, time
    from reconciler.vrrp.packet import Advert, VrrpVersion, encode_advert
    src = ipaddress.ip_address(sys.argv[1]); grp = ipaddress.ip_address("224.0.0.18")
    vrid, vip, count = int(sys.argv[2]), ipaddress.ip_address(sys.argv[3]), int(sys.argv[4])
    interval_cs = int(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.SOL_SOCKET, 25, b"eth0")
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    # A valid advert (RFC 5798 7.1 checks pass) saying "the master is leaving".
    goodbye = encode_advert(Advert(VrrpVersion.V3, vrid, 0, interval_cs, (vip,)), src, grp)
    for _ in range(count):
        s.sendto(goodbye, (str(grp), 0))
        time.sleep(0.2)
    print("sent", flush=True)
    """
)


@pytest.mark.parametrize("kernel_filter", [True, False], ids=["repeat-filter", "no-filter"])
def test_forged_priority_zero_from_a_non_member_moves_no_vip(make_lab, kernel_filter: bool) -> None:  # type: ignore[no-untyped-def]
    """RFC 5798 §6.4.3: a master that receives a priority-0 advert sends its own at once,
    and §6.4.2: the backup that receives it restarts its Master_Down_Timer, so a
    priority-0 advert from a host that is not a member moves nothing. With the repeat
    filter the master's answer is byte-identical to the repeat the backup's kernel drops;
    it must still count after the priority-0 advert it answers."""
    if kernel_filter and (reason := repeat_filter_unavailable_reason()):
        pytest.skip(reason)
    lab: Lab = make_lab(3)
    h1, h2, h3 = lab.host(1), lab.host(2), lab.host(3)
    config = lab.tmpdir / "c.yaml"
    # h3 is no node of the cluster at all: only h1 and h2 are members. Adverts every
    # 100 ms: the master has Skew_Time (61 ms) to answer, and the forgeries come further
    # apart than that, so each answer counted before its priority-0 advert moves the VIP.
    instance = Instance("web", 65, (VIP4,), {"h1": 150, "h2": 100}, advert_interval_s=0.1)
    config.write_text(cluster_yaml((h1, h2), (instance,)))
    extra = () if kernel_filter else ("--no-repeat-filter",)
    master = start_ours(h1, config, lab.tmpdir / "s1", extra_args=extra)
    h1.watcher.wait_for(VIP4, timeout=10)
    backup = start_ours(h2, config, lab.tmpdir / "s2", extra_args=extra)
    before = wait_following(h2)
    assert before["sockets"][0]["repeat_filter"] is kernel_filter
    t0 = time.monotonic()
    h3.run(
        [
            sys.executable,
            "-c",
            PRIORITY_ZERO_FORGER,
            str(h3.ipv4),
            str(instance.vrid),
            str(VIP4.ip),
            "40",
            str(round(instance.advert_interval_s * 100)),
        ],
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        timeout=60,
    )
    time.sleep(0.3)  # more than Skew_Time after the last one
    after = node_status(h2)
    assert master.alive and backup.alive
    # Observed, not reported: the VIP never appeared on the backup nor left the master.
    assert not [e for e in h2.watcher.events(VIP4) if e.timestamp > t0], backup.output()
    assert not [e for e in h1.watcher.events(VIP4) if e.timestamp > t0], master.output()
    assert "-> MASTER" not in backup.output()
    # The forgeries did reach the backup's socket (they pass the filter) as valid adverts.
    assert after["sockets"][0]["read"] - before["sockets"][0]["read"] >= 40
    (inst,) = after["instances"]
    assert inst["state"] == "BACKUP" and not inst["refused"]
    master.stop()
    backup.stop()
