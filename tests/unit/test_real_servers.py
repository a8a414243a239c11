"""Real-server health against the real check scheduler: weights, alpha, quorum, sorry
server, and what a reload keeps (issue 11: a timeout change put a dead server back).

Probes are scripted through the scheduler's `probe` seam, on a real event loop; the
table is `plan.live.project` of the health overlay, taken at every wake of the reconcile
loop (each table the loop could have applied) and at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from reconciler.config.load import load_text
from reconciler.health.policy import CheckTransition, ProbeResult
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import CheckState
from reconciler.model.ipvs import RealServer
from reconciler.model.kernel import LiveDest
from reconciler.plan.live import project
from reconciler.runtime.checks import CheckJob, CheckScheduler
from reconciler.runtime.real_servers import RealServerHealth, ServerEvent
from reconciler.testing.clusters import cluster_head, nodes

# One node, no VRRP: a director with real servers only.
HEAD = cluster_head(nodes(("a", "192.0.2.11"), interface=None))
CONFIG = (
    HEAD
    + """\
virtual_services:
  web:
    address: 192.0.2.100
    port: 80
    check: {tcp: {}, interval: 20ms, timeout: 150ms}
    quorum: {min_weight: 2, hysteresis: 0}
    sorry_server: {address: 198.51.100.250, port: 8080}
    real_servers:
      - {address: 198.51.100.2, port: 8080}
      - {address: 198.51.100.3, port: 8080, inhibit_on_failure: true}
      - {address: 198.51.100.4, port: 8080, check: false}
"""
)
DYNAMIC = (
    HEAD
    + """\
virtual_services:
  web:
    address: 192.0.2.100
    port: 80
    check:
      script: {command: [/usr/local/bin/weigh], dynamic_weight: true}
      interval: 20ms
      timeout: 150ms
    real_servers:
      - {address: 198.51.100.2, port: 8080, weight: 1}
"""
)
SHARED = (
    HEAD
    + """\
checks:
  port: {tcp: {}, interval: 20ms, timeout: 150ms}
virtual_services:
  web:
    address: 192.0.2.100
    port: 80
    real_servers:
      - {address: 198.51.100.2, port: 8080, check: port}
  web-alt:
    address: 192.0.2.101
    port: 80
    real_servers:
      - {address: 198.51.100.2, port: 8080, check: port, weight: 3}
"""
)
A, B, C = "198.51.100.2:8080", "198.51.100.3:8080", "198.51.100.4:8080"
SORRY = "198.51.100.250:8080"
Table = dict[str, int]


def load(text: str) -> NodeConfig:
    return load_text(text, "t.yaml").cluster.for_node("a")


class Probes:
    """The scheduler's probe seam: each target passes (with a weight) or fails."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.weight: dict[str, int] = {}

    async def __call__(self, job: CheckJob) -> ProbeResult:
        if job.target in self.failing:
            return ProbeResult(ok=False, detail="connect: Connection refused")
        return ProbeResult(ok=True, detail="ok", weight=self.weight.get(job.target))


