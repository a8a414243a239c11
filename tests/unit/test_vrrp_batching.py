"""Batched socket reads and the Master_Down_Timer, on a real event loop.

The socket is the project's own seam (``VrrpSocket``): a fake holds datagrams that have
"arrived" but that the mux has not read yet, as happens while it batches reads. The
Master_Down_Timer must read them before it fires: an advert waiting there restarts it.
"""

from __future__ import annotations

import asyncio
import struct
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from types import SimpleNamespace

from helpers import FakeAnnouncer, FakeSocket

from reconciler.adapters.outcome import WriteOutcome
from reconciler.adapters.vrrp_socket import Datagram
from reconciler.config.load import load_text
from reconciler.model.kernel import LiveAddress
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.runtime.vrrp_driver import InstanceDriver, SocketMux, instance_params
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml
from reconciler.vrrp.packet import encode_advert, multicast_group
from reconciler.vrrp.states import State

MASTER = IPv4Address("192.0.2.11")
ME = IPv4Address("192.0.2.12")
GROUP = multicast_group(MASTER)
MDI_100 = 0.3 + 0.3 * 156 / 256  # Master_Down_Interval at priority 100, 100 ms adverts


class FakeNetlink:
    def begin_add(self, a: LiveAddress) -> None:
        return None  # no fast path: add_address is used

    async def add_address(self, a: LiveAddress) -> WriteOutcome:
        return WriteOutcome.CREATED

    async def delete_address(self, a: LiveAddress) -> WriteOutcome:
        return WriteOutcome.DELETED


def _ip_packet(payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0xC0,
        20 + len(payload),
        7,
        0x4000,
        255,
        112,
        0,
        MASTER.packed,
        GROUP.packed,
    )
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + payload


async def _run(advert_waiting: bool, tmp: Path) -> State:
    hosts = tuple(
        SimpleNamespace(name=f"h{i}", ipv4=f"192.0.2.1{i}", ipv6=f"2001:db8::1{i}") for i in (1, 2)
    )
    inst = Instance(
        "web", 51, (IPv4Interface("192.0.2.100/32"),), {"h1": 150, "h2": 100}, advert_interval_s=0.1
    )
    text = cluster_yaml(hosts, (inst,))  # type: ignore[arg-type]  # hosts: name and addresses
    cluster = load_text(text, "c.yaml").cluster
    spec = cluster.for_node("h2").instances[0]
    master_spec = cluster.for_node("h1").instances[0]
    loop = asyncio.get_running_loop()
    sock = FakeSocket()
    mux = SocketMux(sock, loop)  # type: ignore[arg-type]
    driver = InstanceDriver(
        spec,
        instance_params(spec, ME),
        mux,
        FakeNetlink(),  # type: ignore[arg-type]
        FakeAnnouncer(),  # type: ignore[arg-type]
        OwnershipStore(tmp),
        loop,
    )
    mux.attach(driver)
    t0 = loop.time()
    driver.start()
    assert driver.state is State.BACKUP
    if advert_waiting:
        # The master's advert arrived 50 ms before the Master_Down_Timer runs out and is
        # still unread in the socket when the timer's moment comes.
        advert = instance_params(master_spec, MASTER).advert(150)
        data = _ip_packet(encode_advert(advert, MASTER, GROUP))
        sock.waiting.append(Datagram(data, None, None, None, t0 + MDI_100 - 0.05))
    await asyncio.sleep(MDI_100 + 0.05)
    state = driver.state
    await driver.stop(timeout_s=1)
    mux.close()
    return state


def test_an_unread_advert_restarts_the_master_down_timer(tmp_path: Path) -> None:
    assert asyncio.run(_run(True, tmp_path)) is State.BACKUP


def test_without_it_the_backup_takes_over(tmp_path: Path) -> None:
    assert asyncio.run(_run(False, tmp_path)) is State.MASTER
