"""The ``script`` probe (keepalived's MISC_CHECK / track_script): a program, run as a user."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from datetime import timedelta

from reconciler.adapters import programs
from reconciler.adapters.probes.details import describe, ms
from reconciler.health.policy import ProbeResult
from reconciler.health.priority import script_result
from reconciler.model.checks import ScriptProbe
from reconciler.model.common import IPAddress

SCRIPT_KILL_GRACE = timedelta(seconds=2)  # SIGTERM -> SIGKILL, keepalived's 2 s


async def script_probe(
    probe: ScriptProbe,
    host: IPAddress | None,
    port: int | None,
    timeout: timedelta,
    kill_grace: timedelta,
) -> ProbeResult:
    try:
        account = programs.account(probe.user)
    except KeyError:
        return ProbeResult(ok=False, detail=f"script: no user {probe.user!r}")
    switch = account.uid != os.geteuid()
    if switch and os.geteuid() != 0:
        return ProbeResult(ok=False, detail=f"script: cannot run as {probe.user}: not root")
    checked = script_program(probe, account)
    if isinstance(checked, ProbeResult):
        return checked
    argv = (
        ("/bin/sh", "-c", " ".join(probe.command)) if probe.shell else (checked, *probe.command[1:])
    )
    # A real-server check's script learns which server it checks from the environment.
    extra: dict[str, str] = {}
    if host is not None:
        extra["RECONCILER_CHECK_HOST"] = str(host)
    if port is not None:
        extra["RECONCILER_CHECK_PORT"] = str(port)
    env = programs.minimal_environment(account, extra)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd="/",
            env=env,
            start_new_session=True,  # its own process group, which a timeout kills whole
            user=account.uid if switch else None,
            group=account.gid if switch else None,
            extra_groups=list(account.groups) if switch else None,
        )
    except OSError as exc:
        return ProbeResult(ok=False, detail=f"script: cannot run {argv[0]}: {describe(exc)}")
    try:
        try:
            code = await asyncio.wait_for(proc.wait(), timeout.total_seconds())
        except TimeoutError:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), kill_grace.total_seconds())
                how = "SIGTERM"
            except TimeoutError:
                _kill_group(proc.pid, signal.SIGKILL)
                await proc.wait()
                how = "SIGKILL"
            # Children that outlived the leader (or ignored SIGTERM) go too.
            _kill_group(proc.pid, signal.SIGKILL)
            return ProbeResult(
                ok=False, detail=f"script: timeout after {ms(timeout)}, killed ({how})"
            )
    except BaseException:
        # Cancelled (the scheduler stops): leave nothing behind; the loop reaps it.
        _kill_group(proc.pid, signal.SIGKILL)
        raise
    return script_result(code, dynamic_weight=probe.dynamic_weight)


def script_program(probe: ScriptProbe, account: programs.Account) -> str | ProbeResult:
    """The program a script check execs (resolved), or the failure that refuses it: one
    that someone but root and the check's user could change (see
    :func:`reconciler.adapters.programs.unsafe_reason`). A shell command's first word is
    checked like a program, and so is the shell."""
    first = probe.command[0]
    if probe.shell:
        try:
            words = shlex.split(" ".join(probe.command))
        except ValueError:
            words = []
        first = words[0] if words else "/bin/sh"
    program = programs.resolve(first)
    if program is None:
        if probe.shell:  # a shell builtin or function ("exit 0", "test ...")
            program = "/bin/sh"
        else:
            return ProbeResult(ok=False, detail=f"script: {first!r} is not found in PATH")
    for path in dict.fromkeys((program, "/bin/sh") if probe.shell else (program,)):
        reason = programs.unsafe_reason(path, account)
        if reason is not None:
            return ProbeResult(ok=False, detail=f"script: refused: {reason}")
    return program


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
