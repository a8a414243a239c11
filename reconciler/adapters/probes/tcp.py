"""The ``tcp`` probe (keepalived's TCP_CHECK): up when the connection is established.

Two ways to run it: :func:`tcp_probe` as a coroutine, and :class:`TcpAttempt` on
loop callbacks alone, the path a thousand checks a second take.
"""

from __future__ import annotations

import asyncio
import errno
import math
import socket
from collections.abc import Callable
from datetime import timedelta

from reconciler.adapters.probes.attempt import OnDone, ProbeAttempt
from reconciler.adapters.probes.details import describe, ms, strerror
from reconciler.adapters.probes.sockets import ProbeSource, SockAddr, connect
from reconciler.health.policy import ProbeResult
from reconciler.model.checks import TcpProbe
from reconciler.model.common import IPAddress

CONNECTED = ProbeResult(ok=True, detail="connected")


async def tcp_probe(
    probe: TcpProbe, host: IPAddress | None, port: int | None, source: ProbeSource, deadline: float
) -> ProbeResult:
    host = probe.host or host
    port = probe.port or port
    if host is None or port is None:
        return ProbeResult(ok=False, detail="tcp: no host or port to connect to")
    try:
        sock = await connect(host, port, source, deadline)
    except TimeoutError:
        raise
    except OSError as exc:
        return ProbeResult(ok=False, detail=f"connect: {describe(exc)}")
    sock.close()
    return CONNECTED


class Deadlines:
    """Timeouts of callback-driven attempts: one loop timer per 10 ms, not one per attempt.

    A deadline is rounded up to the next 10 ms, so an attempt times out up to 10 ms
    late, never early. At a thousand probes a second this keeps the loop's timer
    heap small (a cancelled timer stays in it until its time comes).
    """

    QUANTUM_S = 0.01

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._buckets: dict[int, set[TcpAttempt]] = {}

    def add(self, attempt: TcpAttempt, deadline: float) -> int:
        tick = math.ceil(deadline / self.QUANTUM_S)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
            self.loop.call_at(tick * self.QUANTUM_S, self._expire, tick)
        bucket.add(attempt)
        return tick

    def discard(self, attempt: TcpAttempt, tick: int) -> None:
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.discard(attempt)

    def _expire(self, tick: int) -> None:
        for attempt in self._buckets.pop(tick, ()):
            attempt.expired()


class TcpAttempt(ProbeAttempt):
    """A TCP connect driven by loop callbacks: no task, no future, no timer of its own.

    This is the path a thousand checks a second take, so it avoids the task and
    coroutine machinery (about half of the CPU of a probe on loopback).
    """

    __slots__ = ("_deadlines", "_fd", "_loop", "_release", "_sock", "_tick", "_timeout")

    def __init__(
        self,
        deadlines: Deadlines,
        sock: socket.socket,
        timeout: timedelta,
        on_done: OnDone,
        release: Callable[[], None],
    ) -> None:
        super().__init__(on_done)
        self._deadlines = deadlines
        self._loop = deadlines.loop
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._timeout = timeout
        self._release = release
        self._tick: int | None = None

    def begin(self, addr: SockAddr) -> None:
        try:
            code = self._sock.connect_ex(addr) if self._sock is not None else errno.EBADF
        except OSError as exc:  # e.g. an IPv6 target on a host without IPv6
            code = exc.errno or errno.EINVAL
        if code == errno.EINPROGRESS:
            self._loop.add_writer(self._fd, self._writable)
            deadline = self._loop.time() + self._timeout.total_seconds()
            self._tick = self._deadlines.add(self, deadline)
            return
        # Decided at once (loopback refusals are): report from the loop, never from start().
        self._loop.call_soon(self._settle, code)

    def _writable(self) -> None:
        sock = self._sock
        self._settle(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if sock else errno.EBADF)

    def _settle(self, code: int) -> None:
        if self._sock is None:
            return
        self._close()
        if code == 0:
            self._finish(CONNECTED)
        else:
            self._finish(ProbeResult(ok=False, detail=f"connect: {strerror(code)}"))

    def expired(self) -> None:
        self._tick = None
        if self._sock is not None:
            self._close()
            self._finish(ProbeResult(ok=False, detail=f"timeout after {ms(self._timeout)}"))

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._tick is not None:
            self._deadlines.discard(self, self._tick)
            self._tick = None
            self._loop.remove_writer(self._fd)  # registered together with the deadline
        sock.close()
        self._release()

    def cancel(self) -> None:
        super().cancel()
        self._close()
