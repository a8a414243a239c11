"""Notify hooks: commands run on state changes, in order, one at a time per subject.

keepalived's notify_master/backup/fault/stop and a real server's notify_up/down.
Each hook runs without a shell, in its own session with stdin from /dev/null,
its output logged line by line, and is killed (its whole process group) at its
timeout. Hooks of one subject (an instance, a sync group, a real server) run one
after another in submission order, so "backup" never overtakes "master"; hooks
of different subjects run concurrently.

A hook runs as its user (``nobody`` unless the file names another; root only when the
file says ``user: root``), with ``/`` as working directory and only the environment of
:func:`reconciler.adapters.programs.minimal_environment`: PATH, HOME, USER, LOGNAME,
LANG, RECONCILER_NODE, RECONCILER_REVISION and what the caller adds
(RECONCILER_INSTANCE, RECONCILER_STATE, RECONCILER_PRIORITY, ...). A program that
someone other than root or that user could change (see
:func:`reconciler.adapters.programs.unsafe_reason`) is refused: each refused run counts
as a failure, and the reason is logged once per hook until it changes or the hook runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping

from reconciler.adapters.error_tally import ErrorTally
from reconciler.adapters.programs import (
    Account,
    account,
    minimal_environment,
    resolve,
    unsafe_reason,
)
from reconciler.model.vrrp import Hook

log = logging.getLogger("reconciler.notify")

STOP_GRACE_S = 5.0  # how long stop() waits for hooks already queued


class Notifier:
    def __init__(self, base_env: Callable[[], Mapping[str, str]]) -> None:
        self.base_env = base_env  # node and revision, read when a hook starts
        self._queues: dict[str, asyncio.Queue[tuple[tuple[Hook, ...], dict[str, str]] | None]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.runs = 0
        self.failures = 0
        self.refusals = 0  # runs refused before exec (counted in failures too)
        self._refused: dict[Hook, str] = {}  # the reason last logged for each refused hook
        # Hooks that could not start (no processes, descriptors or memory left; a missing
        # program), by kind: a node in trouble fails every hook alike, so each kind is
        # logged once per hook and counted.
        self.start_failures = ErrorTally("hook_start", log)

    def submit(self, subject: str, hooks: tuple[Hook, ...], env: Mapping[str, str]) -> None:
        """Queue `hooks` behind the earlier ones of `subject`; returns at once."""
        if not hooks:
            return
        queue = self._queues.get(subject)
        if queue is None:
            queue = self._queues[subject] = asyncio.Queue()
            self._workers[subject] = asyncio.get_running_loop().create_task(
                self._work(queue), name=f"notify-{subject}"
            )
        queue.put_nowait((hooks, dict(env)))

    async def run_now(self, hooks: tuple[Hook, ...], env: Mapping[str, str]) -> None:
        """Run `hooks` in order and wait for them (each bounded by its timeout)."""
        for hook in hooks:
            await self._run(hook, dict(env))

    async def stop(self, timeout_s: float = STOP_GRACE_S) -> None:
        """Let queued hooks finish (bounded), then cancel what is left."""
        for queue in self._queues.values():
            queue.put_nowait(None)
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=timeout_s)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        self._queues.clear()
        self._workers.clear()

    async def _work(
        self, queue: asyncio.Queue[tuple[tuple[Hook, ...], dict[str, str]] | None]
    ) -> None:
        while (item := await queue.get()) is not None:
            hooks, env = item
            await self.run_now(hooks, env)

    async def _run(self, hook: Hook, env: dict[str, str]) -> None:
        self.runs += 1
        checked = self._check(hook)
        if isinstance(checked, str):
            self.failures += 1
            self.refusals += 1
            if self._refused.get(hook) != checked:
                self._refused[hook] = checked
                log.error("hook %s refused: %s", " ".join(hook.command), checked)
            return
        program, user = checked
        if self._refused.pop(hook, None) is not None:
            log.info("hook %s runs again", " ".join(hook.command))
        full = minimal_environment(user, {**self.base_env(), **env})
        switch = user.uid != os.geteuid()
        name = os.path.basename(hook.command[0])
        try:
            proc = await asyncio.create_subprocess_exec(
                program,
                *hook.command[1:],
                env=full,
                cwd="/",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
                user=user.uid if switch else None,
                group=user.gid if switch else None,
                extra_groups=list(user.groups) if switch else None,
            )
        except (OSError, RuntimeError) as exc:  # RuntimeError: no thread to wait for it
            self.failures += 1
            self.start_failures.record(exc, "hook " + " ".join(hook.command))
            return
        assert proc.stdout is not None

        async def relay() -> None:
            assert proc.stdout is not None
            async for line in proc.stdout:
                log.info("hook %s: %s", name, line.decode(errors="replace").rstrip())

        relaying = asyncio.ensure_future(relay())
        try:
            rc = await asyncio.wait_for(proc.wait(), hook.timeout.total_seconds())
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            self.failures += 1
            log.error(
                "hook %s killed after its timeout of %.1fs",
                " ".join(hook.command),
                hook.timeout.total_seconds(),
            )
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        else:
            if rc != 0:
                self.failures += 1
                log.warning("hook %s exited with status %d", " ".join(hook.command), rc)
        finally:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(relaying, 1.0)

    def _check(self, hook: Hook) -> tuple[str, Account] | str:
        """The program to exec and the account to run it as, or why the hook is refused."""
        try:
            user = account(hook.user)
        except KeyError:
            return f"no user {hook.user!r} on this machine"
        if user.uid != os.geteuid() and os.geteuid() != 0:
            return f"cannot run as {user.name}: the daemon is not root"
        program = resolve(hook.command[0])
        if program is None:
            return f"{hook.command[0]!r} is not found in PATH"
        reason = unsafe_reason(program, user)
        if reason is not None:
            return f"{reason}: someone else could change what runs as {user.name}"
        return program, user
