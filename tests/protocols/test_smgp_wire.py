"""Byte-exact SMGP 3.0 PDUs, each written out field by field from the spec.

The expected bytes are built by hand here (never by the encoder): header
fields with ``u32``, one-octet fields with ``u8``, octet strings NUL-padded
to their width with ``octets``, TLVs with ``tlv``. Every PDU is checked in
both directions.
"""
from __future__ import annotations

import hashlib
from datetime import datetime

import pytest

from hongyan.protocols.smgp import (
    ActiveTest, ActiveTestResp, Deliver, DeliverResp, Exit, ExitResp, Login, LoginResp,
    MsgIdGenerator, MsgIdParts, Query, QueryResp, SmgpError, StatusReport, Submit, SubmitResp,
    Tag, Tlv, authenticator_client, authenticator_server, decode, decode_report, encode,
    encode_report, msg_id_from_str, msg_id_to_str, pack_msg_id, timestamp_now, tlv,
    unpack_msg_id, verify_login,
)


def u8(v: int) -> bytes:
    return bytes([v])


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def octets(text: bytes, width: int) -> bytes:
    assert len(text) <= width
    return text + b"\x00" * (width - len(text))


def header(total: int, request_id: int, seq: int) -> bytes:
    return u32(total) + u32(request_id) + u32(seq)


def tlv_bytes(tag: int, value: bytes) -> bytes:
    return u16(tag) + u16(len(value)) + value


def roundtrip(event, pdu: bytes) -> None:
    assert encode(event) == pdu
    assert decode(pdu) == event


# MsgID 123456 / 03-15 10:30 / 000042, as packed BCD written out by hand.
MSG_ID = bytes([0x12, 0x34, 0x56, 0x03, 0x15, 0x10, 0x30, 0x00, 0x00, 0x42])


# --- authenticators -------------------------------------------------------------------

def test_authenticator_client_known_answer():
    # MD5(ClientID + 7 zero octets + shared secret + "MMDDHHMMSS")
    literal = b"31000001" + b"\x00" * 7 + b"secret" + b"0102030405"
    expected = hashlib.md5(literal).digest()
    assert authenticator_client("31000001", "secret", 102030405) == expected
    assert authenticator_client("31000001", b"secret", 102030405) == expected


def test_authenticator_server_known_answer():
    auth_client = bytes(range(16))
    # MD5(Status as 4 octets + AuthenticatorClient + shared secret)
    assert authenticator_server(0, auth_client, "secret") == \
        hashlib.md5(b"\x00\x00\x00\x00" + auth_client + b"secret").digest()
    assert authenticator_server(21, auth_client, "secret") == \
        hashlib.md5(b"\x00\x00\x00\x15" + auth_client + b"secret").digest()


def test_verify_login_and_timestamp():
    ts = timestamp_now(datetime(2026, 1, 2, 3, 4, 5))
    assert ts == 102030405
    assert timestamp_now(datetime(2026, 12, 31, 23, 59, 59)) == 1231235959
    login = Login(1, "31000001", authenticator_client("31000001", "pw", ts), 2, ts)
    assert verify_login(login, "pw")
    assert not verify_login(login, "wrong")
    with pytest.raises(ValueError):
        authenticator_client("31000001", "pw", 10_000_000_000)


# --- MsgID -------------------------------------------------------------------------------

def test_msg_id_pack_and_unpack_known_answer():
    assert pack_msg_id(123456, 3, 15, 10, 30, 42) == MSG_ID
    assert unpack_msg_id(MSG_ID) == MsgIdParts(123456, 3, 15, 10, 30, 42)


def test_msg_id_text_form_is_the_decimal_digits():
    assert msg_id_to_str(MSG_ID) == "12345603151030000042"
    assert msg_id_from_str("12345603151030000042") == MSG_ID
    # A non-BCD id from a non-conforming gateway still survives the round trip.
    odd = bytes.fromhex("abcdef0123456789ff00")
    assert msg_id_to_str(odd) == "abcdef0123456789ff00"
    assert msg_id_from_str("ABCDEF0123456789FF00") == odd
    with pytest.raises(ValueError):
        unpack_msg_id(odd)


def test_msg_id_rejects_out_of_range_parts():
    for parts in [(1_000_000, 1, 1, 0, 0, 0), (1, 13, 1, 0, 0, 0), (1, 1, 0, 0, 0, 0),
                  (1, 1, 1, 24, 0, 0), (1, 1, 1, 0, 60, 0), (1, 1, 1, 0, 0, 1_000_000)]:
        with pytest.raises(ValueError):
            pack_msg_id(*parts)
    with pytest.raises(ValueError):
        unpack_msg_id(bytes(9))
    with pytest.raises(ValueError):
        msg_id_from_str("1234")


