"""Operating a running node: /metrics, /status, `reconciler status`, SIGHUP reloads."""

from __future__ import annotations

import ipaddress
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from reconciler.testing.netlab import Host, Lab
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, start_ours

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")


def _get(host: Host, path: str) -> str:
    code = (
        "import sys, urllib.request;"
        f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9650{path}', timeout=5)"
        ".read().decode())"
    )
    return host.run([sys.executable, "-c", code], timeout=30).stdout


def _wait_log(proc, text: str, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    proc.wait_for_output(text, timeout=timeout)


def test_metrics_status_and_reload(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    config = lab.tmpdir / "c.yaml"
    config.write_text(cluster_yaml(lab.hosts, (Instance("web", 81, (VIP,), {"h1": 150}),)))
    proc = start_ours(h1, config, lab.tmpdir / "s")
    h1.watcher.wait_for(VIP, timeout=10)
    _wait_log(proc, "metrics and status on http://127.0.0.1:9650/")

    metrics = _get(h1, "/metrics")
    assert 'reconciler_vrrp_state{interface="eth0",vrid="81",vrrp_instance="web"} 2.0' in metrics
    assert (
        'reconciler_vrrp_effective_priority{interface="eth0",vrid="81",vrrp_instance="web"} 150.0'
        in metrics
    )
    assert (
        'reconciler_vrrp_transitions_total{from="backup",interface="eth0",'
        'reason="master_no_response",to="master",vrid="81",vrrp_instance="web"} 1.0'
    ) in metrics
    if shutil.which("promtool"):
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            input=metrics,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr

    status = json.loads(_get(h1, "/status"))
    (inst,) = status["instances"]
    assert (inst["name"], inst["state"], inst["vips"]) == ("web", "MASTER", ["192.0.2.100/24"])
    revision = status["revision"]

    cli = h1.run([sys.executable, "-m", "reconciler", "status"], timeout=30).stdout
    assert "web" in cli and "MASTER" in cli and "150/150" in cli

    # An invalid revision is refused and changes nothing.
    good = config.read_text()
    config.write_text(good.replace("vrid: 81", "vrid: 300"))
    t0 = time.monotonic()
    proc.signal(signal.SIGHUP)
    _wait_log(proc, "still running the last good revision")
    assert "c.yaml:9:13: vrrp.instances.web.vrid: 300 is out of range" in proc.output()
    status = json.loads(_get(h1, "/status"))
    assert status["reloads_failed"] == 1 and status["revision"] == revision
    assert not [e for e in h1.watcher.events(VIP) if e.timestamp > t0]

    # A valid one that replaces the VIP: the master adds the new one and removes the old
    # one in place.
    new_vip = ipaddress.ip_interface("192.0.2.101/24")
    config.write_text(good.replace("192.0.2.100/24", "192.0.2.101/24"))
    t0 = time.monotonic()
    proc.signal(signal.SIGHUP)
    h1.watcher.wait_for(VIP, present=False, timeout=5, after=t0)
    h1.watcher.wait_for(new_vip, timeout=5, after=t0)
    status = json.loads(_get(h1, "/status"))
    assert status["reloads_ok"] == 1 and status["revision"] != revision
    assert proc.stop() == 0 or not proc.alive


def test_a_dual_stack_node_reports_both_sockets(make_lab) -> None:  # type: ignore[no-untyped-def]
    """IPv4 and IPv6 instances on one interface: two sockets in /status and /metrics."""
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    vip6 = ipaddress.ip_interface("2001:db8::100/64")
    config = lab.tmpdir / "c.yaml"
    instances = (
        Instance("web4", 81, (VIP,), {"h1": 150}),
        Instance("web6", 82, (vip6,), {"h1": 150}),
    )
    config.write_text(cluster_yaml(lab.hosts, instances))
    proc = start_ours(h1, config, lab.tmpdir / "s")
    h1.watcher.wait_for(VIP, timeout=10)
    h1.watcher.wait_for(vip6, timeout=10)
    _wait_log(proc, "metrics and status on http://127.0.0.1:9650/")
    doc = json.loads(_get(h1, "/status"))
    assert [(s["interface"], s["family"]) for s in doc["sockets"]] == [
        ("eth0", "ipv4"),
        ("eth0", "ipv6"),
    ]
    metrics = _get(h1, "/metrics")
    assert 'reconciler_vrrp_packets_read_total{family="ipv6",interface="eth0"}' in metrics
    proc.stop()
