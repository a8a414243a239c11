"""VRRP advertisement codec: bytes <-> :class:`Advert` (RFC 5798 v3, RFC 3768 v2).

One piece on purpose: the wire formats, their types and both directions of the codec
are read together (the decode hot path fills ``Advert``'s slots directly, past its checks),
and the RFCs' diagrams below take 50 of the lines.

Pure and struct-based. Decoding happens once, at the edge: the result is a frozen dataclass
with typed, host-order fields, and every way a packet can be wrong surfaces as a single
exception type, :class:`MalformedAdvert`, whose ``reason`` comes from a bounded enum (safe
to use as a metric label).

VRRPv3 (RFC 5798 §5.1), carried in IPv4 (protocol 112) or IPv6 (next header 112)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |(rsvd) |     Max Adver Int     |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                                                               |
    +                                                               +
    |                       IPvX Address(es)                        |
    +                                                               +
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

    Max Adver Int: 12 bits, centiseconds. Checksum (§5.2.8): Internet checksum over an
    IPv4 pseudo-header (src, dst, 0, 112, VRRP length) or IPv6 pseudo-header (src, dst,
    VRRP length as u32, 3 zero bytes, next header 112) followed by the VRRP message.

VRRPv2 (RFC 3768 §5.1), IPv4 only::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Auth Type   |   Adver Int   |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         IP Address (1)                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                            .........                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                     Authentication Data (1)                   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                     Authentication Data (2)                   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

    Adver Int: 8 bits, seconds. Checksum: plain RFC 1071 over the whole message including
    the 8 authentication bytes, no pseudo-header.

One interval representation is used for both versions: ``advert_interval_cs``
(centiseconds), so the state machine never cares which version is on the wire. A v2
interval is whole seconds on the wire and must therefore be a multiple of 100 cs.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

IPPROTO_VRRP = 112
VRRP_TTL = 255  # RFC 5798 §5.1.1.3 / §5.1.2.3: sent with TTL / Hop Limit 255
VRRP_TOS = 0xC0  # keepalived sends "internet network control" (measured on the wire)
VRRP_MULTICAST_IPV4 = IPv4Address("224.0.0.18")  # RFC 5798 §5.1.1.2
VRRP_MULTICAST_IPV6 = IPv6Address("ff02::12")  # RFC 5798 §5.1.2.2
ADVERTISEMENT_TYPE = 1  # RFC 5798 §5.2.2: the only defined type

V3_MAX_ADVERT_INTERVAL_CS = 0x0FFF  # 12-bit field, RFC 5798 §5.2.7
V2_MAX_ADVERT_INTERVAL_S = 0xFF  # 8-bit field, RFC 3768 §5.3.7
V2_AUTH_DATA_LEN = 8  # RFC 3768 §5.3.10 (two 32-bit words)
MAX_ADDRESSES = 0xFF  # 8-bit count field

IPAddress = IPv4Address | IPv6Address

_HEADER = struct.Struct("!BBBBHH")  # vers/type, vrid, prio, count, (rsvd|int) or (auth,int), csum
_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_IPV4_PSEUDO = struct.Struct("!4s4sBBH")
_IPV6_PSEUDO = struct.Struct("!16s16sI3xB")
_U16 = struct.Struct("!H")


class VrrpVersion(enum.IntEnum):
    V2 = 2  # RFC 3768
    V3 = 3  # RFC 5798


class AuthType(enum.IntEnum):
    """VRRPv2 authentication types supported here (RFC 2338 §5.3.6; keepalived ``auth_type``).

    RFC 3768 deprecated authentication; keepalived still speaks simple text ("PASS").
    IPsec AH (type 2) changes the IP protocol to 51 and is not supported.
    """

    NONE = 0
    SIMPLE_TEXT = 1


class MalformedReason(enum.Enum):
    """Why a packet could not be decoded. Bounded: usable as a metric label."""

    TRUNCATED = "truncated"  # shorter than a fixed header or than its IP total length says
    BAD_IP_HEADER = "bad_ip_header"  # not IPv4, wrong protocol, fragment, bad header checksum
    BAD_LENGTH = "bad_length"  # IPv4 total length smaller than its own header
    BAD_ADDRESS_FAMILY = "bad_address_family"  # v2 over IPv6, mixed src/dst families
    BAD_VERSION = "bad_version"  # version nibble neither 2 nor 3
    BAD_TYPE = "bad_type"  # type nibble is not 1 (ADVERTISEMENT)
    BAD_VRID = "bad_vrid"  # VRID 0 (RFC 5798 §5.2.3: 1-255)
    BAD_INTERVAL = "bad_interval"  # advertisement interval 0
    BAD_AUTH_TYPE = "bad_auth_type"  # v2 auth type other than 0 or 1
    BAD_ADDR_COUNT = "bad_addr_count"  # count field disagrees with the message length
    BAD_CHECKSUM = "bad_checksum"


class MalformedAdvert(ValueError):
    """The one exception decoding raises. ``reason`` is a :class:`MalformedReason`."""

    def __init__(self, reason: MalformedReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class ChecksumVerdict(enum.Enum):
    """How the checksum of a decoded advert verified."""

    VALID = "valid"  # RFC checksum (v2 plain; v3 pseudo-header with the actual destination)
    # v3 unicast advert that only verifies with the multicast group as pseudo-header
    # destination: keepalived before 1.3.6, or `old_unicast_checksum` (reference §3c).
    VALID_OLD_UNICAST = "valid_old_unicast"
    NOT_VERIFIED = "not_verified"  # decoded with verify_checksum=False


@dataclass(frozen=True, slots=True)
class Advert:
    """One VRRP ADVERTISEMENT, version independent, in host order.

    ``advert_interval_cs`` is RFC 5798's Max Adver Int (v3, centiseconds) or RFC 3768's
    Adver Int (v2, seconds on the wire) expressed in centiseconds.
    ``auth_data`` is the 8 raw v2 authentication bytes (a simple-text password is
    zero-padded to 8 bytes here); it is empty for v3.
    """

    version: VrrpVersion
    vrid: int
    priority: int
    advert_interval_cs: int
    addresses: tuple[IPv4Address, ...] | tuple[IPv6Address, ...] = ()
    auth_type: AuthType = AuthType.NONE
    auth_data: bytes = b""

    def __post_init__(self) -> None:
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid {self.vrid} outside 1..255")
        if not 0 <= self.priority <= 255:
            raise ValueError(f"priority {self.priority} outside 0..255")
        if len(self.addresses) > MAX_ADDRESSES:
            raise ValueError(f"{len(self.addresses)} addresses, at most {MAX_ADDRESSES}")
        if self.addresses:
            kind = type(self.addresses[0])
            if kind not in (IPv4Address, IPv6Address) or any(
                type(a) is not kind for a in self.addresses
            ):
                raise ValueError("addresses must all be IPv4Address or all IPv6Address")
        if self.version is VrrpVersion.V3:
            if not 1 <= self.advert_interval_cs <= V3_MAX_ADVERT_INTERVAL_CS:
                raise ValueError(
                    f"v3 advert interval {self.advert_interval_cs} cs outside "
                    f"1..{V3_MAX_ADVERT_INTERVAL_CS}"
                )
            if self.auth_type is not AuthType.NONE or self.auth_data:
                raise ValueError("VRRPv3 has no authentication (RFC 5798 §9)")
        elif self.version is VrrpVersion.V2:
            seconds, rest = divmod(self.advert_interval_cs, 100)
            if rest or not 1 <= seconds <= V2_MAX_ADVERT_INTERVAL_S:
                raise ValueError(
                    f"v2 advert interval {self.advert_interval_cs} cs is not 1..255 whole seconds"
                )
            if self.addresses and isinstance(self.addresses[0], IPv6Address):
                raise ValueError("VRRPv2 carries IPv4 addresses only (RFC 3768)")
            if len(self.auth_data) > V2_AUTH_DATA_LEN:
                raise ValueError(f"v2 auth data longer than {V2_AUTH_DATA_LEN} bytes")
            if len(self.auth_data) < V2_AUTH_DATA_LEN:
                object.__setattr__(self, "auth_data", self.auth_data.ljust(V2_AUTH_DATA_LEN, b"\0"))
        else:  # pragma: no cover - enum exhausted
            raise ValueError(f"unknown VRRP version {self.version!r}")


@dataclass(frozen=True, slots=True)
class ReceivedAdvert:
    """A decoded advert plus what the IP layer said about it.

    ``hop_limit`` is the IPv4 TTL or IPv6 Hop Limit; checking it is 255 (RFC 5798 §7.1)
    is the receiver's job, not the codec's.
    """

    advert: Advert
    source: IPv4Address | IPv6Address
    destination: IPv4Address | IPv6Address
    hop_limit: int
    checksum: ChecksumVerdict


def multicast_group(address: IPAddress) -> IPAddress:
    """The VRRP multicast group of ``address``'s family (RFC 5798 §5.1.1.2, §5.1.2.2)."""
    return VRRP_MULTICAST_IPV4 if address.version == 4 else VRRP_MULTICAST_IPV6


