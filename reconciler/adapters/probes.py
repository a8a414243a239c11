"""Health probes: the network (and process) side of health checks.

:func:`run_probe` (or :meth:`Prober.run` with an explicit concurrency bound)
turns a probe of the model into one :class:`ProbeResult`; :meth:`Prober.start`
does the same without awaiting, reporting through a callback, which is how the
check scheduler runs a thousand probes a second: TCP connects then run on loop
callbacks alone (no task, no future, deadlines in shared 10 ms buckets), every
other probe in a named task. Neither raises for a failing target: every
failure is ``ok=False`` with a detail for logs and status. The rise/fall
decision is the pure policy's (:mod:`reconciler.health.policy`), not ours.

Behaviour follows keepalived's checkers, which are the reference:

* ``tcp``: up when the connection is established (TCP_CHECK); then closed.
* ``http``/``https``: an HTTP/1.0 request with ``Connection: close`` (as
  keepalived's default ``http_protocol``), so the body is never chunked and its
  MD5 is exactly what ``genhash`` prints: the MD5 of the bytes after the blank
  line that ends the headers, cut at ``Content-Length`` when the server sent
  one. Checked in keepalived's order: status, digest, regex. The regex (Python
  ``re`` syntax, on bytes) is searched in the first MiB of the body.
* ``dns``: a query with RD set; up when a response with our ID and question
  comes back with RCODE NOERROR (DNS_CHECK) and, if ``expect`` is given, every
  expected value is in the answer section.
* ``script``: up on exit 0 (MISC_CHECK / track_script), with
  ``dynamic_weight`` as ``misc_dynamic``. Run without a shell unless asked,
  in its own session (process group), as the configured user (setuid/setgid
  and supplementary groups in the child), with ``/`` as working directory, a
  minimal environment and no stdio; refused (a failing probe) when the program
  could be changed by anyone but root and that user, as keepalived's
  ``enable_script_security`` (:mod:`reconciler.adapters.programs`). On timeout
  the group gets SIGTERM, then SIGKILL after a grace period, like keepalived.
* ``file``: the integer in the file, read as keepalived's ``track_file`` reads
  it (a missing file is 0); the probe fails only when the number is ignored.
* ``interface``: up while the link is administratively up and running
  (IFF_UP and IFF_RUNNING, the flags keepalived's ``track_interface`` uses),
  read with SIOCGIFFLAGS on a socket of the caller's network namespace.

Sockets may be bound to a source address and to an interface
(SO_BINDTODEVICE). At most ``max_concurrent`` probes of one :class:`Prober`
run at once, whichever way they were started; the timeout starts when a probe
gets its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import math
import os
import re
import secrets
import shlex
import signal
import socket
import ssl
import struct
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from reconciler.adapters import programs
from reconciler.health import dns
from reconciler.health.policy import ProbeResult
from reconciler.health.priority import parse_track_file, script_result
from reconciler.model.checks import (
    DnsProbe,
    FileProbe,
    HttpProbe,
    InterfaceProbe,
    Probe,
    ScriptProbe,
    TcpProbe,
    TlsOptions,
)
from reconciler.model.common import IPAddress

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT = 256
SCRIPT_KILL_GRACE = timedelta(seconds=2)  # SIGTERM -> SIGKILL, keepalived's 2 s
USER_AGENT = "reconciler-healthcheck"
_HEADER_LIMIT_BYTES = 64 * 1024
_REGEX_WINDOW_BYTES = 1024 * 1024
_READ_CHUNK_BYTES = 64 * 1024
_FILE_READ_BYTES = 127  # keepalived reads into a 128-byte buffer
_DNS_MAX_UDP_BYTES = 4096
_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class ProbeError(Exception):
    """A probe could not produce an answer (used by :func:`digest_url`)."""


# ======================================================================= entry points


OnDone = Callable[[ProbeResult], None]


class ProbeAttempt:
    """A probe in flight, from :meth:`Prober.start`.

    ``on_done`` is called exactly once, from the event loop, with the result, unless
    :meth:`cancel` came first; then it is never called.
    """

    __slots__ = ("_on_done", "_task")

    def __init__(self, on_done: OnDone) -> None:
        self._on_done: OnDone | None = on_done
        self._task: asyncio.Task[ProbeResult] | None = None

    @classmethod
    def of_coroutine(
        cls, coro: Coroutine[Any, Any, ProbeResult], on_done: OnDone, *, name: str | None
    ) -> ProbeAttempt:
        """Run ``coro`` as a task (named ``name``, referenced here) and report its result."""
        attempt = cls(on_done)
        task = asyncio.get_running_loop().create_task(coro, name=name)
        attempt._task = task
        task.add_done_callback(attempt._task_done)
        return attempt

    @property
    def task(self) -> asyncio.Task[ProbeResult] | None:
        """The task running the probe (None on the callback-driven TCP path)."""
        return self._task

    @property
    def done(self) -> bool:
        return self._on_done is None

    def cancel(self) -> None:
        """Stop the probe; a script's process group is killed by its task's cleanup."""
        self._on_done = None
        if self._task is not None:
            self._task.cancel()

    def _finish(self, result: ProbeResult) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(result)

    def _task_done(self, task: asyncio.Task[ProbeResult]) -> None:
        if task.cancelled():
            self._finish(ProbeResult(ok=False, detail="probe cancelled"))
            return
        exc = task.exception()
        if exc is not None:  # a bug in a probe must not silence its check
            log.error("probe %s failed", task.get_name(), exc_info=exc)
            self._finish(ProbeResult(ok=False, detail=f"probe error: {exc!r}"))
            return
        self._finish(task.result())


class _Deadlines:
    """Timeouts of callback-driven attempts: one loop timer per 10 ms, not one per attempt.

    A deadline is rounded up to the next 10 ms, so an attempt times out up to 10 ms
    late, never early. At a thousand probes a second this keeps the loop's timer
    heap small (a cancelled timer stays in it until its time comes).
    """

    QUANTUM_S = 0.01

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._buckets: dict[int, set[_TcpAttempt]] = {}

    def add(self, attempt: _TcpAttempt, deadline: float) -> int:
        tick = math.ceil(deadline / self.QUANTUM_S)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
            self.loop.call_at(tick * self.QUANTUM_S, self._expire, tick)
        bucket.add(attempt)
        return tick

    def discard(self, attempt: _TcpAttempt, tick: int) -> None:
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.discard(attempt)

    def _expire(self, tick: int) -> None:
        for attempt in self._buckets.pop(tick, ()):
            attempt.expired()


class _TcpAttempt(ProbeAttempt):
    """A TCP connect driven by loop callbacks: no task, no future, no timer of its own.

    This is the path a thousand checks a second take, so it avoids the task and
    coroutine machinery (about half of the CPU of a probe on loopback).
    """

    __slots__ = ("_deadlines", "_fd", "_loop", "_release", "_sock", "_tick", "_timeout")

    def __init__(
        self,
        deadlines: _Deadlines,
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
            self._finish(_CONNECTED)
        else:
            self._finish(ProbeResult(ok=False, detail=f"connect: {_strerror(code)}"))

    def expired(self) -> None:
        self._tick = None
        if self._sock is not None:
            self._close()
            self._finish(ProbeResult(ok=False, detail=f"timeout after {_ms(self._timeout)}"))

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


class _Slots:
    """A counting limiter usable from callbacks (try_acquire) and coroutines (acquire)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        if self.used < self.size and not self._waiters:
            self.used += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just before the cancel: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot over; ``used`` stays
                return
        self.used -= 1


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
        self._slots = _Slots(max_concurrent)
        self._deadlines: _Deadlines | None = None

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
                _source(source_address, source_interface),
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
            family, addr = _literal_target(host, port)
            sock = socket.socket(
                family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
            )
            try:
                if source_address is not None or source_interface is not None:
                    _Source(source_address, source_interface).apply(sock)
            except OSError as exc:
                sock.close()
                failure = f"connect: {_describe(exc)}"
            else:
                if self._deadlines is None or self._deadlines.loop is not loop:
                    self._deadlines = _Deadlines(loop)
                attempt = _TcpAttempt(self._deadlines, sock, timeout, on_done, self._slots.release)
                attempt.begin(addr)
                return attempt
        self._slots.release()
        failed = ProbeAttempt(on_done)
        loop.call_soon(failed._finish, ProbeResult(ok=False, detail=failure))
        return failed


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


