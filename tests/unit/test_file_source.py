"""The watched-file source with real files, real directories, real symlink swaps done as
git-sync v4 does them, and a real git repository."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from reconciler.model.revision import Artifact, Refusal
from reconciler.source.file import FileSource
from reconciler.testing.clusters import git_sync_publish

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
WAIT_S = 5.0


class Watch:
    """The source's updates, collected in the background."""

    def __init__(self, source: FileSource) -> None:
        self.source = source
        self.items: asyncio.Queue[Artifact | Refusal] = asyncio.Queue()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        updates: AsyncIterator[Artifact | Refusal] = self.source.updates()
        try:
            async for item in updates:
                await self.items.put(item)
        finally:
            await updates.aclose()  # type: ignore[attr-defined]

    async def next(self, timeout: float = WAIT_S) -> Artifact | Refusal:
        return await asyncio.wait_for(self.items.get(), timeout)

    async def artifact(self, timeout: float = WAIT_S) -> Artifact:
        item = await self.next(timeout)
        assert isinstance(item, Artifact), item
        return item

    async def nothing(self, for_s: float = 0.5) -> None:
        with pytest.raises(TimeoutError):
            item = await asyncio.wait_for(self.items.get(), for_s)
            raise AssertionError(f"unexpected {item}")

    async def close(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())  # type: ignore[arg-type]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_plain_file_rewritten_is_seen_and_an_unchanged_rewrite_is_not(tmp_path: Path) -> None:
    f = tmp_path / "cluster.yaml"
    f.write_bytes(b"one\n")

    async def body() -> None:
        w = Watch(FileSource(f, backstop_s=60))
        first = await w.artifact()
        assert (first.data, first.digest) == (b"one\n", sha(b"one\n"))
        assert first.provenance.source == f"file:{f}"
        assert first.provenance.commit is None
        t0 = time.monotonic()
        f.write_bytes(b"two\n")
        second = await w.artifact()
        assert second.data == b"two\n" and second.digest == sha(b"two\n")
        assert time.monotonic() - t0 < 1.0  # the watch, not the backstop
        f.write_bytes(b"two\n")  # same bytes: nothing
        await w.nothing()
        # An editor's save: write a temporary file, rename it over the original.
        tmp = tmp_path / ".cluster.yaml.swp"
        tmp.write_bytes(b"three\n")
        tmp.rename(f)
        assert (await w.artifact()).data == b"three\n"
        await w.close()

    run(body)


def test_the_bytes_handed_on_are_the_bytes_whose_digest_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(b"x" * 100_000)

    async def body() -> None:
        w = Watch(FileSource(f, backstop_s=60))
        a = await w.artifact()
        assert sha(a.data) == a.digest and len(a.data) == 100_000
        await w.close()

    run(body)