class Node:
    """The daemon's wiring of real-server health and the check scheduler, its reload order,
    and a reconcile loop that records the table it would apply at each wake."""

    def __init__(self, text: str) -> None:
        self.cfg = load(text)
        self.probes = Probes()
        self.tables: list[Table] = []
        self.events: list[str] = []
        self.scheduler = CheckScheduler(self._on_check, probe=self.probes)
        self.health = RealServerHealth(self._wake, self.scheduler, self._on_server)
        self.health.set_config(self.cfg)
        self.health.refresh()

    def _on_check(self, t: CheckTransition) -> None:
        self.health.on_check(t)

    def _wake(self) -> None:
        self.tables.append(self.table())

    def _on_server(self, event: ServerEvent, rs: RealServer) -> None:
        self.events.append(f"{event.value} {rs.address}")

    def table(self) -> Table:
        o = self.health.overlay()
        return {
            f"{d.address}:{d.port}": d.weight
            for d in project(self.cfg, weights=o.weights, sorry_active=o.sorry_active)
            if isinstance(d, LiveDest)
        }

    def start(self) -> None:
        self.scheduler.start(self.health.jobs())

    def reload(self, text: str) -> None:
        self.cfg = load(text)
        self.health.set_config(self.cfg)
        self.scheduler.replace(self.health.jobs())
        self.health.refresh()

    async def start_below_quorum(self) -> None:
        """Start with A and B failing: live weight 1 < quorum 2, the sorry server serves."""
        self.probes.failing = {A, B}
        self.start()
        await self.settle({SORRY: 1})

    async def settle(self, want: Table, timeout_s: float = 5.0) -> None:
        await wait_for(lambda: self.table() == want, timeout_s)


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def run(scenario: Callable[[Node], Awaitable[None]], text: str = CONFIG) -> None:
    async def main() -> None:
        node = Node(text)
        try:
            await scenario(node)
        finally:
            await node.scheduler.stop()

    asyncio.run(main())


def test_jobs_aim_at_each_checked_server() -> None:
    node = Node(CONFIG)
    assert sorted(j.target for j in node.health.jobs()) == [A, B]


def test_failed_server_leaves_or_is_inhibited_and_comes_back() -> None:
    async def scenario(node: Node) -> None:
        assert node.table() == {A: 1, B: 1, C: 1}  # unknown is in, as keepalived starts
        node.probes.failing = {B}
        node.start()
        await node.settle({A: 1, B: 0, C: 1})  # inhibit_on_failure: weight 0
        assert sorted(node.events) == ["down 198.51.100.3", "up 198.51.100.2"]
        node.probes.failing = {A, B}
        # Live weight 1 < quorum 2: traffic goes to the sorry server only.
        await node.settle({SORRY: 1})
        assert node.events[2:] == ["down 198.51.100.2", "quorum_down 198.51.100.2"]
        node.probes.failing = {B}
        await node.settle({A: 1, B: 0, C: 1})
        assert node.events[4:] == ["up 198.51.100.2", "quorum_up 198.51.100.2"]
        assert {A: 1, B: 1, C: 1} not in node.tables[1:]  # B never back while it failed

    run(scenario)


def test_a_transition_that_moves_no_weight_does_not_wake_the_loop() -> None:
    async def scenario(node: Node) -> None:
        wakes = len(node.tables)
        node.start()
        await wait_for(lambda: len(node.events) == 2)  # both unknown -> up
        assert len(node.tables) == wakes
        assert not node.health.on_check(
            CheckTransition("nginx", "-", CheckState.UP, CheckState.DOWN, "tracking's")
        )

    run(scenario)


def test_alpha_starts_servers_out_of_the_pool_until_their_first_pass() -> None:
    async def scenario(node: Node) -> None:
        # Only the unchecked server is in: quorum lost from the start, sorry server in.
        assert node.table() == {SORRY: 1}
        node.start()
        await node.settle({A: 1, B: 1, C: 1})

    run(scenario, CONFIG.replace("    quorum:", "    alpha: true\n    quorum:"))


@pytest.mark.parametrize("change", ["timeout: 150ms", "interval: 20ms"])
def test_a_reload_that_changes_only_the_schedule_keeps_a_dead_server_out(change: str) -> None:
    new = {"timeout: 150ms": "timeout: 180ms", "interval: 20ms": "interval: 30ms"}[change]

    async def scenario(node: Node) -> None:
        node.probes.failing = {A}
        node.start()
        await node.settle({B: 1, C: 1})
        node.tables.clear()
        events = list(node.events)

        node.reload(CONFIG.replace(change, new))
        assert node.table() == {B: 1, C: 1}  # at once: no probe has run yet
        await asyncio.sleep(0.15)  # several probes on the new schedule, A's all failing
        assert node.table() == {B: 1, C: 1}
        assert all(t == {B: 1, C: 1} for t in node.tables), node.tables
        assert node.events == events  # no second "down" hook for A

    run(scenario)