async def digest_url(
    url: str,
    *,
    virtualhost: str | None = None,
    headers: Mapping[str, str] | None = None,
    tls: TlsOptions | None = None,
    timeout: timedelta = timedelta(seconds=5),
    source_address: IPAddress | None = None,
    source_interface: str | None = None,
) -> str:
    """The MD5 to paste into a check's ``digest``, as keepalived's ``genhash`` prints it.

    Like genhash, the digest is returned whatever the status code. Raises
    :class:`ProbeError` when no response comes back, ValueError for a bad URL.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an absolute http:// or https:// URL: {url!r}")
    probe = HttpProbe(
        url=url,
        method="GET",
        status=((100, 599),),
        digest=None,
        regex=None,
        virtualhost=virtualhost,
        headers=tuple(sorted((headers or {}).items())),
        tls=tls,
    )
    request = _http_request(probe, None, None)
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            response = await _http_exchange(
                request, _source(source_address, source_interface), want_digest=True
            )
    except TimeoutError:
        raise ProbeError(f"{url}: no response within {_ms(timeout)}") from None
    except (OSError, ssl.SSLError, _HttpError) as exc:
        raise ProbeError(f"{url}: {_describe(exc)}") from exc
    return response.digest


# ======================================================================= dispatch


@dataclass(frozen=True)
class _Source:
    address: IPAddress | None = None
    interface: str | None = None

    def apply(self, sock: socket.socket) -> None:
        if self.interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
        if self.address is not None:
            sock.bind((str(self.address), 0))


_NO_SOURCE = _Source()


def _source(address: IPAddress | None, interface: str | None) -> _Source:
    return _NO_SOURCE if address is None and interface is None else _Source(address, interface)


async def _run(
    probe: Probe,
    host: IPAddress | None,
    port: int | None,
    timeout: timedelta,
    source: _Source,
    kill_grace: timedelta,
) -> ProbeResult:
    if isinstance(probe, ScriptProbe):
        # The script probe owns its timeout: it must kill the process group, which a
        # cancellation from outside could only do half-way.
        return await _script_probe(probe, host, port, timeout, kill_grace)
    if isinstance(probe, TcpProbe):
        # The hot path (a thousand a second): one timer on the connect, no timeout scope.
        deadline = asyncio.get_running_loop().time() + timeout.total_seconds()
        try:
            return await _tcp_probe(probe, host, port, source, deadline)
        except TimeoutError:
            return ProbeResult(ok=False, detail=f"timeout after {_ms(timeout)}")
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            if isinstance(probe, HttpProbe):
                return await _http_probe(probe, host, port, source)
            if isinstance(probe, DnsProbe):
                return await _dns_probe(probe, host, port, source)
            if isinstance(probe, FileProbe):
                return await _file_probe(probe)
            return _interface_probe(probe)
    except TimeoutError:
        return ProbeResult(ok=False, detail=f"timeout after {_ms(timeout)}")


# ======================================================================= TCP


SockAddr = tuple[str, int] | tuple[str, int, int, int]


@functools.lru_cache(maxsize=4096)
def _literal_target(host: IPAddress, port: int) -> tuple[int, SockAddr]:
    """(family, sockaddr) of an address: formatted once, not per probe."""
    return (socket.AF_INET if host.version == 4 else socket.AF_INET6), (str(host), port)


def _parse_literal(host: str | IPAddress, port: int) -> tuple[int, SockAddr] | None:
    """(family, sockaddr) when ``host`` is an address (or its text), None for a name."""
    if not isinstance(host, str):
        return _literal_target(host, port)
    try:
        return _literal_target(ip_address(host.strip("[]")), port)
    except ValueError:
        return None


async def _connect(
    host: str | IPAddress, port: int, source: _Source, deadline: float | None = None
) -> socket.socket:
    """A connected non-blocking TCP socket; literal addresses skip the resolver.

    ``deadline`` (loop time) bounds the connect itself with TimeoutError; callers
    that run inside a timeout scope leave it None.
    """
    loop = asyncio.get_running_loop()
    literal = _parse_literal(host, port)
    targets: list[tuple[int, SockAddr]]
    if literal is None:
        infos = await loop.getaddrinfo(str(host), port, type=socket.SOCK_STREAM)
        targets = [(family, addr) for family, _t, _p, _c, addr in infos if isinstance(addr[0], str)]
    else:
        targets = [literal]
    error: OSError = OSError(errno.EHOSTUNREACH, f"no address for {host}")
    for family, addr in targets:
        sock = socket.socket(
            family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        )
        try:
            source.apply(sock)
            await _sock_connect(loop, sock, addr, deadline)
        except TimeoutError:  # an OSError too, but the deadline is for all addresses
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    raise error


async def _sock_connect(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, addr: SockAddr, deadline: float | None
) -> None:
    """``loop.sock_connect`` without its per-call address resolution and bookkeeping.

    A thousand probes a second make this the hot path: connect, wait until the
    socket is writable, read SO_ERROR.
    """
    code = sock.connect_ex(addr)
    if code == 0:
        return
    if code != errno.EINPROGRESS:
        raise OSError(code, os.strerror(code))
    fd = sock.fileno()
    writable: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _resolve, writable)
    timer = None if deadline is None else loop.call_at(deadline, _expire, writable)
    try:
        await writable
    finally:
        loop.remove_writer(fd)
        if timer is not None:
            timer.cancel()
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code != 0:
        raise OSError(code, os.strerror(code))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _tcp_probe(
    probe: TcpProbe, host: IPAddress | None, port: int | None, source: _Source, deadline: float
) -> ProbeResult:
    host = probe.host or host
    port = probe.port or port
    if host is None or port is None:
        return ProbeResult(ok=False, detail="tcp: no host or port to connect to")
    try:
        sock = await _connect(host, port, source, deadline)
    except TimeoutError:
        raise
    except OSError as exc:
        return ProbeResult(ok=False, detail=f"connect: {_describe(exc)}")
    sock.close()
    return _CONNECTED


_CONNECTED = ProbeResult(ok=True, detail="connected")


# ======================================================================= HTTP


class _HttpError(Exception):
    """The server answered something that is not HTTP."""


@dataclass(frozen=True)
class _HttpRequest:
    host: str  # where to connect: an address or a name
    port: int
    tls: bool
    verify: bool
    ca_file: str | None
    server_hostname: str | None  # SNI and the name the certificate must match
    payload: bytes
    head: bool


@dataclass(frozen=True)
class _HttpResponse:
    status: int
    digest: str  # hex MD5 of the body ("" when not computed)
    body_head: bytes  # the first _REGEX_WINDOW_BYTES of the body
    body_bytes: int


def _http_request(probe: HttpProbe, host: IPAddress | None, port: int | None) -> _HttpRequest:
    """Where to connect and what to send; ValueError when the probe cannot be sent."""
    tls = probe.tls
    if probe.url.startswith("/"):
        if host is None:
            raise ValueError("http: a path URL needs the real server's address")
        use_tls = tls is not None
        port = port or (443 if use_tls else 80)
        connect_host = str(host)
        path = probe.url
        # keepalived's Host header for a real server: address and port, IPv6 in brackets
        host_header = f"[{host}]:{port}" if host.version == 6 else f"{host}:{port}"
        url_name: str | None = None
    else:
        parts = urlsplit(probe.url)
        if parts.hostname is None:
            raise ValueError(f"http: no host in {probe.url!r}")
        use_tls = parts.scheme == "https" or tls is not None
        port = parts.port or (443 if use_tls else 80)
        connect_host = parts.hostname
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rpartition("@")[2]
        url_name = parts.hostname
    if probe.virtualhost:
        host_header = probe.virtualhost
    # SNI: the configured name, else the virtual host's or URL's name; never an address.
    sni = tls.sni if tls is not None and tls.sni else None
    for candidate in (probe.virtualhost, url_name):
        if sni is None and candidate:
            name = _hostname_of(candidate)
            sni = None if _is_literal(name) else name
    lines = {"host": ("Host", host_header), "user-agent": ("User-Agent", USER_AGENT)}
    lines["connection"] = ("Connection", "close")
    for name, value in probe.headers:
        if not _TOKEN.match(name) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"http: invalid header {name!r}")
        lines[name.lower()] = (name, value)
    if any(c in path for c in " \r\n\0"):
        raise ValueError(f"http: invalid path {path!r}")
    head = f"{probe.method} {path} HTTP/1.0\r\n"
    payload = (head + "".join(f"{n}: {v}\r\n" for n, v in lines.values()) + "\r\n").encode(
        "latin-1"
    )
    verify = tls.verify if tls is not None else True
    return _HttpRequest(
        host=connect_host,
        port=port,
        tls=use_tls,
        verify=verify,
        ca_file=tls.ca_file if tls is not None else None,
        server_hostname=sni if sni is not None else (connect_host if verify else None),
        payload=payload,
        head=probe.method == "HEAD",
    )


def _hostname_of(authority: str) -> str:
    """``example.test:8443`` -> ``example.test``; ``[2001:db8::1]:80`` -> ``2001:db8::1``."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rpartition(":")[0] if authority.count(":") == 1 else authority


