"""NetlinkWatcher: a thread that follows one namespace's addresses and links."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import TypeVar

from reconciler.testing.netlab.addressing import AddressLike, IPInterface, as_address
from reconciler.testing.netlab.events import AddrEvent, LinkState
from reconciler.testing.netlab.netstate import NetState
from reconciler.testing.netlab.rtnetlink import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
    RtNetlink,
    netlink_socket,
    split_messages,
)

__all__ = ["NetlinkWatcher"]

_T = TypeVar("_T")


class NetlinkWatcher:
    """Tracks address and link changes in one namespace, with receive timestamps.

    A dedicated thread reads an rtnetlink socket (joined to the link and IPv4/IPv6
    address groups) that was opened inside the namespace, stamps each read with
    ``time.monotonic()`` and updates the state under a condition variable.
    """

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.overruns = 0
        self._cond = threading.Condition()
        self._state = NetState()
        self._closed = False
        self._busy = False  # the reader is draining its socket
        self._error: BaseException | None = None
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._sock: socket.socket | None = None
        self._ctl: RtNetlink | None = None
        try:
            self._sock = netlink_socket(
                netns, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
            )
            self._sock.setblocking(False)
            self._ctl = RtNetlink(netns)
            self.started_at = time.monotonic()
            self._resync(self.started_at)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"netlink-watch-{netns}", daemon=True
        )
        self._thread.start()

    # -- reader thread -------------------------------------------------------

    def _run(self) -> None:
        sock, wake = self._sock, self._wake
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(wake, select.POLLIN)
        buf = bytearray(1 << 16)
        try:
            while True:
                ready = poller.poll()
                if any(fd == wake for fd, _ in ready):
                    return
                with self._cond:
                    self._busy = True
                while True:
                    try:
                        size = sock.recv_into(buf)
                        now = time.monotonic()  # first thing after the read
                    except BlockingIOError:
                        with self._cond:
                            self._busy = False
                            self._cond.notify_all()
                        break
                    except OSError as exc:
                        if exc.errno != errno.ENOBUFS:
                            raise
                        now = time.monotonic()
                        with self._cond:
                            self.overruns += 1
                        self._resync(now)
                        continue
                    msgs = split_messages(bytes(buf[:size]))
                    with self._cond:
                        self._state.handle(msgs, now)
                        self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _resync(self, now: float) -> None:
        """Rebuild state from a dump (at start, and after the socket overran)."""
        assert self._ctl is not None
        links = self._ctl.dump_links()
        addrs = self._ctl.dump_addrs()
        with self._cond:
            self._state.resync(links, addrs, now)
            self._cond.notify_all()

    # -- queries -------------------------------------------------------------

    def _wait_until(self, predicate: Callable[[], _T | None], timeout: float, what: str) -> _T:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._error is not None:
                    raise RuntimeError(f"watcher of {self.netns} failed") from self._error
                value = predicate()
                if value is not None:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    recent = self._state.recent_events(8)
                    raise TimeoutError(
                        f"netns {self.netns}: timed out after {timeout}s waiting for {what}"
                        f" (last events: {recent or 'none'})"
                    )
                self._cond.wait(remaining)

    def wait_for(
        self,
        address: AddressLike,
        *,
        present: bool = True,
        timeout: float = 5.0,
        after: float | None = None,
        ifname: str | None = None,
    ) -> float:
        """Wait until ``address`` is present (or absent) and return when that happened.

        With ``after=None`` a state that already holds returns at once, with the
        timestamp of the event that brought it about (for addresses known since
        the watcher started: the start time). With ``after=t`` only a change
        received at or after monotonic time ``t`` counts: take ``t`` just before
        triggering the change you want to time. ``ifname`` restricts the match to
        one interface. Raises :class:`TimeoutError`.
        """
        addr = as_address(address)

        def check() -> float | None:
            return self._state.address_since(
                addr, present=present, ifname=ifname, after=after, never_seen=self.started_at
            )

        state = "present" if present else "absent"
        where = f" on {ifname}" if ifname else ""
        return self._wait_until(check, timeout, f"{addr} {state}{where}")

    def sync(self, timeout: float = 5.0) -> None:
        """Wait until every notification already queued on the socket is processed.

        After a netlink request returned, the notifications it caused are queued,
        so ``sync()`` makes the state reflect the request (carrier changes done
        later by the kernel's linkwatch are not covered).
        """
        sock = self._sock
        assert sock is not None
        probe = select.poll()
        probe.register(sock.fileno(), select.POLLIN)

        def drained() -> bool:
            return not self._busy and not probe.poll(0)

        deadline = time.monotonic() + timeout
        with self._cond:
            while not drained():
                if self._error is not None or self._closed:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"netns {self.netns}: watcher did not catch up")
                self._cond.wait(0.01)

    def is_present(self, address: AddressLike, *, ifname: str | None = None) -> bool:
        """Whether ``address`` is currently assigned (on ``ifname`` if given)."""
        with self._cond:
            return self._state.address_present(as_address(address), ifname)

    def addresses(self, ifname: str | None = None) -> frozenset[IPInterface]:
        """The addresses currently assigned (on ``ifname`` if given)."""
        with self._cond:
            return self._state.addresses(ifname)

    def events(self, address: AddressLike | None = None) -> tuple[AddrEvent, ...]:
        """Every address event seen so far (optionally only for ``address``)."""
        addr = None if address is None else as_address(address)
        with self._cond:
            return tuple(e for e in self._state.events if addr is None or e.address == addr)

    def link(self, ifname: str) -> LinkState | None:
        """The latest state of link ``ifname``, or None if unknown."""
        with self._cond:
            return self._state.link_by_name(ifname)

    def wait_link(
        self,
        ifname: str,
        *,
        running: bool = True,
        timeout: float = 5.0,
        after: float | None = None,
    ) -> float:
        """Wait until ``ifname`` is running (up with carrier) or not; return when.

        ``after`` works as in :meth:`wait_for`.
        """

        def check() -> float | None:
            return self._state.link_since(ifname, running=running, after=after)

        state = "running" if running else "not running"
        return self._wait_until(check, timeout, f"link {ifname} {state}")

    def link_local(self, ifname: str) -> IPv6Address | None:
        """The usable (non-tentative) IPv6 link-local address of ``ifname``, if any."""
        with self._cond:
            return self._state.link_local(ifname)

    def wait_ready(self, ifname: str, timeout: float = 5.0) -> IPv6Address:
        """Wait until ``ifname`` is running and has a usable link-local address."""

        def check() -> IPv6Address | None:
            return self._state.ready_link_local(ifname)

        return self._wait_until(check, timeout, f"{ifname} running with a link-local address")

    def close(self) -> None:
        """Stop the reader thread and close the sockets (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if self._sock is not None:
            self._sock.close()
        if self._ctl is not None:
            self._ctl.close()
        os.close(self._wake)
