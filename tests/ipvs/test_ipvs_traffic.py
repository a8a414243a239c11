"""Real TCP connections through a NAT virtual service programmed by the adapter.

The VIP 192.0.2.10 sits on a dummy link of the test's own namespace; the real
servers are TCP servers on 127.0.0.2:8080 ("a") and 127.0.0.3:8080 ("b") that
greet with their name. Locally originated connections to the VIP meet IPVS on
the output path and are masqueraded to the real servers.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest
from ipvs_helpers import REAL_PORT, ask, stats_conns

from reconciler.adapters.ipvs import Ipvs
from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.common import Family, IPAddress
from reconciler.model.ipvs import Forwarding, Protocol, ServiceKey
from reconciler.model.kernel import LiveDest, LiveService

pytestmark = pytest.mark.ipvs

Run = Callable[[Awaitable[Any]], Any]
VPORT = 80


def nat_service(vip: IPv4Address, scheduler: str = "wrr") -> LiveService:
    return LiveService(ServiceKey(Family.IPV4, Protocol.TCP, vip, VPORT), scheduler)


def real(svc: LiveService, address: IPv4Address, weight: int) -> LiveDest:
    return LiveDest(svc.service, address, REAL_PORT, weight=weight, forwarding=Forwarding.NAT)


def spread(vip: IPv4Address, n: int) -> Counter[str]:
    return Counter(ask(vip, VPORT) for _ in range(n))


@contextmanager
def installed(run: Run, svc: LiveService, dests: list[LiveDest]) -> Iterator[None]:
    async def install() -> None:
        async with Ipvs() as ipvs:
            await ipvs.add_service(svc)
            for d in dests:
                await ipvs.add_dest(d)

    async def remove() -> None:
        async with Ipvs() as ipvs:
            await ipvs.delete_service(svc.service)

    run(install())
    try:
        yield
    finally:
        run(remove())


def test_weighted_round_robin_splits_connections_exactly(
    run: Run, vip: IPv4Address, real_servers: dict[str, IPv4Address]
) -> None:
    svc = nat_service(vip)
    a, b = real(svc, real_servers["a"], 1), real(svc, real_servers["b"], 3)

    async def edit(*writes: LiveDest) -> None:
        async with Ipvs() as ipvs:
            for d in writes:
                assert await ipvs.edit_dest(d) is WriteOutcome.UPDATED

    async def drop(d: LiveDest) -> None:
        async with Ipvs() as ipvs:
            assert await ipvs.delete_dest(d.service, d.address, d.port) is WriteOutcome.DELETED

    with installed(run, svc, [a, b]):
        # wrr with weights 1:3 is deterministic: per cycle of 4, one to a, three to b.
        assert spread(vip, 8) == Counter(a=2, b=6)
        run(edit(replace(a, weight=3)))
        assert spread(vip, 6) == Counter(a=3, b=3)
        run(edit(replace(b, weight=0)))  # weight 0: quiesced
        assert spread(vip, 4) == Counter(a=4)
        run(drop(a))
        run(edit(replace(b, weight=1)))
        assert spread(vip, 3) == Counter(b=3)


def test_established_connection_survives_in_place_edits(
    run: Run, vip: IPv4Address, real_servers: dict[str, IPv4Address]
) -> None:
    """Weights, a threshold and the scheduler change under a live connection: it keeps
    working, its dest keeps counting it, and the service's statistics are not reset (a
    re-created service would start again from zero). A deleted and re-added dest would
    come back from the kernel's trash with its counters, so the dest side of "in place"
    is checked by the list order in test_ipvs_adapter."""
    svc = nat_service(vip, "rr")
    a, b = real(svc, real_servers["a"], 1), real(svc, real_servers["b"], 1)

    async def dump() -> dict[IPAddress, LiveDest]:
        async with Ipvs() as ipvs:
            services, dests = await ipvs.dump()
            assert [s.service for s in services] == [svc.service]
            return {d.address: d for d in dests}

    async def edits() -> None:
        async with Ipvs() as ipvs:
            await ipvs.edit_dest(replace(a, weight=5))
            await ipvs.edit_dest(replace(a, weight=7, upper_threshold=50))
            await ipvs.edit_dest(replace(b, weight=0))
            await ipvs.edit_service(LiveService(svc.service, "wlc"))

    with installed(run, svc, [a, b]):
        assert spread(vip, 4) == Counter(a=2, b=2)
        conn = socket.create_connection((str(vip), VPORT), timeout=5)
        with conn, conn.makefile("rw") as stream:
            owner = stream.readline().strip()
            owner_ip = real_servers[owner]
            assert run(dump())[owner_ip].active_connections == 1
            stats = wait_for_stats(f"{vip}:{VPORT}", 5)

            run(edits())

            stream.write("still there?\n")
            stream.flush()
            assert stream.readline() == "still there?\n"
            after = run(dump())
            assert after[owner_ip].active_connections == 1
            assert after[real_servers["a"]].weight == 7
            assert after[real_servers["a"]].upper_threshold == 50
            # Read right after the edits: a new service or dest would report 0 here.
            assert stats_conns() == stats


def wait_for_stats(service: str, conns: int, timeout: float = 5.0) -> dict[str, int]:
    """The kernel's estimator publishes the counters every 2 s: wait for `conns` to show."""
    deadline = time.monotonic() + timeout
    while True:
        stats = stats_conns()
        if stats.get(service) == conns:
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"no {conns} connections on {service} after {timeout}s: {stats}")
        time.sleep(0.25)