def test_msg_id_generator_unique_and_advances_a_minute_when_spent():
    now = [1_700_000_000.0]
    gen = MsgIdGenerator(123456, clock=lambda: now[0])
    ids = [next(gen) for _ in range(1_000_001)]    # one more than a minute's budget
    assert len(set(ids)) == len(ids)
    first, wrapped = unpack_msg_id(ids[0]), unpack_msg_id(ids[-1])
    assert first.smgw_code == wrapped.smgw_code == 123456
    assert first.sequence == 0 and wrapped.sequence == 0
    assert (wrapped.hour * 60 + wrapped.minute) == (first.hour * 60 + first.minute + 1) % 1440
    now[0] -= 3600                                  # the clock stepping back changes nothing
    assert next(gen) not in ids


# --- Login / Login_Resp (5.2.2.1) ----------------------------------------------------

def test_login():
    auth = authenticator_client("31000001", "secret", 102030405)
    pdu = (header(42, 0x00000001, 1)
           + octets(b"31000001", 8) + auth + u8(2) + u32(102030405) + u8(0x30))
    assert len(pdu) == 42
    assert pdu[:12].hex() == "0000002a0000000100000001"
    assert pdu[-6:].hex() == "020614dc4530"           # LoginMode 2, TimeStamp, version 3.0
    roundtrip(Login(1, "31000001", auth, 2, 102030405, 0x30), pdu)


def test_login_resp():
    auth = bytes(range(16))
    pdu = header(33, 0x80000001, 1) + u32(0) + auth + u8(0x30)
    assert len(pdu) == 33
    roundtrip(LoginResp(1, 0, auth, 0x30), pdu)
    refused = header(33, 0x80000001, 2) + u32(21) + bytes(16) + u8(0x30)
    roundtrip(LoginResp(2, 21, bytes(16)), refused)


# --- header-only PDUs --------------------------------------------------------------------

@pytest.mark.parametrize("event, hexed", [
    (ActiveTest(7), "0000000c" "00000004" "00000007"),
    (ActiveTestResp(7), "0000000c" "80000004" "00000007"),
    (Exit(0x7FFFFFFF), "0000000c" "00000006" "7fffffff"),
    (ExitResp(9), "0000000c" "80000006" "00000009"),
])
def test_header_only(event, hexed):
    roundtrip(event, bytes.fromhex(hexed))


def test_header_only_with_a_body_is_rejected():
    with pytest.raises(SmgpError) as info:
        decode(bytes.fromhex("0000000d" "00000004" "00000007" "00"))
    assert info.value.request_id == 0x00000004 and info.value.sequence_id == 7


# --- Submit / Submit_Resp (5.2.2.2) ----------------------------------------------------

def submit_body(*, dests=(b"13300000000",), content=b"", reserve=b"", msg_format=8,
                tlvs=b"") -> bytes:
    return (u8(6)                           # MsgType: MT
            + u8(1)                         # NeedReport
            + u8(3)                         # Priority
            + octets(b"HELP", 10)           # ServiceID
            + b"01"                         # FeeType, 2 octets
            + octets(b"10", 6)              # FeeCode
            + octets(b"", 6)                # FixedFee
            + u8(msg_format)
            + octets(b"", 17)               # ValidTime
            + octets(b"", 17)               # AtTime
            + octets(b"1065900001234", 21)  # SrcTermID
            + octets(b"", 21)               # ChargeTermID
            + u8(len(dests))
            + b"".join(octets(d, 21) for d in dests)
            + u8(len(content)) + content
            + octets(reserve, 8)
            + tlvs)


def submit_event(seq, *, dests=("13300000000",), content=b"", reserve=b"", msg_format=8,
                 tlvs=()) -> Submit:
    return Submit(sequence_id=seq, dest_term_ids=dests, msg_content=content, msg_type=6,
                  need_report=1, priority=3, service_id="HELP", fee_type="01", fee_code="10",
                  msg_format=msg_format, src_term_id="1065900001234", reserve=reserve,
                  tlvs=tlvs)


def test_submit_single_number():
    content = "你好".encode("utf-16-be")
    body = submit_body(content=content)
    assert len(body) == 105 + 21 + 1 + 4 + 8
    pdu = header(12 + len(body), 0x00000002, 3) + body
    assert pdu[:4] == u32(151)
    roundtrip(submit_event(3, content=content), pdu)