def test_refresh_hands_the_current_revision_on_again(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(b"a\n")

    async def body() -> None:
        s = FileSource(f, backstop_s=60)
        w = Watch(s)
        first = await w.artifact()
        for _ in range(5):  # a burst of SIGHUPs: one look
            s.refresh()
        again = await w.artifact()
        assert again.digest == first.digest
        await w.nothing(0.3)
        await w.close()

    run(body)


def test_without_watch_the_backstop_still_sees_a_change(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(b"a\n")

    async def body() -> None:
        s = FileSource(f, watch=False, backstop_s=0.3)
        w = Watch(s)
        await w.artifact()
        f.write_bytes(b"b\n")
        assert (await w.artifact(timeout=2)).data == b"b\n"
        await w.close()

    run(body)


def test_a_missing_file_is_a_refusal_and_its_return_an_artifact(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"

    async def body() -> None:
        w = Watch(FileSource(f, backstop_s=60))
        refused = await w.next()
        assert isinstance(refused, Refusal) and refused.reason == "unreadable"
        assert str(f) in refused.detail
        f.write_bytes(b"a\n")
        assert (await w.artifact()).data == b"a\n"
        await w.close()

    run(body)


C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40


def test_git_sync_link_swaps_are_seen_with_the_commit(tmp_path: Path) -> None:
    root = tmp_path / "git"
    old = git_sync_publish(root, C1, b"one\n")

    async def body() -> None:
        w = Watch(FileSource(root / "current" / "cluster.yaml", backstop_s=60))
        first = await w.artifact()
        assert (first.data, first.provenance.commit) == (b"one\n", C1)
        assert first.provenance.author is None  # not a git work tree: unknown
        t0 = time.monotonic()
        git_sync_publish(root, C2, b"two\n")
        shutil.rmtree(old)  # git-sync removes the old worktree
        second = await w.artifact()
        assert (second.data, second.provenance.commit) == (b"two\n", C2)
        assert time.monotonic() - t0 < 1.0
        # A commit that does not touch the file: same bytes, new commit, handed on.
        git_sync_publish(root, C3, b"two\n")
        third = await w.artifact()
        assert (third.digest, third.provenance.commit) == (second.digest, C3)
        # ... and the watch followed the link to the newest worktree.
        (root / ".worktrees" / C3 / "cluster.yaml").write_bytes(b"edited\n")
        assert (await w.artifact()).data == b"edited\n"
        await w.close()

    run(body)


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada Operator",
        "GIT_AUTHOR_EMAIL": "ada@example.org",
        "GIT_COMMITTER_NAME": "Ada Operator",
        "GIT_COMMITTER_EMAIL": "ada@example.org",
        "GIT_AUTHOR_DATE": "2026-01-02T03:04:05Z",
        "GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z",
    }
    done = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


@needs_git
def test_a_git_sync_worktree_gives_author_and_commit_time(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "cluster.yaml").write_bytes(b"one\n")
    _git(repo, "add", "cluster.yaml")
    _git(repo, "commit", "-q", "-m", "first")
    commit = _git(repo, "rev-parse", "HEAD")
    root = tmp_path / "sync"
    (root / ".worktrees").mkdir(parents=True)
    _git(repo, "worktree", "add", "-q", "--detach", str(root / ".worktrees" / commit), commit)
    (root / "current").symlink_to(Path(".worktrees") / commit)

    async def body() -> None:
        w = Watch(FileSource(root / "current" / "cluster.yaml", backstop_s=60))
        a = await w.artifact()
        p = a.provenance
        assert (p.commit, p.author) == (commit, "Ada Operator <ada@example.org>")
        assert p.committed_unix_s == 1767323045.0
        await w.close()

    run(body)


@needs_git
def test_a_file_in_a_plain_work_tree_names_head_only_while_committed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    f = repo / "cluster.yaml"
    f.write_bytes(b"one\n")
    _git(repo, "add", "cluster.yaml")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")

    async def body() -> None:
        s = FileSource(f, backstop_s=60)
        w = Watch(s)
        a = await w.artifact()
        assert (a.provenance.commit, a.provenance.author) == (
            head,
            "Ada Operator <ada@example.org>",
        )
        f.write_bytes(b"two\n")  # edited, not committed: no commit names these bytes
        b = await w.artifact()
        assert b.data == b"two\n" and b.provenance.commit is None
        await asyncio.to_thread(_git, repo, "commit", "-q", "-am", "second")
        s.refresh()  # a commit changes nothing in the file's directory: SIGHUP
        c = await w.artifact()
        assert c.provenance.commit == _git(repo, "rev-parse", "HEAD") != head
        await w.close()

    run(body)


def test_the_watch_stops_at_once(tmp_path: Path) -> None:
    """Stopping the node must not wait for the next file event (or watchfiles' 5 s
    timeout), nor lose the cancellation to a wake-up racing with it."""
    f = tmp_path / "c.yaml"
    f.write_bytes(b"a\n")

    async def body() -> None:
        for _ in range(3):
            w = Watch(FileSource(f, backstop_s=60))
            await w.artifact()
            await asyncio.sleep(0.1)  # the watch thread is in its wait
            (tmp_path / "daemon.log").write_text("noise\n")  # a neighbour: ignored
            t0 = time.monotonic()
            await w.close()
            assert time.monotonic() - t0 < 0.5

    run(body)
