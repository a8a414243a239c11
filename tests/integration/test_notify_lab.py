"""Notify hooks run in order with their environment; before_release hooks hold the VIP;
they run as nobody unless the file says root, with a minimal environment, and a hook
that others could change is refused."""

from __future__ import annotations

import ipaddress
import signal
import time
from pathlib import Path

import pytest

from reconciler.testing.clusters import H1_MASTER, Vrrp, cluster_text, lab_nodes
from reconciler.testing.hooks import hook_dirs, write_program
from reconciler.testing.netlab import Lab
from reconciler.testing.vrrp_nodes import start_ours

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")


def _config(lab: Lab, hook: Path) -> str:
    notify = {
        "master": [[str(hook), "master"]],
        "backup": [[str(hook), "backup"]],
        "stop": [[str(hook), "stop"]],
        "fault": [
            {
                "command": [str(hook), "fault-before", "0.5"],
                "before_release": True,
                "timeout": "3s",
            },
            [str(hook), "fault"],
        ],
        "timeout": "5s",
    }
    web = Vrrp("web", 95, [VIP], H1_MASTER, "100ms", options={"notify": notify})
    return cluster_text(lab_nodes(lab.hosts), [web], name="hooks")


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
    programs, out = hook_dirs(lab.tmpdir)  # the hooks run as nobody
    hook = write_program(programs / "hook.sh", HOOK.format(logdir=out))
    config = lab.tmpdir / "c.yaml"
    config.write_text(_config(lab, hook))
    # h1 first: at 100 ms adverts the two Master_Down_Intervals differ by 20 ms, less
    # than two Python start-ups can differ by on a busy machine.
    p1 = start_ours(h1, config, lab.tmpdir / "s1")
    h1.watcher.wait_for(VIP, timeout=10)
    p2 = start_ours(h2, config, lab.tmpdir / "s2")
    assert _lines(out / "h1.log", 2) == [
        "backup web backup 150 hooks",
        "master web master 150 hooks",
    ]
    assert _lines(out / "h2.log", 1) == ["backup web backup 100 hooks"]

    # Carrier lost on the master: FAULT. The before_release hook (0.5 s) runs first and
    # the VIP stays until it is done; then the VIP goes and the plain fault hook runs.
    t0 = time.monotonic()
    h1.link_down("eth0", side="bridge")
    gone = h1.watcher.wait_for(VIP, present=False, timeout=5, after=t0) - t0
    assert gone >= 0.5, gone
    assert _lines(out / "h1.log", 4)[2:] == [
        "fault-before web fault 150 hooks",
        "fault web fault 150 hooks",
    ]
    h2.watcher.wait_for(VIP, timeout=5, after=t0)

    p2.signal(signal.SIGTERM)
    assert p2.wait(10) == 0
    assert _lines(out / "h2.log", 3)[-1] == "stop web stop 100 hooks"
    h1.link_up("eth0", side="bridge")
    p1.stop()


def _alone(lab: Lab, open_hook: Path, ok_hook: Path) -> str:
    notify = {
        "backup": [[str(open_hook)]],
        "master": [
            ["/usr/bin/id", "-u"],
            {"command": ["/usr/bin/id", "-u"], "user": "root"},
            ["/usr/bin/env"],
            [str(open_hook)],
            [str(ok_hook)],
        ],
    }
    web = Vrrp("web", 96, [VIP], {"h1": 150}, "100ms", options={"notify": notify})
    return cluster_text(lab_nodes(lab.hosts), [web], name="users")


REFUSED = "refused: directory {d} is writable by others (mode 0777): someone else could change "
MINIMAL_ENV = {"PATH", "HOME", "USER", "LOGNAME", "LANG"}


def test_hooks_run_as_nobody_or_root_when_stated_and_an_open_directory_is_refused(make_lab) -> None:  # type: ignore[no-untyped-def]
    """The first master hook prints `id -u` as nobody, the second (user: root) as root;
    env prints the whole environment: the login basics and RECONCILER_* only, not the
    daemon's. A hook in a world-writable directory never runs (it would leave a mark
    where it could write), is logged once although it comes up twice (backup, master),
    and the hooks after it still run."""
    lab: Lab = make_lab(1)
    h1 = lab.host(1)
    programs, out = hook_dirs(lab.tmpdir)
    open_dir = lab.tmpdir / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    mark = out / "open-hook-ran"
    open_hook = write_program(open_dir / "hook", f"#!/bin/sh\ntouch {mark}\n")
    ok_hook = write_program(programs / "ok", f"#!/bin/sh\necho done > {out}/ok\n")
    config = lab.tmpdir / "c.yaml"
    config.write_text(_alone(lab, open_hook, ok_hook))
    proc = start_ours(h1, config, lab.tmpdir / "s1", env={"RCFG_DAEMON_SECRET": "x"})
    h1.watcher.wait_for(VIP, timeout=10)
    deadline = time.monotonic() + 5
    while not (out / "ok").exists():
        assert time.monotonic() < deadline, proc.output()[-3000:]
        time.sleep(0.05)
    log = proc.output()
    assert [line.split("hook id: ", 1)[1] for line in log.splitlines() if "hook id: " in line] == [
        "65534",
        "0",
    ], log[-3000:]
    env = dict(
        line.split("hook env: ", 1)[1].split("=", 1)
        for line in log.splitlines()
        if "hook env: " in line
    )
    assert {k for k in env if not k.startswith("RECONCILER_")} == MINIMAL_ENV, env
    assert env["USER"] == "nobody" and env["RECONCILER_STATE"] == "master", env
    assert "RCFG_DAEMON_SECRET" not in env
    assert log.count(REFUSED.format(d=open_dir)) == 1, log[-3000:]
    assert not mark.exists()
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0