def test_a_lost_quorum_stays_lost_over_a_schedule_only_reload() -> None:
    async def scenario(node: Node) -> None:
        await node.start_below_quorum()
        node.tables.clear()

        node.reload(CONFIG.replace("interval: 20ms", "interval: 30ms"))
        assert node.table() == {SORRY: 1}
        await asyncio.sleep(0.15)
        assert all(t == {SORRY: 1} for t in node.tables), node.tables
        assert "quorum_up 198.51.100.2" not in node.events
        # The checks still decide after the reload.
        node.probes.failing = {B}
        await node.settle({A: 1, B: 0, C: 1})
        assert node.events[-1] == "quorum_up 198.51.100.2"

    run(scenario)


def test_a_reload_that_adds_a_live_server_decides_the_quorum_at_once() -> None:
    async def scenario(node: Node) -> None:
        await node.start_below_quorum()
        more = CONFIG + "      - {address: 198.51.100.5, port: 8080, check: false}\n"
        node.reload(more)
        assert node.table() == {B: 0, C: 1, "198.51.100.5:8080": 1}
        assert node.events[-1] == "quorum_up 198.51.100.2"

    run(scenario)


def test_a_reload_that_drops_the_sorry_server_ends_its_quorum() -> None:
    async def scenario(node: Node) -> None:
        await node.start_below_quorum()
        node.reload(CONFIG.replace("    sorry_server:", "    #"))
        assert node.table() == {B: 0, C: 1}  # no sorry server: the live servers serve

    run(scenario)


def test_a_dynamic_weight_survives_a_schedule_only_reload() -> None:
    async def scenario(node: Node) -> None:
        node.probes.weight[A] = 7
        node.start()
        await node.settle({A: 7})
        node.probes.weight[A] = 9  # what the next probe would say
        node.tables.clear()

        node.reload(DYNAMIC.replace("timeout: 150ms", "timeout: 180ms"))
        assert node.table() == {A: 7}  # kept, not back to the configured 1
        await node.settle({A: 9})  # and the next probe still moves it
        assert node.tables == [{A: 9}]  # never the configured weight

    run(scenario, DYNAMIC)


def test_a_re_aimed_check_starts_from_its_initial_state_as_the_scheduler_does() -> None:
    """A new probe is a new check: the scheduler starts it afresh, and so does health."""

    async def scenario(node: Node) -> None:
        node.probes.failing = {A}
        node.start()
        await node.settle({B: 1, C: 1})

        node.reload(CONFIG.replace("tcp: {}", "tcp: {port: 8081}"))
        status = node.scheduler.state_of(("web", A))
        assert status is not None and status.state is CheckState.UNKNOWN
        assert node.table() == {A: 1, B: 1, C: 1}  # unknown is in, as at start-up
        await node.settle({B: 1, C: 1})  # until its first probe fails

        node.reload(CONFIG.replace("tcp: {}", "tcp: {port: 8082}, initial: down"))
        assert node.table() == {SORRY: 1}  # A and B down: live weight 1 < quorum 2

    run(scenario)


def test_before_the_scheduler_runs_a_check_is_in_its_initial_state() -> None:
    node = Node(CONFIG.replace("tcp: {}", "tcp: {}, initial: down"))
    assert node.table() == {SORRY: 1}


def test_a_job_shared_by_two_services_decides_both_servers() -> None:
    def weights(node: Node) -> list[int | None]:
        return [w for _, w in sorted(node.health.overlay().weights.items())]

    async def scenario(node: Node) -> None:
        assert len(node.health.jobs()) == 1
        node.probes.failing = {A}
        node.start()
        await wait_for(lambda: weights(node) == [None, None])
        node.probes.failing = set()
        await wait_for(lambda: weights(node) == [1, 3])
        assert node.events == ["down 198.51.100.2"] * 2 + ["up 198.51.100.2"] * 2

    run(scenario, SHARED)
