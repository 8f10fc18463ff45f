"""Byte-exact CMPP 3.0 PDUs, each written out field by field from the spec.

As for 2.0, the expected bytes are built by hand (never by the encoder):
``u8``/``u32``/``u64`` for integers, ``octets`` for NUL-padded strings. The
3.0 widths: Status/Result 4, terminal numbers 32 plus a one-octet type,
LinkID 20 where 2.0 has Reserve(d) 8, status report 71 octets.
"""
from __future__ import annotations

import hashlib

import pytest

from hongyan.protocols.cmpp import (
    ActiveTest, ActiveTestResp, Cancel, CancelResp, CmppError, Connect, ConnectResp,
    Deliver, DeliverResp, Query, QueryResp, StatusReport, Submit, SubmitResp, Terminate,
    TerminateResp, authenticator_ismg, authenticator_source, decode, decode_report, encode,
    encode_report,
)
from hongyan.protocols.cmpp.wire import SUPPORTED_VERSIONS, negotiate_version

V30 = 0x30


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
    assert encode(event, version=V30) == pdu
    assert decode(pdu, version=V30) == event


# --- CONNECT / CONNECT_RESP (7.4.1) -------------------------------------------------

def test_connect_is_laid_out_as_in_20():
    auth = authenticator_source("901234", "1234", 102030405)
    pdu = (header(39, 0x00000001, 1)
           + octets(b"901234", 6) + auth + u8(0x30) + u32(102030405))
    assert pdu[-5:].hex() == "300614dc45"            # Version 0x30, Timestamp 102030405
    event = Connect(1, "901234", auth, 0x30, 102030405)
    roundtrip(event, pdu)
    # Either table reads it, which is what lets a server pick the version afterwards.
    assert decode(pdu) == event
    assert encode(event) == pdu


def test_connect_resp_status_is_four_octets():
    auth_source = authenticator_source("901234", "1234", 102030405)
    auth = authenticator_ismg(0, auth_source, "1234", version=V30)
    # 3.0: AuthenticatorISMG = MD5(Status as 4 octets + AuthenticatorSource + secret).
    assert auth == hashlib.md5(b"\x00\x00\x00\x00" + auth_source + b"1234").digest()
    pdu = header(33, 0x80000001, 1) + u32(0) + auth + u8(0x30)
    assert len(pdu) == 33
    roundtrip(ConnectResp(1, 0, auth, 0x30), pdu)
    refused = header(33, 0x80000001, 2) + u32(0x01020304) + bytes(16) + u8(0x30)
    assert refused[12:16].hex() == "01020304"
    roundtrip(ConnectResp(2, 0x01020304, bytes(16), 0x30), refused)


def test_a_20_connect_resp_does_not_decode_as_30():
    with pytest.raises(CmppError, match="CMPP_CONNECT_RESP") as info:
        decode(header(30, 0x80000001, 1) + u8(0) + bytes(16) + u8(0x20), version=V30)
    assert info.value.sequence_id == 1


# --- header-only PDUs and ACTIVE_TEST_RESP (7.4.2, 7.4.7) --------------------------------

def test_terminate_and_active_test():
    roundtrip(Terminate(7), bytes.fromhex("0000000c" "00000002" "00000007"))
    roundtrip(TerminateResp(7), bytes.fromhex("0000000c" "80000002" "00000007"))
    roundtrip(ActiveTest(8), bytes.fromhex("0000000c" "00000008" "00000008"))


def test_active_test_resp_has_one_reserved_octet():
    roundtrip(ActiveTestResp(9, 0), bytes.fromhex("0000000d" "80000008" "00000009" "00"))
    assert decode(bytes.fromhex("0000000c" "80000008" "00000009"), version=V30) == \
        ActiveTestResp(9)


# --- SUBMIT / SUBMIT_RESP (7.4.3) ---------------------------------------------------