def _is_literal(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _ssl_context(verify: bool, ca_file: str | None, ca_mtime_ns: int) -> ssl.SSLContext:
    """Contexts are costly (the system CA store); cached, and rebuilt when the CA file changes."""
    del ca_mtime_ns  # part of the cache key only
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


def _context_for(request: _HttpRequest) -> ssl.SSLContext:
    mtime = 0
    if request.ca_file is not None:
        with contextlib.suppress(OSError):
            mtime = os.stat(request.ca_file).st_mtime_ns
    return _ssl_context(request.verify, request.ca_file, mtime)


async def _http_exchange(
    request: _HttpRequest, source: _Source, *, want_digest: bool
) -> _HttpResponse:
    sock = await _connect(request.host, request.port, source)
    try:
        reader, writer = await asyncio.open_connection(
            sock=sock,
            ssl=_context_for(request) if request.tls else None,
            # asyncio wants a name with sock=; "" sends no SNI and matches no name.
            server_hostname=(request.server_hostname or "") if request.tls else None,
            limit=_HEADER_LIMIT_BYTES,
        )
    except BaseException:
        sock.close()
        raise
    try:
        writer.write(request.payload)
        await writer.drain()
        try:
            header = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise _HttpError("connection closed before the end of the headers") from exc
        except asyncio.LimitOverrunError as exc:
            raise _HttpError(f"headers longer than {_HEADER_LIMIT_BYTES} bytes") from exc
        status = _status_code(header)
        content_length = None if request.head else _content_length(header)
        md5 = hashlib.md5(usedforsecurity=False)
        head = bytearray()
        received = 0
        while not request.head and (content_length is None or received < content_length):
            want = _READ_CHUNK_BYTES
            if content_length is not None:
                want = min(want, content_length - received)
            chunk = await reader.read(want)
            if not chunk:
                break
            received += len(chunk)
            if want_digest:
                md5.update(chunk)
            if len(head) < _REGEX_WINDOW_BYTES:
                head += chunk[: _REGEX_WINDOW_BYTES - len(head)]
        return _HttpResponse(
            status=status,
            digest=md5.hexdigest() if want_digest else "",
            body_head=bytes(head),
            body_bytes=received,
        )
    finally:
        writer.close()
        # A TLS peer that never answers close_notify must not hold the probe.
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(0.1):
                await writer.wait_closed()


def _status_code(header: bytes) -> int:
    """keepalived's ``extract_status_code``: the three digits after the first space."""
    line = header.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not re.fullmatch(rb"\d{3}", parts[1]):
        raise _HttpError(f"not an HTTP status line: {line[:80]!r}")
    return int(parts[1])


def _content_length(header: bytes) -> int | None:
    for line in header.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else None
    return None


async def _http_probe(
    probe: HttpProbe, host: IPAddress | None, port: int | None, source: _Source
) -> ProbeResult:
    try:
        request = _http_request(probe, host, port)
    except ValueError as exc:
        return ProbeResult(ok=False, detail=str(exc))
    try:
        response = await _http_exchange(request, source, want_digest=probe.digest is not None)
    except ssl.SSLCertVerificationError as exc:
        return ProbeResult(ok=False, detail=f"TLS: {exc.verify_message or exc.reason}")
    except (OSError, ssl.SSLError, _HttpError) as exc:
        return ProbeResult(ok=False, detail=_describe(exc))
    if not any(lo <= response.status <= hi for lo, hi in probe.status):
        return ProbeResult(ok=False, detail=f"HTTP {response.status}: status not accepted")
    if probe.digest is not None and response.digest != probe.digest.lower():
        return ProbeResult(
            ok=False, detail=f"HTTP {response.status}: MD5 digest {response.digest} differs"
        )
    if probe.regex is not None:
        try:
            pattern = _compile(probe.regex)
        except re.error as exc:
            return ProbeResult(ok=False, detail=f"bad regex {probe.regex!r}: {exc}")
        if pattern.search(response.body_head) is None:
            return ProbeResult(ok=False, detail=f"HTTP {response.status}: regex did not match")
    return ProbeResult(ok=True, detail=f"HTTP {response.status}")


@functools.lru_cache(maxsize=256)
def _compile(regex: str) -> re.Pattern[bytes]:
    return re.compile(regex.encode())


# ======================================================================= DNS


async def _dns_probe(
    probe: DnsProbe, host: IPAddress | None, port: int | None, source: _Source
) -> ProbeResult:
    server = probe.server or host
    if server is None:
        return ProbeResult(ok=False, detail="dns: no server to ask")
    # The probe's own port wins; a real server's port is the next best; else 53.
    port = probe.port or port or 53
    query_id = secrets.randbits(16)
    try:
        query = dns.encode_query(query_id, probe.name, probe.type)
    except (ValueError, KeyError) as exc:
        return ProbeResult(ok=False, detail=f"dns: cannot ask for {probe.name!r}: {exc}")
    try:
        if probe.protocol == "tcp":
            response = await _dns_tcp(server, port, source, query, query_id, probe)
        else:
            response = await _dns_udp(server, port, source, query, query_id, probe)
    except (OSError, dns.MalformedDns) as exc:
        return ProbeResult(ok=False, detail=f"dns: {_describe(exc)}")
    if response.rcode != 0:
        name = _RCODES.get(response.rcode, str(response.rcode))
        return ProbeResult(ok=False, detail=f"dns: rcode {name}")
    missing = dns.missing_expectations(response, probe.expect)
    answers = ", ".join(r.text for r in response.answers) or "no answers"
    if missing:
        return ProbeResult(
            ok=False, detail=f"dns: {', '.join(missing)} not in the answer ({answers})"
        )
    return ProbeResult(ok=True, detail=f"dns: NOERROR ({answers})")


_RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def _sockaddr(server: IPAddress, port: int) -> tuple[int, tuple[str, int]]:
    family = socket.AF_INET if server.version == 4 else socket.AF_INET6
    return family, (str(server), port)


async def _dns_udp(
    server: IPAddress, port: int, source: _Source, query: bytes, query_id: int, probe: DnsProbe
) -> dns.DnsResponse:
    loop = asyncio.get_running_loop()
    family, addr = _sockaddr(server, port)
    with socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)
        source.apply(sock)
        # Connected: the kernel drops datagrams from anyone but the server.
        await loop.sock_connect(sock, addr)
        await loop.sock_sendall(sock, query)
        while True:
            data = await loop.sock_recv(sock, _DNS_MAX_UDP_BYTES)
            try:
                return dns.decode_response(data, query_id, probe.name, probe.type)
            except dns.MalformedDns:
                # keepalived waits on for the right answer (stray or spoofed datagrams);
                # the probe's timeout bounds the wait.
                continue