# --- Internet checksum (RFC 1071) ---------------------------------------------------------
#
# The one's-complement sum of 16-bit big-endian words equals the message read as one big
# integer modulo 0xFFFF, because 2**16 ≡ 1 (mod 0xFFFF). Python does that reduction in C,
# which is several times faster than summing words in a loop. The two one's-complement
# zeros (0x0000 and 0xFFFF) are told apart by noting that a message with any non-zero byte
# sums to 0xFFFF, never to 0x0000; every VRRP message has a non-zero version byte.


def _ones_sum_mod(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    return int.from_bytes(data, "big") % 0xFFFF


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data`` (odd lengths padded with a zero byte)."""
    residue = _ones_sum_mod(data)
    if residue:
        return 0xFFFF - residue  # ~S, where the folded sum S equals the residue
    # S is 0xFFFF (checksum 0), unless every byte is zero (S = 0, checksum 0xFFFF)
    return 0 if any(data) else 0xFFFF


def _pseudo_header(source: IPAddress, destination: IPAddress, length: int) -> bytes:
    if source.version == 4:
        return _IPV4_PSEUDO.pack(source.packed, destination.packed, 0, IPPROTO_VRRP, length)
    return _IPV6_PSEUDO.pack(source.packed, destination.packed, length, IPPROTO_VRRP)


# --- Encoding -----------------------------------------------------------------------------


def encode_advert(
    advert: Advert,
    source: IPAddress | None = None,
    destination: IPAddress | None = None,
    *,
    old_unicast_checksum: bool = False,
) -> bytes:
    """The VRRP message (IP payload) for ``advert``, checksum filled in.

    v3 needs ``source`` and ``destination`` for the pseudo-header (RFC 5798 §5.2.8); for
    unicast, ``destination`` is the peer. ``old_unicast_checksum`` puts the multicast group
    in the pseudo-header instead, as keepalived < 1.3.6 and keepalived's
    ``old_unicast_checksum`` do. v2 has no pseudo-header and ignores all three.
    """
    count = len(advert.addresses)
    addresses = b"".join(a.packed for a in advert.addresses)
    if advert.version is VrrpVersion.V2:
        head = _HEADER.pack(
            0x20 | ADVERTISEMENT_TYPE,
            advert.vrid,
            advert.priority,
            count,
            (advert.auth_type << 8) | (advert.advert_interval_cs // 100),
            0,
        )
        message = head + addresses + advert.auth_data
        checksum = internet_checksum(message)
    else:
        if source is None or destination is None:
            raise ValueError("a VRRPv3 checksum needs the source and destination addresses")
        if source.version != destination.version or (
            advert.addresses and advert.addresses[0].version != source.version
        ):
            raise ValueError("source, destination and advertised addresses differ in family")
        head = _HEADER.pack(
            0x30 | ADVERTISEMENT_TYPE,
            advert.vrid,
            advert.priority,
            count,
            advert.advert_interval_cs,
            0,
        )
        message = head + addresses
        pseudo_destination = multicast_group(source) if old_unicast_checksum else destination
        checksum = internet_checksum(
            _pseudo_header(source, pseudo_destination, len(message)) + message
        )
    return message[:6] + _U16.pack(checksum) + message[8:]


def encode_ipv4_packet(
    advert: Advert,
    source: IPv4Address,
    destination: IPv4Address,
    *,
    ttl: int = VRRP_TTL,
    tos: int = VRRP_TOS,
    identification: int = 0,
    old_unicast_checksum: bool = False,
) -> bytes:
    """A complete IPv4 packet (20-byte header, DF clear) carrying ``advert``.

    For raw sockets with ``IP_HDRINCL``, as keepalived sends them (TOS 0xC0, TTL 255).
    """
    payload = encode_advert(advert, source, destination, old_unicast_checksum=old_unicast_checksum)
    header = _IPV4_HEADER.pack(
        0x45, tos, 20 + len(payload), identification, 0, ttl, IPPROTO_VRRP, 0,
        source.packed, destination.packed,
    )  # fmt: skip
    return header[:10] + _U16.pack(internet_checksum(header)) + header[12:] + payload


# --- Decoding -----------------------------------------------------------------------------
#
# The decode path is the receive hot path (one call per advert per instance). It validates
# every field itself, so the result objects are assembled without re-running
# ``Advert.__post_init__``: the slot descriptors are written directly, which is what the
# frozen dataclass ``__init__`` does too, minus the checks decode has already made.

_VERSIONS = {2: VrrpVersion.V2, 3: VrrpVersion.V3}
_AUTH_TYPES = {0: AuthType.NONE, 1: AuthType.SIMPLE_TEXT}
_GROUP4_PACKED = VRRP_MULTICAST_IPV4.packed
_GROUP6_PACKED = VRRP_MULTICAST_IPV6.packed
_new = object.__new__
_Setter = Callable[[object, object], None]


def _setter(cls: type, name: str) -> _Setter:
    """The slot descriptor's ``__set__`` for ``cls.name`` (bypasses frozen ``__setattr__``)."""
    setter: _Setter = vars(cls)[name].__set__
    return setter


_set_version = _setter(Advert, "version")
_set_vrid = _setter(Advert, "vrid")
_set_priority = _setter(Advert, "priority")
_set_interval = _setter(Advert, "advert_interval_cs")
_set_addresses = _setter(Advert, "addresses")
_set_auth_type = _setter(Advert, "auth_type")
_set_auth_data = _setter(Advert, "auth_data")
_set_advert = _setter(ReceivedAdvert, "advert")
_set_source = _setter(ReceivedAdvert, "source")
_set_destination = _setter(ReceivedAdvert, "destination")
_set_hop_limit = _setter(ReceivedAdvert, "hop_limit")
_set_checksum = _setter(ReceivedAdvert, "checksum")


def decode_ipv4(packet: bytes, *, verify_checksum: bool = True) -> ReceivedAdvert:
    """Decode a whole IPv4 packet as an IPv4 raw socket delivers it (header included).

    Checks the IP header (version, length, protocol 112, not a fragment, header checksum)
    but not the TTL: that is exposed as ``hop_limit`` for the receive checks.
    """
    if len(packet) < 20:
        raise MalformedAdvert(MalformedReason.TRUNCATED, f"{len(packet)} bytes, no IPv4 header")
    vihl, _tos, total_length, _ident, frag, ttl, proto, _csum, src, dst = _IPV4_HEADER.unpack_from(
        packet
    )
    if vihl >> 4 != 4:
        raise MalformedAdvert(MalformedReason.BAD_IP_HEADER, f"IP version {vihl >> 4}")
    header_length = (vihl & 0x0F) * 4
    if header_length < 20:
        raise MalformedAdvert(MalformedReason.BAD_IP_HEADER, f"IHL {header_length} bytes")
    if total_length < header_length:
        raise MalformedAdvert(
            MalformedReason.BAD_LENGTH, f"total length {total_length} < header {header_length}"
        )
    if total_length > len(packet):
        raise MalformedAdvert(
            MalformedReason.TRUNCATED, f"total length {total_length}, have {len(packet)}"
        )
    if proto != IPPROTO_VRRP:
        raise MalformedAdvert(MalformedReason.BAD_IP_HEADER, f"IP protocol {proto}")
    if frag & 0x3FFF:  # MF flag or a fragment offset: VRRP is never fragmented
        raise MalformedAdvert(MalformedReason.BAD_IP_HEADER, "fragment")
    if int.from_bytes(packet[:header_length], "big") % 0xFFFF:
        raise MalformedAdvert(MalformedReason.BAD_IP_HEADER, "IPv4 header checksum")
    # Anything past the total length (link-layer padding) is not part of the packet.
    return _decode(
        packet[header_length:total_length],
        src=src,
        dst=dst,
        source=None,
        destination=None,
        hop_limit=ttl,
        verify_checksum=verify_checksum,
    )


def decode_ipv6(
    payload: bytes,
    source: IPv6Address,
    destination: IPv6Address,
    hop_limit: int,
    *,
    verify_checksum: bool = True,
) -> ReceivedAdvert:
    """Decode the VRRP message an IPv6 raw socket delivers (no IP header on IPv6).

    ``source`` comes from recvmsg's address, ``destination`` from IPV6_PKTINFO and
    ``hop_limit`` from IPV6_HOPLIMIT ancillary data.
    """
    return decode_payload(payload, source, destination, hop_limit, verify_checksum=verify_checksum)


def decode_payload(
    message: bytes,
    source: IPAddress,
    destination: IPAddress,
    hop_limit: int,
    *,
    verify_checksum: bool = True,
) -> ReceivedAdvert:
    """Decode a VRRP message (the IP payload) received from ``source`` to ``destination``."""
    if source.version != destination.version:
        raise MalformedAdvert(MalformedReason.BAD_ADDRESS_FAMILY, "source/destination family")
    return _decode(
        message,
        src=source.packed,
        dst=destination.packed,
        source=source,
        destination=destination,
        hop_limit=hop_limit,
        verify_checksum=verify_checksum,
    )


def _decode(
    message: bytes,
    *,
    src: bytes,
    dst: bytes,
    source: IPAddress | None,
    destination: IPAddress | None,
    hop_limit: int,
    verify_checksum: bool,
) -> ReceivedAdvert:
    """Decode ``message``; ``src``/``dst`` are the packed addresses (4 or 16 bytes)."""
    ipv4 = len(src) == 4
    size = len(message)
    if size < 8:
        raise MalformedAdvert(MalformedReason.TRUNCATED, f"{size} bytes, header is 8")
    vers_type, vrid, priority, count, word, _csum = _HEADER.unpack_from(message)
    version = vers_type >> 4
    address_length = 4 if ipv4 else 16
    if version == 3:
        fixed = 8
    elif version == 2:
        if not ipv4:
            raise MalformedAdvert(MalformedReason.BAD_ADDRESS_FAMILY, "VRRPv2 over IPv6")
        fixed = 8 + V2_AUTH_DATA_LEN
    else:
        raise MalformedAdvert(MalformedReason.BAD_VERSION, f"version {version}")
    if vers_type & 0x0F != ADVERTISEMENT_TYPE:
        raise MalformedAdvert(MalformedReason.BAD_TYPE, f"type {vers_type & 0x0F}")
    expected = fixed + count * address_length
    if size != expected:
        reason = MalformedReason.BAD_ADDR_COUNT if size >= fixed else MalformedReason.TRUNCATED
        raise MalformedAdvert(reason, f"count {count} needs {expected} bytes, have {size}")
    if vrid == 0:
        raise MalformedAdvert(MalformedReason.BAD_VRID, "VRID 0")

    verdict = ChecksumVerdict.NOT_VERIFIED
    if version == 3:
        interval_cs = word & 0x0FFF  # the top 4 bits are reserved, ignored on receipt
        if verify_checksum:
            # RFC 5798 §5.2.8: a message that carries its checksum sums to 0xFFFF, i.e. to
            # 0 modulo 0xFFFF (see internet_checksum above).
            if ipv4:
                pseudo = _IPV4_PSEUDO.pack(src, dst, 0, IPPROTO_VRRP, size)
                group = _GROUP4_PACKED
            else:
                pseudo = _IPV6_PSEUDO.pack(src, dst, size, IPPROTO_VRRP)
                group = _GROUP6_PACKED
            if int.from_bytes(pseudo + message, "big") % 0xFFFF == 0:
                verdict = ChecksumVerdict.VALID
            elif dst != group and _old_unicast_checksum_ok(ipv4, src, group, size, message):
                verdict = ChecksumVerdict.VALID_OLD_UNICAST
            else:
                raise MalformedAdvert(MalformedReason.BAD_CHECKSUM, "VRRPv3 checksum")
        auth_type = AuthType.NONE
        auth_data = b""
    else:
        interval_cs = (word & 0xFF) * 100
        auth = _AUTH_TYPES.get(word >> 8)
        if auth is None:
            raise MalformedAdvert(MalformedReason.BAD_AUTH_TYPE, f"auth type {word >> 8}")
        auth_type = auth
        auth_data = message[size - V2_AUTH_DATA_LEN :]
        if verify_checksum:
            if int.from_bytes(message, "big") % 0xFFFF:
                raise MalformedAdvert(MalformedReason.BAD_CHECKSUM, "VRRPv2 checksum")
            verdict = ChecksumVerdict.VALID
    if interval_cs == 0:
        raise MalformedAdvert(MalformedReason.BAD_INTERVAL, "advert interval 0")

    addresses: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]
    if count == 0:
        addresses = ()
    elif ipv4:
        addresses = tuple(IPv4Address(message[i : i + 4]) for i in range(8, 8 + 4 * count, 4))
    else:
        addresses = tuple(IPv6Address(message[i : i + 16]) for i in range(8, 8 + 16 * count, 16))

    advert = _new(Advert)
    _set_version(advert, _VERSIONS[version])
    _set_vrid(advert, vrid)
    _set_priority(advert, priority)
    _set_interval(advert, interval_cs)
    _set_addresses(advert, addresses)
    _set_auth_type(advert, auth_type)
    _set_auth_data(advert, auth_data)
    received = _new(ReceivedAdvert)
    _set_advert(received, advert)
    _set_source(received, source if source is not None else _address(src))
    _set_destination(received, destination if destination is not None else _address(dst))
    _set_hop_limit(received, hop_limit)
    _set_checksum(received, verdict)
    return received


def _old_unicast_checksum_ok(
    ipv4: bool, src: bytes, group: bytes, size: int, message: bytes
) -> bool:
    """Does a unicast ``message`` verify when summed as if sent to the multicast group?

    keepalived before 1.3.6 (and with ``old_unicast_checksum``) computes the v3 unicast
    checksum that way; keepalived accepts it and so do we, flagging it (reference §3c).
    """
    if ipv4:
        pseudo = _IPV4_PSEUDO.pack(src, group, 0, IPPROTO_VRRP, size)
    else:
        pseudo = _IPV6_PSEUDO.pack(src, group, size, IPPROTO_VRRP)
    return int.from_bytes(pseudo + message, "big") % 0xFFFF == 0


def _address(packed: bytes) -> IPAddress:
    return IPv4Address(packed) if len(packed) == 4 else IPv6Address(packed)