def test_submit_several_numbers_reserve_and_tlvs():
    dests = ("13300000000", "18900000000", "8615300000000")
    udh = bytes([0x05, 0x00, 0x03, 0x2A, 0x02, 0x01])
    content = udh + "第一部分".encode("utf-16-be")
    tlvs = (tlv_bytes(0x0002, b"\x01")             # TP_udhi = 1
            + tlv_bytes(0x0009, b"\x02")           # PkTotal = 2
            + tlv_bytes(0x000A, b"\x01")           # PkNumber = 1
            + tlv_bytes(0x0003, b"LINK0001")       # LinkID
            + tlv_bytes(0x0010, b"SP0001")         # MsgSrc
            + tlv_bytes(0x7F01, b"\x00\xffraw"))   # a tag SMGP 3.0 does not define
    body = submit_body(dests=tuple(d.encode() for d in dests), content=content,
                       reserve=b"R1", tlvs=tlvs)
    pdu = header(12 + len(body), 0x00000002, 4) + body
    event = submit_event(4, dests=dests, content=content, reserve=b"R1", tlvs=(
        Tlv(Tag.TP_UDHI, 1), Tlv(Tag.PK_TOTAL, 2), Tlv(Tag.PK_NUMBER, 1),
        Tlv(Tag.LINK_ID, "LINK0001"), Tlv(Tag.MSG_SRC, "SP0001"), Tlv(0x7F01, b"\x00\xffraw")))
    roundtrip(event, pdu)
    decoded = decode(pdu)
    assert tlv.get(decoded.tlvs, Tag.TP_UDHI) == 1
    assert tlv.get(decoded.tlvs, Tag.LINK_ID) == "LINK0001"
    assert tlv.get(decoded.tlvs, 0x7F01) == b"\x00\xffraw"
    assert tlv.get(decoded.tlvs, Tag.M_SERVICE_ID, "none") == "none"


def test_submit_resp():
    pdu = header(26, 0x80000002, 3) + MSG_ID + u32(0)
    assert pdu.hex() == "0000001a" "80000002" "00000003" "12345603151030000042" "00000000"
    roundtrip(SubmitResp(3, MSG_ID, 0), pdu)
    roundtrip(SubmitResp(4, bytes(10), 43), header(26, 0x80000002, 4) + bytes(10) + u32(43))


def test_submit_rejects_what_does_not_fit():
    for bad in [submit_event(1, dests=("1" * 22,)),                 # DestTermID > 21
                submit_event(1, content=b"x" * 256),                # MsgLength is one octet
                submit_event(1, dests=("133",) * 101),              # at most 100 numbers
                submit_event(1, reserve=b"123456789"),              # Reserve is 8
                submit_event(1, tlvs=(Tlv(Tag.LINK_ID, "x" * 21),)),  # LinkID is 20
                submit_event(1, tlvs=(Tlv(Tag.TP_PID, 256),)),      # integer TLVs are 1 octet
                submit_event(1, tlvs=(Tlv(0x7F01, 5),)),            # unknown tags take bytes
                submit_event(1, dests="13300000000"),               # one string, not a tuple
                Submit(1, ("133",), b"", service_id="业务")]:          # not ASCII
        with pytest.raises(SmgpError):
            encode(bad)


# --- Deliver / Deliver_Resp (5.2.2.3) ------------------------------------------------

def deliver_body(is_report: int, content: bytes, tlvs: bytes = b"") -> bytes:
    return (MSG_ID
            + u8(is_report)
            + u8(15)                        # MsgFormat
            + b"20260315103000"             # RecvTime, 14 octets
            + octets(b"13300000000", 21)    # SrcTermID
            + octets(b"1065900001234", 21)  # DestTermID
            + u8(len(content)) + content
            + octets(b"", 8)                # Reserve
            + tlvs)


def test_deliver_mo_with_link_id():
    content = "TD".encode("ascii")
    body = deliver_body(0, content, tlv_bytes(0x0003, b"LINK".ljust(20, b"\0")))
    assert len(body) == 69 + 2 + 8 + 4 + 20
    pdu = header(12 + len(body), 0x00000003, 11) + body
    decoded = decode(pdu)
    # A LinkID NUL-padded to its full width reads as the bare text...
    assert decoded == Deliver(11, MSG_ID, "13300000000", "1065900001234", content, 15,
                              "20260315103000", tlvs=(Tlv(Tag.LINK_ID, "LINK"),))
    # ...and is sent back without the padding.
    unpadded = deliver_body(0, content, tlv_bytes(0x0003, b"LINK"))
    assert encode(decoded) == header(12 + len(unpadded), 0x00000003, 11) + unpadded


REPORT_TEXT = (b"id:" + MSG_ID + b" sub:001 dlvrd:001 Submit_date:2603151030"
               b" done_date:2603151031 Stat:DELIVRD Err:000 Txt:hello")
REPORT = StatusReport(MSG_ID, "DELIVRD", "2603151030", "2603151031", "000", "001", "001",
                      b"hello")


def test_deliver_status_report():
    body = deliver_body(1, REPORT_TEXT)
    pdu = header(12 + len(body), 0x00000003, 12) + body
    event = Deliver(12, MSG_ID, "13300000000", "1065900001234", REPORT_TEXT, 15,
                    "20260315103000", report=REPORT)
    roundtrip(event, pdu)
    # On encode the report, not msg_content, decides the content.
    assert encode(Deliver(12, MSG_ID, "13300000000", "1065900001234", b"ignored", 15,
                          "20260315103000", report=REPORT)) == pdu


