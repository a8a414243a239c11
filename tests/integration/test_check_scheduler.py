"""The check scheduler on a real event loop: counts, grid, retries, replace and stop."""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import IPv4Address

import pytest
from helpers import marker_alive

from reconciler.adapters.probes import Prober
from reconciler.health.policy import CheckTransition, ProbeResult
from reconciler.model.checks import Check, FileProbe, ScriptProbe, TcpProbe
from reconciler.model.common import CheckState
from reconciler.runtime.checks import CheckJob, CheckScheduler, ProbeRecord

UP, DOWN, UNKNOWN = CheckState.UP, CheckState.DOWN, CheckState.UNKNOWN
LOCALHOST = IPv4Address("127.0.0.1")
MS = timedelta(milliseconds=1)


def check(name: str = "c", interval_ms: int = 20, **kwargs: object) -> Check:
    return Check(
        name=name,
        probe=FileProbe(f"/nonexistent/{name}"),
        interval=interval_ms * MS,
        timeout=timedelta(seconds=1),
        **kwargs,  # type: ignore[arg-type]
    )


class Scripted:
    """A fake probe: 'o'/'x' per attempt from a script, then ``tail`` forever."""

    def __init__(self, script: str, tail: str = "o", delays_s: dict[int, float] | None = None):
        self.script = script
        self.tail = tail
        self.delays_s = delays_s or {}
        self.calls = 0

    async def __call__(self, job: CheckJob) -> ProbeResult:
        n = self.calls
        self.calls += 1
        if n in self.delays_s:
            await asyncio.sleep(self.delays_s[n])
        r = self.script[n] if n < len(self.script) else self.tail
        return ProbeResult(ok=r == "o", detail=f"attempt {n + 1}")


class Recorder:
    def __init__(self) -> None:
        self.transitions: list[tuple[int, CheckTransition]] = []  # (probes so far, transition)
        self.records: list[ProbeRecord] = []

    def on_probe(self, record: ProbeRecord) -> None:
        self.records.append(record)

    def on_transition(self, t: CheckTransition) -> None:
        self.transitions.append((len(self.records), t))

    def states(self) -> list[tuple[int, CheckState, CheckState]]:
        return [(n, t.old, t.new) for n, t in self.transitions]


