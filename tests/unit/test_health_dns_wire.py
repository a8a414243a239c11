"""The DNS probe's codec at the edges of RFC 1035: name limits, compression pointers,
unsigned fields, record types, and the exact error for each malformed response.

The errors are what `status` shows for a failing DNS check, so each is asserted whole.
"""

from __future__ import annotations

import re
import struct

import pytest

from reconciler.health.dns import (
    MalformedDns,
    Record,
    decode_response,
    encode_name,
    missing_expectations,
    normalize_name,
)

QUESTION = "example.test"
PTR_QNAME = b"\xc0\x0c"  # compression pointer to the question name (offset 12)


def header(qid: int = 1, flags: int = 0x8180, qd: int = 1, an: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, 0, 0)


def question(name: str = QUESTION, qtype: int = 1) -> bytes:
    return encode_name(name) + struct.pack("!HH", qtype, 1)


def rr(name: bytes, rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    return name + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def answers(*records: bytes, flags: int = 0x8180) -> tuple[Record, ...]:
    data = header(an=len(records), flags=flags) + question() + b"".join(records)
    return decode_response(data, 1, QUESTION, "A").answers


def malformed(data: bytes, message: str) -> None:
    with pytest.raises(MalformedDns, match=f"^{re.escape(message)}$"):
        decode_response(data, 1, QUESTION, "A")


# ---------------------------------------------------------------- names (RFC 1035 2.3.4, 3.1)


def test_names_keep_their_case_on_the_wire_and_compare_without_it() -> None:
    """RFC 4343: case is preserved when sent and ignored when compared."""
    assert encode_name("MAIL.BOX.") == b"\x04MAIL\x03BOX\x00"
    assert normalize_name("MAIL.BOX.") == "mail.box"


def test_a_non_ascii_label_is_sent_in_its_idna_form() -> None:
    assert encode_name("bücher.example") == b"\x0dxn--bcher-kva\x07example\x00"


def test_labels_of_1_to_63_octets_are_valid() -> None:
    assert encode_name("a.b") == b"\x01a\x01b\x00"
    assert encode_name("x" * 63) == b"\x3f" + b"x" * 63 + b"\x00"


def test_a_label_over_63_octets_is_refused_by_name() -> None:
    label = "x" * 64
    with pytest.raises(ValueError, match=f"^bad DNS label '{label}' in '{label}.test'$"):
        encode_name(f"{label}.test")


def test_a_name_may_be_255_octets_and_no_longer() -> None:
    longest = ".".join(["x" * 63] * 3 + ["y" * 61])  # 3 * 64 + 62 + the root octet
    assert len(encode_name(longest)) == 255
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        encode_name(longest + "y")


# ---------------------------------------------------------------- header and question


def test_a_bare_header_is_long_enough_to_be_read() -> None:
    malformed(header(), "name runs past the end")


def test_a_response_must_carry_exactly_our_one_question() -> None:
    malformed(header(qd=2) + question(), "2 questions in the response, expected 1")
    malformed(header(flags=0x0100) + question(), "a query, not a response")


def test_a_question_cut_short_is_reported() -> None:
    malformed(header() + encode_name(QUESTION) + b"\x00", "question truncated")


def test_the_question_type_is_unsigned() -> None:
    malformed(
        header() + question(qtype=0xFF00), "answers another question (example.test type 65280)"
    )


# ---------------------------------------------------------------- compression (RFC 1035 4.1.4)


def test_a_pointer_beyond_offset_255_is_followed() -> None:
    """A pointer's offset has 14 bits: 0xC1 0x36 points at octet 0x136."""
    pad = rr(PTR_QNAME, 16, b"\xff" + b"p" * 255)  # a TXT record that takes the offset past 256
    start = len(header() + question() + pad)
    cname = rr(PTR_QNAME, 5, encode_name("web.example.test"))
    target = start + len(PTR_QNAME) + 10  # where the CNAME's data (a name) begins
    assert target == 0x136
    a = rr(b"\xc1\x36", 1, bytes([192, 0, 2, 53]))
    assert answers(pad, cname, a)[2] == Record("web.example.test", "A", "192.0.2.53")


def _pointer_chain(pointers: int) -> bytes:
    """A question whose name is reached through `pointers` pointers, each to the next:
    the first is the question name, the others follow the question's type and class."""
    rest = len(header()) + 2 + 4  # where the second pointer goes
    targets = [rest + 2 * i for i in range(pointers)]  # the last one: the name itself
    chain = [struct.pack("!H", 0xC000 | t) for t in targets]
    return (
        header() + chain[0] + struct.pack("!HH", 1, 1) + b"".join(chain[1:]) + encode_name(QUESTION)
    )


def test_a_name_may_follow_64_pointers_and_the_65th_is_a_loop() -> None:
    assert decode_response(_pointer_chain(64), 1, QUESTION, "A").answers == ()
    malformed(_pointer_chain(65), "compression pointer loop")


def test_a_pointer_cut_after_its_first_octet_is_reported() -> None:
    malformed(header() + b"\xc0", "compression pointer truncated")


@pytest.mark.parametrize(("first", "kind"), [(0x40, "0x1"), (0x80, "0x2")])
def test_extended_and_reserved_label_types_are_refused(first: int, kind: str) -> None:
    """RFC 6891 6.2 / RFC 1035 4.1.4: only 00 (a label) and 11 (a pointer) are decoded."""
    malformed(header() + bytes([first]) + b"x", f"label type {kind} not supported")


def test_a_name_without_its_root_octet_runs_past_the_end() -> None:
    malformed(header() + b"\x07example", "name runs past the end")


def test_a_label_longer_than_the_message_is_reported() -> None:
    malformed(header() + b"\x07exa", "label runs past the end")


# ---------------------------------------------------------------- records (RFC 1035 3.2.1, 3.3)


def test_a_record_header_cut_short_is_reported() -> None:
    data = header(an=1) + question() + PTR_QNAME + b"\x00\x01\x00\x01\x00"
    malformed(data, "record header truncated")


def test_record_data_longer_than_the_message_is_reported() -> None:
    data = header(an=1) + question() + rr(PTR_QNAME, 1, bytes(4))[:-1]
    malformed(data, "record data truncated")


def test_an_empty_record_at_the_very_end_is_decoded() -> None:
    assert answers(rr(PTR_QNAME, 99, b"")) == (Record("example.test", "TYPE99", ""),)


def test_types_ttls_and_lengths_are_unsigned() -> None:
    big = rr(PTR_QNAME, 0xFF00, b"\x01" * 0x8000, ttl=0xFFFFFFFF)
    (record,) = answers(big)
    assert (record.type, record.text) == ("TYPE65280", "01" * 0x8000)


@pytest.mark.parametrize("size", [4, 16])
def test_only_a_and_aaaa_data_is_an_address(size: int) -> None:
    """Unknown types are hex whatever their length (an address-sized one included)."""
    (record,) = answers(rr(PTR_QNAME, 99, bytes(range(size))))
    assert record.text == bytes(range(size)).hex()


def test_ns_and_ptr_data_are_names() -> None:
    ns = rr(PTR_QNAME, 2, encode_name("ns1.example.test"))
    ptr = rr(PTR_QNAME, 12, encode_name("host.example.test"))
    assert [r.text for r in answers(ns, ptr)] == ["ns1.example.test", "host.example.test"]


def test_a_null_mx_and_an_unavailable_srv_name_the_root() -> None:
    """RFC 7505 (null MX: preference 0, exchange ".") and RFC 2782 (target "."):
    the shortest data each type has, written as a user writes it in `expect`."""
    null_mx = rr(PTR_QNAME, 15, b"\x00\x00\x00")
    no_srv = rr(PTR_QNAME, 33, b"\x00\x00\x00\x00\x00\x00\x00")
    decoded = answers(null_mx, no_srv)
    assert [r.text for r in decoded] == ["0 .", "0 0 0 ."]
    data = header(an=2) + question() + null_mx + no_srv
    response = decode_response(data, 1, QUESTION, "A")
    assert missing_expectations(response, ("0 .", "0 0 0 .")) == ()


def test_mx_srv_and_soa_numbers_are_unsigned() -> None:
    mx = rr(PTR_QNAME, 15, b"\xff\xff" + PTR_QNAME)
    srv = rr(PTR_QNAME, 33, b"\xff\xff\xff\xff\xff\xff" + PTR_QNAME)
    soa = rr(PTR_QNAME, 6, PTR_QNAME + PTR_QNAME + b"\xff" * 20)
    max32 = " ".join(["4294967295"] * 5)
    assert [r.text for r in answers(mx, srv, soa)] == [
        "65535 example.test",
        "65535 65535 65535 example.test",
        f"example.test example.test {max32}",
    ]


def test_an_soa_without_its_five_numbers_is_reported() -> None:
    soa = rr(PTR_QNAME, 6, PTR_QNAME + PTR_QNAME + bytes(19))
    malformed(header(an=1) + question() + soa, "SOA record truncated")


def test_txt_data_that_is_not_utf8_is_shown_with_replacement_characters() -> None:
    (record,) = answers(rr(PTR_QNAME, 16, b"\x03a\xffb"))
    assert record.text == "a\ufffdb"
