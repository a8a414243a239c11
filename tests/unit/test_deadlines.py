"""The DeadlineQueue: many timers behind one event-loop timer, on a real event loop."""

from __future__ import annotations

import asyncio

from reconciler.runtime.deadlines import DeadlineQueue


async def _collect(plan: list[float], extra: float | None = None) -> list[tuple[str, float, float]]:
    loop = asyncio.get_running_loop()
    queue = DeadlineQueue(loop)
    ran: list[tuple[str, float, float]] = []
    start = loop.time()

    def hit(name: str, when: float) -> None:
        ran.append((name, when, loop.time()))
        if name == "t0" and extra is not None:
            queue.call_at(start + extra, hit, "added", start + extra)

    for i, offset in enumerate(plan):
        queue.call_at(start + offset, hit, f"t{i}", start + offset)
    await asyncio.sleep(max(plan) + 0.05)
    queue.close()
    return ran


def test_callbacks_run_in_deadline_order_and_never_early() -> None:
    ran = asyncio.run(_collect([0.06, 0.01, 0.03, 0.03]))
    assert [name for name, _, _ in ran] == ["t1", "t2", "t3", "t0"]  # ties: order added
    for _name, when, at in ran:
        assert at >= when - 1e-6


def test_an_entry_added_by_a_callback_runs_at_its_own_time() -> None:
    ran = asyncio.run(_collect([0.01, 0.08], extra=0.04))
    assert [name for name, _, _ in ran] == ["t0", "added", "t1"]
    added = ran[1]
    assert added[2] >= added[1] - 1e-6


def test_one_loop_timer_for_many_entries() -> None:
    async def run() -> int:
        loop = asyncio.get_running_loop()
        queue = DeadlineQueue(loop)
        now = loop.time()
        for i in range(1000):
            queue.call_at(now + 10 + i / 1000, lambda: None)
        scheduled = len(loop._scheduled)  # type: ignore[attr-defined]
        queue.close()
        return scheduled

    assert asyncio.run(run()) <= 2  # ours, and at most one of asyncio.run's own


def test_close_stops_everything() -> None:
    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        queue = DeadlineQueue(loop)
        ran: list[int] = []
        queue.call_at(loop.time() + 0.01, ran.append, 1)
        queue.close()
        await asyncio.sleep(0.03)
        return ran

    assert asyncio.run(run()) == []
