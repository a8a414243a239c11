"""The watched-file source: a desired-state file on disk, git-sync aware.

The file is read once per look; the bytes read are the bytes handed on, with their
sha256 and where they came from. A look happens:
- when something changes in a watched directory (watchfiles, inotify on Linux). The
  directories are watched non-recursively: the file's own directory and the directory
  of every symlink on its path. git-sync v4 publishes a revision by creating a new
  worktree directory (named by the commit) and renaming a new symlink over ``--link``;
  the rename is an event in the link's directory. After each look the path is resolved
  again and the watch moves to the new directories;
- on ``refresh()`` (SIGHUP, ``POST /hooks/refresh``): the current revision is handed on
  even when unchanged, so that a revision that failed to apply is tried again;
- every ``backstop_s`` anyway, in case an event was lost (a full inotify queue, a
  directory replaced between two resolutions).
Only a changed digest or commit is handed on otherwise: an unchanged rewrite yields
nothing. A file that cannot be read is a ``Refusal`` (reason ``unreadable``).

The commit: for a git-sync checkout, the name of the directory the link points to (a
40 or 64 hex digit object id); the author and commit time come from ``git log -1`` when
that directory is a git work tree, else they stay unknown. For a file in a plain git
work tree, HEAD's commit when the file is tracked and unchanged against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path

from watchfiles import awatch

from reconciler.adapters.git import CommitInfo, committed_unchanged, worktree_commit
from reconciler.model.revision import Artifact, Provenance, Refusal

log = logging.getLogger("reconciler.source.file")

DEFAULT_BACKSTOP_S = 10.0
# watchfiles hands on a batch once the directory has been quiet this long (ms): an
# editor's write-rename-chmod or git-sync's link swap is one batch. Its watcher thread
# also wakes this often to look at the stop event, taking the GIL from the event loop
# each time: at 20 ms that doubled a backup's CPU at 500 instances (bench/failover.py
# resources), and at watchfiles' default of 50 ms a master still spent 1.7x keepalived's CPU;
# at 100 ms both are back (1.2x, 0.8x) and a change is live in about 0.2 s.
WATCH_STEP_MS = 100
READ_ATTEMPTS = 3  # a git-sync swap may remove the old worktree between resolve and open
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class FileSource:
    """``Source`` of a file on disk (see the module docstring)."""

    def __init__(
        self, path: Path, *, watch: bool = True, backstop_s: float = DEFAULT_BACKSTOP_S
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.watch = watch
        self.backstop_s = backstop_s
        self._wake = asyncio.Event()
        self._forced = False
        self._authors: dict[str, CommitInfo | None] = {}  # git-sync commit -> git log

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    def refresh(self) -> None:
        self._forced = True
        self._wake.set()

    async def updates(self) -> AsyncIterator[Artifact | Refusal]:
        last: tuple[str, str | None] | None = None
        watched: tuple[frozenset[Path], frozenset[Path]] = (frozenset(), frozenset())
        watcher: _Watcher | None = None
        try:
            while True:
                forced, self._forced = self._forced, False
                self._wake.clear()
                if self.watch:
                    # Before the read: whatever changes after it is an event.
                    paths = await asyncio.to_thread(self._watch_paths)
                    if watcher is None or watcher.task.done() or paths != watched:
                        if watcher is not None:
                            await watcher.stop()
                        watched = paths
                        watcher = _Watcher(self._watch, *paths)
                item = await asyncio.to_thread(self._read)
                key = (
                    (item.digest, item.provenance.commit)
                    if isinstance(item, Artifact)
                    else ("refused", item.detail)
                )
                if forced or key != last:
                    last = key
                    yield item
                # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a
                # cancellation that races with the wake-up, and the source never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.backstop_s):
                        await self._wake.wait()
        finally:
            if watcher is not None:
                await watcher.stop()

    async def _watch(
        self, dirs: frozenset[Path], names: frozenset[Path], stop: asyncio.Event
    ) -> None:
        if not dirs:
            return  # nothing to watch yet: the backstop looks again

        def ours(_change: object, path: str) -> bool:
            # Only the file and the links on its path: a log or a lock file written in
            # the same directory must not make the file be read again and again.
            return Path(path) in names

        try:
            async for _changes in awatch(
                *sorted(dirs),
                watch_filter=ours,
                recursive=False,
                step=WATCH_STEP_MS,
                stop_event=stop,
            ):
                self._wake.set()
        except (OSError, RuntimeError) as exc:
            # A watched directory went away (git-sync removed an old worktree): look
            # again, which resolves the path and watches the new directories.
            log.debug("watch of %s ended: %s", ", ".join(map(str, sorted(dirs))), exc)
            await asyncio.sleep(WATCH_STEP_MS / 1000)  # no busy loop if it keeps failing
        if not stop.is_set():
            self._wake.set()  # ended by itself: look again (which watches again)

    def _watch_paths(self) -> tuple[frozenset[Path], frozenset[Path]]:
        """The directories to watch (the file's own, and that of every symlink on its
        path) and the names in them whose events matter (the file and those links), as
        the kernel reports them: under the resolved directories."""
        real = Path(os.path.realpath(self.path))
        names = {real}
        for p in (self.path, *self.path.parents):
            if p.is_symlink():
                names.add(Path(os.path.realpath(p.parent)) / p.name)
        dirs = frozenset(n.parent for n in names if n.parent.is_dir())
        return dirs, frozenset(names)

    # ------------------------------------------------------------ reading (in a thread)
    def _read(self) -> Artifact | Refusal:
        for attempt in range(READ_ATTEMPTS):
            real = Path(os.path.realpath(self.path))
            try:
                data = real.read_bytes()
            except FileNotFoundError as exc:
                if attempt + 1 < READ_ATTEMPTS:
                    continue
                return self._unreadable(exc)
            except OSError as exc:  # a directory, no permission
                return self._unreadable(exc)
            digest = hashlib.sha256(data).hexdigest()
            return Artifact(data, digest, self._provenance(real))
        raise AssertionError("unreachable")

    def _unreadable(self, exc: OSError) -> Refusal:
        why = exc.strerror or type(exc).__name__
        return Refusal(Provenance(self.name), "unreadable", f"{self.path}: {why}")

    def _provenance(self, real: Path) -> Provenance:
        synced = next((d for d in real.parents if _OBJECT_ID.fullmatch(d.name)), None)
        if synced is not None:
            commit = synced.name
            if commit not in self._authors:
                self._authors[commit] = worktree_commit(synced, commit)
            info = self._authors[commit]
            if info is None:
                return Provenance(self.name, commit)
            return Provenance(self.name, commit, info.author, info.committed_unix_s)
        info = worktree_commit(real.parent)
        if info is None or not committed_unchanged(real.parent, real.name):
            return Provenance(self.name)
        return Provenance(self.name, info.commit, info.author, info.committed_unix_s)


class _Watcher:
    """One watch of a set of directories, as a task with its own stop event."""

    def __init__(
        self,
        watch: Callable[
            [frozenset[Path], frozenset[Path], asyncio.Event], Coroutine[None, None, None]
        ],
        dirs: frozenset[Path],
        names: frozenset[Path],
    ) -> None:
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(watch(dirs, names, self._stop), name="file-watch")

    async def stop(self) -> None:
        """End the watch. The stop event first: the watch thread polls it every
        WATCH_STEP_MS, while a cancellation alone would wait for its next event or its
        5 s timeout. A cancellation of the caller still propagates (asyncio.wait)."""
        self._stop.set()
        self.task.cancel()
        await asyncio.wait({self.task})
