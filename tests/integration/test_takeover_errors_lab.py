"""Adverts refused by the kernel (a firewall dropping VRRP on output: every send fails with
EPERM) are counted in reconciler_vrrp_errors_total and logged once, not once per advert,
and change nothing else: the masters keep their VIPs (issue 13, item 1)."""

from __future__ import annotations

import ipaddress
import re
import sys
import time

import pytest

from reconciler.testing.netlab import Lab
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, start_ours

pytestmark = pytest.mark.root

VIPS = [ipaddress.ip_interface(f"192.0.2.{100 + k}/32") for k in range(5)]
METRICS = (
    "import sys, urllib.request;"
    "sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9650/metrics', timeout=5)"
    ".read().decode())"
)
EPERM_SENDS = re.compile(
    r'^reconciler_vrrp_errors_total\{error="EPERM",operation="advert_send"\} (\S+)$', re.M
)


def test_refused_adverts_are_counted_and_logged_once(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    config = lab.tmpdir / "c.yaml"
    instances = tuple(
        Instance(f"vi{k}", 10 + k, (vip,), {"h1": 150}, advert_interval_s=0.1)
        for k, vip in enumerate(VIPS)
    )
    config.write_text(cluster_yaml(lab.hosts, instances))
    daemon = start_ours(h1, config, lab.tmpdir / "s1")
    for vip in VIPS:
        h1.watcher.wait_for(vip, timeout=15)
    t_masters = time.monotonic()

    h1.run(["nft", "add table inet scrapetest"])
    h1.run(["nft", "add chain inet scrapetest out { type filter hook output priority 0 ; }"])
    h1.run(["nft", "add rule inet scrapetest out meta l4proto 112 drop"])
    time.sleep(1.5)  # 5 masters x 10 adverts a second, every one refused
    text = h1.run([sys.executable, "-c", METRICS], timeout=30).stdout
    h1.run(["nft", "delete table inet scrapetest"])

    (count,) = EPERM_SENDS.findall(text)
    assert float(count) >= 30, count
    log = daemon.output()
    assert len(re.findall(r"advert_send failed", log)) == 1, log
    assert "Traceback" not in log
    # Nothing else moved: no VIP went away while the sends failed.
    gone = [e for e in h1.watcher.events() if e.kind == "del" and e.timestamp > t_masters]
    assert not gone, gone
    assert daemon.stop(timeout=15) == 0