async def _dns_tcp(
    server: IPAddress, port: int, source: _Source, query: bytes, query_id: int, probe: DnsProbe
) -> dns.DnsResponse:
    loop = asyncio.get_running_loop()
    sock = await _connect(str(server), port, source)
    with sock:
        await loop.sock_sendall(sock, struct.pack("!H", len(query)) + query)
        (length,) = struct.unpack("!H", await _recv_exactly(sock, 2))
        return dns.decode_response(
            await _recv_exactly(sock, length), query_id, probe.name, probe.type
        )


async def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise OSError(errno.ECONNRESET, "connection closed mid-message")
        data += chunk
    return bytes(data)


# ======================================================================= script


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _script_program(probe: ScriptProbe, account: programs.Account) -> str | ProbeResult:
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


async def _script_probe(
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
    checked = _script_program(probe, account)
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
        return ProbeResult(ok=False, detail=f"script: cannot run {argv[0]}: {_describe(exc)}")
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
                ok=False, detail=f"script: timeout after {_ms(timeout)}, killed ({how})"
            )
    except BaseException:
        # Cancelled (the scheduler stops): leave nothing behind; the loop reaps it.
        _kill_group(proc.pid, signal.SIGKILL)
        raise
    return script_result(code, dynamic_weight=probe.dynamic_weight)


