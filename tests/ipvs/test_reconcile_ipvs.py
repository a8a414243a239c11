"""The reconcile loop against a real IPVS kernel: the examples converge, drift comes back,
foreign objects stay, and a removed real server drains without dropping its connection."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ipvs_helpers import REAL_PORT, REAL_SERVERS, VIP, NamedServer, ask, ipvsadm, parse_ipvsadm

from reconciler.adapters.ipvs import Ipvs
from reconciler.cli import main
from reconciler.config.load import load_file, load_text
from reconciler.model.cluster import NodeConfig
from reconciler.model.kernel import LiveDest, LiveService
from reconciler.plan.live import project
from reconciler.reconcile.loop import Outcome, PassResult, ReconcileLoop
from reconciler.reconcile.ownership import OwnershipStore

pytestmark = pytest.mark.ipvs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    (name, node)
    for name in ("lvs-nat.yaml", "lvs-dr.yaml", "revisions/lvs-nat-next.yaml")
    for node in load_file(ROOT / "examples" / name).cluster.node_names
]


@pytest.fixture(autouse=True)
def _clean_table() -> Iterator[None]:
    yield
    ipvsadm("-C")


def one_pass(desired: Callable[[], NodeConfig], state: Path, **kw: float) -> PassResult:
    async def go() -> PassResult:
        async with Ipvs() as ipvs:
            store = OwnershipStore(state)
            store.load()
            return await ReconcileLoop(desired, store, ipvs=ipvs, **kw).run_once()

    return asyncio.run(go())


def kernel_view() -> tuple[set[LiveService], set[LiveDest]]:
    services, dests = parse_ipvsadm()
    return set(services), set(dests)


@pytest.mark.parametrize(("example", "node"), EXAMPLES, ids=str)
def test_example_converges_and_a_second_pass_does_nothing(
    example: str, node: str, tmp_path: Path
) -> None:
    cluster = load_file(ROOT / "examples" / example).cluster
    wanted = [r for r in project(cluster.for_node(node)) if isinstance(r, LiveService | LiveDest)]
    first = one_pass(lambda: cluster.for_node(node), tmp_path)
    assert first.outcome is Outcome.CHANGED
    assert first.writes == len(wanted)
    second = one_pass(lambda: cluster.for_node(node), tmp_path)
    assert (second.outcome, second.steps, second.writes) == (Outcome.CONVERGED, (), 0)
    # ipvsadm sees exactly the desired table.
    services, dests = kernel_view()
    assert services == {r for r in wanted if isinstance(r, LiveService)}
    assert dests == {r for r in wanted if isinstance(r, LiveDest)}


CONFIG = """
apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {address: 192.0.2.11, interface: eth0}
virtual_services:
  web:
    address: 192.0.2.10
    port: 80
    scheduler: rr
    forwarding: nat
    real_servers:
      - {address: 127.0.0.2, port: 8080}
      - {address: 127.0.0.3, port: 8080}