async def wait_for(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_rise_and_fall_at_the_right_probe_counts() -> None:
    rec = Recorder()
    fake = Scripted("ooxxxoxoo", tail="o")

    async def scenario() -> None:
        sched = CheckScheduler(
            rec.on_transition, probe=fake, on_probe=rec.on_probe, spread=timedelta(0)
        )
        sched.start([CheckJob(check(rise=2, fall=3))])
        await wait_for(lambda: len(rec.records) >= 10)
        await sched.stop()

    asyncio.run(scenario())
    assert rec.states() == [
        (1, UNKNOWN, UP),  # the first result decides
        (5, UP, DOWN),  # x at probes 3, 4, 5: fall 3
        (9, DOWN, UP),  # o at 8, 9: rise 2 (the o at 6 was broken by the x at 7)
    ]
    assert [t.reason for _, t in rec.transitions][1] == (
        "3 consecutive failures (fall 3): attempt 5"
    )


def test_real_tcp_probe_goes_down_and_up_with_the_listener() -> None:
    rec = Recorder()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.listen(16)
    job = CheckJob(
        Check(name="tcp", probe=TcpProbe(None, None), interval=30 * MS, rise=2, fall=2),
        LOCALHOST,
        port,
    )

    async def scenario() -> None:
        async with CheckScheduler(
            rec.on_transition, on_probe=rec.on_probe, spread=timedelta(0)
        ) as sched:
            sched.start([job])
            await wait_for(lambda: len(rec.transitions) == 1)
            listener.close()
            closed_at = len(rec.records)
            await wait_for(lambda: len(rec.transitions) == 2)
            assert len(rec.records) == closed_at + 2  # fall 2: the second refused connect
            relisten = socket.socket()
            relisten.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            relisten.bind(("127.0.0.1", port))
            relisten.listen(16)
            try:
                reopened_at = len(rec.records)
                await wait_for(lambda: len(rec.transitions) == 3)
                assert len(rec.records) == reopened_at + 2  # rise 2
            finally:
                relisten.close()
            status = sched.states()[("tcp", f"127.0.0.1:{port}")]
            assert status.state is UP and status.detail == "connected"

    try:
        asyncio.run(scenario())
    finally:
        listener.close()
    assert [(t.old, t.new, t.target) for _, t in rec.transitions] == [
        (UNKNOWN, UP, f"127.0.0.1:{port}"),
        (UP, DOWN, f"127.0.0.1:{port}"),
        (DOWN, UP, f"127.0.0.1:{port}"),
    ]
    assert rec.transitions[1][1].reason.endswith("connect: connection refused")


def test_the_schedule_does_not_drift() -> None:
    interval_s = 0.04
    # Probes 3 and 7 take 25 ms, probe 10 overruns the next slot (60 ms > 40 ms).
    fake = Scripted("", delays_s={3: 0.025, 7: 0.025, 10: 0.06})
    rec = Recorder()

    async def scenario() -> None:
        sched = CheckScheduler(
            rec.on_transition, probe=fake, on_probe=rec.on_probe, spread=timedelta(0)
        )
        sched.start([CheckJob(check(interval_ms=40))])
        await wait_for(lambda: len(rec.records) >= 20, timeout_s=10)
        await sched.stop()
        assert sched.skipped_slots == 1

    asyncio.run(scenario())
    anchor = rec.records[0].due_at_s
    slots = [(r.due_at_s - anchor) / interval_s for r in rec.records]
    # Every due time is exactly on the grid: anchor + k * interval.
    assert all(abs(s - round(s)) < 1e-6 for s in slots)
    ks = [round(s) for s in slots]
    assert ks[:11] == list(range(11))
    assert ks[11] == 12  # slot 11 was covered by the overrunning probe: skipped, not run late
    assert ks[11:] == list(range(12, 12 + len(ks) - 11))
    late = sorted(r.lateness_s for r in rec.records)
    assert late[0] >= 0
    assert late[-1] < 0.05, f"a probe started {late[-1] * 1000:.1f} ms late"


def test_retries_run_off_the_grid_and_count_once() -> None:
    rec = Recorder()
    fake = Scripted("oxxxo", tail="o")
    job = CheckJob(check(interval_ms=100, retries=2, retry_delay=10 * MS, fall=1))

    async def scenario() -> None:
        sched = CheckScheduler(
            rec.on_transition, probe=fake, on_probe=rec.on_probe, spread=timedelta(0)
        )
        sched.start([job])
        await wait_for(lambda: len(rec.records) >= 6, timeout_s=5)
        await sched.stop()

    asyncio.run(scenario())
    r = rec.records
    assert [x.retry for x in r[:6]] == [False, False, True, True, False, False]
    # Each retry is due retry_delay after the previous attempt ended.
    for prev, cur in [(r[1], r[2]), (r[2], r[3])]:
        assert cur.due_at_s == pytest.approx(prev.finished_at_s + 0.010, abs=1e-6)
    # The third failed attempt (probe 4) is the one failure that counts: fall 1.
    assert rec.states() == [(1, UNKNOWN, UP), (4, UP, DOWN), (5, DOWN, UP)]
    # Back on the grid afterwards.
    anchor = r[0].due_at_s
    assert (r[4].due_at_s - anchor) / 0.1 == pytest.approx(2)
    assert (r[5].due_at_s - anchor) / 0.1 == pytest.approx(3)


def test_replace_keeps_unchanged_checks_and_their_state() -> None:
    rec = Recorder()

    async def probe(job: CheckJob) -> ProbeResult:
        return ProbeResult(ok=job.check.name != "bad", detail="")

    keep = CheckJob(check("keep", rise=3))
    bad = CheckJob(check("bad"))
    drop = CheckJob(check("drop"))

    async def scenario() -> None:
        sched = CheckScheduler(rec.on_transition, probe=probe, spread=timedelta(0))
        sched.start([keep, bad, drop])
        await wait_for(lambda: len(rec.transitions) == 3)
        running = dict(sched._running)
        assert sorted(j.name for j in sched.jobs()) == [
            "check:bad@-",
            "check:drop@-",
            "check:keep@-",
        ]

        # Same probe, new schedule: state carried over. New probe: starts again.
        rescheduled_bad = CheckJob(check("bad", interval_ms=30))
        new_probe = CheckJob(
            Check(name="keep2", probe=FileProbe("/x"), interval=20 * MS, initial=DOWN)
        )
        sched.replace([keep, rescheduled_bad, new_probe])
        assert sched._running[keep.key] is running[keep.key]  # untouched: same slot, state
        assert sched._running[bad.key] is not running[bad.key]
        assert drop.key not in sched._running
        assert not running[drop.key].armed and running[drop.key].attempt is None
        status = sched.states()
        assert status[keep.key].state is UP
        assert status[bad.key].state is DOWN  # carried over, not back to unknown
        assert status[new_probe.key].state is DOWN  # its initial state
        assert set(sched.states()) == {keep.key, bad.key, new_probe.key}

        # A changed probe under the same name starts from its initial state.
        changed = CheckJob(Check(name="keep", probe=FileProbe("/y"), interval=20 * MS))
        before = len(rec.transitions)
        sched.replace([changed])
        assert sched.states()[changed.key].state is UNKNOWN
        await wait_for(lambda: len(rec.transitions) > before)
        await sched.stop()
        assert sched._running == {} and sched.probe_tasks() == []
        assert sched.states() == {}

    asyncio.run(scenario())
    # No transition was published for the carried-over check when it was rescheduled.
    bad_transitions = [t for _, t in rec.transitions if t.check == "bad"]
    assert [(t.old, t.new) for t in bad_transitions] == [(UNKNOWN, DOWN)]


def test_a_failing_callback_does_not_stop_the_check() -> None:
    seen: list[CheckTransition] = []

    def explode(t: CheckTransition) -> None:
        seen.append(t)
        raise RuntimeError("subscriber bug")

    async def scenario() -> None:
        sched = CheckScheduler(explode, probe=Scripted("oxo"), spread=timedelta(0))
        sched.start([CheckJob(check())])
        await wait_for(lambda: len(seen) == 3)
        await sched.stop()

    asyncio.run(scenario())


def test_a_probe_that_raises_counts_as_a_failure() -> None:
    rec = Recorder()

    async def broken(job: CheckJob) -> ProbeResult:
        raise ValueError("boom")

    async def scenario() -> None:
        sched = CheckScheduler(
            rec.on_transition, probe=broken, on_probe=rec.on_probe, spread=timedelta(0)
        )
        sched.start([CheckJob(check())])
        await wait_for(lambda: len(rec.records) >= 2)
        await sched.stop()

    asyncio.run(scenario())
    assert rec.records[0].result == ProbeResult(ok=False, detail="probe error: ValueError('boom')")
    assert rec.states() == [(1, UNKNOWN, DOWN)]


def test_spread_places_checks_at_stable_offsets() -> None:
    rec = Recorder()

    async def scenario() -> None:
        sched = CheckScheduler(
            rec.on_transition, probe=Scripted(""), on_probe=rec.on_probe, spread=timedelta(1)
        )
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        jobs = [CheckJob(check(f"c{i}", interval_ms=200)) for i in range(20)]
        sched.start(jobs)
        await wait_for(lambda: len({r.key for r in rec.records}) == 20)
        await sched.stop()
        first: dict[tuple[str, str], float] = {}
        for r in rec.records:
            first.setdefault(r.key, r.due_at_s - t0)
        offsets = sorted(first.values())
        assert all(0 <= o < 0.2 + 0.01 for o in offsets)  # within one interval
        assert offsets[-1] - offsets[0] > 0.05  # not all in the same instant

    asyncio.run(scenario())


def test_start_and_replace_misuse() -> None:
    async def scenario() -> None:
        sched = CheckScheduler(lambda t: None, probe=Scripted(""))
        with pytest.raises(RuntimeError, match="not started"):
            sched.replace([])
        sched.start([])
        with pytest.raises(RuntimeError, match="already started"):
            sched.start([])
        with pytest.raises(ValueError, match="two different jobs"):
            sched.replace([CheckJob(check("a")), CheckJob(check("a", interval_ms=30))])
        await sched.stop()
        assert not sched.running

    asyncio.run(scenario())


@pytest.fixture
def marker() -> Iterator[str]:
    yield f"{secrets.randbelow(10**6) + 10**6}.25"


def test_stop_kills_a_running_script(marker: str) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    script = ScriptProbe(
        ("/bin/sh", "-c", f"sleep {marker} & sleep {marker}; wait"), me, False, False
    )
    job = CheckJob(
        Check(
            name="slow", probe=script, interval=timedelta(seconds=1), timeout=timedelta(seconds=30)
        )
    )

    async def scenario() -> None:
        sched = CheckScheduler(lambda t: None, prober=Prober(), spread=timedelta(0))
        sched.start([job])
        await wait_for(lambda: marker_alive(marker))
        await sched.stop()

    asyncio.run(scenario())
    deadline = time.monotonic() + 3
    while marker_alive(marker):
        assert time.monotonic() < deadline, "the script outlived the scheduler"
        time.sleep(0.02)
