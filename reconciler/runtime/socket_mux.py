"""Reads a VRRP socket and hands each advert to the instance driver with its VRID.

One `SocketMux` per interface and family reads adverts, decodes them once and hands
each to the instance with that VRID, at its kernel receive timestamp (timers restart
from when the packet arrived, not from when Python got to it).

That is what lets a socket be read in batches: while adverts come faster than
one per window, a mux reads its socket every few milliseconds instead of waking
for each packet (a wake-up costs more than the advert), and the delay changes no
timer because each advert still counts from its arrival. The window is a quarter of the
shortest Skew_Time among the socket's instances (so a priority-0 advert is
acted on in time) and a twentieth of the shortest advert interval (how late a
master may answer or yield to an advert), at most ``MAX_BATCH_S``; and before a
Master_Down_Timer fires the socket is read first (``drain``), so a waiting advert is
never missed.

Where the kernel allows it, once an instance's machine has followed an advert, the mux
arms its bytes in the socket's repeat filter (``adapters/repeat_filter.py``) and the
kernel drops copies of it; the driver folds what it dropped in (runtime/vrrp_driver.py).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

from reconciler.adapters.repeat_filter import (
    IPV6_HEADER_LEN,
    PATTERN_MAX,
    RepeatFilter,
    ipv6_packet,
    normalize,
)
from reconciler.adapters.vrrp_socket import Datagram, VrrpSocket
from reconciler.observability.status import SocketStatus
from reconciler.runtime.deadlines import DeadlineQueue
from reconciler.vrrp.events import AdvertReceived
from reconciler.vrrp.packet import MalformedAdvert, ReceivedAdvert, decode_ipv4, decode_ipv6

if TYPE_CHECKING:
    from reconciler.runtime.vrrp_driver import InstanceDriver

MAX_BATCH_S = 0.05  # the longest adverts wait in a busy socket (see the module docstring)
DRAIN_LIMIT = 512  # packets handled per read of a socket
BATCH_MIN = 2  # adverts waiting at a wake-up that make polling worth it
IDLE_POLLS = 3  # empty reads in a row before a socket goes back to waking per packet
_DECODED_CACHE_MAX = 1024


@dataclass
class MuxCounters:
    malformed: Counter[str]
    unknown_vrid: int = 0
    read: int = 0  # packets read from the socket (the repeat filter's drops are not)


class SocketMux:
    """Reads one raw socket and dispatches adverts to instances by VRID."""

    def __init__(
        self,
        sock: VrrpSocket,
        loop: asyncio.AbstractEventLoop,
        repeat_filter: RepeatFilter | None = None,
    ) -> None:
        self.sock = sock
        self.loop = loop
        self.repeat_filter = repeat_filter  # attached to sock by the caller
        self.instances: dict[int, InstanceDriver] = {}
        self.counters = MuxCounters(Counter())
        # Decoded adverts, as (VRID, the event handed on), by their bytes: a master
        # repeats the same advert, and decoding (checksum, addresses) is pure; the machine
        # also skips the receive checks for the advert it validated last. Bounded; forged
        # traffic only clears it.
        self._decoded: dict[object, tuple[int, AdvertReceived]] = {}
        self._window_s: float | None = None  # batching window; None: to be recomputed
        self._resume: asyncio.TimerHandle | None = None
        self._idle_polls = 0
        self._last_readable = -math.inf
        self.deadlines = DeadlineQueue(loop)  # the timers of the instances on this socket
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._readable)
        self._reading = True

    def attach(self, driver: InstanceDriver) -> None:
        self.instances[driver.spec.vrid] = driver
        self._window_s = None

    def detach(self, vrid: int) -> None:
        self.instances.pop(vrid, None)
        self._window_s = None
        if self.repeat_filter is not None:
            self.repeat_filter.disarm(vrid)

    def timing_changed(self) -> None:
        """An instance's Skew_Time changed (priority or learned interval)."""
        self._window_s = None

    def close(self) -> None:
        self.deadlines.close()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._reading:
            self.loop.remove_reader(self._fd)
            self._reading = False
        self.sock.close()
        if self.repeat_filter is not None:
            self.repeat_filter.close()

    def status(self) -> SocketStatus:
        return SocketStatus(
            interface=self.sock.interface,
            family="ipv4" if self.sock.family == 4 else "ipv6",
            malformed=dict(self.counters.malformed),
            unknown_vrid=self.counters.unknown_vrid,
            read=self.counters.read,
            repeat_filter=self.repeat_filter is not None,
        )

    def drain(self) -> int:
        """Handle the adverts waiting in the socket; how many there were.

        At most ``DRAIN_LIMIT`` at a time, so a flood cannot starve the timers: a busy
        socket stays in polling mode and is read again a window later.
        """
        batch = self.sock.receive(DRAIN_LIMIT)
        self.counters.read += len(batch)
        decoded = self._decoded
        instances = self.instances
        ipv4 = self.sock.family == 4
        for dgram in batch:
            data = dgram.data
            key: object
            if ipv4:
                # What decoding depends on: version and header length, fragment fields,
                # TTL, then addresses, options and payload. Not the identification or the
                # header checksum, which change per packet (the kernel has verified the
                # checksum); the length is that of the bytes, the protocol the socket's.
                key = (data[0], data[6], data[7], data[8], data[12:])
            else:
                key = (data, dgram.source, dgram.destination, dgram.hop_limit)
            cached = decoded.get(key)
            if cached is not None:  # the common case inline: an advert seen before
                driver = instances.get(cached[0])
                if driver is not None:
                    event = cached[1]
                    driver.feed(event, dgram.received_at)
                    if driver.offloaded is not event and self.repeat_filter is not None:
                        self._offload(driver, event, dgram)
                    continue
            self._dispatch(dgram, key, cached)  # new, malformed, or not ours
        return len(batch)

    def _offload(self, driver: InstanceDriver, event: AdvertReceived, dgram: Datagram) -> None:
        """The machine followed a repeat of ``event``: let the kernel drop the next ones."""
        filt = self.repeat_filter
        if filt is None or driver.machine.followed is not event:
            return
        if self.sock.family == 4:
            packet = dgram.data
        elif len(dgram.data) + IPV6_HEADER_LEN > PATTERN_MAX:
            return  # too long to compare in the kernel: read in user space
        else:
            assert dgram.source is not None and dgram.destination is not None
            assert dgram.hop_limit is not None
            packet = ipv6_packet(
                dgram.data, dgram.source.packed, dgram.destination.packed, dgram.hop_limit
            )
        vrid = driver.spec.vrid
        dropped = filt.dropped(vrid)  # before arming: every drop after it is this advert's
        if filt.arm(vrid, normalize(self.sock.family, packet)):
            driver.offload(event, filt, dropped)

    def window_s(self) -> float:
        """How long adverts may wait unread: a quarter of the shortest Skew_Time, and
        at most a twentieth of the shortest advert interval (a master answering or
        yielding to an advert is late by up to this)."""
        if self._window_s is None:
            budget = min((d.reaction_budget_s for d in self.instances.values()), default=0.0)
            self._window_s = min(MAX_BATCH_S, budget)
        return self._window_s

    def _readable(self) -> None:
        now = self.loop.time()
        waiting = self.drain()
        window = self.window_s()
        # Adverts come faster than one per window (several were waiting, or this wake-up
        # follows the last within a window): read them in batches from now on. Sparse
        # adverts (one instance, a quiet link) keep waking per packet: polling would
        # only add wake-ups.
        dense = waiting >= BATCH_MIN or now - self._last_readable < window
        self._last_readable = now
        if dense and window > 0:
            self.loop.remove_reader(self._fd)
            self._reading = False
            self._resume = self.loop.call_later(window, self._poll)

    def _poll(self) -> None:
        """The window is over: read what came; keep polling while adverts keep coming
        (a short lull does not end it: switching costs two epoll_ctl calls)."""
        self._resume = None
        self._idle_polls = 0 if self.drain() else self._idle_polls + 1
        if self._idle_polls < IDLE_POLLS:
            self._resume = self.loop.call_later(self.window_s(), self._poll)
        else:
            self._idle_polls = 0
            self.loop.add_reader(self._fd, self._readable)
            self._reading = True

    def _dispatch(
        self, dgram: Datagram, key: object, cached: tuple[int, AdvertReceived] | None
    ) -> None:
        """Decode (unless ``cached``), count what is refused, hand the rest on."""
        data = dgram.data
        if cached is None:
            received: ReceivedAdvert
            try:
                if self.sock.family == 4:
                    received = decode_ipv4(data)
                else:
                    assert isinstance(dgram.source, IPv6Address)
                    assert isinstance(dgram.destination, IPv6Address)
                    assert dgram.hop_limit is not None
                    received = decode_ipv6(data, dgram.source, dgram.destination, dgram.hop_limit)
            except MalformedAdvert as exc:
                self.counters.malformed[exc.reason.value] += 1
                return
            if len(self._decoded) >= _DECODED_CACHE_MAX:
                self._decoded.clear()
            cached = self._decoded[key] = (received.advert.vrid, AdvertReceived(received))
        vrid, event = cached
        driver = self.instances.get(vrid)
        if driver is None:
            self.counters.unknown_vrid += 1  # another cluster's VRID on this link
            return
        driver.feed(event, dgram.received_at)
