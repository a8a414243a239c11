"""The address adapter against real kernels' rtnetlink, inside a lab namespace."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
import textwrap

import pytest

from reconciler.adapters.netlink import AddressAdder, InterfaceMissing, Netlink, watch
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
                kinds.append(hint.kind.value)
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


FAST_ADD = textwrap.dedent(
    """
    import asyncio, ipaddress, json
    from reconciler.adapters import netlink
    from reconciler.adapters.netlink import Netlink
    from reconciler.model.kernel import LiveAddress

    def live(text, label=None):
        return LiveAddress("eth0", ipaddress.ip_interface(text), label=label)

    async def main():
        out = {}
        async with Netlink() as nl:
            fast4, fast6 = live("192.0.2.201/24", "eth0:fast"), live("2001:db8::201/64")
            out["cold"] = nl.begin_add(fast4) is None  # index not known yet
            await nl.warm("eth0")
            for a in (fast4, fast6):
                started = nl.begin_add(a)  # sent before this returns
                out[str(a.address)] = [
                    (await nl.finish_add(a, started)).value,
                    (await nl.finish_add(a, nl.begin_add(a))).value,
                ]
            # Prepared: the takeover's call only sends what was encoded before.
            prepared = live("192.0.2.204/24")
            nl.prepare_add(prepared)
            encode, netlink._encode_newaddr = netlink._encode_newaddr, None
            started = nl.begin_add(prepared)
            netlink._encode_newaddr = encode
            out["prepared"] = (await nl.finish_add(prepared, started)).value
            # A mass takeover: at most MAX_IN_FLIGHT wait for their answers at once.
            many = [live(f"198.51.100.{i}/24") for i in range(1, 81)]
            started = [nl.begin_add(a) for a in many]
            out["in_flight"] = sum(1 for s in started if s is not None)
            out["many"] = sorted({
                (await (nl.finish_add(a, s) if s else nl.add_address(a))).value
                for a, s in zip(many, started)
            })
            await nl.add_address(live("192.0.2.202/24", "eth0:slow"))
            await nl.add_address(live("2001:db8::202/64"))
            gone = LiveAddress("eth0", ipaddress.ip_interface("192.0.2.203/24"))
            nl._indexes["eth0"] = 99999  # the interface was re-created: a stale index
            out["stale"] = (await nl.finish_add(gone, nl.begin_add(gone))).value
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_a_takeover_add_is_sent_at_once_and_equals_the_async_add(lab: Lab) -> None:
    """``begin_add`` sends the request before it returns and gives the same outcomes and
    the same address (flags, scope, label, broadcast) as ``add_address``."""
    host = lab.host(1)
    out = json.loads(host.run([sys.executable, "-c", FAST_ADD], timeout=30).stdout)
    assert out["cold"] is True
    assert out["192.0.2.201/24"] == ["created", "unchanged"]
    assert out["2001:db8::201/64"] == ["created", "unchanged"]
    assert out["stale"] == "created"  # fell back to a fresh lookup
    assert out["prepared"] == "created"
    assert out["in_flight"] == AddressAdder.MAX_IN_FLIGHT
    assert out["many"] == ["created"]
    shown = json.loads(host.ip("-j", "addr", "show", "dev", "eth0").stdout)[0]["addr_info"]
    by_local = {a["local"]: a for a in shown}
    skip = {"local", "label", "address"}

    def same(a: dict[str, object], b: dict[str, object]) -> None:
        assert {k: v for k, v in a.items() if k not in skip} == {
            k: v for k, v in b.items() if k not in skip
        }

    same(by_local["192.0.2.201"], by_local["192.0.2.202"])
    same(by_local["2001:db8::201"], by_local["2001:db8::202"])
    assert by_local["192.0.2.201"]["label"] == "eth0:fast"
    assert "192.0.2.203" in by_local
