"""Byte-exact SGIP 1.2 PDUs, each written out field by field from the spec.

The expected bytes are built by hand here (never by the encoder): uint32
fields with ``u32``, one-octet fields with ``u8``, text fields NUL-padded to
their width with ``octets``. Every PDU is checked in both directions.
"""
from __future__ import annotations

from datetime import datetime

import pytest

from hongyan.protocols.sgip import (
    Bind, BindResp, Deliver, DeliverResp, Report, ReportResp, SequenceGenerator, SequenceNumber,
    SgipError, Submit, SubmitResp, Trace, TraceResp, TraceResult, Unbind, UnbindResp, UserRpt,
    UserRptResp, decode, encode, timestamp,
)

SEQ = SequenceNumber(3075512345, 1202051230, 7)
# The same triple as the 12 octets of a header: 0xB7509819, 0x47A5D89E, 7.
SEQ_OCTETS = bytes.fromhex("B7509819" "47A5D89E" "00000007")
SUBMIT_SEQ = SequenceNumber(3075512345, 1202051229, 6)
SUBMIT_SEQ_OCTETS = bytes.fromhex("B7509819" "47A5D89D" "00000006")


def u8(v: int) -> bytes:
    return bytes([v])


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def octets(text: bytes, width: int) -> bytes:
    assert len(text) <= width
    return text + b"\x00" * (width - len(text))


def header(total: int, command_id: int) -> bytes:
    return u32(total) + u32(command_id) + SEQ_OCTETS


def roundtrip(event, pdu: bytes) -> None:
    assert encode(event) == pdu
    assert decode(pdu) == event


def test_sequence_octets_are_the_triple():
    assert u32(3075512345) + u32(1202051230) + u32(7) == SEQ_OCTETS


# --- one test per PDU -------------------------------------------------------------

def test_bind():
    pdu = (header(61, 0x00000001) + u8(1) + octets(b"sp901234", 16) + octets(b"secret", 16)
           + octets(b"", 8))
    assert len(pdu) == 20 + 1 + 16 + 16 + 8
    roundtrip(Bind(SEQ, 1, "sp901234", "secret"), pdu)


def test_bind_smg_to_sp_with_reserve():
    pdu = (header(61, 0x00000001) + u8(2) + octets(b"unicom", 16) + octets(b"pw", 16)
           + octets(b"R1", 8))
    roundtrip(Bind(SEQ, 2, "unicom", "pw", b"R1"), pdu)


@pytest.mark.parametrize("cls,command_id", [
    (BindResp, 0x80000001), (SubmitResp, 0x80000003), (DeliverResp, 0x80000004),
    (ReportResp, 0x80000005), (UserRptResp, 0x80000011),
])
def test_result_responses(cls, command_id):
    pdu = header(29, command_id) + u8(0) + bytes(8)
    roundtrip(cls(SEQ, 0), pdu)
    pdu = header(29, command_id) + u8(11) + b"ABCDEFGH"
    roundtrip(cls(SEQ, 11, b"ABCDEFGH"), pdu)


def test_unbind_and_resp_are_header_only():
    roundtrip(Unbind(SEQ), bytes.fromhex("00000014" "00000002") + SEQ_OCTETS)
    roundtrip(UnbindResp(SEQ), bytes.fromhex("00000014" "80000002") + SEQ_OCTETS)


def test_submit_one_number():
    text = "hello".encode("ascii")
    body = (octets(b"1065512345", 21)           # SPNumber
            + octets(b"8613012345678", 21)      # ChargeNumber
            + u8(1)                             # UserCount
            + octets(b"8613012345678", 21)      # UserNumber
            + octets(b"12345", 5)               # CorpId
            + octets(b"HELP", 10)               # ServiceType
            + u8(2)                             # FeeType: per message
            + octets(b"100", 6)                 # FeeValue (fen)
            + octets(b"0", 6)                   # GivenValue
            + u8(0)                             # AgentFlag
            + u8(2)                             # MorelatetoMTFlag
            + u8(9)                             # Priority
            + octets(b"240315103000032+", 16)   # ExpireTime
            + octets(b"", 16)                   # ScheduleTime
            + u8(1)                             # ReportFlag
            + u8(0) + u8(0)                     # TP_pid, TP_udhi
            + u8(0)                             # MessageCoding
            + u8(0)                             # MessageType
            + u32(5)                            # MessageLength
            + text
            + octets(b"", 8))                   # Reserve
    assert len(body) == 21 + 21 + 1 + 21 + 72 + 5 + 8
    pdu = header(20 + len(body), 0x00000003) + body
    event = Submit(SEQ, "1065512345", ("8613012345678",), text, charge_number="8613012345678",
                   corp_id="12345", service_type="HELP", fee_type=2, fee_value="100",
                   given_value="0", agent_flag=0, morelateto_mt_flag=2, priority=9,
                   expire_time="240315103000032+", report_flag=1)
    roundtrip(event, pdu)


