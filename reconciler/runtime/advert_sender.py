"""Sends one VRRP instance's adverts, encoded once per advert and reused."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from reconciler.adapters.error_tally import ErrorTally
from reconciler.adapters.vrrp_socket import VrrpSocket
from reconciler.vrrp import actions as act
from reconciler.vrrp.packet import Advert, encode_advert, multicast_group
from reconciler.vrrp.params import InstanceParams

IPAddr = IPv4Address | IPv6Address


class AdvertSender:
    """Encodes and sends ``SendAdvert`` to the group or to every unicast peer.

    Encoded adverts are kept by (priority, old checksum): what an instance sends rarely
    changes. Send failures are counted here and tallied by kind (``tally``).
    """

    def __init__(
        self, sock: VrrpSocket, params: InstanceParams, interface: str, tally: ErrorTally
    ) -> None:
        self._sock = sock
        self._params = params
        self._interface = interface
        self._tally = tally
        self._packets: dict[tuple[int, bool], tuple[Advert, list[tuple[bytes, IPAddr]]]] = {}

    def reconfigure(self, params: InstanceParams) -> None:
        """New parameters: the next advert is encoded from them."""
        self._params = params
        self._packets.clear()

    def send(self, a: act.SendAdvert) -> None:
        source = self._params.primary_address
        key = (a.advert.priority, a.old_unicast_checksum)
        cached = self._packets.get(key)
        if cached is None or cached[0] is not a.advert:
            destinations: tuple[IPAddr, ...] = self._params.unicast_peers or (
                multicast_group(source),
            )
            packets = [
                (
                    encode_advert(
                        a.advert, source, dst, old_unicast_checksum=a.old_unicast_checksum
                    ),
                    dst,
                )
                for dst in destinations
            ]
            cached = self._packets[key] = (a.advert, packets)
        for payload, dst in cached[1]:
            try:
                self._sock.send(payload, source, dst)
            except OSError as exc:
                # A link going down makes sends fail (LinkDown handling follows), and so
                # does a firewall or a full queue: for every advert of every instance.
                self._tally.record(exc, self._interface)
