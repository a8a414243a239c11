"""The driver and its worker dispatch by type: an unknown action or work item is a bug,
and it raises, naming it, instead of being queued or dropped unseen."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler.adapters.vrrp_socket import Datagram
from reconciler.config.load import load_text
from reconciler.model.vrrp import VrrpInstance
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.runtime.vrrp_driver import InstanceDriver, SocketMux, instance_params
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml
from reconciler.vrrp.events import Startup
from reconciler.vrrp.states import State

ME = IPv4Address("192.0.2.11")


class FakeSocket:
    interface = "eth0"
    family = 4

    def __init__(self) -> None:
        self._fd_owner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never readable

    def fileno(self) -> int:
        return self._fd_owner.fileno()

    def receive(self, limit: int = 256) -> list[Datagram]:
        return []

    def send(self, payload: bytes, source: object, destination: object) -> None:
        pass

    def close(self) -> None:
        self._fd_owner.close()


class FakeAnnouncer:
    def announce(self, vips: object) -> None:
        pass


@dataclass(frozen=True)
class Bogus:
    """Neither an action of the machine nor a work item of the worker."""


def _spec() -> VrrpInstance:
    hosts = (SimpleNamespace(name="h1", ipv4=str(ME), ipv6="2001:db8::11"),)
    inst = Instance("web", 51, (IPv4Interface("192.0.2.100/32"),), {"h1": 150})
    text = cluster_yaml(hosts, (inst,))  # type: ignore[arg-type]  # names and addresses
    return load_text(text, "c.yaml").cluster.for_node("h1").instances[0]


async def _with_driver(tmp: Path, body: Callable[[InstanceDriver], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    spec = _spec()
    mux = SocketMux(FakeSocket(), loop)  # type: ignore[arg-type]
    driver = InstanceDriver(
        spec,
        instance_params(spec, ME),
        mux,
        None,  # type: ignore[arg-type]  # no address work is done
        FakeAnnouncer(),  # type: ignore[arg-type]
        OwnershipStore(tmp),
        loop,
    )
    mux.attach(driver)
    try:
        await body(driver)
    finally:
        driver._timers.clear()
        await driver._worker.stop(timeout_s=1)
        mux.close()


def test_an_unknown_action_raises_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(driver: InstanceDriver) -> None:
        monkeypatch.setattr(type(driver.machine), "handle", lambda self, event, now: [Bogus()])
        with pytest.raises(TypeError, match=r"unknown VRRP action: Bogus\(\)"):
            driver.feed(Startup())
        assert driver.state is State.INITIALIZE

    asyncio.run(_with_driver(tmp_path, body))


def test_an_unknown_work_item_raises_naming_it(tmp_path: Path) -> None:
    async def body(driver: InstanceDriver) -> None:
        with pytest.raises(TypeError, match=r"unknown VIP work item: Bogus\(\)"):
            await driver._worker._do(Bogus())  # type: ignore[arg-type]

    asyncio.run(_with_driver(tmp_path, body))
