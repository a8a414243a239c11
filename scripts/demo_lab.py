#!/usr/bin/env python3
"""A live demo in network namespaces: two load balancers, one VIP, a web check, failover.

It builds a small lab (a bridge and two hosts, documentation addresses only,
nothing in the root namespace), runs `reconciler run` on both hosts with a
keepalived + nginx style file (a web server on each host, checked over HTTP,
weight -60), and then:

1. shows who is master (`reconciler status` on each node);
2. stops the web server on the master: its priority drops and the backup takes
   the VIP;
3. starts it again: the VIP comes back;
4. stops the master with SIGTERM: graceful handover in Skew_Time.

Everything it made is removed at the end, also on Ctrl-C. Needs root.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.testing.netlab import Host, Lab, netns_unavailable_reason
from reconciler.testing.vrrp_nodes import start_ours

VIP = ipaddress.ip_interface("192.0.2.100/24")
CONFIG = """\
apiVersion: reconciler/v1
kind: Cluster
name: demo
nodes:
  h1: {{address: {a1}, interface: eth0}}
  h2: {{address: {a2}, interface: eth0}}
checks:
  web:
    http: {{url: "http://127.0.0.1:8080/healthz", status: "200"}}
    interval: 200ms
    timeout: 150ms
    rise: 2
    fall: 2
vrrp:
  instances:
    www:
      vrid: 51
      advert_interval: 100ms
      priority: {{h1: 150, h2: 100}}
      vips: [192.0.2.100/24]
      track:
        - {{check: web, weight: -60}}
"""


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def status(host: Host) -> None:
    out = host.run([sys.executable, "-m", "reconciler", "status"], check=False, timeout=30)
    print(f"-- {host.name}:\n{out.stdout.rstrip() or out.stderr.rstrip()}", flush=True)


def main() -> int:
    reason = netns_unavailable_reason()
    if reason:
        print(f"demo_lab: cannot run the live demo: {reason}", file=sys.stderr)
        return 2
    with Lab(2) as lab:
        h1, h2 = lab.host(1), lab.host(2)
        www = lab.tmpdir / "www"
        www.mkdir()
        (www / "healthz").write_text("ok\n")
        config = lab.tmpdir / "cluster.yaml"
        config.write_text(CONFIG.format(a1=h1.ipv4, a2=h2.ipv4))
        web_cmd = [sys.executable, "-m", "http.server", "8080", "--bind", "127.0.0.1"]
        webs = {h.name: h.spawn(web_cmd, cwd=www) for h in (h1, h2)}
        say(f"lab {lab.id}: h1 {h1.ipv4}, h2 {h2.ipv4}; VIP {VIP}; starting reconciler run")
        print(config.read_text())
        t0 = time.monotonic()
        nodes = {h.name: start_ours(h, config, lab.tmpdir / h.name) for h in (h1, h2)}
        took = h1.watcher.wait_for(VIP, timeout=15) - t0
        say(f"h1 (priority 150) holds the VIP after {took * 1000:.0f} ms")
        time.sleep(0.8)
        status(h1)
        status(h2)

        say("the web server on h1 dies: 150 - 60 = 90 < 100")
        t0 = time.monotonic()
        webs["h1"].kill()
        took = h2.watcher.wait_for(VIP, timeout=10, after=t0) - t0
        print(
            f"h2 took the VIP {took * 1000:.0f} ms later (2 failed probes + Master_Down_Interval)"
        )
        time.sleep(0.5)
        status(h1)

        say("the web server on h1 is back")
        t0 = time.monotonic()
        webs["h1"] = h1.spawn(web_cmd, cwd=www)
        took = h1.watcher.wait_for(VIP, timeout=10, after=t0) - t0
        print(f"h1 took the VIP back {took * 1000:.0f} ms later (2 good probes + its MDI)")

        say("graceful stop of h1 (SIGTERM): priority-0 advert, handover after Skew_Time")
        time.sleep(0.5)
        t0 = time.monotonic()
        nodes["h1"].signal(signal.SIGTERM)
        took = h2.watcher.wait_for(VIP, timeout=10, after=t0) - t0
        print(f"h2 holds the VIP {took * 1000:.1f} ms later (Skew_Time for priority 100: 60.9 ms)")
        print(f"h1 exited with status {nodes['h1'].wait(10)}")
        status(h2)
        say("metrics of h2 (excerpt)")
        metrics = h2.run(
            [
                sys.executable,
                "-c",
                "import urllib.request,sys;sys.stdout.write(urllib.request"
                ".urlopen('http://127.0.0.1:9650/metrics').read().decode())",
            ],
            timeout=30,
        ).stdout
        print(
            "\n".join(
                line
                for line in metrics.splitlines()
                if "vrrp_state{" in line
                or "effective_priority{" in line
                or "transitions_total{" in line
            )
        )
        for p in (*nodes.values(), *webs.values()):
            if p.alive:
                p.stop()
    say("lab removed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"demo_lab: {exc}", file=sys.stderr)
        sys.exit(1)
