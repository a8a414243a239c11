"""The parts the composition root wires: hooks, memory settling, probe statistics, events."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from reconciler.health.policy import CheckTransition, ProbeResult
from reconciler.model.common import CheckState
from reconciler.observability.tracing import Tracing
from reconciler.runtime.checks import ProbeRecord
from reconciler.runtime.events import NodeEvents
from reconciler.runtime.hooks import NodeHooks, revision_env
from reconciler.runtime.real_servers import ServerEvent
from reconciler.runtime.revision_apply import Revision, RunningRevision
from reconciler.runtime.settle import SETTLE_AFTER_S, SETTLE_MIN_TRANSITIONS, MemorySettler
from reconciler.runtime.status_view import ProbeStats
from reconciler.vrrp.events import LinkDown
from reconciler.vrrp.states import State


class Notifier:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, Any, dict[str, str]]] = []

    def submit(self, subject: str, hooks: Any, env: dict[str, str]) -> None:
        self.submitted.append((subject, hooks, env))


def running(config: Any) -> RunningRevision:
    return RunningRevision(Revision(config, "c1", "abc123", "f00d"), clock=lambda: 42.0)


RS = SimpleNamespace(
    service="tcp/192.0.2.100:80",
    endpoint="198.51.100.2:8080",
    notify_up=("up-hook",),
    notify_down=("down-hook",),
)
SERVICE = SimpleNamespace(
    service=RS.service, quorum=SimpleNamespace(up=("q-up",), down=("q-down",))
)
GROUP = SimpleNamespace(
    name="g",
    members=("a", "b"),
    notify=SimpleNamespace(master=("m",), backup=("b",), fault=("f",), stop=("s",)),
)
CONFIG = SimpleNamespace(services=(SERVICE,), sync_groups=(GROUP,))


def test_a_real_server_event_runs_its_hooks_with_its_name_in_the_environment() -> None:
    notifier = Notifier()
    hooks = NodeHooks(notifier, running(CONFIG), {})  # type: ignore[arg-type]
    hooks.on_server(ServerEvent.UP, RS)  # type: ignore[arg-type]
    hooks.on_server(ServerEvent.DOWN, RS)  # type: ignore[arg-type]
    hooks.on_server(ServerEvent.QUORUM_DOWN, RS)  # type: ignore[arg-type]
    hooks.on_server(ServerEvent.QUORUM_UP, RS)  # type: ignore[arg-type]
    server = "server:tcp/192.0.2.100:80:198.51.100.2:8080"
    service = "service:tcp/192.0.2.100:80"
    assert [(s, h, e["RECONCILER_STATE"]) for s, h, e in notifier.submitted] == [
        (server, ("up-hook",), "up"),
        (server, ("down-hook",), "down"),
        (service, ("q-down",), "quorum_down"),
        (service, ("q-up",), "quorum_up"),
    ]
    assert notifier.submitted[0][2]["RECONCILER_SERVER"] == "198.51.100.2:8080"


def test_a_sync_group_runs_its_hooks_once_the_whole_group_is_in_a_new_state() -> None:
    notifier = Notifier()
    drivers = {"a": SimpleNamespace(state=State.BACKUP), "b": SimpleNamespace(state=State.BACKUP)}
    hooks = NodeHooks(notifier, running(CONFIG), drivers)  # type: ignore[arg-type]
    hooks.on_group_member("g")
    hooks.on_group_member("g")  # the same state again: no second run
    drivers["a"].state = State.MASTER
    hooks.on_group_member("g")  # half the group: not yet
    drivers["b"].state = State.MASTER
    hooks.on_group_member("g")
    hooks.on_group_member(None)  # an instance in no group
    assert [(s, h, e["RECONCILER_STATE"]) for s, h, e in notifier.submitted] == [
        ("group:g", ("b",), "backup"),
        ("group:g", ("m",), "master"),
    ]


def test_every_hook_gets_the_node_and_the_revision_it_runs() -> None:
    now = running(CONFIG)
    env = revision_env("lb1", now)
    assert env() == {
        "RECONCILER_NODE": "lb1",
        "RECONCILER_CLUSTER": "c1",
        "RECONCILER_REVISION": "abc123",
        "RECONCILER_COMMIT": "f00d",
    }
    now.switch(Revision(CONFIG, "c1", "def456"))  # type: ignore[arg-type]
    assert env()["RECONCILER_REVISION"] == "def456" and env()["RECONCILER_COMMIT"] == ""
    assert now.applied_unix_s == 42.0


class Handle:
    def __init__(self, delay: float, fn: Callable[[], None]) -> None:
        self.delay, self.fn, self.cancelled = delay, fn, False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self) -> None:
        self.handles: list[Handle] = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> Handle:
        self.handles.append(Handle(delay, fn))
        return self.handles[-1]


def test_memory_is_settled_once_a_burst_of_transitions_has_stopped() -> None:
    loop, settled = Loop(), []
    settler = MemorySettler(loop, lambda: settled.append(1))  # type: ignore[arg-type]
    for _ in range(SETTLE_MIN_TRANSITIONS - 1):
        settler.on_transition()
    assert loop.handles == []  # a single failover is not worth a settle
    settler.on_transition()
    settler.on_transition()  # still busy: the settle moves later
    first, second = loop.handles
    assert first.cancelled and not second.cancelled and second.delay == SETTLE_AFTER_S
    second.fn()
    assert settled == [1]
    settler.on_transition()
    assert len(loop.handles) == 2  # counting starts again after a settle
    settler.cancel()


def test_probe_statistics_count_probes_failures_time_and_the_worst_lateness() -> None:
    stats = ProbeStats()
    key = ("web", "198.51.100.2:80")
    stats.record(ProbeRecord(key, 1.0, 1.25, 1.5, ProbeResult(ok=True, detail="ok"), retry=False))
    stats.record(
        ProbeRecord(key, 2.0, 2.125, 3.0, ProbeResult(ok=False, detail="refused"), retry=False)
    )
    assert stats.of(key) == (2, 1, 1.125, 0.25)  # binary fractions: exact sums
    assert stats.of(("other", "-")) == (0, 0, 0.0, 0.0)


class Recorder:
    """Any collaborator: records the calls made to it, answers `answer`."""

    def __init__(self, answer: object = None) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self._answer = answer

    def __getattr__(self, name: str) -> Callable[..., object]:
        def call(*args: object) -> object:
            self.calls.append((name, args))
            return self._answer

        return call


def events(drivers: dict[str, Any], real_servers: Recorder) -> tuple[NodeEvents, Recorder]:
    tracking = Recorder()
    router = NodeEvents(
        Loop(),  # type: ignore[arg-type]
        Tracing(None),
        drivers,
        tracking,  # type: ignore[arg-type]
        real_servers,  # type: ignore[arg-type]
        Recorder(),  # type: ignore[arg-type]
        Recorder(),  # type: ignore[arg-type]
        Recorder(),  # type: ignore[arg-type]
        lambda: None,
    )
    return router, tracking


def test_a_check_transition_goes_to_real_server_health_else_to_tracking() -> None:
    t = CheckTransition("nginx", "-", CheckState.UP, CheckState.DOWN, "refused")
    router, tracking = events({}, Recorder(answer=True))  # a real server's check
    router.on_check(t)
    assert tracking.calls == []
    router, tracking = events({}, Recorder(answer=False))
    router.on_check(t)
    assert tracking.calls == [("on_check", (t,))]


def test_a_carrier_change_reaches_the_instances_on_that_interface_and_tracking() -> None:
    on_eth1, on_eth2 = Recorder(), Recorder()
    on_eth1.spec = SimpleNamespace(interface="eth1")  # type: ignore[attr-defined]
    on_eth2.spec = SimpleNamespace(interface="eth2")  # type: ignore[attr-defined]
    router, tracking = events({"a": on_eth1, "b": on_eth2}, Recorder())
    router.on_link("eth1", False)
    assert on_eth1.calls == [("feed", (LinkDown(),))] and on_eth2.calls == []
    assert tracking.calls == [("on_link", ("eth1", False))]
