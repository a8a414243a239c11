"""The IPVS adapter against a real kernel: every verb, both families, fwmarks, idempotence,
apply-then-dump equality, in-place edits, and the kernel's state as ipvsadm sees it."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Awaitable, Callable
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest
from ipvs_helpers import dest_order, ipvsadm, parse_ipvsadm

from reconciler.adapters.ipvs import Ipvs, IpvsError, IpvsNotFound
from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.common import Family
from reconciler.model.ipvs import Forwarding, Protocol, ServiceKey
from reconciler.model.kernel import LiveDest, LiveService

Run = Callable[[Awaitable[Any]], Any]

CREATED, UPDATED, UNCHANGED, DELETED = (
    WriteOutcome.CREATED,
    WriteOutcome.UPDATED,
    WriteOutcome.UNCHANGED,
    WriteOutcome.DELETED,
)


def tcp4(port: int = 80, address: str = "192.0.2.10") -> ServiceKey:
    return ServiceKey(Family.IPV4, Protocol.TCP, IPv4Address(address), port)


def key6(protocol: Protocol, port: int, address: str = "2001:db8::10") -> ServiceKey:
    return ServiceKey(Family.IPV6, protocol, IPv6Address(address), port)


def fwmark(mark: int, family: Family = Family.IPV4) -> ServiceKey:
    return ServiceKey(family, fwmark=mark)


def dest(service: ServiceKey, address: str, port: int = 8080, **kw: Any) -> LiveDest:
    return LiveDest(service=service, address=ip_address(address), port=port, **kw)


# One of each kind of service the adapter must round-trip exactly.
SERVICES = {
    "ipv4-tcp-wrr": LiveService(tcp4(), "wrr"),
    "ipv4-udp-sh-flags-ops": LiveService(
        ServiceKey(Family.IPV4, Protocol.UDP, IPv4Address("192.0.2.10"), 53),
        "sh",
        ("ops", "sh-fallback", "sh-port"),
    ),
    "ipv4-tcp-persistent-netmask": LiveService(
        tcp4(443), "rr", persistent=True, timeout=timedelta(seconds=50), netmask=24
    ),
    "ipv4-tcp-all-ports-persistent": LiveService(
        tcp4(0), "lc", persistent=True, timeout=timedelta(seconds=300), netmask=32
    ),
    "ipv6-tcp-wlc": LiveService(key6(Protocol.TCP, 80), "wlc", netmask=128),
    "ipv6-udp-mh-port-persistent": LiveService(
        key6(Protocol.UDP, 53),
        "mh",
        ("mh-fallback", "mh-port"),
        persistent=True,
        timeout=timedelta(seconds=60),
        netmask=64,
    ),
    "ipv6-sctp-rr": LiveService(key6(Protocol.SCTP, 9), "rr", netmask=128),
    "fwmark-ipv4": LiveService(fwmark(42), "lc"),
    "fwmark-ipv4-persistent": LiveService(
        fwmark(43), "rr", persistent=True, timeout=timedelta(seconds=30), netmask=24
    ),
    "fwmark-ipv6": LiveService(fwmark(42, Family.IPV6), "sed", netmask=128),
    "fwmark-ipv6-persistent": LiveService(
        fwmark(44, Family.IPV6), "rr", persistent=True, timeout=timedelta(seconds=30), netmask=96
    ),
}

pytestmark = pytest.mark.ipvs


@pytest.mark.parametrize("svc", SERVICES.values(), ids=SERVICES.keys())
def test_service_add_dump_delete_is_exact_and_idempotent(run: Run, svc: LiveService) -> None:
    async def scenario() -> None:
        async with Ipvs() as ipvs:
            assert await ipvs.add_service(svc) is CREATED
            assert await ipvs.services() == [svc]
            assert await ipvs.add_service(svc) is UNCHANGED
            assert await ipvs.delete_service(svc.service) is DELETED
            assert await ipvs.delete_service(svc.service) is UNCHANGED
            assert await ipvs.dump() == ([], [])
            assert ipvs.writes == 4

    run(scenario())


DEST_CASES = {
    "ipv4-nat": (SERVICES["ipv4-tcp-wrr"], dest(tcp4(), "198.51.100.2", weight=3)),
    "ipv4-dr-thresholds": (
        SERVICES["ipv4-tcp-wrr"],
        dest(
            tcp4(),
            "198.51.100.3",
            80,
            weight=0,
            forwarding=Forwarding.DR,
            upper_threshold=100,
            lower_threshold=50,
        ),
    ),
    "ipv4-tunnel": (
        SERVICES["ipv4-tcp-wrr"],
        dest(tcp4(), "203.0.113.4", 80, weight=65535, forwarding=Forwarding.TUNNEL),
    ),
    "ipv6-nat": (
        SERVICES["ipv6-tcp-wlc"],
        dest(key6(Protocol.TCP, 80), "2001:db8:1::2", 8080, weight=2),
    ),
    "ipv6-dr": (
        SERVICES["ipv6-udp-mh-port-persistent"],
        dest(key6(Protocol.UDP, 53), "2001:db8:1::3", 53, forwarding=Forwarding.DR),
    ),
    "fwmark-ipv4-dr": (
        SERVICES["fwmark-ipv4"],
        dest(fwmark(42), "198.51.100.5", 0, forwarding=Forwarding.DR),
    ),
    "fwmark-ipv6-tunnel": (
        SERVICES["fwmark-ipv6"],
        dest(fwmark(42, Family.IPV6), "2001:db8:1::5", 0, forwarding=Forwarding.TUNNEL),
    ),
}


@pytest.mark.parametrize(("svc", "rs"), DEST_CASES.values(), ids=DEST_CASES.keys())
def test_dest_add_edit_delete_is_exact_and_idempotent(
    run: Run, svc: LiveService, rs: LiveDest
) -> None:
    edits = [
        dataclasses.replace(rs, weight=rs.weight + 7 if rs.weight < 65000 else 1),
        dataclasses.replace(rs, upper_threshold=20, lower_threshold=10),
        dataclasses.replace(rs, upper_threshold=0, lower_threshold=0),
        *(
            dataclasses.replace(rs, forwarding=f)
            for f in (Forwarding.TUNNEL, Forwarding.DR, Forwarding.NAT)
            if f is not rs.forwarding
        ),
        rs,
    ]

    async def scenario() -> None:
        async with Ipvs() as ipvs:
            assert await ipvs.add_service(svc) is CREATED
            assert await ipvs.add_dest(rs) is CREATED
            assert await ipvs.dump() == ([svc], [rs])
            assert await ipvs.add_dest(rs) is UNCHANGED
            for edited in edits:
                assert await ipvs.edit_dest(edited) is UPDATED
                assert await ipvs.dests(svc.service) == [edited], edited
            assert await ipvs.delete_dest(rs.service, rs.address, rs.port) is DELETED
            assert await ipvs.delete_dest(rs.service, rs.address, rs.port) is UNCHANGED
            assert await ipvs.dests(svc.service) == []
            assert await ipvs.delete_service(svc.service) is DELETED

    run(scenario())


def test_edit_dest_in_place_keeps_its_place_in_the_kernel_list(run: Run) -> None:
    """SET_DEST, not DEL + NEW: a re-added dest would jump to the head of the kernel's list
    (with live connections the kernel even reuses the old dest from its trash, counters
    and all, so only the order gives a delete + add away)."""
    svc = SERVICES["ipv4-tcp-wrr"]
    dests = [dest(svc.service, f"198.51.100.{i}", weight=i) for i in (2, 3, 4)]

    async def scenario() -> None:
        async with Ipvs() as ipvs:
            await ipvs.add_service(svc)
            for d in dests:
                await ipvs.add_dest(d)
            order = dest_order()
            # Newest first: 198.51.100.4, .3, .2 (hex in /proc/net/ip_vs).
            assert order == ["C6336404:1F90", "C6336403:1F90", "C6336402:1F90"]
            for d in reversed(dests):  # kernel order: every one but the first could move
                before = ipvs.writes
                await ipvs.edit_dest(dataclasses.replace(d, weight=d.weight + 10))
                await ipvs.edit_dest(dataclasses.replace(d, forwarding=Forwarding.DR))
                assert ipvs.writes == before + 2
                assert dest_order() == order
            await ipvs.delete_service(svc.service)

    run(scenario())


def test_writes_to_a_missing_object(run: Run) -> None:
    svc = SERVICES["ipv4-tcp-wrr"]
    rs = dest(svc.service, "198.51.100.2")

    async def scenario() -> None:
        async with Ipvs() as ipvs:
            # No service: dest writes that need it fail, deletes are already done.
            with pytest.raises(IpvsNotFound):
                await ipvs.add_dest(rs)
            with pytest.raises(IpvsNotFound):
                await ipvs.edit_service(svc)
            assert await ipvs.delete_dest(rs.service, rs.address, rs.port) is UNCHANGED
            assert await ipvs.dests(svc.service) == []
            # A service without that dest: editing the dest fails.
            await ipvs.add_service(svc)
            with pytest.raises(IpvsNotFound) as caught:
                await ipvs.edit_dest(rs)
            assert "198.51.100.2:8080" in str(caught.value)
            await ipvs.delete_service(svc.service)

    run(scenario())


def test_unknown_scheduler_is_an_error_that_names_the_service(run: Run) -> None:
    svc = LiveService(tcp4(), "nosuchsched")

    async def scenario() -> None:
        async with Ipvs() as ipvs:
            with pytest.raises(
                IpvsError, match=r"add tcp/192\.0\.2\.10:80 \(no scheduler 'nosuch"
            ) as e:
                await ipvs.add_service(svc)
            assert not issubclass(e.type, IpvsNotFound)  # the service is not what is missing
            assert await ipvs.services() == []
            await ipvs.add_service(LiveService(tcp4(), "rr"))
            with pytest.raises(
                IpvsError, match=r"edit .*\(no scheduler 'nosuchsched' in this kernel\): ENOENT"
            ):
                await ipvs.edit_service(svc)
            await ipvs.delete_service(svc.service)

    run(scenario())


def test_edit_service_in_place_keeps_its_dests(run: Run) -> None:
    """Every service setting changes through SET_SERVICE; a delete + add would drop the dests."""
    key = tcp4()
    base = LiveService(key, "wrr")
    steps = [
        dataclasses.replace(base, scheduler="rr"),
        dataclasses.replace(base, scheduler="sh", scheduler_flags=("sh-fallback",)),
        dataclasses.replace(base, scheduler="sh", scheduler_flags=("sh-fallback", "sh-port")),
        dataclasses.replace(base, scheduler="mh", scheduler_flags=("mh-port",)),
        dataclasses.replace(base, persistent=True, timeout=timedelta(seconds=300)),
        dataclasses.replace(base, persistent=True, timeout=timedelta(seconds=30), netmask=24),
        dataclasses.replace(base, persistent=True, timeout=timedelta(seconds=30), netmask=16),
        base,
    ]
    dests = [dest(key, "198.51.100.2", weight=1), dest(key, "198.51.100.3", weight=3)]

    async def scenario() -> None:
        async with Ipvs() as ipvs:
            await ipvs.add_service(base)
            for d in dests:
                await ipvs.add_dest(d)
            writes = ipvs.writes
            for svc in steps:
                assert await ipvs.edit_service(svc) is UPDATED
                assert await ipvs.dump() == ([svc], dests), svc
            assert ipvs.writes == writes + len(steps)  # one request per edit
            await ipvs.delete_service(key)

    run(scenario())


def test_edit_ipv6_and_fwmark_services_in_place(run: Run) -> None:
    svc6 = SERVICES["ipv6-tcp-wlc"]
    fw6 = SERVICES["fwmark-ipv6"]
    rs = dest(svc6.service, "2001:db8:1::2", 8080)
    edits = [
        dataclasses.replace(svc6, persistent=True, timeout=timedelta(seconds=90), netmask=48),
        dataclasses.replace(fw6, scheduler="rr", persistent=True, timeout=timedelta(seconds=9)),
    ]

    async def scenario() -> None:
        async with Ipvs() as ipvs:
            for svc in (svc6, fw6):
                await ipvs.add_service(svc)
            await ipvs.add_dest(rs)
            for svc in edits:
                await ipvs.edit_service(svc)
            assert await ipvs.dump() == (sorted(edits, key=lambda s: s.key), [rs])
            for svc in (svc6, fw6):
                await ipvs.delete_service(svc.service)

    run(scenario())


def test_dump_matches_ipvsadm_and_shows_foreign_services(run: Run) -> None:
    """Ours through the adapter, a foreign one through ipvsadm: both tools see the same table."""
    ours = [
        SERVICES[name] for name in ("ipv4-tcp-persistent-netmask", "ipv6-udp-mh-port-persistent")
    ]
    ours_dests = [
        dest(ours[0].service, "198.51.100.2", 443, weight=5, upper_threshold=9, lower_threshold=3),
        dest(ours[1].service, "2001:db8:1::3", 53, forwarding=Forwarding.DR),
    ]
    foreign = LiveService(
        ServiceKey(Family.IPV4, Protocol.UDP, IPv4Address("203.0.113.5"), 53),
        "sh",
        ("sh-port",),
        persistent=True,
        timeout=timedelta(seconds=60),
        netmask=32,
    )
    foreign_dest = dest(foreign.service, "198.51.100.9", 53, weight=4, forwarding=Forwarding.TUNNEL)

    async def scenario() -> tuple[list[LiveService], list[LiveDest]]:
        async with Ipvs() as ipvs:
            for svc in ours:
                await ipvs.add_service(svc)
            for d in ours_dests:
                await ipvs.add_dest(d)
            ipvsadm("-A", "-u", "203.0.113.5:53", "-s", "sh", "-b", "sh-port", "-p", "60")
            ipvsadm("-a", "-u", "203.0.113.5:53", "-r", "198.51.100.9:53", "-i", "-w", "4")
            return await ipvs.dump()

    try:
        services, dests = run(scenario())
        assert services == sorted([*ours, foreign], key=lambda s: s.key)
        assert dests == sorted([*ours_dests, foreign_dest], key=lambda d: d.key)
        assert parse_ipvsadm() == (services, dests)
    finally:
        ipvsadm("-C")


def test_named_network_namespace(run: Run) -> None:
    """`Ipvs(netns=NAME)` programs that namespace's table, not the caller's."""
    name = "rclipvstest"
    subprocess.run(["ip", "netns", "add", name], check=True)
    svc = SERVICES["ipv4-tcp-wrr"]

    async def scenario() -> None:
        async with Ipvs(netns=name) as there, Ipvs() as here:
            assert await there.add_service(svc) is CREATED
            assert await there.services() == [svc]
            assert await here.services() == []
            assert await there.delete_service(svc.service) is DELETED

    try:
        run(scenario())
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