def test_submit_to_three_numbers_ucs2():
    text = "你好".encode("utf-16-be")
    numbers = (b"8613000000001", b"8613000000002", b"8613000000003")
    body = (octets(b"10655", 21) + octets(b"", 21) + u8(3)
            + b"".join(octets(n, 21) for n in numbers)
            + octets(b"", 5) + octets(b"", 10) + u8(0) + octets(b"0", 6) + octets(b"0", 6)
            + u8(0) + u8(2) + u8(0) + octets(b"", 16) + octets(b"", 16) + u8(1)
            + u8(0) + u8(1) + u8(8) + u8(0) + u32(4) + text + octets(b"", 8))
    pdu = header(20 + len(body), 0x00000003) + body
    event = Submit(SEQ, "10655", tuple(n.decode() for n in numbers), text, tp_udhi=1,
                   message_coding=8)
    roundtrip(event, pdu)


def test_deliver():
    text = b"TD"
    body = (octets(b"8613012345678", 21) + octets(b"1065512345", 21) + u8(0) + u8(0) + u8(15)
            + u32(2) + text + octets(b"", 8))
    assert len(body) == 49 + 2 + 8
    pdu = header(20 + len(body), 0x00000004) + body
    roundtrip(Deliver(SEQ, "8613012345678", "1065512345", text, message_coding=15), pdu)


def test_report():
    body = (SUBMIT_SEQ_OCTETS + u8(0) + octets(b"8613012345678", 21) + u8(2) + u8(25)
            + octets(b"", 8))
    pdu = header(64, 0x00000005) + body
    assert len(pdu) == 20 + 12 + 1 + 21 + 1 + 1 + 8
    roundtrip(Report(SEQ, SUBMIT_SEQ, 0, "8613012345678", 2, 25), pdu)


def test_userrpt():
    body = octets(b"1065512345", 21) + octets(b"8613012345678", 21) + u8(0) + octets(b"", 8)
    roundtrip(UserRpt(SEQ, "1065512345", "8613012345678", 0),
              header(71, 0x00000011) + body)


def test_trace():
    body = SUBMIT_SEQ_OCTETS + octets(b"8613012345678", 21) + octets(b"", 8)
    roundtrip(Trace(SEQ, SUBMIT_SEQ, "8613012345678"), header(61, 0x00001000) + body)


def test_trace_resp_two_nodes():
    items = (u8(0) + octets(b"30755", 6) + octets(b"1203151030000", 16)
             + octets(b"1203151030010", 16) + octets(b"", 8)
             + u8(21) + octets(b"30200", 6) + octets(b"1203151030011", 16)
             + octets(b"", 16) + octets(b"", 8))
    pdu = header(20 + 1 + 2 * 47, 0x80001000) + u8(2) + items
    event = TraceResp(SEQ, (TraceResult(0, "30755", "1203151030000", "1203151030010"),
                            TraceResult(21, "30200", "1203151030011", "")))
    roundtrip(event, pdu)
    roundtrip(TraceResp(SEQ, ()), header(21, 0x80001000) + u8(0))


# --- what the encoder refuses ----------------------------------------------------------

@pytest.mark.parametrize("event", [
    Bind(SEQ, 1, "a-login-name-of-17", "pw"),                    # 17 octets in 16
    Bind(SEQ, 256, "sp", "pw"),                                  # Login Type is one octet
    Bind(SEQ, 1, "sp", "pw", b"123456789"),                      # Reserve holds 8
    Bind(SEQ, 1, "用户", "pw"),                                   # text fields are ASCII
    Bind(SEQ, 1, "a\0b", "pw"),                                  # a NUL would end the text
    Bind(SequenceNumber(1 << 32, 0, 0), 1, "sp", "pw"),          # node id is uint32
    Bind((1, 2), 1, "sp", "pw"),                                 # not a triple
    Submit(SEQ, "10655", (), b"x"),                              # UserCount 0
    Submit(SEQ, "10655", ("8613000000000",) * 101, b"x"),        # UserCount above 100
    Submit(SEQ, "10655", "8613000000000", b"x"),                 # a string, not a tuple
    Submit(SEQ, "10655", ("8613000000000",), b"x", corp_id="123456"),
    Submit(SEQ, "10655", ("8613000000000",), b"x", fee_value="1000000"),
    Submit(SEQ, "10655", ("8613000000000",), b"x", priority=-1),
    Deliver(SEQ, "8613012345678" * 2, "10655", b"x"),            # 26 octets in 21
    Report(SEQ, SUBMIT_SEQ, 0, "86130", 0, 256),
    TraceResp(SEQ, (TraceResult(0, "1234567", "", ""),)),        # NodeId holds 6
    TraceResp(SEQ, (TraceResult(0, "1", "", ""),) * 256),        # Count holds 255
])
def test_encode_refuses_what_does_not_fit(event):
    with pytest.raises(SgipError):
        encode(event)


