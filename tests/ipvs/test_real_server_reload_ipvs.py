"""A reload that changes only a check's schedule never puts a dead real server back.

Issue 11: a reload reset every real server whose check changed in any way (its timeout,
say) to the check's ``initial`` state, usually unknown, which is "in the pool": the dead
server went back into IPVS at its configured weight, and a lost quorum came back with
it, until the next probe failed. The check scheduler keeps the check's state over such
a reload; real-server health reads it from there.

The daemon runs as a process against the real IPVS table (in the user-mode-linux kernel
of tools/ipvs-kernel); a thread samples the table every few milliseconds from before the
reload until several probes after it, and every sample must be the table of the dead
server's absence. Afterwards the server comes back, to show the checks still decide.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from ipvs_helpers import REAL_PORT, NamedServer, ipvsadm

pytestmark = pytest.mark.ipvs

CONFIG = """
apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {{address: 192.0.2.11}}
virtual_services:
  web:
    address: 192.0.2.10
    port: 80
    scheduler: rr
    check: {{tcp: {{}}, interval: {interval}, timeout: {timeout}}}
{quorum}    real_servers:
      - {{address: 127.0.0.5, port: {port}}}
      - {{address: 127.0.0.6, port: {port}}}
"""
QUORUM = """    quorum: {{min_weight: 2}}
    sorry_server: {{address: 127.0.0.7, port: {port}}}
"""
DEAD, ALIVE, SORRY = "127.0.0.5", "127.0.0.6", "127.0.0.7"
SAMPLE_EVERY_S = 0.005
AFTER_RELOAD_S = 2.5  # several probes on the new schedule (interval 300 ms or less)

Table = frozenset[tuple[str, int]]  # (real server address, weight)


@pytest.fixture(autouse=True)
def _clean_table() -> Iterator[None]:
    yield
    ipvsadm("-C")


def config(*, quorum: bool, interval: str = "300ms", timeout: str = "200ms") -> str:
    extra = QUORUM.format(port=REAL_PORT) if quorum else ""
    return CONFIG.format(interval=interval, timeout=timeout, quorum=extra, port=REAL_PORT)


def real_servers_of_the_vip() -> Table:
    """The real servers of 192.0.2.10:80 and their weights, from this namespace's
    /proc/net/ip_vs (addresses in hex): cheap enough to read every few milliseconds."""
    out = set()
    in_service = False
    text = Path("/proc/thread-self/net/ip_vs").read_text()
    for line in text.splitlines()[3:]:
        words = line.split()
        if words[0] != "->":
            in_service = words[:2] == ["TCP", "C000020A:0050"]  # 192.0.2.10:80
        elif in_service:
            address, _, _ = words[1].partition(":")
            out.add((str(IPv4Address(int(address, 16))), int(words[3])))
    return frozenset(out)


class Sampler:
    """Samples the table in a thread (which shares the test's network namespace)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, Table]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), real_servers_of_the_vip()))
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Daemon:
    """``reconciler run`` as a process; its log lines collected by a thread."""

    def __init__(self, config: Path, state: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "run",
                str(config),
                "--node",
                "a",
                "--state-dir",
                str(state),
                "--metrics-addr",
                "off",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def log_has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self._reader.join(timeout=5)
        return "".join(self.lines)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{ipvsadm('-Ln')}"
        time.sleep(0.05)


def serve(name: str, address: str) -> NamedServer:
    server = NamedServer(name, (address, REAL_PORT))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.mark.parametrize(
    ("quorum", "change"),
    [(False, {"timeout": "250ms"}), (True, {"interval": "250ms"})],
    ids=["timeout-change", "interval-change-with-sorry-server"],
)
def test_a_schedule_only_reload_never_puts_a_dead_real_server_back(
    quorum: bool, change: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(config(quorum=quorum))
    servers = {name: serve(name, addr) for name, addr in (("a", DEAD), ("b", ALIVE))}
    if quorum:
        servers["sorry"] = serve("sorry", SORRY)
    both = frozenset({(DEAD, 1), (ALIVE, 1)})
    # Server a dead: out of the table; with the quorum (2) lost, the sorry server alone.
    dead = frozenset({(SORRY, 1)}) if quorum else frozenset({(ALIVE, 1)})
    daemon: Daemon | None = None
    try:
        daemon = Daemon(file, tmp_path / "state")
        wait_for(lambda: real_servers_of_the_vip() == both, 30, "both real servers")
        a = servers.pop("a")
        a.shutdown()
        a.server_close()
        wait_for(lambda: real_servers_of_the_vip() == dead, 10, "server a out of the table")

        file.write_text(config(quorum=quorum, **change))
        with Sampler() as sampler:
            time.sleep(0.1)
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: daemon.log_has("reload: "), 10, "the reload")
            reloaded_at = time.monotonic()
            time.sleep(AFTER_RELOAD_S)
        assert daemon.log_has("applied: no instance changed")
        wrong = [(t - reloaded_at, table) for t, table in sampler.samples if table != dead]
        assert not wrong, (
            f"the table was not {sorted(dead)} in {len(wrong)} of {len(sampler.samples)} "
            f"samples, from {wrong[0][0]:+.3f} s to {wrong[-1][0]:+.3f} s after the reload: "
            f"{sorted({tuple(sorted(table)) for _, table in wrong})}"
        )
        assert len(sampler.samples) > AFTER_RELOAD_S / 0.05  # the sampler kept up

        # The checks still decide: server a comes back (and the sorry server goes).
        servers["a"] = serve("a", DEAD)
        wait_for(lambda: real_servers_of_the_vip() == both, 10, "server a back")
    finally:
        out = "" if daemon is None else daemon.stop()
        for server in servers.values():
            server.shutdown()
            server.server_close()
    assert daemon.proc.returncode == 0, out
