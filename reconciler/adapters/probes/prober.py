"""The :class:`Prober`: a concurrency bound, and the dispatch from a probe's kind to its code."""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, assert_never

from reconciler.adapters.probes.attempt import OnDone, ProbeAttempt
from reconciler.adapters.probes.details import describe, ms
from reconciler.adapters.probes.dns import dns_probe
from reconciler.adapters.probes.http import http_probe
from reconciler.adapters.probes.local import file_probe, interface_probe
from reconciler.adapters.probes.script import SCRIPT_KILL_GRACE, script_probe
from reconciler.adapters.probes.slots import Slots
from reconciler.adapters.probes.sockets import ProbeSource, literal_target, source_of
from reconciler.adapters.probes.tcp import Deadlines, TcpAttempt, tcp_probe
from reconciler.health.policy import ProbeResult
from reconciler.model.checks import (
    DnsProbe,
    FileProbe,
    HttpProbe,
    InterfaceProbe,
    Probe,
    ScriptProbe,
    TcpProbe,
)
from reconciler.model.common import IPAddress

DEFAULT_MAX_CONCURRENT = 256


class Prober:
    """Runs probes, at most ``max_concurrent`` at once."""

    def __init__(
        self,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        *,
        script_kill_grace: timedelta = SCRIPT_KILL_GRACE,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self.script_kill_grace = script_kill_grace
        self._slots = Slots(max_concurrent)
        self._deadlines: Deadlines | None = None

    @property
    def in_flight(self) -> int:
        return self._slots.used

    async def run(
        self,
        probe: Probe,
        target_host: IPAddress | None = None,
        target_port: int | None = None,
        timeout: timedelta = timedelta(seconds=1),
        source_address: IPAddress | None = None,
        source_interface: str | None = None,
    ) -> ProbeResult:
        """One attempt of ``probe``; never raises for a failing target."""
        await self._slots.acquire()
        try:
            return await _run(
                probe,
                target_host,
                target_port,
                timeout,
                source_of(source_address, source_interface),
                self.script_kill_grace,
            )
        finally:
            self._slots.release()

    def start(
        self,
        probe: Probe,
        target_host: IPAddress | None,
        target_port: int | None,
        timeout: timedelta,
        source_address: IPAddress | None,
        source_interface: str | None,
        on_done: OnDone,
        *,
        name: str | None = None,
    ) -> ProbeAttempt:
        """Start one attempt without awaiting it; ``on_done(result)`` when it ends.

        A TCP probe with a free slot runs on loop callbacks alone; anything else
        runs :meth:`run` in a task named ``name``.
        """
        if isinstance(probe, TcpProbe) and self._slots.try_acquire():
            try:
                return self._start_tcp(
                    probe,
                    target_host,
                    target_port,
                    timeout,
                    source_address,
                    source_interface,
                    on_done,
                )
            except BaseException:
                self._slots.release()
                raise
        coro = self.run(probe, target_host, target_port, timeout, source_address, source_interface)
        return ProbeAttempt.of_coroutine(coro, on_done, name=name)

    def _start_tcp(
        self,
        probe: TcpProbe,
        target_host: IPAddress | None,
        target_port: int | None,
        timeout: timedelta,
        source_address: IPAddress | None,
        source_interface: str | None,
        on_done: OnDone,
    ) -> ProbeAttempt:
        loop = asyncio.get_running_loop()
        host = probe.host or target_host
        port = probe.port or target_port
        failure: str
        if host is None or port is None:
            failure = "tcp: no host or port to connect to"
        else:
            family, addr = literal_target(host, port)
            sock = socket.socket(
                family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
            )
            try:
                if source_address is not None or source_interface is not None:
                    ProbeSource(source_address, source_interface).apply(sock)
            except OSError as exc:
                sock.close()
                failure = f"connect: {describe(exc)}"
            else:
                if self._deadlines is None or self._deadlines.loop is not loop:
                    self._deadlines = Deadlines(loop)
                attempt = TcpAttempt(self._deadlines, sock, timeout, on_done, self._slots.release)
                attempt.begin(addr)
                return attempt
        self._slots.release()
        return ProbeAttempt.settled(ProbeResult(ok=False, detail=failure), on_done)


_default_probers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Prober] = (
    weakref.WeakKeyDictionary()
)


def default_prober() -> Prober:
    """The running loop's shared :class:`Prober` (a semaphore belongs to one loop)."""
    loop = asyncio.get_running_loop()
    prober = _default_probers.get(loop)
    if prober is None:
        prober = _default_probers[loop] = Prober()
    return prober


async def run_probe(
    probe: Probe,
    target_host: IPAddress | None = None,
    target_port: int | None = None,
    timeout: timedelta = timedelta(seconds=1),
    source_address: IPAddress | None = None,
    source_interface: str | None = None,
) -> ProbeResult:
    """One attempt of ``probe`` against a target, bounded by the loop's shared prober.

    ``target_host``/``target_port`` are the real server's (or None for tracking
    checks, whose probes name their own target); a probe's own host, port, server
    or absolute URL wins over them.
    """
    return await default_prober().run(
        probe, target_host, target_port, timeout, source_address, source_interface
    )


# ======================================================================= dispatch


async def _run(
    probe: Probe,
    host: IPAddress | None,
    port: int | None,
    timeout: timedelta,
    source: ProbeSource,
    kill_grace: timedelta,
) -> ProbeResult:
    """One attempt of ``probe``, by its kind; a kind without a probe here raises.

    An unknown kind is a bug (a probe added to the model but not here), so it must
    fail loudly: the attempt's task reports it as a probe error, with a traceback.
    """
    match probe:
        case ScriptProbe():
            # The script probe owns its timeout: it must kill the process group, which a
            # cancellation from outside could only do half-way.
            return await script_probe(probe, host, port, timeout, kill_grace)
        case TcpProbe():
            # The hot path (a thousand a second): one timer on the connect, no timeout scope.
            deadline = asyncio.get_running_loop().time() + timeout.total_seconds()
            try:
                return await tcp_probe(probe, host, port, source, deadline)
            except TimeoutError:
                return ProbeResult(ok=False, detail=f"timeout after {ms(timeout)}")
        case HttpProbe():
            return await _within(timeout, http_probe(probe, host, port, source))
        case DnsProbe():
            return await _within(timeout, dns_probe(probe, host, port, source))
        case FileProbe():
            return await _within(timeout, file_probe(probe))
        case InterfaceProbe():
            # A few system calls and no await: nothing a timeout could interrupt.
            return interface_probe(probe)
        case _:
            assert_never(probe)


async def _within(timeout: timedelta, coro: Coroutine[Any, Any, ProbeResult]) -> ProbeResult:
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            return await coro
    except TimeoutError:
        return ProbeResult(ok=False, detail=f"timeout after {ms(timeout)}")
