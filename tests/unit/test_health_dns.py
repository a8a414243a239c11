"""DNS codec of the DNS probe: queries byte for byte, responses built by hand."""

from __future__ import annotations

import struct

import pytest

from reconciler.health.dns import (
    DnsResponse,
    MalformedDns,
    Record,
    decode_response,
    encode_name,
    encode_query,
    missing_expectations,
)


def test_query_bytes() -> None:
    assert encode_query(0xBEEF, "www.example.test", "AAAA") == (
        b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # id, RD, QD=1
        b"\x03www\x07example\x04test\x00"
        b"\x00\x1c\x00\x01"  # AAAA, IN
    )


def test_names() -> None:
    assert encode_name("example.test.") == b"\x07example\x04test\x00"
    assert encode_name(".") == b"\x00"
    with pytest.raises(ValueError, match="label"):
        encode_name("a..b")
    with pytest.raises(ValueError, match="label"):
        encode_name("x" * 64 + ".test")
    with pytest.raises(ValueError, match="255"):
        encode_name(".".join(["x" * 60] * 5))


def rr(name_ptr: bytes, rtype: int, rdata: bytes) -> bytes:
    return name_ptr + struct.pack("!HHIH", rtype, 1, 300, len(rdata)) + rdata


def response(
    qid: int,
    answers: list[bytes],
    *,
    flags: int = 0x8180,
    name: str = "example.test",
    qtype: int = 1,
) -> bytes:
    header = struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, 1) + b"".join(answers)


PTR_QNAME = b"\xc0\x0c"  # compression pointer to the question name


def test_decode_a_with_cname_chain() -> None:
    cname_target = encode_name("web.example.test")
    data = response(
        7,
        [
            rr(PTR_QNAME, 5, cname_target),
            rr(PTR_QNAME, 1, bytes([192, 0, 2, 53])),
        ],
        name="Example.Test",
    )
    decoded = decode_response(data, 7, "example.test", "A")
    assert decoded == DnsResponse(
        id=7,
        rcode=0,
        truncated=False,
        answers=(
            Record("example.test", "CNAME", "web.example.test"),
            Record("example.test", "A", "192.0.2.53"),
        ),
    )
    assert missing_expectations(decoded, ("192.0.2.53", "web.example.test.")) == ()
    assert missing_expectations(decoded, ("192.0.2.54",)) == ("192.0.2.54",)


def test_decode_other_types() -> None:
    qname = "example.test"
    mx = rr(PTR_QNAME, 15, struct.pack("!H", 10) + b"\x02mx\xc0\x0c")
    srv = rr(PTR_QNAME, 33, struct.pack("!HHH", 1, 2, 8080) + b"\x03srv\xc0\x0c")
    txt = rr(PTR_QNAME, 16, b"\x05Hello\x06 World")
    aaaa = rr(PTR_QNAME, 28, bytes.fromhex("20010db8000000000000000000000001"))
    soa = rr(
        PTR_QNAME,
        6,
        b"\x02ns\xc0\x0c" + b"\x05admin\xc0\x0c" + struct.pack("!IIIII", 1, 2, 3, 4, 5),
    )
    odd = rr(PTR_QNAME, 99, b"\x01\x02")
    decoded = decode_response(response(1, [mx, srv, txt, aaaa, soa, odd]), 1, qname, "A")
    texts = [(r.type, r.text) for r in decoded.answers]
    assert texts == [
        ("MX", "10 mx.example.test"),
        ("SRV", "1 2 8080 srv.example.test"),
        ("TXT", "Hello World"),
        ("AAAA", "2001:db8::1"),
        ("SOA", "ns.example.test admin.example.test 1 2 3 4 5"),
        ("TYPE99", "0102"),
    ]
    assert missing_expectations(decoded, ("2001:DB8:0::1", "10 MX.example.test.")) == ()
    assert missing_expectations(decoded, ("hello world",)) == ("hello world",)  # TXT keeps case


def test_rcode_and_truncation_flags() -> None:
    decoded = decode_response(response(2, [], flags=0x8183), 2, "example.test", "A")
    assert decoded.rcode == 3 and not decoded.truncated
    cut = response(2, [rr(PTR_QNAME, 1, bytes(4))], flags=0x8380)[:-2]
    decoded = decode_response(cut, 2, "example.test", "A")
    assert decoded.truncated and decoded.answers == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01", "shorter than a DNS header"),
        (response(9, []), "not ours"),
        (response(1, [], flags=0x0100), "a query"),
        (response(1, [], name="other.test"), "another question"),
        (response(1, [], qtype=28), "another question"),
        (response(1, [rr(PTR_QNAME, 1, bytes(4))])[:-2], "truncated"),
        (response(1, [rr(b"\xc0\x1e", 1, bytes(4))]), "pointer loop"),  # points at itself
        (response(1, [rr(b"\xc0\xff", 1, bytes(4))]), "past the end"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(MalformedDns, match=message):
        decode_response(data, 1, "example.test", "A")


def test_pointer_loop_is_bounded() -> None:
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0)
    data = header + b"\xc0\x0c"  # the question name points at itself
    with pytest.raises(MalformedDns, match="loop"):
        decode_response(data, 1, "example.test", "A")
