"""Helpers shared by the tests: VRRP instance parameters, received adverts and started
state machines, each valid as built, so that a test overrides only the field it is
about; fakes of the VRRP driver's socket and announcer seams; process look-ups.

Imported as ``from helpers import ...``: pytest puts tests/ on sys.path for the
conftest.py beside this file (the way tests/ipvs imports ipvs_helpers).
"""

from __future__ import annotations

import os
import socket
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from reconciler.adapters.vrrp_socket import Datagram
from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import load_text
from reconciler.vrrp.events import AdvertReceived, Startup, TimerExpired
from reconciler.vrrp.fsm import VirtualRouter
from reconciler.vrrp.packet import (
    VRRP_MULTICAST_IPV4,
    Advert,
    AuthType,
    ChecksumVerdict,
    ReceivedAdvert,
    VrrpVersion,
)
from reconciler.vrrp.params import InstanceParams
from reconciler.vrrp.states import State, TimerKind

ME = IPv4Address("192.0.2.11")  # the instance's primary address
PEER = IPv4Address("192.0.2.12")  # a higher address than ME
VIPS = (IPv4Address("192.0.2.100"),)


def vrrp_params(**overrides: Any) -> InstanceParams:
    """Instance `web`, VRID 51, priority 100, a 1 s advert interval, one VIP, at ME."""
    base: dict[str, Any] = {
        "name": "web",
        "vrid": 51,
        "priority": 100,
        "advert_interval_cs": 100,
        "vips": VIPS,
        "primary_address": ME,
    }
    base.update(overrides)
    return InstanceParams(**base)


def received_advert(
    priority: int,
    source: IPv4Address | IPv6Address = PEER,
    *,
    interval_cs: int = 100,
    vips: tuple[IPv4Address, ...] | tuple[IPv6Address, ...] = VIPS,
    hop_limit: int = 255,
    destination: IPv4Address | IPv6Address = VRRP_MULTICAST_IPV4,
    vrid: int = 51,
    version: VrrpVersion = VrrpVersion.V3,
    auth_type: AuthType = AuthType.NONE,
    auth_data: bytes = b"",
    checksum: ChecksumVerdict = ChecksumVerdict.VALID,
) -> AdvertReceived:
    """An advert from `source` as the socket hands it over: by default one a `web`
    instance (vrrp_params()) accepts, sent to the IPv4 multicast group."""
    return AdvertReceived(
        ReceivedAdvert(
            Advert(version, vrid, priority, interval_cs, vips, auth_type, auth_data),
            source,
            destination,
            hop_limit,
            checksum,
        )
    )


def started_backup(p: InstanceParams | None = None, now: float = 0.0) -> VirtualRouter:
    """A state machine started at `now`: Backup, its Master_Down timer running."""
    fsm = VirtualRouter(p or vrrp_params())
    fsm.handle(Startup(), now)
    assert fsm.state is State.BACKUP
    return fsm


def started_master(p: InstanceParams | None = None) -> VirtualRouter:
    """A state machine that became Master when its Master_Down timer expired."""
    fsm = started_backup(p)
    fsm.handle(TimerExpired(TimerKind.MASTER_DOWN), 10.0)
    assert fsm.state is State.MASTER
    return fsm


class FakeSocket:
    """The VrrpSocket seam on eth0, IPv4: `waiting` holds datagrams that have arrived and
    not been read yet; what is sent is kept in `sent`."""

    interface = "eth0"
    family = 4

    def __init__(self) -> None:
        self._fd_owner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never readable
        self.waiting: list[Datagram] = []
        self.sent: list[bytes] = []

    def fileno(self) -> int:
        return self._fd_owner.fileno()

    def receive(self, limit: int = 256) -> list[Datagram]:
        batch, self.waiting = self.waiting[:limit], self.waiting[limit:]
        return batch

    def send(self, payload: bytes, source: object, destination: object) -> None:
        self.sent.append(payload)

    def close(self) -> None:
        self._fd_owner.close()


class FakeAnnouncer:
    """Gratuitous ARP / unsolicited NA: announces nothing."""

    def announce(self, vips: object) -> None:
        pass


def marker_alive(marker: str) -> bool:
    """Whether a process whose command line holds `marker` runs (any namespace, any user)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
            except OSError:
                pass
    return False


# --- config tests: a two-node cluster head, and errors as LINE:COL: message ------------

TWO_NODES_HEAD = """apiVersion: reconciler/v1
kind: Cluster
name: t
nodes:
  a: {address: 192.0.2.11, interface: eth0}
  b: {address: 192.0.2.12, interface: eth0}
"""


def located_errors(body: str, head: str = TWO_NODES_HEAD) -> list[str]:
    """The errors of `head + body` as "LINE:COL: message"; [] when it is valid."""
    try:
        load_text(head + body, "t.yaml")
    except InvalidConfig as exc:
        return [f"{d.location.line}:{d.location.column}: {d.message}" for d in exc.diagnostics]
    return []
