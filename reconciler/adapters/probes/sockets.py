"""Sockets of the network probes: source binding and a lean non-blocking TCP connect."""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
from dataclasses import dataclass
from ipaddress import ip_address

from reconciler.model.common import IPAddress

SockAddr = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True)
class ProbeSource:
    """Where a probe connects from: a source address, an interface (SO_BINDTODEVICE), both
    or neither."""

    address: IPAddress | None = None
    interface: str | None = None

    def apply(self, sock: socket.socket) -> None:
        if self.interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
        if self.address is not None:
            sock.bind((str(self.address), 0))


NO_SOURCE = ProbeSource()


def source_of(address: IPAddress | None, interface: str | None) -> ProbeSource:
    return NO_SOURCE if address is None and interface is None else ProbeSource(address, interface)


@functools.lru_cache(maxsize=4096)
def literal_target(host: IPAddress, port: int) -> tuple[int, SockAddr]:
    """(family, sockaddr) of an address: formatted once, not per probe."""
    return (socket.AF_INET if host.version == 4 else socket.AF_INET6), (str(host), port)


def parse_literal(host: str | IPAddress, port: int) -> tuple[int, SockAddr] | None:
    """(family, sockaddr) when ``host`` is an address (or its text), None for a name."""
    if not isinstance(host, str):
        return literal_target(host, port)
    try:
        return literal_target(ip_address(host.strip("[]")), port)
    except ValueError:
        return None


async def connect(
    host: str | IPAddress, port: int, source: ProbeSource, deadline: float | None = None
) -> socket.socket:
    """A connected non-blocking TCP socket; literal addresses skip the resolver.

    ``deadline`` (loop time) bounds the connect itself with TimeoutError; callers
    that run inside a timeout scope leave it None.
    """
    loop = asyncio.get_running_loop()
    literal = parse_literal(host, port)
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
