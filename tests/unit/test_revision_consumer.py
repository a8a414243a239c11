"""The revision consumer: any Source through the gate into an apply function.

The source here is a scripted one (the Source protocol is the project's own seam); the
real file source is tested in test_file_source.py and in the lab.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import load_bytes
from reconciler.model.cluster import Cluster
from reconciler.model.revision import Artifact, Provenance, Refusal
from reconciler.runtime.instances import InstancesApplied
from reconciler.runtime.revision_store import RevisionStore
from reconciler.runtime.revisions import NotStarted, RevisionConsumer

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "examples/nginx-active-passive.yaml").read_bytes()


def artifact(data: bytes, commit: str | None = None) -> Artifact:
    return Artifact(
        data, hashlib.sha256(data).hexdigest(), Provenance("file:/etc/c.yaml", commit=commit)
    )


class Scripted:
    """A Source whose revisions the test puts in."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Artifact | Refusal] = asyncio.Queue()
        self.refreshed = 0

    async def updates(self) -> AsyncIterator[Artifact | Refusal]:
        while True:
            yield await self.queue.get()

    def refresh(self) -> None:
        self.refreshed += 1


def prepare(a: Artifact, held: frozenset[str]) -> Cluster:
    del held
    return load_bytes(a.data, a.provenance.location).cluster


async def started(
    src: Scripted, first: Artifact, store: RevisionStore | None = None
) -> RevisionConsumer[Cluster]:
    """A consumer of `src` that took `first` as its first revision and was started."""
    consumer: RevisionConsumer[Cluster] = RevisionConsumer(src, prepare, store=store)
    await src.queue.put(first)
    await consumer.first()
    consumer.started()
    return consumer


async def cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def settle(consumer: RevisionConsumer[Cluster], attempts: int) -> None:
    for _ in range(200):
        if consumer.attempts_done >= attempts and consumer.gate.in_flight is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{consumer.attempts_done} attempts, wanted {attempts}")


def test_first_revision_and_a_burst_that_gives_one_apply() -> None:
    async def body() -> None:
        src = Scripted()
        consumer: RevisionConsumer[Cluster] = RevisionConsumer(src, prepare)
        await src.queue.put(artifact(GOOD))
        first = await consumer.first()
        assert first.name
        consumer.started()
        applied: list[Cluster] = []
        release = asyncio.Event()

        async def apply(c: Cluster) -> InstancesApplied:
            await release.wait()
            applied.append(c)
            return InstancesApplied(reconfigured=("web",))

        task = asyncio.create_task(consumer.run(apply))
        v2 = GOOD.replace(b"priority: {lb1: 150", b"priority: {lb1: 151")
        v3 = GOOD.replace(b"priority: {lb1: 150", b"priority: {lb1: 152")
        assert GOOD not in (v2, v3)
        await src.queue.put(artifact(v2))
        await asyncio.sleep(0.05)  # v2 is being applied ...
        for data in (v3, v2, v3, v3):  # ... while a burst arrives
            await src.queue.put(artifact(data))
        await asyncio.sleep(0.05)
        release.set()
        await settle(consumer, 2)
        assert len(applied) == 2  # v2, then only the newest of the burst
        st = consumer.status()
        assert st.applied is not None and st.applied.digest == artifact(v3).digest
        assert st.applies == 3 and st.failures == 0
        await cancelled(task)

    asyncio.run(body())


def test_invalid_bytes_are_not_applied_and_status_says_where() -> None:
    async def body() -> None:
        src = Scripted()
        consumer = await started(src, artifact(GOOD))
        applied: list[Cluster] = []

        async def apply(c: Cluster) -> InstancesApplied:
            applied.append(c)
            return InstancesApplied()

        task = asyncio.create_task(consumer.run(apply))
        await src.queue.put(artifact(GOOD.replace(b"vrid: 51", b"vrid: 300")))
        await settle(consumer, 1)
        assert applied == []
        st = consumer.status()
        assert st.attempted is not None and st.attempted.reason == "invalid"
        assert st.attempted.error is not None
        assert st.attempted.error.startswith("/etc/c.yaml:")
        assert "300" in st.attempted.error
        stalled = {c.type: c for c in st.conditions}["Stalled"]
        assert stalled.status and stalled.reason == "ValidationFailed"
        await cancelled(task)

    asyncio.run(body())