# ======================================================================= file, interface


async def _file_probe(probe: FileProbe) -> ProbeResult:
    try:
        # A thread: a file on a hung network filesystem must not block the loop.
        content = await asyncio.to_thread(_read_head, probe.path)
    except FileNotFoundError:
        return ProbeResult(ok=True, detail=f"{probe.path}: missing, counts as 0", weight=0)
    except OSError as exc:
        return ProbeResult(ok=False, detail=f"{probe.path}: {_describe(exc)}")
    value = parse_track_file(content)
    if value is None:
        return ProbeResult(ok=False, detail=f"{probe.path}: number out of range, ignored")
    return ProbeResult(ok=True, detail=f"{probe.path}: {value}", weight=value)


def _read_head(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.read(fd, _FILE_READ_BYTES)
    finally:
        os.close(fd)


def interface_flags(name: str) -> int:
    """The interface's flags (SIOCGIFFLAGS) in this process's network namespace."""
    request = struct.pack("16sH22x", name.encode(), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        reply = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
    (flags,) = struct.unpack_from("H", reply, 16)
    return int(flags)


def _interface_probe(probe: InterfaceProbe) -> ProbeResult:
    if not 1 <= len(probe.name.encode()) <= 15:
        return ProbeResult(ok=False, detail=f"{probe.name}: not an interface name")
    try:
        flags = interface_flags(probe.name)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return ProbeResult(ok=False, detail=f"{probe.name}: no such interface")
        return ProbeResult(ok=False, detail=f"{probe.name}: {_describe(exc)}")
    if not flags & _IFF_UP:
        return ProbeResult(ok=False, detail=f"{probe.name}: down")
    if not flags & _IFF_RUNNING:
        return ProbeResult(ok=False, detail=f"{probe.name}: up, not running (no carrier)")
    return ProbeResult(ok=True, detail=f"{probe.name}: up, running")


# ======================================================================= helpers


def _ms(value: timedelta) -> str:
    return f"{value.total_seconds() * 1000:g}ms"


def _strerror(code: int) -> str:
    text = os.strerror(code)
    return text[0].lower() + text[1:]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError):
        # asyncio puts "Connect call failed (addr)" in strerror; the errno says more.
        text = (
            os.strerror(exc.errno)
            if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror)
            else exc.strerror
        )
        if text:
            return text[0].lower() + text[1:]
    return str(exc) or type(exc).__name__


__all__ = [
    "DEFAULT_MAX_CONCURRENT",
    "SCRIPT_KILL_GRACE",
    "OnDone",
    "ProbeAttempt",
    "ProbeError",
    "Prober",
    "default_prober",
    "digest_url",
    "interface_flags",
    "run_probe",
]