def submit_body(*, dests=(b"13800138000",), content=b"", link_id=b"",
                fee_terminal_id=b"", fee_terminal_type=0, dest_terminal_type=0,
                pk_total=1, pk_number=1, tp_udhi=0, msg_fmt=8) -> bytes:
    return (u64(0)                              # Msg_Id
            + u8(pk_total) + u8(pk_number)
            + u8(1)                             # Registered_Delivery
            + u8(2)                             # Msg_level
            + octets(b"HELP", 10)               # Service_Id
            + u8(3)                             # Fee_UserType: charge Fee_terminal_Id
            + octets(fee_terminal_id, 32)       # Fee_terminal_Id, 32 in 3.0
            + u8(fee_terminal_type)             # Fee_terminal_type, new in 3.0
            + u8(0) + u8(tp_udhi) + u8(msg_fmt)  # TP_pId, TP_udhi, Msg_Fmt
            + octets(b"901234", 6)              # Msg_src
            + b"02"                             # FeeType
            + octets(b"10", 6)                  # FeeCode
            + octets(b"", 17)                   # ValId_Time
            + octets(b"", 17)                   # At_Time
            + octets(b"106590001234", 21)       # Src_Id stays 21
            + u8(len(dests))                    # DestUsr_tl
            + b"".join(octets(d, 32) for d in dests)
            + u8(dest_terminal_type)            # Dest_terminal_type, new in 3.0
            + u8(len(content)) + content
            + octets(link_id, 20))              # LinkID replaces Reserve


def submit_event(seq, *, dests=("13800138000",), content=b"", link_id="",
                 fee_terminal_id="", fee_terminal_type=0, dest_terminal_type=0,
                 pk_total=1, pk_number=1, tp_udhi=0, msg_fmt=8) -> Submit:
    return Submit(
        sequence_id=seq, dest_terminal_ids=dests, msg_content=content,
        pk_total=pk_total, pk_number=pk_number, registered_delivery=1, msg_level=2,
        service_id="HELP", fee_user_type=3, fee_terminal_id=fee_terminal_id,
        tp_udhi=tp_udhi, msg_fmt=msg_fmt, msg_src="901234", fee_type="02", fee_code="10",
        src_id="106590001234", fee_terminal_type=fee_terminal_type,
        dest_terminal_type=dest_terminal_type, link_id=link_id)


def test_submit_single_number():
    content = "你好".encode("utf-16-be")
    body = submit_body(content=content, fee_terminal_id=b"13800138000")
    assert len(body) == 129 + 32 + 1 + 1 + 4 + 20
    pdu = header(12 + len(body), 0x00000004, 3) + body
    assert pdu[:4] == u32(199)
    roundtrip(submit_event(3, content=content, fee_terminal_id="13800138000"), pdu)


def test_submit_several_pseudo_numbers_with_link_id():
    # A 32-octet pseudo-code fills its field with no NUL left over.
    pseudo = "P" * 32
    dests = ("13800138000", pseudo, "8613700137000")
    link = "LINK0123456789ABCDEF"                       # exactly 20 octets
    body = submit_body(dests=tuple(d.encode() for d in dests), content=b"code 1234",
                       link_id=link.encode(), fee_terminal_id=pseudo.encode(),
                       fee_terminal_type=1, dest_terminal_type=1, msg_fmt=0)
    assert body[23:55] == b"P" * 32 and body[55] == 1    # Fee_terminal_Id, Fee_terminal_type
    assert body[-20:] == b"LINK0123456789ABCDEF"
    pdu = header(12 + len(body), 0x00000004, 4) + body
    roundtrip(submit_event(4, dests=dests, content=b"code 1234", link_id=link,
                           fee_terminal_id=pseudo, fee_terminal_type=1,
                           dest_terminal_type=1, msg_fmt=0), pdu)


def test_long_sms_submit_with_udh():
    udh = bytes([0x05, 0x00, 0x03, 0x2A, 0x03, 0x02])
    content = udh + ("第二部分" * 16).encode("utf-16-be")
    body = submit_body(pk_total=3, pk_number=2, tp_udhi=1, content=content)
    pdu = header(12 + len(body), 0x00000004, 5) + body
    roundtrip(submit_event(5, pk_total=3, pk_number=2, tp_udhi=1, content=content), pdu)


def test_submit_resp_result_is_four_octets():
    msg_id = 0x37A9EB41E240BEEF
    pdu = header(24, 0x80000004, 3) + u64(msg_id) + u32(0)
    assert pdu.hex() == "00000018" "80000004" "00000003" "37a9eb41e240beef" "00000000"
    roundtrip(SubmitResp(3, msg_id, 0), pdu)
    roundtrip(SubmitResp(4, 0, 0xFFFFFFFF), header(24, 0x80000004, 4) + u64(0) + u32(0xFFFFFFFF))


# --- DELIVER / DELIVER_RESP (7.4.5) ---------------------------------------------------

