"""A node whose metrics port is flooded still fails over properly: with a low descriptor
limit and more idle connections than the listener's cap held open, a takeover adds the
VIP and its gratuitous ARPs are seen on the wire (issue: 1500 idle connections took every
descriptor, and every gratuitous ARP of the next takeover failed)."""

from __future__ import annotations

import ipaddress
import sys
import textwrap
import time

import pytest
from scapy.layers.l2 import ARP, Ether

from reconciler.observability.http import MAX_CONNECTIONS
from reconciler.testing.netlab import Lab
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, start_ours, wait_following

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")
NOFILE = 128  # the daemon needs a few dozen; the flood alone would take them all
# More than NOFILE, but not many more: the listener's accept queue (MAX_CONNECTIONS long)
# overflows whenever the holder connects faster than the loop accepts, and each dropped
# SYN costs its connect the kernel's 1 s initial retransmission timeout.
FLOOD = 200
FLOOD_WITHIN_S = 60.0

HOLDER = textwrap.dedent(
    """
    import socket, sys, time
    port, count = int(sys.argv[1]), int(sys.argv[2])
    held = []
    for _ in range(count):
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        held.append(s)
    print("held", len(held), flush=True)
    time.sleep(30)
    """
)

SNIFFER = textwrap.dedent(
    """
    import socket, sys, time
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind(("eth0", 0))
    s.settimeout(0.1)
    print("ready", flush=True)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        try:
            print(s.recv(2048).hex(), flush=True)
        except TimeoutError:
            pass
    """
)


def test_a_takeover_announces_while_the_http_listener_is_flooded(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    config = lab.tmpdir / "c.yaml"
    config.write_text(
        cluster_yaml(lab.hosts, (Instance("web", 62, (VIP,), {"h1": 150, "h2": 100}),))
    )
    master = start_ours(h1, config, lab.tmpdir / "s1")
    h1.watcher.wait_for(VIP, timeout=10)
    backup = start_ours(
        h2, config, lab.tmpdir / "s2", prefix=("prlimit", f"--nofile={NOFILE}:{NOFILE}")
    )
    backup.wait_for_output("metrics and status on", timeout=10)
    wait_following(h2)

    assert FLOOD > NOFILE > 2 * MAX_CONNECTIONS
    holder = h2.spawn([sys.executable, "-c", HOLDER, "9650", str(FLOOD)])
    holder.wait_for_output(f"held {FLOOD}", timeout=FLOOD_WITHIN_S)
    time.sleep(0.5)
    lines_before = len(backup.output().splitlines())

    sniff = h1.spawn([sys.executable, "-c", SNIFFER, "4"])
    sniff.wait_for_output("ready")
    t0 = time.monotonic()
    master.kill()
    h2.watcher.wait_for(VIP, timeout=10, after=t0)
    sniff.wait(10)
    garps = [
        f
        for f in (bytes.fromhex(x) for x in sniff.output().splitlines() if x != "ready")
        if ARP in Ether(f) and Ether(f)[ARP].psrc == str(VIP.ip)
    ]
    assert len(garps) == 5, len(garps)  # the whole first burst
    assert all(Ether(f).src == h2.interface("eth0").mac for f in garps)
    log = backup.output()
    assert "announcing" not in log and "Traceback" not in log
    assert len(log.splitlines()) - lines_before < 20  # no log flood
    holder.kill()
    assert backup.stop() == 0
