"""Notify hooks run in order with their environment; before_release hooks hold the VIP."""

from __future__ import annotations

import ipaddress
import signal
import time
from pathlib import Path

import pytest

from reconciler.testing.netlab import Lab
from reconciler.testing.vrrp_nodes import start_ours

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")

CONFIG = """\
apiVersion: reconciler/v1
kind: Cluster
name: hooks
nodes:
  h1: {{address: {a1}, interface: eth0}}
  h2: {{address: {a2}, interface: eth0}}
vrrp:
  instances:
    web:
      vrid: 95
      advert_interval: 100ms
      priority: {{h1: 150, h2: 100}}
      vips: [192.0.2.100/24]
      notify:
        master: [["{hook}", "master"]]
        backup: [["{hook}", "backup"]]
        stop: [["{hook}", "stop"]]
        fault:
          - {{command: ["{hook}", "fault-before", "0.5"], before_release: true, timeout: 3s}}
          - ["{hook}", "fault"]
        timeout: 5s
"""

HOOK = """#!/bin/sh
[ -n "$2" ] && sleep "$2"
echo "$1 $RECONCILER_INSTANCE $RECONCILER_STATE $RECONCILER_PRIORITY $RECONCILER_CLUSTER" \\
    >> "{logdir}/$RECONCILER_NODE.log"
"""


def _lines(path: Path, n: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_hooks_run_in_order_and_before_release_holds_the_vip(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    hook = lab.tmpdir / "hook.sh"
    hook.write_text(HOOK.format(logdir=lab.tmpdir))
    hook.chmod(0o755)
    config = lab.tmpdir / "c.yaml"
    config.write_text(CONFIG.format(a1=h1.ipv4, a2=h2.ipv4, hook=hook))
    # h1 first: at 100 ms adverts the two Master_Down_Intervals differ by 20 ms, less
    # than two Python start-ups can differ by on a busy machine.
    p1 = start_ours(h1, config, lab.tmpdir / "s1")
    h1.watcher.wait_for(VIP, timeout=10)
    p2 = start_ours(h2, config, lab.tmpdir / "s2")
    assert _lines(lab.tmpdir / "h1.log", 2) == [
        "backup web backup 150 hooks",
        "master web master 150 hooks",
    ]
    assert _lines(lab.tmpdir / "h2.log", 1) == ["backup web backup 100 hooks"]

    # Carrier lost on the master: FAULT. The before_release hook (0.5 s) runs first and
    # the VIP stays until it is done; then the VIP goes and the plain fault hook runs.
    t0 = time.monotonic()
    h1.link_down("eth0", side="bridge")
    gone = h1.watcher.wait_for(VIP, present=False, timeout=5, after=t0) - t0
    assert gone >= 0.5, gone
    assert _lines(lab.tmpdir / "h1.log", 4)[2:] == [
        "fault-before web fault 150 hooks",
        "fault web fault 150 hooks",
    ]
    h2.watcher.wait_for(VIP, timeout=5, after=t0)

    p2.signal(signal.SIGTERM)
    assert p2.wait(10) == 0
    assert _lines(lab.tmpdir / "h2.log", 3)[-1] == "stop web stop 100 hooks"
    h1.link_up("eth0", side="bridge")
    p1.stop()
