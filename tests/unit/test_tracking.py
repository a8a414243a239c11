"""VRRP tracking against the real check scheduler: priorities follow the checks' states,
and a reload keeps what the scheduler keeps (issue 11: a timeout change made a dead check
look healthy again). The instance driver is faked (the project's `Tracked` seam); probes
are scripted through the scheduler's `probe` seam, on a real event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from ipaddress import IPv4Address, ip_interface

from reconciler.health.policy import CheckTransition, ProbeResult
from reconciler.model.checks import Check, FileProbe, TcpProbe
from reconciler.model.common import CheckState, Family
from reconciler.model.vrrp import TrackCheck, TrackInterface, Vip, VrrpInstance
from reconciler.observability.status import TrackerStatus
from reconciler.runtime.checks import CheckJob, CheckScheduler
from reconciler.runtime.tracking import Tracking
from reconciler.vrrp.events import Event, FaultCleared, FaultSet, PriorityChanged

MS = timedelta(milliseconds=1)
NGINX = Check(
    name="nginx",
    probe=TcpProbe(IPv4Address("127.0.0.1"), 8080),
    interval=20 * MS,
    timeout=150 * MS,
    rise=2,
    fall=2,
)
WEB = VrrpInstance(
    name="web",
    vrid=51,
    version=3,
    family=Family.IPV4,
    interface="eth0",
    priority=150,
    advert_interval=timedelta(seconds=1),
    vips=(Vip(ip_interface("192.0.2.100/24"), "eth0"),),
    primary_address=IPv4Address("192.0.2.11"),
    track=(TrackCheck("nginx", -60),),
)


class FakeDriver:
    """Records what tracking feeds; applies priorities and faults as the machine would."""

    def __init__(self, spec: VrrpInstance) -> None:
        self.spec = spec
        self.effective_priority = spec.priority
        self.faults: frozenset[str] = frozenset()
        self.events: list[Event] = []

    def feed(self, event: Event, now: float | None = None) -> None:
        self.events.append(event)
        if isinstance(event, PriorityChanged):
            self.effective_priority = event.priority
        elif isinstance(event, FaultSet):
            self.faults |= {event.source}
        elif isinstance(event, FaultCleared):
            self.faults -= {event.source}


class Probes:
    """The scheduler's probe seam: every probe of a check fails or succeeds, by name."""

    def __init__(self) -> None:
        self.ok: dict[str, bool] = {}

    async def __call__(self, job: CheckJob) -> ProbeResult:
        ok = self.ok.get(job.check.name, False)
        return ProbeResult(ok=ok, detail="ok" if ok else "connect: Connection refused")


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


class Node:
    """The daemon's wiring of tracking and the scheduler, and its reload order."""

    def __init__(self, checks: tuple[Check, ...], spec: VrrpInstance = WEB) -> None:
        self.probes = Probes()
        self.transitions: list[CheckTransition] = []
        self.scheduler = CheckScheduler(self._on_check, probe=self.probes)
        self.driver = FakeDriver(spec)
        self.tracking = Tracking({spec.name: self.driver}, self.scheduler, checks)

    def _on_check(self, t: CheckTransition) -> None:
        self.transitions.append(t)
        self.tracking.on_check(t)

    def start(self) -> None:
        self.tracking.apply(self.driver)
        self.scheduler.start(self.tracking.jobs())

    def reload(self, checks: tuple[Check, ...]) -> None:
        self.tracking.set_checks(checks)
        self.scheduler.replace(self.tracking.jobs())
        self.tracking.apply(self.driver)


def test_a_reload_that_changes_only_the_timeout_keeps_a_dead_check_down() -> None:
    async def scenario() -> None:
        node = Node((NGINX,))
        node.start()
        await wait_for(lambda: node.driver.effective_priority == 90)
        node.driver.events.clear()

        node.reload((replace(NGINX, timeout=180 * MS),))
        await asyncio.sleep(0.15)  # several probes on the new schedule, all failing
        assert node.driver.events == []  # never 150, not even for a moment
        assert node.driver.effective_priority == 90
        assert len(node.transitions) == 1  # the first result only: DOWN carried over
        await node.scheduler.stop()

    asyncio.run(scenario())


def test_a_recovered_check_after_a_reload_still_moves_the_priority_back() -> None:
    async def scenario() -> None:
        node = Node((NGINX,))
        node.start()
        await wait_for(lambda: node.driver.effective_priority == 90)
        node.driver.events.clear()
        node.reload((replace(NGINX, interval=30 * MS),))
        node.probes.ok["nginx"] = True  # rise 2 on the new schedule
        await wait_for(lambda: node.driver.effective_priority == 150)
        assert node.driver.events == [PriorityChanged(150)]
        await node.scheduler.stop()

    asyncio.run(scenario())


def test_a_re_aimed_check_starts_from_its_initial_state_as_the_scheduler_does() -> None:
    """A new probe is a new check: the scheduler starts it afresh, and tracking agrees."""

    async def scenario() -> None:
        node = Node((NGINX,))
        node.start()
        await wait_for(lambda: node.driver.effective_priority == 90)
        aimed = replace(NGINX, probe=TcpProbe(IPv4Address("127.0.0.1"), 8081))
        node.reload((aimed,))
        status = node.scheduler.state_of(("nginx", "-"))
        assert status is not None and status.state is CheckState.UNKNOWN
        assert node.driver.effective_priority == 150  # unknown adds nothing
        await wait_for(lambda: node.driver.effective_priority == 90)  # until it fails
        await node.scheduler.stop()

    asyncio.run(scenario())


def test_before_the_scheduler_runs_a_check_is_in_its_initial_state() -> None:
    node = Node((replace(NGINX, initial=CheckState.DOWN),))
    node.tracking.apply(node.driver)
    assert node.driver.events == [PriorityChanged(90)]


def test_status_gives_each_trackers_term() -> None:
    async def scenario() -> None:
        flag = Check(name="maintenance", probe=FileProbe("/nonexistent"), interval=20 * MS)
        gate = Check(name="gate", probe=TcpProbe(IPv4Address("127.0.0.1"), 1), interval=20 * MS)
        spec = replace(
            WEB,
            track=(
                TrackCheck("nginx", -60),
                TrackCheck("maintenance", -1),
                TrackCheck("gate", 0),
                TrackInterface("eth1", -50),
            ),
        )
        node = Node((NGINX, flag, gate), spec)
        node.tracking.links["eth1"] = True
        assert node.tracking.status(spec) == (
            TrackerStatus("check nginx", -60, "unknown", None, 0, False),
            TrackerStatus("check maintenance", -1, "unknown", None, 0, False),
            TrackerStatus("check gate", 0, "unknown", None, 0, False),
            TrackerStatus("interface eth1", -50, "up", None, 0, False),
        )
        node.start()
        node.probes.ok["gate"] = False
        await wait_for(lambda: bool(node.driver.faults))
        await wait_for(lambda: node.driver.effective_priority == 90)
        trackers = node.tracking.status(spec)
        assert trackers[0] == TrackerStatus("check nginx", -60, "down", None, -60, False)
        assert trackers[2] == TrackerStatus("check gate", 0, "down", None, 0, True)
        assert node.driver.faults == {"track:check gate"}
        await node.scheduler.stop()

    asyncio.run(scenario())
