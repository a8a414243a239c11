"""The address adapter against real kernels' rtnetlink, inside a lab namespace."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from reconciler.adapters.netlink import InterfaceMissing, Netlink, watch
from reconciler.adapters.outcome import WriteOutcome
from reconciler.model.kernel import LiveAddress
from reconciler.testing.netlab import Lab

pytestmark = pytest.mark.root


def test_addresses_are_added_listed_and_removed_idempotently(lab: Lab) -> None:
    host = lab.host(1)
    vip4 = LiveAddress("eth0", ipaddress.ip_interface("192.0.2.200/24"), label="eth0:vip")
    vip6 = LiveAddress("eth0", ipaddress.ip_interface("2001:db8::200/64"))

    async def scenario() -> None:
        async with Netlink(host.netns) as nl:
            assert await nl.add_address(vip4) is WriteOutcome.CREATED
            assert await nl.add_address(vip4) is WriteOutcome.UNCHANGED
            assert await nl.add_address(vip6) is WriteOutcome.CREATED
            live = await nl.addresses()
            assert vip4 in live and vip6 in live
            # The host's own addresses are listed too, unlabelled.
            assert LiveAddress("eth0", ipaddress.ip_interface(f"{host.ipv4}/24")) in live
            assert await nl.delete_address(vip4) is WriteOutcome.DELETED
            assert await nl.delete_address(vip4) is WriteOutcome.UNCHANGED
            assert vip4 not in await nl.addresses()
            with pytest.raises(InterfaceMissing):
                await nl.add_address(LiveAddress("nope0", vip4.address))
            links = await nl.links()
            assert links["eth0"].up and links["eth0"].running

    asyncio.run(scenario())
    # What `ip` sees agrees with the adapter.
    out = host.ip("-6", "addr", "show", "dev", "eth0").stdout
    assert "2001:db8::200/64" in out
    assert "192.0.2.200" not in host.ip("-4", "addr", "show", "dev", "eth0").stdout
    assert host.watcher.is_present(ipaddress.ip_interface("2001:db8::200/64"))


def test_watch_hints_on_address_and_link_changes(lab: Lab) -> None:
    host = lab.host(1)

    async def scenario() -> list[str]:
        kinds: list[str] = []

        async def collect() -> None:
            async for hint in watch(host.netns):
                kinds.append(hint.kind)
                if {"address", "link"} <= set(kinds):
                    return

        task = asyncio.create_task(collect())
        await asyncio.sleep(0.2)
        await asyncio.to_thread(host.ip, "addr", "add", "192.0.2.201/24", "dev", "eth0")
        await asyncio.to_thread(host.link_down, "eth0")
        await asyncio.wait_for(task, 5)
        return kinds

    kinds = asyncio.run(scenario())
    assert "address" in kinds and "link" in kinds
    host.link_up("eth0")