def test_encode_refuses_a_foreign_object():
    with pytest.raises(SgipError, match="not an SGIP event"):
        encode(object())


# --- what the decoder refuses -------------------------------------------------------------

def test_decode_checks_message_length():
    pdu = encode(Unbind(SEQ))
    with pytest.raises(SgipError, match="Message Length"):
        decode(pdu + b"\0")
    with pytest.raises(SgipError):
        decode(pdu[:19])


def test_unknown_command_names_command_and_sequence():
    pdu = u32(20) + u32(0x00000006) + SEQ_OCTETS        # AddSP: not an SP <-> SMG command
    with pytest.raises(SgipError, match="0x00000006") as info:
        decode(pdu)
    assert info.value.command_id == 6
    assert info.value.sequence_number == SEQ
    assert not info.value.fatal


def test_bad_bodies_name_command_and_sequence():
    good = encode(Submit(SEQ, "10655", ("8613000000000",), b"abc"))
    # MessageLength says 4 but 3 octets of text follow.
    bad = bytearray(good)
    bad[20 + 43 + 21 + 68:20 + 43 + 21 + 72] = u32(4)
    with pytest.raises(SgipError, match="MessageLength") as info:
        decode(bytes(bad))
    assert info.value.command_id == 3 and info.value.sequence_number == SEQ
    # UserCount 0.
    bad = bytearray(good)
    bad[20 + 42] = 0
    with pytest.raises(SgipError, match="UserCount"):
        decode(bytes(bad))
    # A Bind one octet short, a Trace_Resp whose Count lies, non-ASCII text.
    with pytest.raises(SgipError, match="Bind"):
        decode(u32(60) + u32(1) + SEQ_OCTETS + bytes(40))
    with pytest.raises(SgipError, match="Count=2"):
        decode(u32(21 + 47) + u32(0x80001000) + SEQ_OCTETS + u8(2) + bytes(47))
    with pytest.raises(SgipError):
        decode(u32(61) + u32(1) + SEQ_OCTETS + u8(1) + octets("用".encode(), 16) + bytes(24))


def test_decode_stops_text_at_the_first_nul():
    pdu = header(61, 1) + u8(1) + b"sp\0garbage" + bytes(6) + octets(b"pw", 16) + bytes(8)
    assert decode(pdu) == Bind(SEQ, 1, "sp", "pw")


# --- sequence numbers ---------------------------------------------------------------------

def test_timestamp_is_mmddhhmmss():
    assert timestamp(datetime(2024, 12, 2, 5, 12, 30)) == 1202051230
    assert timestamp(datetime(2024, 1, 1, 0, 0, 0)) == 101000000
    assert timestamp(datetime(2024, 12, 31, 23, 59, 59)) == 1231235959


def test_sequence_generator_unique_triples():
    moments = iter([datetime(2024, 12, 2, 5, 12, 30)] * 3 + [datetime(2024, 12, 2, 5, 12, 29)])
    gen = SequenceGenerator(3075512345, clock=lambda: next(moments))
    triples = [next(gen) for _ in range(4)]
    assert triples[0] == SequenceNumber(3075512345, 1202051230, 1)
    assert [t.number for t in triples] == [1, 2, 3, 4]
    # The clock stepped back a second; the counter still moved on.
    assert triples[3] == SequenceNumber(3075512345, 1202051229, 4)
    assert len(set(triples)) == 4


def test_sequence_generator_wraps_to_one():
    gen = SequenceGenerator(1, clock=lambda: datetime(2024, 1, 1), start=0xFFFFFFFE)
    assert next(gen).number == 0xFFFFFFFF
    assert next(gen).number == 1


def test_sequence_generator_rejects_wide_node_id():
    with pytest.raises(ValueError):
        SequenceGenerator(1 << 32)
