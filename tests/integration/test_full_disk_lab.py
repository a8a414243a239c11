"""A full state directory (ENOSPC) refuses a reload before anything running changes.

The daemon's --state-dir is a small tmpfs mounted in a private mount namespace of its
own (``unshare -m``, so nothing is mounted where the rest of the machine sees it, and
the mount goes with the daemon); the test fills it through ``/proc/PID/root``. A reload
that changes the running instance then has to write the ownership record and cannot:
it is refused at prepare, the VIP never moves (netlink events of the node), /status
says why, and once space is freed the next look applies the same revision.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import time
from pathlib import Path

import pytest

from reconciler.testing.netlab import Host, Lab, LabProcess
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, node_status, start_ours

pytestmark = pytest.mark.root

A, B = (ipaddress.ip_interface(f"192.0.2.{n}/24") for n in (100, 101))
APPLIED = "reload: revision "
TMPFS_SIZE = "64k"


def _in_own_tmpfs(state_dir: Path) -> tuple[str, ...]:
    """A wrapper for start_ours: the daemon in a new mount namespace, its state dir a
    tmpfs of TMPFS_SIZE (private propagation: the mount is never seen outside)."""
    return (
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs -o size={TMPFS_SIZE},mode=0700 rcfg-state "{state_dir}" && exec "$@"',
        "sh",
    )


def _fill(directory: Path) -> Path:
    """Write a file in `directory` until the filesystem is full; the file."""
    filler = directory / "filler"
    chunk = b"\0" * 4096
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def _moved(host: Host, vip: ipaddress.IPv4Interface, since: float) -> list[str]:
    return [
        e.kind
        for e in host.watcher.events(vip)
        if not e.synthetic and e.timestamp >= since and e.prefixlen == vip.network.prefixlen
    ]


def _wait(proc: LabProcess, text: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.output().count(text) < count:
        assert proc.alive, proc.output()[-3000:]
        assert time.monotonic() < deadline, proc.output()[-3000:]
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("change", "after"),
    [
        # In place: a VIP added to the running instance (the record must list it first).
        ("vip-added", Instance("web", 81, (A, B), {"h1": 150})),
        # A restart (new VRID): the instance would stop and release its VIP.
        ("restart", Instance("web", 82, (A,), {"h1": 150})),
    ],
)
def test_a_full_state_dir_refuses_the_reload_and_the_vip_stays(
    make_lab, change: str, after: Instance
) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    config = lab.tmpdir / "c.yaml"
    config.write_text(cluster_yaml(lab.hosts, (Instance("web", 81, (A,), {"h1": 150}),)))
    state = lab.tmpdir / "state"
    state.mkdir()
    proc = start_ours(h1, config, state, prefix=_in_own_tmpfs(state))
    try:
        h1.watcher.wait_for(A, timeout=10)
        # The daemon's view of its state dir: its own tmpfs, not the directory here.
        seen = Path(f"/proc/{proc.pid}/root{state}")
        assert (seen / "owned.json").exists() and not (state / "owned.json").exists()
        time.sleep(0.5)  # settled: master, record written
        filler = _fill(seen)

        config.write_text(cluster_yaml(lab.hosts, (after,)))
        t0 = time.monotonic()
        proc.signal(signal.SIGHUP)
        _wait(proc, "still running the last good revision", 1)
        time.sleep(1.0)  # a VIP released late (a half-applied revision) would show by now
        assert _moved(h1, A, t0) == [], proc.output()[-3000:]
        assert APPLIED not in proc.output()
        status = node_status(h1)
        assert "No space left on device" in (status["last_reload_error"] or ""), status
        (inst,) = status["instances"]
        assert (inst["vrid"], inst["state"]) == (81, "MASTER"), inst

        # Space again: the next look (SIGHUP) applies the same revision.
        filler.unlink()
        t1 = time.monotonic()
        proc.signal(signal.SIGHUP)
        _wait(proc, APPLIED, 1)
        if change == "vip-added":
            h1.watcher.wait_for(B, timeout=5, after=t1)
            assert _moved(h1, A, t0) == []  # never, from the first reload on
            assert "applied: in place: web" in proc.output()
        else:
            assert "restarted: web" in proc.output()
            h1.watcher.wait_for(A, timeout=10, after=t1)
        status = node_status(h1)
        assert status["last_reload_error"] is None, status
        (inst,) = status["instances"]
        assert (inst["vrid"], inst["state"]) == (after.vrid, "MASTER"), inst
    finally:
        proc.stop()