def test_an_apply_failure_changes_the_gate_not_the_applied_revision() -> None:
    async def body() -> None:
        src = Scripted()
        consumer = await started(src, artifact(GOOD))

        async def apply(c: Cluster) -> InstancesApplied:
            raise OSError("eth9 does not exist")

        task = asyncio.create_task(consumer.run(apply))
        v2 = GOOD.replace(b"priority: {lb1: 150", b"priority: {lb1: 151")
        await src.queue.put(artifact(v2))
        await settle(consumer, 1)
        st = consumer.status()
        assert st.applied is not None and st.applied.digest == artifact(GOOD).digest
        assert st.verified is not None and st.verified.digest == artifact(v2).digest
        assert st.attempted is not None and st.attempted.error == "eth9 does not exist"
        assert st.refused == {"apply-failed": 1}
        await cancelled(task)

    asyncio.run(body())


def test_a_first_revision_that_is_refused_or_invalid_does_not_start() -> None:
    async def body() -> None:
        src = Scripted()
        consumer: RevisionConsumer[Cluster] = RevisionConsumer(src, prepare)
        await src.queue.put(Refusal(Provenance("file:/x"), "unreadable", "/x: No such file"))
        with pytest.raises(NotStarted, match="unreadable: /x: No such file"):
            await consumer.first()
        src2 = Scripted()
        consumer2: RevisionConsumer[Cluster] = RevisionConsumer(src2, prepare)
        await src2.queue.put(artifact(b"apiVersion: [\n"))
        with pytest.raises(NotStarted) as caught:
            await consumer2.first()
        assert isinstance(caught.value.__cause__, InvalidConfig)

    asyncio.run(body())


def test_refresh_is_passed_to_the_source() -> None:
    src = Scripted()
    consumer: RevisionConsumer[Cluster] = RevisionConsumer(src, prepare)
    consumer.refresh()
    assert src.refreshed == 1


def test_a_suspended_node_restarts_from_the_revision_it_ran(tmp_path: Path) -> None:
    v2 = GOOD.replace(b"priority: {lb1: 150", b"priority: {lb1: 151")

    async def first_life() -> None:
        src = Scripted()
        consumer = await started(src, artifact(GOOD, commit="a" * 40), RevisionStore(tmp_path))
        consumer.suspend()

    async def second_life() -> None:
        src = Scripted()
        v2_now = artifact(v2)  # what the file says now
        consumer = await started(src, v2_now, RevisionStore(tmp_path))
        st = consumer.status()
        assert st.applied is not None and st.applied.digest == artifact(GOOD).digest
        assert st.applied.commit == "a" * 40
        assert st.suspended

        async def apply(c: Cluster) -> InstancesApplied:
            return InstancesApplied()

        task = asyncio.create_task(consumer.run(apply))
        for _ in range(100):
            if consumer.status().pending is not None:
                break
            await asyncio.sleep(0.01)
        assert consumer.status().pending == artifact(v2).digest
        consumer.resume()
        await settle(consumer, 1)
        st = consumer.status()
        assert st.applied is not None and st.applied.digest == artifact(v2).digest
        task.cancel()
        await asyncio.wait({task})

    async def third_life() -> None:  # resumed and applied: it starts from the source
        src = Scripted()
        consumer = await started(src, artifact(GOOD), RevisionStore(tmp_path))
        st = consumer.status()
        assert st.applied is not None and st.applied.digest == artifact(GOOD).digest
        assert not st.suspended

    asyncio.run(first_life())
    asyncio.run(second_life())
    asyncio.run(third_life())
