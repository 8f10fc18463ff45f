"""Byte-exact CMPP 2.0 PDUs, each written out field by field from the spec.

The expected bytes are built by hand here (never by the encoder): header
fields with ``u32``, one-octet fields with ``u8``, octet strings NUL-padded
to their width with ``octets``. Every PDU is checked in both directions.
"""
from __future__ import annotations

import hashlib

import pytest

from hongyan.protocols.cmpp import (
    ActiveTest, ActiveTestResp, Cancel, CancelResp, CmppError, Connect, ConnectResp,
    Deliver, DeliverResp, Query, QueryResp, StatusReport, Submit, SubmitResp, Terminate,
    TerminateResp, authenticator_ismg, authenticator_source, decode, encode, msgid,
    timestamp_now, verify_connect,
)


def u8(v: int) -> bytes:
    return bytes([v])


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def u64(v: int) -> bytes:
    return v.to_bytes(8, "big")


def octets(text: bytes, width: int) -> bytes:
    assert len(text) <= width
    return text + b"\x00" * (width - len(text))


def header(total: int, command_id: int, seq: int) -> bytes:
    return u32(total) + u32(command_id) + u32(seq)


def roundtrip(event, pdu: bytes) -> None:
    assert encode(event) == pdu
    assert decode(pdu) == event


# --- authenticator and Msg_Id known answers ------------------------------------------

def test_authenticator_source_known_answer():
    # MD5(Source_Addr + 9 zero octets + secret + "MMDDHHMMSS")
    literal = b"901234" + b"\x00" * 9 + b"1234" + b"0102030405"
    expected = hashlib.md5(literal).digest()
    assert expected.hex() == "e45edee925b9c275458dfcc54b2bebd8"
    assert authenticator_source("901234", "1234", 102030405) == expected


def test_authenticator_ismg_known_answer():
    auth_source = bytes.fromhex("e45edee925b9c275458dfcc54b2bebd8")
    # 2.0: Status is one octet.
    assert authenticator_ismg(0, auth_source, "1234") == \
        hashlib.md5(b"\x00" + auth_source + b"1234").digest()
    # 3.0: Status is four octets.
    assert authenticator_ismg(0, auth_source, b"1234", version=0x30) == \
        hashlib.md5(b"\x00\x00\x00\x00" + auth_source + b"1234").digest()


def test_verify_connect():
    auth = authenticator_source("901234", "1234", 102030405)
    event = Connect(1, "901234", auth, 0x20, 102030405)
    assert verify_connect(event, "1234")
    assert not verify_connect(event, "4321")


def test_timestamp_now():
    from datetime import datetime
    assert timestamp_now(datetime(2024, 1, 2, 3, 4, 5)) == 102030405
    assert timestamp_now(datetime(2024, 12, 31, 23, 59, 59)) == 1231235959


def test_msg_id_pack_known_answer():
    # month 3      = 0011
    # day 15       = 01111
    # hour 10      = 01010
    # minute 30    = 011110
    # second 45    = 101101
    # gateway 123456 = 0x1E240 in 22 bits = 00 0001 1110 0010 0100 0000
    # sequence     = 0xBEEF = 1011 1110 1110 1111
    # concatenated: 0011 0111 1010 1001 1110 1011 0100 0001
    #               1110 0010 0100 0000 1011 1110 1110 1111
    #             = 0x37A9EB41E240BEEF
    value = 0x37A9EB41E240BEEF
    assert msgid.pack(3, 15, 10, 30, 45, 123456, 0xBEEF) == value
    assert msgid.unpack(value) == msgid.MsgIdParts(3, 15, 10, 30, 45, 123456, 0xBEEF)
    assert msgid.to_str(value) == "4010995611351432943"
    assert msgid.from_str("4010995611351432943") == value


