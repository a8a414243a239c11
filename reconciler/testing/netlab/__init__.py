"""Network-namespace test bed: an L2 lab of hosts joined by Linux bridges.

Layout of a lab with ``n_hosts`` hosts and ``segments`` segments::

    namespace <id>b  : bridges br0, br1, ...; bridge ports h<i>e<s>
    namespace <id>h1 : lo, eth0 (segment 0), eth1 (segment 1), ...
    namespace <id>h2 : ...

Host ``i`` (1-based) on segment ``s`` is reached through the veth pair
``eth<s>`` (host side) / ``h<i>e<s>`` (bridge side). Its addresses are
``<segment v4 net>.<10+i>/24`` and ``<segment v6 net>::<10+i>/64`` (the
decimal digits of ``10+i`` written as the last IPv6 group, so host 1 is
``192.0.2.11`` and ``2001:db8::11``). Only documentation prefixes are used, and
nothing is ever created or changed in the root namespace: every veth pair is
made inside a lab namespace.

IPv6 duplicate address detection is disabled in host namespaces, so global
and link-local addresses are usable as soon as they appear, and
``keep_addr_on_down`` is set so that IPv6 addresses survive ``link_down``.
The bridges do no multicast snooping (they flood like a dumb switch), so VRRP
adverts to 224.0.0.18 and ff02::12 reach every host.

Every lab namespace name is ``<prefix><creator pid>x<counter>`` followed by
``b`` (bridge) or ``h<i>`` (host). :func:`sweep_stale` uses the pid to remove
namespaces left behind by a process that was killed before it could clean up.
Namespace names never serve as interface names (those are ``eth<s>``,
``h<i>e<s>`` and ``br<s>``); with pids below 100000 they fit in 15 characters.

Timestamps (:class:`AddrEvent`, :class:`LinkState`, link up/down) are
``time.monotonic()`` values. Each namespace's :class:`NetlinkWatcher` reads its
netlink socket on a dedicated thread and stamps a message the moment ``recv``
returns; while the measuring thread is blocked in a ``wait_*`` call (which
releases the GIL) the stamp is within a few tens of microseconds of the
kernel's notification. A main thread busy in Python code can delay the stamp
by up to the interpreter's switch interval (5 ms by default), so measure by
blocking in ``wait_for``, not by polling.

Usage::

    with Lab(n_hosts=2) as lab:
        h1, h2 = lab.hosts
        vip = lab.segments[0].free_ipv4()          # 192.0.2.100/24
        daemon = h1.spawn([*cmd], name="daemon")   # own process group, log in lab.tmpdir
        h1.watcher.wait_for(vip, timeout=5)        # the daemon took the VIP
        t0 = time.monotonic()
        daemon.kill()                              # crash: SIGKILL to the group
        took_over = h2.watcher.wait_for(vip, after=t0, timeout=5)
        failover = took_over - t0

The package is split by concern: ``addressing`` (the address plan), ``plumbing``
(entering a namespace, ``ip -batch``), ``rtnetlink`` (codec and request socket),
``netstate`` and ``watcher`` (what a namespace's netlink notifications say, and the
thread that reads them), ``processes``, ``namespaces`` (:class:`Namespace`,
:class:`Host`), ``topology`` (building), ``loss`` (nftables packet loss),
``registry`` (atexit and SIGTERM), ``cleanup`` (teardown and :func:`sweep_stale`)
and ``lab`` (:class:`Lab`). Import the names below from this package.
"""

from __future__ import annotations

from reconciler.testing.netlab.addressing import (
    AddressLike,
    HostInterface,
    IPAddress,
    IPInterface,
    LinkSide,
    LossDirection,
    Segment,
)
from reconciler.testing.netlab.cleanup import sweep_stale
from reconciler.testing.netlab.errors import CommandError, LabInterrupted, LabUnavailable
from reconciler.testing.netlab.events import AddrEvent, LinkState
from reconciler.testing.netlab.lab import Lab
from reconciler.testing.netlab.namespaces import Host, Namespace
from reconciler.testing.netlab.plumbing import DEFAULT_PREFIX
from reconciler.testing.netlab.plumbing import NETNS_RUN_DIR as NETNS_RUN_DIR
from reconciler.testing.netlab.processes import LabProcess
from reconciler.testing.netlab.topology import netns_unavailable_reason
from reconciler.testing.netlab.watcher import NetlinkWatcher

__all__ = [
    "DEFAULT_PREFIX",
    "AddrEvent",
    "AddressLike",
    "CommandError",
    "Host",
    "HostInterface",
    "IPAddress",
    "IPInterface",
    "Lab",
    "LabInterrupted",
    "LabProcess",
    "LabUnavailable",
    "LinkSide",
    "LinkState",
    "LossDirection",
    "Namespace",
    "NetlinkWatcher",
    "Segment",
    "netns_unavailable_reason",
    "sweep_stale",
]
