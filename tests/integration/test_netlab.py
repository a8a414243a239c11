"""Tests of the network-namespace lab (reconciler.testing.netlab) itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from reconciler.testing.netlab import (
    CommandError,
    Host,
    IPAddress,
    Lab,
    LabProcess,
    LinkSide,
    sweep_stale,
)

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
NETNS_DIR = Path("/run/netns")


# --------------------------------------------------------------------------- helpers


def ping(src: Host, dst: IPAddress | str, *, wait: float = 2.0) -> bool:
    """One echo request from ``src``; True if a reply came back within ``wait``."""
    if shutil.which("ping") is None:
        pytest.skip("needs ping (Debian package iputils-ping)")
    proc = src.run(["ping", "-n", "-c", "1", "-W", str(wait), str(dst)], check=False)
    return proc.returncode == 0


def lab_namespaces(lab_id: str) -> list[str]:
    """Namespaces of lab ``lab_id`` (its bridge and hosts) that still exist."""
    if not NETNS_DIR.exists():
        return []
    pattern = re.compile(re.escape(lab_id) + r"(b|h\d+)")
    return sorted(n for n in os.listdir(NETNS_DIR) if pattern.fullmatch(n))


def gone(pid: int, timeout: float = 3.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def child_pid(proc: LabProcess) -> int:
    """The pid a ``sh -c 'sleep ... & echo $!; wait'`` process printed."""
    deadline = time.monotonic() + 5.0
    while not proc.output().strip():
        assert time.monotonic() < deadline, "the shell did not print its child's pid"
        time.sleep(0.01)
    return int(proc.output().split()[0])


def root_netns_state() -> tuple[str, str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True)
    return links.stdout, addrs.stdout


# --------------------------------------------------------------------------- connectivity


def test_hosts_ping_each_other_over_ipv4_ipv6_and_link_local(lab: Lab) -> None:
    h1, h2 = lab.hosts
    assert h1.ipv4 == IPv4Address("192.0.2.11")
    assert h2.ipv6 == IPv6Address("2001:db8::12")
    assert h1.interface("eth0").ipv4.network == lab.segments[0].ipv4_network
    ll2 = h2.link_local()
    assert ll2.is_link_local
    for src, dst in ((h1, h2), (h2, h1)):
        assert ping(src, dst.ipv4), f"{src.name} -> {dst.ipv4}"
        assert ping(src, dst.ipv6), f"{src.name} -> {dst.ipv6}"
    assert ping(h1, f"{ll2}%eth0")
    # A lab address that nobody has does not answer.
    assert not ping(h1, lab.segments[0].free_ipv4().ip, wait=0.2)


def test_namespaces_are_separate_and_only_documentation_addresses_are_used(lab: Lab) -> None:
    h1, h2 = lab.hosts
    assert len(set(lab.namespaces)) == 3
    assert all(n.startswith(lab.id) for n in lab.namespaces)
    globals_h1 = {a for a in h1.watcher.addresses() if not (a.ip.is_link_local or a.ip.is_loopback)}
    assert {str(a) for a in globals_h1} == {"192.0.2.11/24", "2001:db8::11/64"}
    assert not h2.watcher.is_present(h1.ipv4)
    # eth0 and lo are up in the host; br0 and the ports live in the bridge namespace.
    out = h1.run(["ip", "-o", "link", "show", "up"]).stdout
    assert "lo:" in out and "eth0" in out and "br0" not in out
    assert lab.bridge.watcher.link("br0") is not None
    assert lab.bridge.watcher.link(h1.interface().bridge_port) is not None
    assert h1.exec_prefix() == ["ip", "netns", "exec", h1.netns]


def test_two_segments(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(2, segments=2)
    h1, h2 = lab.hosts
    eth1 = h2.interface("eth1")
    assert str(eth1.ipv4) == "198.51.100.12/24"
    assert str(eth1.ipv6) == "2001:db8:1::12/64"
    assert ping(h1, eth1.ipv4.ip)
    assert ping(h1, eth1.ipv6.ip)
    # Cutting segment 0 leaves segment 1 working.
    h2.link_down("eth0", side="bridge")
    assert not ping(h1, h2.ipv4, wait=0.2)
    assert ping(h1, eth1.ipv4.ip)


def test_lab_build_leaves_root_namespace_untouched(make_lab: Callable[..., Lab]) -> None:
    before = root_netns_state()
    lab = make_lab(2)
    assert root_netns_state() == before
    lab.close()
    assert root_netns_state() == before


# --------------------------------------------------------------------------- run / spawn


def test_run_returns_output_and_raises_on_failure(lab: Lab) -> None:
    h1 = lab.hosts[0]
    proc = h1.run(["sh", "-c", "echo out; echo err >&2"])
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"
    with pytest.raises(CommandError) as info:
        h1.run(["sh", "-c", "echo boom >&2; exit 3"])
    assert info.value.returncode == 3
    assert "boom" in str(info.value)
    assert h1.run(["false"], check=False).returncode == 1
    with pytest.raises(subprocess.TimeoutExpired):
        h1.run(["sleep", "5"], timeout=0.2)


def test_spawn_captures_output_in_lab_tmpdir_and_stops(lab: Lab) -> None:
    proc = lab.hosts[1].spawn(["sh", "-c", "ip -o -4 addr show dev eth0; sleep 30"], name="show")
    proc.wait_for_output("192.0.2.12/24")
    assert proc.log_path.parent == lab.tmpdir
    assert proc.alive
    assert os.getpgid(proc.pid) == proc.pid  # its own process group
    assert proc.stop(timeout=2.0) == -signal.SIGTERM
    assert gone(proc.pid)


def test_killing_a_spawned_process_group_kills_all_of_it(lab: Lab) -> None:
    proc = lab.hosts[0].spawn(["sh", "-c", "sleep 60 & echo $!; wait"])
    child = child_pid(proc)
    assert os.getpgid(child) == proc.pgid
    assert proc.kill() == -signal.SIGKILL
    assert not proc.alive
    assert gone(proc.pid)
    assert gone(child)


# --------------------------------------------------------------------------- netlink watcher


def test_address_add_and_remove_produce_timestamped_events(lab: Lab) -> None:
    h1, h2 = lab.hosts
    watcher = h1.watcher
    vip = lab.segments[0].free_ipv4()
    assert not watcher.is_present(vip)

    before = time.monotonic()
    h1.ip("addr", "add", str(vip), "dev", "eth0")
    returned = time.monotonic()
    added = watcher.wait_for(vip, after=before, timeout=2.0)
    assert before <= added <= returned + 0.05
    assert watcher.is_present(vip, ifname="eth0")
    assert vip in watcher.addresses("eth0")
    # Already present: returns at once with the same timestamp.
    assert watcher.wait_for(vip, timeout=0.0) == added
    (event,) = [e for e in watcher.events(vip) if e.present]
    assert (event.ifname, event.prefixlen, event.synthetic) == ("eth0", 24, False)
    assert event.timestamp == added
    # The other host's namespace saw nothing.
    assert not h2.watcher.events(vip)

    before_del = time.monotonic()
    h1.ip("addr", "del", str(vip), "dev", "eth0")
    removed = watcher.wait_for(vip, present=False, after=before_del, timeout=2.0)
    assert before_del <= removed <= time.monotonic()
    assert removed > added
    assert not watcher.is_present(vip)
    assert [e.kind for e in watcher.events(vip)] == ["new", "del"]

    with pytest.raises(TimeoutError):
        watcher.wait_for(vip, after=removed + 1e-6, timeout=0.05)


def test_ipv6_address_event_and_wait_for_an_address_added_later(lab: Lab) -> None:
    h2 = lab.hosts[1]
    vip6 = lab.segments[0].free_ipv6(1)
    before = time.monotonic()
    adder = h2.spawn(["sh", "-c", f"sleep 0.1; ip addr add {vip6} dev eth0 nodad"])
    added = h2.watcher.wait_for(vip6.ip, timeout=3.0)
    assert added >= before + 0.09  # it waited for the change rather than returning early
    assert adder.wait(timeout=3.0) == 0
    assert h2.watcher.is_present(vip6, ifname="eth0")
    assert ping(lab.hosts[0], vip6.ip)


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize("side", ["host", "bridge"])
def test_link_down_breaks_and_link_up_restores_connectivity(lab: Lab, side: LinkSide) -> None:
    h1, h2 = lab.hosts
    assert ping(h1, h2.ipv4)
    before = time.monotonic()
    done = h2.link_down("eth0", side=side)
    assert before <= done
    went_down = h2.watcher.wait_link("eth0", running=False, after=before, timeout=2.0)
    assert before <= went_down <= time.monotonic()
    # Either way the bridge port loses its carrier too.
    lab.bridge.watcher.wait_link(h2.interface().bridge_port, running=False, timeout=2.0)
    assert not ping(h1, h2.ipv4, wait=0.2)

    h2.link_up("eth0", side=side)
    link = h2.watcher.link("eth0")
    assert link is not None and link.running
    assert ping(h1, h2.ipv4)
    assert ping(h1, h2.ipv6)  # IPv6 addresses survive the link going down
    assert ping(h1, f"{h2.link_local()}%eth0")


def test_link_flap_without_pause_ends_up_usable(lab: Lab) -> None:
    h1, h2 = lab.hosts
    for side in ("host", "bridge", "host"):
        h2.link_down("eth0", side=side)
        h2.link_up("eth0", side=side)  # waits until port and interface run again
    assert ping(h1, h2.ipv4)
    assert ping(h2, h1.ipv6)


def test_packet_loss_knob(lab: Lab) -> None:
    if shutil.which("nft") is None:
        pytest.skip("needs nft (Debian package nftables)")
    h1, h2 = lab.hosts
    assert ping(h1, h2.ipv4)
    h2.set_loss(100)
    assert not ping(h1, h2.ipv4, wait=0.2)
    h2.set_loss(0)
    assert ping(h1, h2.ipv4)

    # Half the echo requests to h2 are lost (a static neighbour keeps ARP out of it).
    h1.ip(
        "neigh",
        "replace",
        str(h2.ipv4),
        "lladdr",
        h2.interface().mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    )
    h2.set_loss(50, direction="to_host")
    cmd = ["ping", "-n", "-q", "-c", "100", "-i", "0.002", "-W", "0.2", str(h2.ipv4)]
    out = h1.run(cmd, check=False).stdout
    loss = float(out.split("% packet loss")[0].rsplit(" ", 1)[1])
    assert 25 <= loss <= 75, out
    # Replies from h2 are not affected in that direction.
    h2.set_loss(100, direction="to_host")
    h2.set_loss(0, direction="from_host")
    assert not ping(h1, h2.ipv4, wait=0.2)


# --------------------------------------------------------------------------- cleanup


def test_close_removes_namespaces_processes_and_tmpdir(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(3, stop_timeout=0.2)
    sleeper = lab.hosts[0].spawn(["sleep", "60"])
    # Ignores SIGTERM, and so does its child: stop must fall back to SIGKILL.
    stubborn = lab.hosts[2].spawn(["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"])
    grandchild = child_pid(stubborn)
    on_bridge = lab.bridge.spawn(["sleep", "60"])
    assert len(lab_namespaces(lab.id)) == 4
    tmpdir = lab.tmpdir

    lab.close()

    assert lab.closed
    assert lab_namespaces(lab.id) == []
    for pid in (sleeper.pid, stubborn.pid, grandchild, on_bridge.pid):
        assert gone(pid), pid
    assert stubborn.returncode == -signal.SIGKILL
    assert not tmpdir.exists()
    lab.close()  # idempotent
    with pytest.raises(RuntimeError):
        lab.hosts[0].run(["true"])


def test_exception_inside_with_block_cleans_up() -> None:
    with pytest.raises(ZeroDivisionError), Lab(2) as lab:
        proc = lab.hosts[1].spawn(["sleep", "60"])
        lab_id = lab.id
        _ = 1 / 0
    assert lab_namespaces(lab_id) == []
    assert gone(proc.pid)


def _child_script(body: str) -> list[str]:
    code = textwrap.dedent(
        """
        import json, sys, time
        from reconciler.testing.netlab import Lab
        """
    ) + textwrap.dedent(body)
    return [sys.executable, "-c", code]


def _start_child(body: str) -> tuple[subprocess.Popen[str], dict[str, list[int] | str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        _child_script(body), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        child.wait(timeout=10)
        pytest.fail(f"child failed: {child.stderr.read() if child.stderr else ''}")
    info: dict[str, list[int] | str] = json.loads(line)
    return child, info


LAB_CHILD = """
    lab = Lab(2)
    proc = lab.hosts[0].spawn(["sleep", "60"])
    print(json.dumps({"id": lab.id, "pids": [proc.pid]}), flush=True)
    WRAPPER