def test_msg_id_pack_rejects_overflow():
    with pytest.raises(ValueError):
        msgid.pack(16, 1, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        msgid.pack(1, 1, 0, 0, 0, 1 << 22, 0)
    with pytest.raises(ValueError):
        msgid.unpack(1 << 64)


def test_msg_id_generator_unique_and_in_order_of_time():
    now = [1_700_000_000.0]
    gen = msgid.MsgIdGenerator(4321, clock=lambda: now[0])
    ids = [next(gen) for _ in range(70_000)]       # more than one second's budget
    assert len(set(ids)) == len(ids)
    first, last = msgid.unpack(ids[0]), msgid.unpack(ids[-1])
    assert first.gateway == last.gateway == 4321
    # The 65537th id moved one second ahead instead of reusing a sequence.
    assert msgid.unpack(ids[65_536]).second == (first.second + 1) % 60
    now[0] -= 100                                   # the clock stepping back changes nothing
    assert next(gen) not in ids


def test_msg_id_generator_sequence_wraps():
    t = [1_700_000_000.0]
    gen = msgid.MsgIdGenerator(1, clock=lambda: t[0])
    seqs = []
    for _ in range(65_538):
        t[0] += 1                                   # a fresh second every id
        seqs.append(msgid.unpack(next(gen)).sequence)
    assert seqs[:2] == [0, 1]
    assert seqs[65_535:] == [65_535, 0, 1]


# --- CONNECT / CONNECT_RESP (7.4.1) -------------------------------------------------

def test_connect():
    auth = authenticator_source("901234", "1234", 102030405)
    pdu = (header(39, 0x00000001, 1)
           + octets(b"901234", 6) + auth + u8(0x20) + u32(102030405))
    assert len(pdu) == 39
    assert pdu[:12].hex() == "000000270000000100000001"
    assert pdu[-5:].hex() == "200614dc45"            # Version 0x20, Timestamp 102030405
    roundtrip(Connect(1, "901234", auth, 0x20, 102030405), pdu)


def test_connect_resp():
    auth = bytes(range(16))
    pdu = header(30, 0x80000001, 1) + u8(0) + auth + u8(0x20)
    assert len(pdu) == 30
    roundtrip(ConnectResp(1, 0, auth, 0x20), pdu)
    refused = header(30, 0x80000001, 2) + u8(3) + bytes(16) + u8(0x20)
    roundtrip(ConnectResp(2, 3, bytes(16), 0x20), refused)


# --- header-only PDUs and ACTIVE_TEST_RESP (7.4.2, 7.4.7) --------------------------------

def test_terminate():
    roundtrip(Terminate(7), bytes.fromhex("0000000c" "00000002" "00000007"))


def test_terminate_resp():
    roundtrip(TerminateResp(7), bytes.fromhex("0000000c" "80000002" "00000007"))


def test_active_test():
    roundtrip(ActiveTest(0x7FFFFFFF), bytes.fromhex("0000000c" "00000008" "7fffffff"))


def test_active_test_resp():
    roundtrip(ActiveTestResp(9), bytes.fromhex("0000000d" "80000008" "00000009" "00"))


def test_active_test_resp_without_reserved_octet_is_accepted():
    assert decode(bytes.fromhex("0000000c" "80000008" "00000009")) == ActiveTestResp(9)


# --- SUBMIT / SUBMIT_RESP (7.4.3) ---------------------------------------------------

def submit_body(*, pk_total=1, pk_number=1, tp_udhi=0, msg_fmt=8, dests=(b"13800138000",),
                content=b"", reserve=b"") -> bytes:
    return (u64(0)                          # Msg_Id (the gateway fills it in)
            + u8(pk_total) + u8(pk_number)
            + u8(1)                         # Registered_Delivery
            + u8(2)                         # Msg_level
            + octets(b"HELP", 10)           # Service_Id
            + u8(2)                         # Fee_UserType: charge the SP
            + octets(b"", 21)               # Fee_terminal_Id
            + u8(0) + u8(tp_udhi) + u8(msg_fmt)
            + octets(b"901234", 6)          # Msg_src
            + b"02"                         # FeeType, 2 octets
            + octets(b"10", 6)              # FeeCode
            + octets(b"", 17)               # ValId_Time
            + octets(b"", 17)               # At_Time
            + octets(b"106590001234", 21)   # Src_Id
            + u8(len(dests))
            + b"".join(octets(d, 21) for d in dests)
            + u8(len(content)) + content
            + octets(reserve, 8))


def submit_event(seq, *, pk_total=1, pk_number=1, tp_udhi=0, msg_fmt=8,
                 dests=("13800138000",), content=b"", reserve=b"") -> Submit:
    return Submit(
        sequence_id=seq, dest_terminal_ids=dests, msg_content=content,
        pk_total=pk_total, pk_number=pk_number, registered_delivery=1, msg_level=2,
        service_id="HELP", fee_user_type=2, tp_udhi=tp_udhi, msg_fmt=msg_fmt,
        msg_src="901234", fee_type="02", fee_code="10", src_id="106590001234",
        reserve=reserve)


def test_submit_single_number():
    content = "你好".encode("utf-16-be")
    body = submit_body(content=content)
    assert len(body) == 117 + 21 + 1 + 4 + 8
    pdu = header(12 + len(body), 0x00000004, 3) + body
    assert pdu[:4] == u32(163)
    roundtrip(submit_event(3, content=content), pdu)


def test_submit_several_numbers_and_reserve():
    dests = ("13800138000", "13900139000", "8613700137000")
    body = submit_body(dests=tuple(d.encode() for d in dests), msg_fmt=0,
                       content=b"Your code is 1234", reserve=b"R1")
    pdu = header(12 + len(body), 0x00000004, 4) + body
    roundtrip(submit_event(4, dests=dests, msg_fmt=0, content=b"Your code is 1234",
                           reserve=b"R1"), pdu)


def test_long_sms_submit_with_udh():
    # Part 2 of 3 of a concatenated SMS: TP_udhi=1 and the content starts with
    # the 6-octet UDH 05 00 03 <ref> <total> <seq> (IEI 00 = 8-bit reference).
    udh = bytes([0x05, 0x00, 0x03, 0x2A, 0x03, 0x02])
    text = ("第二部分" * 16).encode("utf-16-be")        # 128 octets, with the UDH 134
    content = udh + text
    assert len(content) == 134
    body = submit_body(pk_total=3, pk_number=2, tp_udhi=1, content=content)
    pdu = header(12 + len(body), 0x00000004, 5) + body
    event = submit_event(5, pk_total=3, pk_number=2, tp_udhi=1, content=content)
    roundtrip(event, pdu)
    decoded = decode(pdu)
    assert decoded.tp_udhi == 1
    assert decoded.msg_content[:6] == bytes.fromhex("0500032a0302")


def test_submit_resp():
    msg_id = 0x37A9EB41E240BEEF
    pdu = header(21, 0x80000004, 3) + u64(msg_id) + u8(0)
    assert pdu.hex() == "00000015" "80000004" "00000003" "37a9eb41e240beef" "00"
    roundtrip(SubmitResp(3, msg_id, 0), pdu)
    roundtrip(SubmitResp(4, 0, 8), header(21, 0x80000004, 4) + u64(0) + u8(8))


# --- DELIVER / DELIVER_RESP (7.4.5) ---------------------------------------------------

def test_deliver_mo():
    content = "TD".encode("ascii")
    body = (u64(0x1122334455667788)
            + octets(b"106590001234", 21)   # Dest_Id
            + octets(b"HELP", 10)           # Service_Id
            + u8(0) + u8(0) + u8(15)        # TP_pid, TP_udhi, Msg_Fmt
            + octets(b"13800138000", 21)    # Src_terminal_Id
            + u8(0)                         # Registered_Delivery: not a report
            + u8(len(content)) + content
            + octets(b"", 8))               # Reserved
    assert len(body) == 65 + 2 + 8
    pdu = header(12 + len(body), 0x00000005, 11) + body
    event = Deliver(sequence_id=11, msg_id=0x1122334455667788, dest_id="106590001234",
                    src_terminal_id="13800138000", msg_content=content, service_id="HELP",
                    msg_fmt=15)
    roundtrip(event, pdu)


def test_deliver_status_report():
    report_bytes = (u64(0x37A9EB41E240BEEF)         # Msg_Id from the SubmitResp
                    + b"DELIVRD"                    # Stat, 7 octets
                    + b"2403151030"                 # Submit_time YYMMDDHHMM
                    + b"2403151031"                 # Done_time
                    + octets(b"13800138000", 21)    # Dest_terminal_Id
                    + u32(42))                      # SMSC_sequence
    assert len(report_bytes) == 60
    body = (u64(0x0102030405060708)
            + octets(b"106590001234", 21)
            + octets(b"", 10)
            + u8(0) + u8(0) + u8(0)
            + octets(b"13800138000", 21)
            + u8(1)                                 # Registered_Delivery: a report
            + u8(60) + report_bytes
            + octets(b"", 8))
    pdu = header(12 + len(body), 0x00000005, 12) + body
    assert len(pdu) == 145
    report = StatusReport(0x37A9EB41E240BEEF, "DELIVRD", "2403151030", "2403151031",
                          "13800138000", 42)
    # On encode the report replaces msg_content and forces registered_delivery=1.
    assert encode(Deliver(12, 0x0102030405060708, "106590001234", "13800138000",
                          report=report)) == pdu
    decoded = decode(pdu)
    assert decoded.report == report
    assert decoded.registered_delivery == 1
    assert decoded.msg_content == report_bytes
    assert decoded == Deliver(12, 0x0102030405060708, "106590001234", "13800138000",
                              msg_content=report_bytes, registered_delivery=1, report=report)


def test_deliver_resp():
    pdu = header(21, 0x80000005, 11) + u64(0x1122334455667788) + u8(0)
    roundtrip(DeliverResp(11, 0x1122334455667788, 0), pdu)


# --- QUERY / QUERY_RESP (7.4.4) --------------------------------------------------------

def test_query():
    pdu = (header(39, 0x00000006, 20)
           + octets(b"20240315", 8) + u8(1) + octets(b"HELP", 10) + octets(b"", 8))
    roundtrip(Query(20, "20240315", 1, "HELP"), pdu)


def test_query_resp():
    counters = (1000, 900, 880, 15, 5, 70, 2, 1)
    pdu = (header(63, 0x80000006, 20)
           + octets(b"20240315", 8) + u8(1) + octets(b"HELP", 10)
           + b"".join(u32(c) for c in counters))
    assert len(pdu) == 63
    roundtrip(QueryResp(20, "20240315", 1, "HELP", *counters), pdu)


# --- CANCEL / CANCEL_RESP (7.4.6) -----------------------------------------------------

def test_cancel():
    roundtrip(Cancel(30, 0x37A9EB41E240BEEF),
              bytes.fromhex("00000014" "00000007" "0000001e" "37a9eb41e240beef"))


def test_cancel_resp():
    roundtrip(CancelResp(30, 1), bytes.fromhex("0000000d" "80000007" "0000001e" "01"))


# --- malformed input ---------------------------------------------------------------------

def test_decode_rejects_length_mismatch():
    with pytest.raises(CmppError, match="Total_Length"):
        decode(bytes.fromhex("0000000d" "00000008" "00000001"))
    with pytest.raises(CmppError):
        decode(b"\x00\x00")


def test_decode_rejects_wrong_body_size():
    with pytest.raises(CmppError, match="CMPP_TERMINATE") as info:
        decode(bytes.fromhex("0000000d" "00000002" "00000005" "00"))
    assert info.value.command_id == 0x00000002
    assert info.value.sequence_id == 5


def test_decode_unknown_command_id_names_it():
    with pytest.raises(CmppError, match="0x00000009") as info:
        decode(bytes.fromhex("0000000c" "00000009" "00000001"))
    assert info.value.command_id == 9


def test_decode_rejects_non_ascii_text():
    pdu = (header(39, 0x00000006, 1)
           + b"2024\xff315" + u8(0) + octets(b"", 10) + octets(b"", 8))
    with pytest.raises(CmppError):
        decode(pdu)


def test_decode_rejects_msg_length_lie():
    body = bytearray(submit_body(content=b"abcd"))
    body[117 + 21] = 200                                 # Msg_Length says 200, 4 follow
    with pytest.raises(CmppError, match="Msg_Length"):
        decode(header(12 + len(body), 0x00000004, 1) + bytes(body))


def test_decode_rejects_dest_count_lie():
    body = bytearray(submit_body())
    body[116] = 50                                       # DestUsr_tl 50, one number present
    with pytest.raises(CmppError, match="DestUsr_tl"):
        decode(header(12 + len(body), 0x00000004, 1) + bytes(body))


def test_decode_rejects_short_status_report():
    body = (u64(1) + octets(b"1065", 21) + octets(b"", 10) + u8(0) * 3
            + octets(b"13800138000", 21) + u8(1) + u8(3) + b"abc" + octets(b"", 8))
    with pytest.raises(CmppError, match="status report"):
        decode(header(12 + len(body), 0x00000005, 1) + body)


@pytest.mark.parametrize("event", [
    Connect(1, "9012345", bytes(16), 0x20, 0),                 # Source_Addr too long
    Connect(1, "901234", bytes(15), 0x20, 0),                  # authenticator not 16
    Submit(1, ("13800138000",), b"x" * 256),                   # content over 255
    Submit(1, ("1" * 22,), b""),                               # number over 21 octets
    Submit(1, ("13800138000",), b"", service_id="业务"),        # non-ASCII
    Submit(1, ("13800138000",), b"", pk_total=256),            # integer over its width
    Submit(1, "13800138000", b""),                             # one string, not a tuple
    Submit(1, ("13800138000",), b"", reserve=b"123456789"),    # Reserve over 8
    Query(1, "2024\x0003", 0),                                 # embedded NUL
    SubmitResp(1 << 32, 0, 0),                                 # Sequence_Id over 32 bits
])
def test_encode_rejects_what_does_not_fit(event):
    with pytest.raises(CmppError):
        encode(event)


def test_encode_rejects_non_events():
    with pytest.raises(CmppError):
        encode(object())


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="0x31"):
        encode(Terminate(1), version=0x31)