"""


def test_drift_comes_back_and_foreign_objects_stay(tmp_path: Path) -> None:
    cfg = load_text(CONFIG, "t.yaml").cluster.for_node("a")
    one_pass(lambda: cfg, tmp_path)
    ipvsadm("-d", "-t", "192.0.2.10:80", "-r", "127.0.0.2:8080")  # removed by hand
    ipvsadm("-a", "-t", "192.0.2.10:80", "-r", "127.0.0.9:8080", "-m")  # added by hand
    ipvsadm("-e", "-t", "192.0.2.10:80", "-r", "127.0.0.3:8080", "-m", "-w", "7")  # edited
    ipvsadm("-A", "-t", "192.0.2.99:80", "-s", "lc")  # someone else's service
    ipvsadm("-a", "-t", "192.0.2.99:80", "-r", "127.0.0.4:80", "-m")
    result = one_pass(lambda: cfg, tmp_path)
    assert result.outcome is Outcome.CHANGED
    table = ipvsadm("-Ln")
    assert "127.0.0.2:8080" in table and "127.0.0.9:8080" not in table
    services, dests = kernel_view()
    ours = {d.address.exploded: d.weight for d in dests if str(d.service.address) == "192.0.2.10"}
    assert ours == {"127.0.0.2": 1, "127.0.0.3": 1}
    assert any(str(s.service.address) == "192.0.2.99" and s.scheduler == "lc" for s in services)
    assert any(str(d.address) == "127.0.0.4" for d in dests)
    assert one_pass(lambda: cfg, tmp_path).outcome is Outcome.CONVERGED


def test_removed_server_drains_without_dropping_an_open_connection(
    vip: object, real_servers: dict[str, object], tmp_path: Path
) -> None:
    del vip, real_servers
    both = load_text(CONFIG, "t.yaml").cluster.for_node("a")
    one_pass(lambda: both, tmp_path)
    conn = socket.create_connection((str(VIP), 80), timeout=5)
    lines = conn.makefile("rb")
    served_by = lines.readline().decode().strip()  # each real server greets with its name
    address = REAL_SERVERS[served_by]
    remaining = CONFIG.replace(f"      - {{address: {address}, port: {REAL_PORT}}}\n", "")
    less = load_text(remaining, "t.yaml").cluster.for_node("a")

    result = one_pass(lambda: less, tmp_path, drain_timeout_s=300)
    assert result.draining, "the busy server should be draining"
    _, dests = kernel_view()
    (draining,) = [d for d in dests if d.address == address]
    assert draining.weight == 0 and draining.active_connections == 1
    # The open connection still works; new connections go to the other server.
    conn.sendall(b"still there?\n")
    assert lines.readline() == b"still there?\n"  # echoed by the same server
    for _ in range(3):
        with socket.create_connection((str(VIP), 80), timeout=5) as other:
            assert other.makefile("rb").readline().decode().strip() != served_by
    lines.close()
    conn.close()
    # Closed, its TCP entry lingers as inactive: the drain timeout ends the wait.
    done = one_pass(lambda: less, tmp_path, drain_timeout_s=0)
    assert done.outcome is Outcome.CHANGED
    _, dests = kernel_view()
    assert address not in {d.address for d in dests}


def test_apply_once_and_plan_live_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = str(ROOT / "examples/lvs-nat.yaml")
    state = str(tmp_path)
    args = ["--node", "director1", "--state-dir", state]
    assert main(["plan", example, "--live", *args]) == 1
    assert "+ create ipvs_service tcp/192.0.2.200:80" in capsys.readouterr().out
    assert main(["apply", example, "--once", *args]) == 0
    out = capsys.readouterr().out
    assert "sysctl net.ipv4.ip_forward:" in out
    assert "changed: 4 kernel write(s)" in out
    assert main(["plan", example, "--live", *args]) == 0
    assert "No changes." in capsys.readouterr().out
    assert main(["apply", example, "--once", *args]) == 0
    assert "converged: 0 kernel write(s)" in capsys.readouterr().out


HEALTH_CONFIG = """
apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {address: 192.0.2.11}
virtual_services:
  web:
    address: 192.0.2.10
    port: 80
    scheduler: rr
    check: {tcp: {}, interval: 300ms, timeout: 200ms}
    quorum: {min_weight: 2}
    sorry_server: {address: 127.0.0.7, port: 8080}
    real_servers:
      - {address: 127.0.0.5, port: 8080}
      - {address: 127.0.0.6, port: 8080}
"""


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{ipvsadm('-Ln')}"
        time.sleep(0.1)


def _servers() -> set[str]:
    """Real servers with a weight, from one `ipvsadm -Ln` (the daemon writes meanwhile)."""
    out = set()
    for line in ipvsadm("-Ln").splitlines():
        parts = line.split()
        if parts[:1] == ["->"] and parts[1][0].isdigit() and int(parts[3]) > 0:
            out.add(parts[1].rsplit(":", 1)[0])
    return out


def test_run_removes_failed_servers_and_switches_to_the_sorry_server(
    vip: object, tmp_path: Path
) -> None:
    del vip
    config = tmp_path / "c.yaml"
    config.write_text(HEALTH_CONFIG)
    servers = {
        name: NamedServer(name, (addr, REAL_PORT))
        for name, addr in (("a", "127.0.0.5"), ("b", "127.0.0.6"), ("sorry", "127.0.0.7"))
    }
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        for s in servers.values()
    ]
    for t in threads:
        t.start()
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "run",
            str(config),
            "--node",
            "a",
            "--state-dir",
            str(tmp_path / "state"),
            "--metrics-addr",
            "off",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait(lambda: _servers() == {"127.0.0.5", "127.0.0.6"}, 30, "both real servers")
        assert ask(VIP, 80) in {"a", "b"}
        # Server a dies: it leaves the table, the live weight (1) loses the quorum (2),
        # and the service switches to the sorry server.
        servers["a"].shutdown()
        servers["a"].server_close()
        _wait(lambda: _servers() == {"127.0.0.7"}, 10, "the sorry server alone")
        assert {ask(VIP, 80) for _ in range(3)} == {"sorry"}
        # It comes back: the real servers return and the sorry server goes.
        servers["a"] = NamedServer("a", ("127.0.0.5", REAL_PORT))
        threading.Thread(target=servers["a"].serve_forever, daemon=True).start()
        _wait(lambda: _servers() == {"127.0.0.5", "127.0.0.6"}, 10, "the real servers back")
        assert {ask(VIP, 80) for _ in range(4)} == {"a", "b"}
    finally:
        node.send_signal(signal.SIGTERM)
        out, _ = node.communicate(timeout=20)
        for s in servers.values():
            s.shutdown()
            s.server_close()
    assert node.returncode == 0, out
    assert "quorum lost; traffic goes to sorry server 127.0.0.7:8080" in out
    assert "quorum regained" in out
