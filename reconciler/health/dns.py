"""DNS messages for the DNS probe (pure): one query out, one response in (RFC 1035).

Only what a health check needs: a single-question query with recursion desired,
and a response decoded far enough to check its ID, question, RCODE and answer
section. Answers are rendered as text the way a user writes them in ``expect``
(``192.0.2.53``, ``2001:db8::1``, ``mail.example.test``, ``10 mx.example.test``).

Header (RFC 1035 4.1.1), all fields big-endian::

                                    1  1  1  1  1  1
      0  1  2  3  4  5  6  7  8  9  0  1  2  3  4  5
    +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
    |                      ID                       |
    +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
    |QR|   Opcode  |AA|TC|RD|RA|   Z    |   RCODE   |
    +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
    |          QDCOUNT / ANCOUNT / NSCOUNT / ARCOUNT |
    +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

QTYPES: dict[str, int] = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "SRV": 33,
}
_TYPE_NAMES = {v: k for k, v in QTYPES.items()}
CLASS_IN = 1
_HEADER = struct.Struct("!HHHHHH")
_FLAG_QR = 0x8000
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
_MAX_POINTERS = 64  # compression pointers followed per name: stops loops


class MalformedDns(ValueError):
    """A response that cannot be decoded, or that does not answer our question."""


@dataclass(frozen=True)
class Record:
    name: str  # lower case, no trailing dot
    type: str  # "A", ..., or "TYPE65" for types we do not render
    text: str  # rendered data, see module doc


@dataclass(frozen=True)
class DnsResponse:
    id: int
    rcode: int  # 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...
    truncated: bool
    answers: tuple[Record, ...]


def normalize_name(name: str) -> str:
    return name.rstrip(".").lower()


def encode_name(name: str) -> bytes:
    """Wire form of a domain name; IDNA for non-ASCII labels."""
    out = bytearray()
    stripped = name.rstrip(".")
    for label in stripped.split(".") if stripped else []:
        raw = label.encode("ascii") if label.isascii() else label.encode("idna")
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"bad DNS label {label!r} in {name!r}")
        out += bytes([len(raw)]) + raw
    out += b"\x00"
    if len(out) > 255:
        raise ValueError(f"DNS name longer than 255 bytes: {name!r}")
    return bytes(out)


def encode_query(query_id: int, name: str, qtype: str) -> bytes:
    """A standard query with RD set and one question of class IN."""
    header = _HEADER.pack(query_id & 0xFFFF, _FLAG_RD, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", QTYPES[qtype], CLASS_IN)


def decode_response(data: bytes, query_id: int, name: str, qtype: str) -> DnsResponse:
    """Decode a response to our query; MalformedDns if it is not one."""
    if len(data) < _HEADER.size:
        raise MalformedDns(f"{len(data)} bytes is shorter than a DNS header")
    rid, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(data)
    if rid != query_id:
        raise MalformedDns(f"ID {rid:#06x} is not ours ({query_id:#06x})")
    if not flags & _FLAG_QR:
        raise MalformedDns("a query, not a response")
    offset = _HEADER.size
    if qdcount != 1:
        raise MalformedDns(f"{qdcount} questions in the response, expected 1")
    qname, offset = _read_name(data, offset)
    if offset + 4 > len(data):
        raise MalformedDns("question truncated")
    rtype, _rclass = struct.unpack_from("!HH", data, offset)
    offset += 4
    if qname != normalize_name(name) or rtype != QTYPES[qtype]:
        raise MalformedDns(f"answers another question ({qname} type {rtype})")
    truncated = bool(flags & _FLAG_TC)
    answers: list[Record] = []
    for _ in range(ancount):
        try:
            record, offset = _read_record(data, offset)
        except MalformedDns:
            if truncated:  # a truncated UDP answer may stop mid-record: keep what came
                break
            raise
        answers.append(record)
    return DnsResponse(id=rid, rcode=flags & 0x000F, truncated=truncated, answers=tuple(answers))


def missing_expectations(response: DnsResponse, expect: tuple[str, ...]) -> tuple[str, ...]:
    """The expected values not found among the answers' rendered data."""
    have = {_canonical(r.text, r.type) for r in response.answers}
    return tuple(e for e in expect if _canonical(e, None) not in have and e not in have)


def _canonical(text: str, rtype: str | None) -> str:
    if rtype == "TXT":
        return text  # TXT data is case-sensitive
    stripped = text.strip()
    try:
        return str(ip_address(stripped))
    except ValueError:
        return " ".join(normalize_name(part) for part in stripped.split())


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    end: int | None = None  # where the name ends in the record (before the first pointer)
    pointers = 0
    while True:
        if offset >= len(data):
            raise MalformedDns("name runs past the end")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise MalformedDns("compression pointer truncated")
            pointers += 1
            if pointers > _MAX_POINTERS:
                raise MalformedDns("compression pointer loop")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise MalformedDns(f"label type {length >> 6:#x} not supported")
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise MalformedDns("label runs past the end")
        labels.append(data[offset : offset + length].decode("latin-1").lower())
        offset += length
    return ".".join(labels), end if end is not None else offset


def _read_record(data: bytes, offset: int) -> tuple[Record, int]:
    name, offset = _read_name(data, offset)
    if offset + 10 > len(data):
        raise MalformedDns("record header truncated")
    rtype, _rclass, _ttl, rdlength = struct.unpack_from("!HHIH", data, offset)
    offset += 10
    if offset + rdlength > len(data):
        raise MalformedDns("record data truncated")
    rdata_end = offset + rdlength
    type_name = _TYPE_NAMES.get(rtype, f"TYPE{rtype}")
    text = _render(data, offset, rdata_end, type_name)
    return Record(name=name, type=type_name, text=text), rdata_end


def _data_name(data: bytes, offset: int) -> tuple[str, int]:
    """A name inside record data as a user writes it in ``expect``: the root is ``.``
    (a null MX, RFC 7505, is ``0 .``; an SRV target ``.`` means no service, RFC 2782)."""
    name, end = _read_name(data, offset)
    return name or ".", end


def _render(data: bytes, start: int, end: int, rtype: str) -> str:
    rdata = data[start:end]
    if rtype == "A" and len(rdata) == 4:
        return str(IPv4Address(rdata))
    if rtype == "AAAA" and len(rdata) == 16:
        return str(IPv6Address(rdata))
    if rtype in ("CNAME", "NS", "PTR"):
        return _data_name(data, start)[0]
    if rtype == "MX" and len(rdata) >= 3:
        (preference,) = struct.unpack_from("!H", data, start)
        return f"{preference} {_data_name(data, start + 2)[0]}"
    if rtype == "SRV" and len(rdata) >= 7:
        priority, weight, port = struct.unpack_from("!HHH", data, start)
        return f"{priority} {weight} {port} {_data_name(data, start + 6)[0]}"
    if rtype == "SOA":
        mname, offset = _data_name(data, start)
        rname, offset = _data_name(data, offset)
        if offset + 20 > end:
            raise MalformedDns("SOA record truncated")
        numbers = struct.unpack_from("!IIIII", data, offset)
        return " ".join([mname, rname, *(str(n) for n in numbers)])
    if rtype == "TXT":
        parts: list[str] = []
        i = 0
        while i < len(rdata):
            length = rdata[i]
            parts.append(rdata[i + 1 : i + 1 + length].decode("utf-8", "replace"))
            i += 1 + length
        return "".join(parts)
    return rdata.hex()