def test_report_format_and_parse():
    assert encode_report(REPORT) == REPORT_TEXT
    assert decode_report(REPORT_TEXT) == REPORT


def test_report_parse_tolerates_gateway_variants():
    variant = (b"ID:" + MSG_ID + b"  SUB:001 DLVRD:000 submit_date:2603151030"
               b" done_date:2603151031 stat:UNDELIV err:012 text:")
    assert decode_report(variant) == StatusReport(MSG_ID, "UNDELIV", "2603151030",
                                                  "2603151031", "012", "001", "000", b"")
    no_txt = (b"id:" + MSG_ID + b" sub:001 dlvrd:001 Submit_date:2603151030"
              b" done_date:2603151031 Stat:EXPIRED Err:006\0\0")
    assert decode_report(no_txt).stat == "EXPIRED"
    # The id is ten raw octets, even ones that look like blanks or separators.
    odd_id = b" sub: \x00\x01\x02\x03"
    text = b"id:" + odd_id + REPORT_TEXT[13:]
    assert decode_report(text).msg_id == odd_id


def test_report_rejects():
    with pytest.raises(SmgpError):
        decode_report(b"id:short")
    with pytest.raises(SmgpError):
        decode_report(b"id:" + MSG_ID + b" this is not a report")
    with pytest.raises(SmgpError):
        encode_report(StatusReport(MSG_ID, "DELIV RD", "2603151030", "2603151031"))
    with pytest.raises(SmgpError):
        encode_report(StatusReport(MSG_ID, "DELIVRDX", "2603151030", "2603151031"))
    with pytest.raises(SmgpError):
        encode_report(StatusReport(MSG_ID, "DELIVRD", "2603151030", "2603151031",
                                   txt=b"x" * 21))


def test_deliver_report_that_is_not_a_report_is_a_non_fatal_error():
    body = deliver_body(1, b"hello")
    with pytest.raises(SmgpError) as info:
        decode(header(12 + len(body), 0x00000003, 13) + body)
    assert info.value.request_id == 0x00000003 and info.value.sequence_id == 13
    assert not info.value.fatal


def test_deliver_resp():
    pdu = header(26, 0x80000003, 11) + MSG_ID + u32(0)
    roundtrip(DeliverResp(11, MSG_ID), pdu)


# --- Query / Query_Resp ------------------------------------------------------------------

def test_query():
    pdu = header(31, 0x00000007, 5) + b"20260315" + u8(1) + octets(b"HELP", 10)
    roundtrip(Query(5, "20260315", 1, "HELP"), pdu)


def test_query_resp():
    counters = [100, 90, 80, 5, 5, 20, 1, 0]
    pdu = (header(71, 0x80000007, 5) + b"20260315" + u8(0) + octets(b"", 10)
           + b"".join(u32(c) for c in counters) + octets(b"", 8))
    assert len(pdu) == 71
    roundtrip(QueryResp(5, "20260315", 0, "", *counters), pdu)


# --- malformed bodies -------------------------------------------------------------------

def test_cut_tlv_is_rejected():
    body = submit_body(tlvs=u16(0x0002) + u16(5) + b"\x01")        # Length runs past the end
    with pytest.raises(SmgpError, match="TLV"):
        decode(header(12 + len(body), 0x00000002, 1) + body)
    body = submit_body(tlvs=b"\x00\x02\x00")                       # three stray octets
    with pytest.raises(SmgpError, match="stray"):
        decode(header(12 + len(body), 0x00000002, 1) + body)


def test_unknown_request_id_and_lying_length():
    with pytest.raises(SmgpError, match="unknown RequestID") as info:
        decode(header(12, 0x00000005, 77))
    assert info.value.request_id == 5 and info.value.command_id == 5
    assert info.value.sequence_id == 77
    with pytest.raises(SmgpError, match="PacketLength"):
        decode(header(13, 0x00000004, 1))
    with pytest.raises(SmgpError):
        decode(b"\x00\x00")


def test_known_tag_with_unexpected_form_is_kept_raw():
    # An integer tag two octets long and a LinkID that is not ASCII.
    raw = tlv_bytes(0x0001, b"\x00\x01") + tlv_bytes(0x0003, b"\xff\xfe")
    body = submit_body(tlvs=raw)
    pdu = header(12 + len(body), 0x00000002, 1) + body
    decoded = decode(pdu)
    assert decoded.tlvs == (Tlv(Tag.TP_PID, b"\x00\x01"), Tlv(Tag.LINK_ID, b"\xff\xfe"))
    assert encode(decoded) == pdu