def deliver_head(*, msg_id, src, src_type, registered_delivery, length) -> bytes:
    return (u64(msg_id)
            + octets(b"106590001234", 21)       # Dest_Id stays 21
            + octets(b"HELP", 10)               # Service_Id
            + u8(0) + u8(0) + u8(15)            # TP_pid, TP_udhi, Msg_Fmt
            + octets(src, 32)                   # Src_terminal_Id, 32 in 3.0
            + u8(src_type)                      # Src_terminal_type, new in 3.0
            + u8(registered_delivery)
            + u8(length))


def test_deliver_mo_with_link_id():
    content = b"TD"
    body = (deliver_head(msg_id=0x1122334455667788, src=b"13800138000", src_type=0,
                         registered_delivery=0, length=len(content))
            + content + octets(b"ORDER42", 20))
    assert len(body) == 77 + 2 + 20
    pdu = header(12 + len(body), 0x00000005, 11) + body
    roundtrip(Deliver(sequence_id=11, msg_id=0x1122334455667788, dest_id="106590001234",
                      src_terminal_id="13800138000", msg_content=content, service_id="HELP",
                      msg_fmt=15, link_id="ORDER42"), pdu)


def test_deliver_mo_from_pseudo_number():
    body = (deliver_head(msg_id=1, src=b"X" * 32, src_type=1, registered_delivery=0, length=1)
            + b"Y" + octets(b"", 20))
    pdu = header(12 + len(body), 0x00000005, 12) + body
    roundtrip(Deliver(12, 1, "106590001234", "X" * 32, b"Y", service_id="HELP", msg_fmt=15,
                      src_terminal_type=1), pdu)


def test_deliver_status_report_is_71_octets():
    report_bytes = (u64(0x37A9EB41E240BEEF)         # Msg_Id from the SubmitResp
                    + b"DELIVRD"                    # Stat
                    + b"2403151030"                 # Submit_time
                    + b"2403151031"                 # Done_time
                    + octets(b"13800138000", 32)    # Dest_terminal_Id, 32 in 3.0
                    + u32(42))                      # SMSC_sequence
    assert len(report_bytes) == 71
    report = StatusReport(0x37A9EB41E240BEEF, "DELIVRD", "2403151030", "2403151031",
                          "13800138000", 42)
    assert encode_report(report, V30) == report_bytes
    assert decode_report(report_bytes, V30) == report
    body = (deliver_head(msg_id=0x0102030405060708, src=b"13800138000", src_type=0,
                         registered_delivery=1, length=71)
            + report_bytes + octets(b"", 20))
    pdu = header(12 + len(body), 0x00000005, 13) + body
    assert len(pdu) == 12 + 77 + 71 + 20
    assert encode(Deliver(13, 0x0102030405060708, "106590001234", "13800138000",
                          service_id="HELP", msg_fmt=15, report=report), version=V30) == pdu
    decoded = decode(pdu, version=V30)
    assert decoded.report == report
    assert decoded.msg_content == report_bytes
    assert decoded.registered_delivery == 1


def test_a_60_octet_report_is_refused_in_30():
    report_20 = encode_report(StatusReport(1, "DELIVRD", "", "", "13800138000"))
    assert len(report_20) == 60
    body = (deliver_head(msg_id=1, src=b"13800138000", src_type=0, registered_delivery=1,
                         length=60) + report_20 + octets(b"", 20))
    with pytest.raises(CmppError, match="status report is 71"):
        decode(header(12 + len(body), 0x00000005, 1) + body, version=V30)


def test_deliver_resp_result_is_four_octets():
    pdu = header(24, 0x80000005, 11) + u64(0x1122334455667788) + u32(9)
    roundtrip(DeliverResp(11, 0x1122334455667788, 9), pdu)


# --- QUERY / QUERY_RESP (7.4.4) and CANCEL (7.4.6): unchanged bodies -------------------

def test_query_and_query_resp():
    roundtrip(Query(20, "20240315", 1, "HELP"),
              header(39, 0x00000006, 20)
              + octets(b"20240315", 8) + u8(1) + octets(b"HELP", 10) + octets(b"", 8))
    counters = (1000, 900, 880, 15, 5, 70, 2, 1)
    roundtrip(QueryResp(20, "20240315", 1, "HELP", *counters),
              header(63, 0x80000006, 20)
              + octets(b"20240315", 8) + u8(1) + octets(b"HELP", 10)
              + b"".join(u32(c) for c in counters))