"""


def test_sigterm_to_the_process_closes_its_labs() -> None:
    child, info = _start_child(LAB_CHILD.replace("WRAPPER", "with lab:\n        time.sleep(60)"))
    lab_id = str(info["id"])
    pids = info["pids"]
    assert isinstance(pids, list)
    try:
        assert lab_namespaces(lab_id)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=10)
        assert lab_namespaces(lab_id) == []
        assert all(gone(p) for p in pids)
    finally:
        child.kill()
        child.wait()
        sweep_stale()


def test_sweep_removes_only_stale_lab_namespaces() -> None:
    child, info = _start_child(LAB_CHILD.replace("WRAPPER", "time.sleep(60)"))
    lab_id = str(info["id"])
    pids = info["pids"]
    assert isinstance(pids, list)
    keep = [
        f"rcl{os.getpid()}x999h1",  # a lab of a live process (this one)
        f"rcl{child.pid}xother",  # dead pid, but not a lab name
        "rclkeepme",
    ]
    try:
        for name in keep:
            subprocess.run(["ip", "netns", "add", name], check=True)
        child.kill()  # SIGKILL: no cleanup at all
        child.wait()
        assert len(lab_namespaces(lab_id)) == 3
        assert not gone(pids[0], timeout=0)  # the spawned sleep outlived its lab

        removed = sweep_stale()

        assert set(removed) >= {f"{lab_id}b", f"{lab_id}h1", f"{lab_id}h2"}
        assert lab_namespaces(lab_id) == []
        assert list(Path(tempfile.gettempdir()).glob(f"{lab_id}-*")) == []  # its temp dir
        assert gone(pids[0])
        for name in keep:
            assert (NETNS_DIR / name).exists(), name
    finally:
        child.kill()
        child.wait()
        for name in keep:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        sweep_stale()