def test_cancel():
    roundtrip(Cancel(30, 0x37A9EB41E240BEEF),
              bytes.fromhex("00000014" "00000007" "0000001e" "37a9eb41e240beef"))


def test_cancel_resp_success_id_is_four_octets():
    roundtrip(CancelResp(30, 1), bytes.fromhex("00000010" "80000007" "0000001e" "00000001"))
    # A gateway that kept 2.0's one-octet Success_Id is still understood.
    assert decode(bytes.fromhex("0000000d" "80000007" "0000001e" "01"), version=V30) == \
        CancelResp(30, 1)


# --- malformed input and values that do not fit ------------------------------------------

def test_decode_rejects_msg_length_and_dest_count_lies():
    body = bytearray(submit_body(content=b"abcd"))
    body[129 + 32 + 1] = 200                               # Msg_Length 200, 4 follow
    with pytest.raises(CmppError, match="Msg_Length"):
        decode(header(12 + len(body), 0x00000004, 1) + bytes(body), version=V30)
    body = bytearray(submit_body())
    body[128] = 50                                         # DestUsr_tl 50, one present
    with pytest.raises(CmppError, match="DestUsr_tl"):
        decode(header(12 + len(body), 0x00000004, 1) + bytes(body), version=V30)


def test_a_20_submit_does_not_decode_as_30():
    pdu_20 = encode(Submit(1, ("13800138000",), b"hello"))
    with pytest.raises(CmppError) as info:
        decode(pdu_20, version=V30)
    assert info.value.command_id == 0x00000004 and info.value.sequence_id == 1


@pytest.mark.parametrize("event", [
    Submit(1, ("1" * 33,), b""),                                     # number over 32
    Submit(1, ("13800138000",), b"", fee_terminal_id="1" * 33),      # Fee_terminal_Id over 32
    Submit(1, ("13800138000",), b"", link_id="L" * 21),              # LinkID over 20
    Submit(1, ("13800138000",), b"", dest_terminal_type=256),        # type over one octet
    Submit(1, ("13800138000",), b"", reserve=b"R"),                  # 2.0's Reserve
    Submit(1, ("13800138000",), b"x" * 256),                         # content over 255
    Deliver(1, 1, "1065", "1" * 33, b""),                            # number over 32
    Deliver(1, 1, "1065", "13800138000", b"", reserved=b"R"),        # 2.0's Reserved
    Deliver(1, 1, "1065", "13800138000", b"", link_id="L" * 21),     # LinkID over 20
    Deliver(1, 1, "1065", "138", report=StatusReport(1, "DELIVRD", "", "", "1" * 33)),
    SubmitResp(1, 0, 1 << 32),                                       # Result over 4 octets
    ConnectResp(1, 1 << 32, bytes(16), 0x30),                        # Status over 4 octets
    CancelResp(1, 1 << 32),
])
def test_encode_30_rejects_what_does_not_fit(event):
    with pytest.raises(CmppError):
        encode(event, version=V30)


@pytest.mark.parametrize("event", [
    Submit(1, ("13800138000",), b"", link_id="L"),
    Submit(1, ("13800138000",), b"", fee_terminal_type=1),
    Submit(1, ("13800138000",), b"", dest_terminal_type=1),
    Deliver(1, 1, "1065", "13800138000", b"", link_id="L"),
    Deliver(1, 1, "1065", "13800138000", b"", src_terminal_type=1),
    Submit(1, ("1" * 22,), b""),                                     # 32 octets is 3.0 only
])
def test_encode_20_refuses_30_only_values(event):
    with pytest.raises(CmppError):
        encode(event)


def test_report_codec_refuses_unknown_versions():
    with pytest.raises(ValueError, match="0x40"):
        encode_report(StatusReport(1, "DELIVRD", "", "", ""), 0x40)


# --- picking the session version from a CONNECT --------------------------------------------

@pytest.mark.parametrize("requested, chosen", [
    (0x30, 0x30), (0x31, 0x30), (0x40, 0x30), (0xFF, 0x30),
    (0x20, 0x20), (0x21, 0x20), (0x2F, 0x20),
    (0x13, 0x20), (0x00, 0x20),       # below every version: the lowest, to encode a refusal
])
def test_negotiate_version(requested, chosen):
    assert negotiate_version(requested) == chosen


def test_both_versions_are_supported():
    assert SUPPORTED_VERSIONS == {0x20, 0x30}
