"""Byte layouts of CMPP 2.0 and 3.0 PDUs: one event <-> one complete PDU.

A PDU is a 12-octet header (Total_Length, Command_Id, Sequence_Id; big-endian
uint32, spec section 7.3) followed by a body whose layout depends on the
Command_Id. Bodies mix big-endian unsigned integers and fixed-width "octet
strings": ASCII text right-padded with NUL octets (section 7.1). Encoding
pads with NULs; decoding cuts at the first NUL.

Section numbers below refer to "China Mobile Peer to Peer (CMPP) V2.0",
China Mobile, April 2002, and to "CMPP V3.0", whose SP <-> ISMG chapter keeps
the same numbering (7.4.1 CONNECT ... 7.4.7 ACTIVE_TEST).

Layouts are kept per protocol version in ``_TABLES``. CMPP 3.0 differs from
2.0 only in some bodies: four-octet status/result fields, 32-octet terminal
numbers each followed by a one-octet type, and a 20-octet LinkID where 2.0
has 8 reserved octets. PDUs whose layout is the same in both versions share
one encoder and decoder. In particular CONNECT is identical, so a server can
read it before it knows the session version: see :func:`negotiate_version`.

This module does no framing: :func:`decode` takes exactly one PDU. Use
:class:`~hongyan.protocols.cmpp.connection.Connection` for a byte stream.
"""
from __future__ import annotations

from struct import Struct, error as StructError
from typing import Callable, NamedTuple

from .constants import (
    CMPP_ACTIVE_TEST, CMPP_ACTIVE_TEST_RESP, CMPP_CANCEL, CMPP_CANCEL_RESP, CMPP_CONNECT,
    CMPP_CONNECT_RESP, CMPP_DELIVER, CMPP_DELIVER_RESP, CMPP_QUERY, CMPP_QUERY_RESP,
    CMPP_SUBMIT, CMPP_SUBMIT_RESP, CMPP_TERMINATE, CMPP_TERMINATE_RESP, HEADER_LENGTH,
    V20, V30,
)
from .errors import CmppError
from .events import (
    ActiveTest, ActiveTestResp, Cancel, CancelResp, Connect, ConnectResp, Deliver,
    DeliverResp, Event, Query, QueryResp, StatusReport, Submit, SubmitResp, Terminate,
    TerminateResp,
)

# Header, section 7.3.
HEADER = Struct(">III")

# --- layouts (body structs decode, header+body structs encode in one pack) ---

# 7.4.1.1 CMPP_CONNECT: Source_Addr 6, AuthenticatorSource 16, Version 1, Timestamp 4.
_CONNECT = Struct(">6s16sBI")
_CONNECT_PDU = Struct(">III6s16sBI")
# 7.4.1.2 CMPP_CONNECT_RESP (2.0): Status 1, AuthenticatorISMG 16, Version 1.
_CONNECT_RESP = Struct(">B16sB")
_CONNECT_RESP_PDU = Struct(">IIIB16sB")
# 7.4.7.2 CMPP_ACTIVE_TEST_RESP: Reserved 1.
_ACTIVE_TEST_RESP_PDU = Struct(">IIIB")
# 7.4.3.1 CMPP_SUBMIT up to and including DestUsr_tl: Msg_Id 8, Pk_total 1,
# Pk_number 1, Registered_Delivery 1, Msg_level 1, Service_Id 10, Fee_UserType 1,
# Fee_terminal_Id 21, TP_pId 1, TP_udhi 1, Msg_Fmt 1, Msg_src 6, FeeType 2,
# FeeCode 6, ValId_Time 17, At_Time 17, Src_Id 21, DestUsr_tl 1 (117 octets).
# Then Dest_terminal_Id 21 x DestUsr_tl, Msg_Length 1, Msg_Content, Reserve 8.
_SUBMIT_HEAD = Struct(">QBBBB10sB21sBBB6s2s6s17s17s21sB")
_SUBMIT_HEAD_PDU = Struct(">IIIQBBBB10sB21sBBB6s2s6s17s17s21sB")
# 7.4.3.2 CMPP_SUBMIT_RESP (2.0) and 7.4.5.2 CMPP_DELIVER_RESP (2.0): Msg_Id 8, Result 1.
_MSGID_RESULT = Struct(">QB")
_MSGID_RESULT_PDU = Struct(">IIIQB")
# 7.4.5.1 CMPP_DELIVER up to Msg_Length: Msg_Id 8, Dest_Id 21, Service_Id 10,
# TP_pid 1, TP_udhi 1, Msg_Fmt 1, Src_terminal_Id 21, Registered_Delivery 1,
# Msg_Length 1 (65 octets). Then Msg_Content, Reserved 8.
_DELIVER_HEAD = Struct(">Q21s10sBBB21sBB")
_DELIVER_HEAD_PDU = Struct(">IIIQ21s10sBBB21sBB")
# 7.4.5.1 Msg_Content of a status report: Msg_Id 8, Stat 7, Submit_time 10,
# Done_time 10, Dest_terminal_Id 21, SMSC_sequence 4 (60 octets).
_REPORT = Struct(">Q7s10s10s21sI")
# 7.4.4.1 CMPP_QUERY: Time 8, Query_Type 1, Query_Code 10, Reserve 8.
_QUERY = Struct(">8sB10s8s")
_QUERY_PDU = Struct(">III8sB10s8s")
# 7.4.4.2 CMPP_QUERY_RESP: Time 8, Query_Type 1, Query_Code 10, then eight
# uint32 counters MT_TLMsg, MT_Tlusr, MT_Scs, MT_WT, MT_FL, MO_Scs, MO_WT, MO_FL.
_QUERY_RESP = Struct(">8sB10sIIIIIIII")
_QUERY_RESP_PDU = Struct(">III8sB10sIIIIIIII")
# 7.4.6.1 CMPP_CANCEL: Msg_Id 8.
_CANCEL = Struct(">Q")
_CANCEL_PDU = Struct(">IIIQ")
# 7.4.6.2 CMPP_CANCEL_RESP (2.0): Success_Id 1.
_CANCEL_RESP_PDU = Struct(">IIIB")

_SUBMIT_FIXED = _SUBMIT_HEAD.size + 1 + 8      # everything except numbers and content
_DELIVER_FIXED = _DELIVER_HEAD.size + 8         # everything except content
_NUMBER_WIDTH = 21                              # Dest_terminal_Id in 2.0

# --- CMPP 3.0 layouts that differ from 2.0 -----------------------------------------

# 3.0 7.4.1.2 CMPP_CONNECT_RESP: Status 4, AuthenticatorISMG 16, Version 1.
_CONNECT_RESP_30 = Struct(">I16sB")
_CONNECT_RESP_30_PDU = Struct(">IIII16sB")
# 3.0 7.4.3.1 CMPP_SUBMIT up to and including DestUsr_tl: Msg_Id 8, Pk_total 1,
# Pk_number 1, Registered_Delivery 1, Msg_level 1, Service_Id 10, Fee_UserType 1,
# Fee_terminal_Id 32, Fee_terminal_type 1, TP_pId 1, TP_udhi 1, Msg_Fmt 1,
# Msg_src 6, FeeType 2, FeeCode 6, ValId_Time 17, At_Time 17, Src_Id 21,
# DestUsr_tl 1 (129 octets). Then Dest_terminal_Id 32 x DestUsr_tl,
# Dest_terminal_type 1, Msg_Length 1, Msg_Content, LinkID 20.
_SUBMIT_HEAD_30 = Struct(">QBBBB10sB32sBBBB6s2s6s17s17s21sB")
_SUBMIT_HEAD_30_PDU = Struct(">IIIQBBBB10sB32sBBBB6s2s6s17s17s21sB")
# 3.0 7.4.3.2 CMPP_SUBMIT_RESP and 7.4.5.2 CMPP_DELIVER_RESP: Msg_Id 8, Result 4.
_MSGID_RESULT_30 = Struct(">QI")
_MSGID_RESULT_30_PDU = Struct(">IIIQI")
# 3.0 7.4.5.1 CMPP_DELIVER up to Msg_Length: Msg_Id 8, Dest_Id 21, Service_Id 10,
# TP_pid 1, TP_udhi 1, Msg_Fmt 1, Src_terminal_Id 32, Src_terminal_type 1,
# Registered_Delivery 1, Msg_Length 1 (77 octets). Then Msg_Content, LinkID 20.
_DELIVER_HEAD_30 = Struct(">Q21s10sBBB32sBBB")
_DELIVER_HEAD_30_PDU = Struct(">IIIQ21s10sBBB32sBBB")
# 3.0 7.4.5.1 status report: Msg_Id 8, Stat 7, Submit_time 10, Done_time 10,
# Dest_terminal_Id 32, SMSC_sequence 4 (71 octets).
_REPORT_30 = Struct(">Q7s10s10s32sI")
# 3.0 7.4.6.2 CMPP_CANCEL_RESP: Success_Id 4.
_CANCEL_RESP_30_PDU = Struct(">IIII")

# Dest_terminal_type and Msg_Length, between the numbers and the content.
_TYPE_AND_LENGTH = Struct(">BB")

_LINK_ID_WIDTH = 20
_NUMBER_WIDTH_30 = 32                           # every terminal number in 3.0
# Everything except numbers and content: the head, Dest_terminal_type,
# Msg_Length and LinkID.
_SUBMIT_FIXED_30 = _SUBMIT_HEAD_30.size + 1 + 1 + _LINK_ID_WIDTH
_DELIVER_FIXED_30 = _DELIVER_HEAD_30.size + _LINK_ID_WIDTH

_number_structs: dict[tuple[int, int], Struct] = {}


def _numbers_struct(count: int, width: int = _NUMBER_WIDTH) -> Struct:
    """A Struct for ``count`` consecutive ``width``-octet numbers, built once per count."""
    s = _number_structs.get((width, count))
    if s is None:
        s = _number_structs[width, count] = Struct(f"{width}s" * count)
    return s


# --- field helpers -------------------------------------------------------------

def _text(raw: bytes) -> str:
    """Decode a NUL-padded octet string (C semantics: stop at the first NUL)."""
    return raw.partition(b"\0")[0].decode("ascii")


def _octets(value: str, width: int, name: str) -> bytes:
    """Encode text for a ``width``-octet field; struct adds the NUL padding."""
    raw = value.encode("ascii")
    if len(raw) > width:
        raise CmppError(f"{name} is {len(raw)} octets; the field holds {width}")
    if b"\0" in raw:
        # A NUL would end the string early on the other side.
        raise CmppError(f"{name} contains a NUL")
    return raw


def _fixed(value: bytes, width: int, name: str) -> bytes:
    if len(value) != width:
        raise CmppError(f"{name} must be {width} octets, not {len(value)}")
    return value


def _padded(value: bytes, width: int, name: str) -> bytes:
    """Right-pad a binary field (Reserve) with NULs."""
    if len(value) > width:
        raise CmppError(f"{name} is {len(value)} octets; the field holds {width}")
    return bytes(value) + b"\0" * (width - len(value))


def _expect(body_length: int, expected: int, name: str) -> None:
    if body_length != expected:
        raise CmppError(f"{name} body must be {expected} octets, got {body_length}")


# --- status report (the Msg_Content of a Deliver with Registered_Delivery 1) ---

# Per version: the report's Struct and the width of its Dest_terminal_Id.
_REPORT_LAYOUTS = {V20: (_REPORT, 21), V30: (_REPORT_30, _NUMBER_WIDTH_30)}


def _report_layout(version: int) -> tuple[Struct, int]:
    try:
        return _REPORT_LAYOUTS[version]
    except KeyError:
        raise ValueError(f"CMPP version 0x{version:02X} is not supported") from None


def encode_report(report: StatusReport, version: int = V20) -> bytes:
    """The Msg_Content carrying ``report`` (section 7.4.5.1): 60 octets in 2.0, 71 in 3.0."""
    layout, number_width = _report_layout(version)
    try:
        return layout.pack(
            report.msg_id,
            _octets(report.stat, 7, "Stat"),
            _octets(report.submit_time, 10, "Submit_time"),
            _octets(report.done_time, 10, "Done_time"),
            _octets(report.dest_terminal_id, number_width, "Dest_terminal_Id"),
            report.smsc_sequence,
        )
    except (StructError, UnicodeError, TypeError, AttributeError) as exc:
        raise CmppError(f"cannot encode status report: {exc}") from exc


def decode_report(content: bytes, version: int = V20) -> StatusReport:
    """Parse the Msg_Content of a status report: exactly 60 octets in 2.0, 71 in 3.0."""
    layout, _ = _report_layout(version)
    if len(content) != layout.size:
        raise CmppError(f"a status report is {layout.size} octets, got {len(content)}")
    msg_id, stat, submit_time, done_time, dest, smsc_sequence = layout.unpack(content)
    try:
        return StatusReport(msg_id, _text(stat), _text(submit_time), _text(done_time),
                            _text(dest), smsc_sequence)
    except UnicodeDecodeError as exc:
        raise CmppError(f"status report holds non-ASCII text: {exc}") from exc


# --- CMPP 2.0 encoders: event -> whole PDU --------------------------------------

def _enc_connect(e: Connect) -> bytes:
    return _CONNECT_PDU.pack(_CONNECT_PDU.size, CMPP_CONNECT, e.sequence_id,
                             _octets(e.source_addr, 6, "Source_Addr"),
                             _fixed(e.authenticator, 16, "AuthenticatorSource"),
                             e.version, e.timestamp)


def _enc_connect_resp(e: ConnectResp) -> bytes:
    return _CONNECT_RESP_PDU.pack(_CONNECT_RESP_PDU.size, CMPP_CONNECT_RESP, e.sequence_id,
                                  e.status, _fixed(e.authenticator, 16, "AuthenticatorISMG"),
                                  e.version)


def _header_only(command_id: int) -> Callable[[Event], bytes]:
    def encode(e: Event) -> bytes:
        return HEADER.pack(HEADER_LENGTH, command_id, e.sequence_id)
    return encode


def _enc_active_test_resp(e: ActiveTestResp) -> bytes:
    return _ACTIVE_TEST_RESP_PDU.pack(_ACTIVE_TEST_RESP_PDU.size, CMPP_ACTIVE_TEST_RESP,
                                      e.sequence_id, e.reserved)


def _only_in_30(name: str) -> CmppError:
    return CmppError(f"{name} exists only in CMPP 3.0; a 2.0 PDU has no field for it")


def _only_in_20(name: str) -> CmppError:
    return CmppError(f"{name} exists only in CMPP 2.0; a 3.0 PDU has no field for it")


def _dest_numbers(e: Submit) -> tuple[str, ...]:
    numbers = e.dest_terminal_ids
    if isinstance(numbers, str):
        raise CmppError("dest_terminal_ids must be a sequence of numbers, not one string")
    return numbers


def _enc_submit(e: Submit) -> bytes:
    if e.link_id or e.fee_terminal_type or e.dest_terminal_type:
        raise _only_in_30("link_id" if e.link_id else "fee_terminal_type/dest_terminal_type")
    numbers = _dest_numbers(e)
    count = len(numbers)
    content = e.msg_content
    if len(content) > 255:
        raise CmppError(f"Msg_Content is {len(content)} octets; Msg_Length holds at most 255")
    total = HEADER_LENGTH + _SUBMIT_FIXED + count * _NUMBER_WIDTH + len(content)
    head = _SUBMIT_HEAD_PDU.pack(
        total, CMPP_SUBMIT, e.sequence_id,
        e.msg_id, e.pk_total, e.pk_number, e.registered_delivery, e.msg_level,
        _octets(e.service_id, 10, "Service_Id"),
        e.fee_user_type,
        _octets(e.fee_terminal_id, 21, "Fee_terminal_Id"),
        e.tp_pid, e.tp_udhi, e.msg_fmt,
        _octets(e.msg_src, 6, "Msg_src"),
        _octets(e.fee_type, 2, "FeeType"),
        _octets(e.fee_code, 6, "FeeCode"),
        _octets(e.valid_time, 17, "ValId_Time"),
        _octets(e.at_time, 17, "At_Time"),
        _octets(e.src_id, 21, "Src_Id"),
        count,
    )
    dests = _numbers_struct(count).pack(
        *[_octets(n, _NUMBER_WIDTH, "Dest_terminal_Id") for n in numbers])
    return b"".join((head, dests, bytes((len(content),)), content,
                     _padded(e.reserve, 8, "Reserve")))


def _enc_msgid_result(command_id: int) -> Callable[[Event], bytes]:
    def encode(e: SubmitResp | DeliverResp) -> bytes:
        return _MSGID_RESULT_PDU.pack(_MSGID_RESULT_PDU.size, command_id, e.sequence_id,
                                      e.msg_id, e.result)
    return encode


def _deliver_content(e: Deliver, version: int) -> tuple[bytes, int]:
    """Msg_Content and Registered_Delivery: a report replaces the content."""
    if e.report is not None:
        return encode_report(e.report, version), 1
    content = e.msg_content
    if len(content) > 255:
        raise CmppError(f"Msg_Content is {len(content)} octets; Msg_Length holds at most 255")
    return content, e.registered_delivery


def _enc_deliver(e: Deliver) -> bytes:
    if e.link_id or e.src_terminal_type:
        raise _only_in_30("link_id" if e.link_id else "src_terminal_type")
    content, registered_delivery = _deliver_content(e, V20)
    total = HEADER_LENGTH + _DELIVER_FIXED + len(content)
    head = _DELIVER_HEAD_PDU.pack(
        total, CMPP_DELIVER, e.sequence_id,
        e.msg_id,
        _octets(e.dest_id, 21, "Dest_Id"),
        _octets(e.service_id, 10, "Service_Id"),
        e.tp_pid, e.tp_udhi, e.msg_fmt,
        _octets(e.src_terminal_id, 21, "Src_terminal_Id"),
        registered_delivery, len(content),
    )
    return b"".join((head, content, _padded(e.reserved, 8, "Reserved")))


def _enc_query(e: Query) -> bytes:
    return _QUERY_PDU.pack(_QUERY_PDU.size, CMPP_QUERY, e.sequence_id,
                           _octets(e.time, 8, "Time"), e.query_type,
                           _octets(e.query_code, 10, "Query_Code"),
                           _octets(e.reserve, 8, "Reserve"))


def _enc_query_resp(e: QueryResp) -> bytes:
    return _QUERY_RESP_PDU.pack(_QUERY_RESP_PDU.size, CMPP_QUERY_RESP, e.sequence_id,
                                _octets(e.time, 8, "Time"), e.query_type,
                                _octets(e.query_code, 10, "Query_Code"),
                                e.mt_tlmsg, e.mt_tlusr, e.mt_scs, e.mt_wt, e.mt_fl,
                                e.mo_scs, e.mo_wt, e.mo_fl)


def _enc_cancel(e: Cancel) -> bytes:
    return _CANCEL_PDU.pack(_CANCEL_PDU.size, CMPP_CANCEL, e.sequence_id, e.msg_id)


def _enc_cancel_resp(e: CancelResp) -> bytes:
    return _CANCEL_RESP_PDU.pack(_CANCEL_RESP_PDU.size, CMPP_CANCEL_RESP, e.sequence_id,
                                 e.success_id)


# --- CMPP 2.0 decoders: (buffer, body offset, body length, Sequence_Id) -> event ---
# They read straight out of the caller's buffer (bytes or bytearray) so the
# connection never copies a PDU before parsing it.

def _dec_connect(buf, off: int, n: int, seq: int) -> Connect:
    _expect(n, _CONNECT.size, "CMPP_CONNECT")
    addr, auth, version, timestamp = _CONNECT.unpack_from(buf, off)
    return Connect(seq, _text(addr), auth, version, timestamp)


def _dec_connect_resp(buf, off: int, n: int, seq: int) -> ConnectResp:
    _expect(n, _CONNECT_RESP.size, "CMPP_CONNECT_RESP")
    status, auth, version = _CONNECT_RESP.unpack_from(buf, off)
    return ConnectResp(seq, status, auth, version)


def _dec_header_only(cls: type, name: str):
    def decode(buf, off: int, n: int, seq: int):
        _expect(n, 0, name)
        return cls(seq)
    return decode


def _dec_active_test_resp(buf, off: int, n: int, seq: int) -> ActiveTestResp:
    # Some gateways omit the Reserved octet; accept that as reserved=0.
    if n == 0:
        return ActiveTestResp(seq)
    _expect(n, 1, "CMPP_ACTIVE_TEST_RESP")
    return ActiveTestResp(seq, buf[off])


def _dec_submit(buf, off: int, n: int, seq: int) -> Submit:
    if n < _SUBMIT_FIXED:
        raise CmppError(f"CMPP_SUBMIT body is {n} octets; at least {_SUBMIT_FIXED} needed")
    (msg_id, pk_total, pk_number, registered_delivery, msg_level, service_id, fee_user_type,
     fee_terminal_id, tp_pid, tp_udhi, msg_fmt, msg_src, fee_type, fee_code, valid_time,
     at_time, src_id, count) = _SUBMIT_HEAD.unpack_from(buf, off)
    without_content = _SUBMIT_FIXED + count * _NUMBER_WIDTH
    if n < without_content:
        raise CmppError(f"CMPP_SUBMIT DestUsr_tl={count} does not fit a {n}-octet body")
    p = off + _SUBMIT_HEAD.size
    numbers = _numbers_struct(count).unpack_from(buf, p)
    p += count * _NUMBER_WIDTH
    length = buf[p]
    if n != without_content + length:
        raise CmppError(f"CMPP_SUBMIT Msg_Length={length} does not match a {n}-octet body")
    p += 1
    content = bytes(buf[p:p + length])
    p += length
    reserve = bytes(buf[p:p + 8]).rstrip(b"\0")
    return Submit(
        sequence_id=seq,
        dest_terminal_ids=tuple([_text(x) for x in numbers]),
        msg_content=content,
        msg_id=msg_id,
        pk_total=pk_total,
        pk_number=pk_number,
        registered_delivery=registered_delivery,
        msg_level=msg_level,
        service_id=_text(service_id),
        fee_user_type=fee_user_type,
        fee_terminal_id=_text(fee_terminal_id),
        tp_pid=tp_pid,
        tp_udhi=tp_udhi,
        msg_fmt=msg_fmt,
        msg_src=_text(msg_src),
        fee_type=_text(fee_type),
        fee_code=_text(fee_code),
        valid_time=_text(valid_time),
        at_time=_text(at_time),
        src_id=_text(src_id),
        reserve=reserve,
    )


def _dec_msgid_result(cls: type, name: str):
    def decode(buf, off: int, n: int, seq: int):
        _expect(n, _MSGID_RESULT.size, name)
        msg_id, result = _MSGID_RESULT.unpack_from(buf, off)
        return cls(seq, msg_id, result)
    return decode


def _dec_deliver(buf, off: int, n: int, seq: int) -> Deliver:
    if n < _DELIVER_FIXED:
        raise CmppError(f"CMPP_DELIVER body is {n} octets; at least {_DELIVER_FIXED} needed")
    (msg_id, dest_id, service_id, tp_pid, tp_udhi, msg_fmt, src_terminal_id,
     registered_delivery, length) = _DELIVER_HEAD.unpack_from(buf, off)
    if n != _DELIVER_FIXED + length:
        raise CmppError(f"CMPP_DELIVER Msg_Length={length} does not match a {n}-octet body")
    p = off + _DELIVER_HEAD.size
    content = bytes(buf[p:p + length])
    p += length
    reserved = bytes(buf[p:p + 8]).rstrip(b"\0")
    report = decode_report(content) if registered_delivery == 1 else None
    return Deliver(
        sequence_id=seq,
        msg_id=msg_id,
        dest_id=_text(dest_id),
        src_terminal_id=_text(src_terminal_id),
        msg_content=content,
        service_id=_text(service_id),
        tp_pid=tp_pid,
        tp_udhi=tp_udhi,
        msg_fmt=msg_fmt,
        registered_delivery=registered_delivery,
        reserved=reserved,
        report=report,
    )


def _dec_query(buf, off: int, n: int, seq: int) -> Query:
    _expect(n, _QUERY.size, "CMPP_QUERY")
    time, query_type, query_code, reserve = _QUERY.unpack_from(buf, off)
    return Query(seq, _text(time), query_type, _text(query_code), _text(reserve))


def _dec_query_resp(buf, off: int, n: int, seq: int) -> QueryResp:
    _expect(n, _QUERY_RESP.size, "CMPP_QUERY_RESP")
    time, query_type, query_code, *counters = _QUERY_RESP.unpack_from(buf, off)
    return QueryResp(seq, _text(time), query_type, _text(query_code), *counters)


def _dec_cancel(buf, off: int, n: int, seq: int) -> Cancel:
    _expect(n, _CANCEL.size, "CMPP_CANCEL")
    return Cancel(seq, _CANCEL.unpack_from(buf, off)[0])


def _dec_cancel_resp(buf, off: int, n: int, seq: int) -> CancelResp:
    _expect(n, 1, "CMPP_CANCEL_RESP")
    return CancelResp(seq, buf[off])


# --- CMPP 3.0 encoders -----------------------------------------------------------------

def _enc_connect_resp_30(e: ConnectResp) -> bytes:
    return _CONNECT_RESP_30_PDU.pack(_CONNECT_RESP_30_PDU.size, CMPP_CONNECT_RESP,
                                     e.sequence_id, e.status,
                                     _fixed(e.authenticator, 16, "AuthenticatorISMG"),
                                     e.version)


def _enc_submit_30(e: Submit) -> bytes:
    if e.reserve:
        raise _only_in_20("reserve")
    numbers = _dest_numbers(e)
    count = len(numbers)
    content = e.msg_content
    if len(content) > 255:
        raise CmppError(f"Msg_Content is {len(content)} octets; Msg_Length holds at most 255")
    total = HEADER_LENGTH + _SUBMIT_FIXED_30 + count * _NUMBER_WIDTH_30 + len(content)
    head = _SUBMIT_HEAD_30_PDU.pack(
        total, CMPP_SUBMIT, e.sequence_id,
        e.msg_id, e.pk_total, e.pk_number, e.registered_delivery, e.msg_level,
        _octets(e.service_id, 10, "Service_Id"),
        e.fee_user_type,
        _octets(e.fee_terminal_id, _NUMBER_WIDTH_30, "Fee_terminal_Id"),
        e.fee_terminal_type,
        e.tp_pid, e.tp_udhi, e.msg_fmt,
        _octets(e.msg_src, 6, "Msg_src"),
        _octets(e.fee_type, 2, "FeeType"),
        _octets(e.fee_code, 6, "FeeCode"),
        _octets(e.valid_time, 17, "ValId_Time"),
        _octets(e.at_time, 17, "At_Time"),
        _octets(e.src_id, 21, "Src_Id"),
        count,
    )
    dests = _numbers_struct(count, _NUMBER_WIDTH_30).pack(
        *[_octets(n, _NUMBER_WIDTH_30, "Dest_terminal_Id") for n in numbers])
    return b"".join((head, dests, _TYPE_AND_LENGTH.pack(e.dest_terminal_type, len(content)),
                     content,
                     _octets(e.link_id, _LINK_ID_WIDTH, "LinkID").ljust(_LINK_ID_WIDTH, b"\0")))


def _enc_msgid_result_30(command_id: int) -> Callable[[Event], bytes]:
    def encode(e: SubmitResp | DeliverResp) -> bytes:
        return _MSGID_RESULT_30_PDU.pack(_MSGID_RESULT_30_PDU.size, command_id,
                                         e.sequence_id, e.msg_id, e.result)
    return encode


def _enc_deliver_30(e: Deliver) -> bytes:
    if e.reserved:
        raise _only_in_20("reserved")
    content, registered_delivery = _deliver_content(e, V30)
    total = HEADER_LENGTH + _DELIVER_FIXED_30 + len(content)
    head = _DELIVER_HEAD_30_PDU.pack(
        total, CMPP_DELIVER, e.sequence_id,
        e.msg_id,
        _octets(e.dest_id, 21, "Dest_Id"),
        _octets(e.service_id, 10, "Service_Id"),
        e.tp_pid, e.tp_udhi, e.msg_fmt,
        _octets(e.src_terminal_id, _NUMBER_WIDTH_30, "Src_terminal_Id"),
        e.src_terminal_type,
        registered_delivery, len(content),
    )
    return b"".join((head, content,
                     _octets(e.link_id, _LINK_ID_WIDTH, "LinkID").ljust(_LINK_ID_WIDTH, b"\0")))


def _enc_cancel_resp_30(e: CancelResp) -> bytes:
    return _CANCEL_RESP_30_PDU.pack(_CANCEL_RESP_30_PDU.size, CMPP_CANCEL_RESP, e.sequence_id,
                                    e.success_id)


# --- CMPP 3.0 decoders ----------------------------------------------------------------

def _dec_connect_resp_30(buf, off: int, n: int, seq: int) -> ConnectResp:
    _expect(n, _CONNECT_RESP_30.size, "CMPP_CONNECT_RESP")
    status, auth, version = _CONNECT_RESP_30.unpack_from(buf, off)
    return ConnectResp(seq, status, auth, version)


def _dec_submit_30(buf, off: int, n: int, seq: int) -> Submit:
    if n < _SUBMIT_FIXED_30:
        raise CmppError(f"CMPP_SUBMIT body is {n} octets; at least {_SUBMIT_FIXED_30} needed")
    (msg_id, pk_total, pk_number, registered_delivery, msg_level, service_id, fee_user_type,
     fee_terminal_id, fee_terminal_type, tp_pid, tp_udhi, msg_fmt, msg_src, fee_type,
     fee_code, valid_time, at_time, src_id, count) = _SUBMIT_HEAD_30.unpack_from(buf, off)
    without_content = _SUBMIT_FIXED_30 + count * _NUMBER_WIDTH_30
    if n < without_content:
        raise CmppError(f"CMPP_SUBMIT DestUsr_tl={count} does not fit a {n}-octet body")
    p = off + _SUBMIT_HEAD_30.size
    numbers = _numbers_struct(count, _NUMBER_WIDTH_30).unpack_from(buf, p)
    p += count * _NUMBER_WIDTH_30
    dest_terminal_type = buf[p]
    length = buf[p + 1]
    if n != without_content + length:
        raise CmppError(f"CMPP_SUBMIT Msg_Length={length} does not match a {n}-octet body")
    p += 2
    content = bytes(buf[p:p + length])
    p += length
    link_id = _text(bytes(buf[p:p + _LINK_ID_WIDTH]))
    return Submit(
        sequence_id=seq,
        dest_terminal_ids=tuple([_text(x) for x in numbers]),
        msg_content=content,
        msg_id=msg_id,
        pk_total=pk_total,
        pk_number=pk_number,
        registered_delivery=registered_delivery,
        msg_level=msg_level,
        service_id=_text(service_id),
        fee_user_type=fee_user_type,
        fee_terminal_id=_text(fee_terminal_id),
        tp_pid=tp_pid,
        tp_udhi=tp_udhi,
        msg_fmt=msg_fmt,
        msg_src=_text(msg_src),
        fee_type=_text(fee_type),
        fee_code=_text(fee_code),
        valid_time=_text(valid_time),
        at_time=_text(at_time),
        src_id=_text(src_id),
        fee_terminal_type=fee_terminal_type,
        dest_terminal_type=dest_terminal_type,
        link_id=link_id,
    )


def _dec_msgid_result_30(cls: type, name: str):
    def decode(buf, off: int, n: int, seq: int):
        _expect(n, _MSGID_RESULT_30.size, name)
        msg_id, result = _MSGID_RESULT_30.unpack_from(buf, off)
        return cls(seq, msg_id, result)
    return decode


def _dec_deliver_30(buf, off: int, n: int, seq: int) -> Deliver:
    if n < _DELIVER_FIXED_30:
        raise CmppError(f"CMPP_DELIVER body is {n} octets; at least {_DELIVER_FIXED_30} needed")
    (msg_id, dest_id, service_id, tp_pid, tp_udhi, msg_fmt, src_terminal_id,
     src_terminal_type, registered_delivery, length) = _DELIVER_HEAD_30.unpack_from(buf, off)
    if n != _DELIVER_FIXED_30 + length:
        raise CmppError(f"CMPP_DELIVER Msg_Length={length} does not match a {n}-octet body")
    p = off + _DELIVER_HEAD_30.size
    content = bytes(buf[p:p + length])
    p += length
    link_id = _text(bytes(buf[p:p + _LINK_ID_WIDTH]))
    report = decode_report(content, V30) if registered_delivery == 1 else None
    return Deliver(
        sequence_id=seq,
        msg_id=msg_id,
        dest_id=_text(dest_id),
        src_terminal_id=_text(src_terminal_id),
        msg_content=content,
        service_id=_text(service_id),
        tp_pid=tp_pid,
        tp_udhi=tp_udhi,
        msg_fmt=msg_fmt,
        registered_delivery=registered_delivery,
        report=report,
        src_terminal_type=src_terminal_type,
        link_id=link_id,
    )


def _dec_cancel_resp_30(buf, off: int, n: int, seq: int) -> CancelResp:
    # 3.0 widened Success_Id to four octets; gateways that kept 2.0's single
    # octet are still understood, since the body length tells them apart.
    if n == 1:
        return CancelResp(seq, buf[off])
    _expect(n, 4, "CMPP_CANCEL_RESP")
    return CancelResp(seq, int.from_bytes(buf[off:off + 4], "big"))


# --- version tables ---------------------------------------------------------------

Decoder = Callable[..., Event]
Encoder = Callable[[Event], bytes]


class _Table(NamedTuple):
    encoders: dict[type, Encoder]
    decoders: dict[int, Decoder]


_V20_TABLE = _Table(
    encoders={
        Connect: _enc_connect,
        ConnectResp: _enc_connect_resp,
        Terminate: _header_only(CMPP_TERMINATE),
        TerminateResp: _header_only(CMPP_TERMINATE_RESP),
        ActiveTest: _header_only(CMPP_ACTIVE_TEST),
        ActiveTestResp: _enc_active_test_resp,
        Submit: _enc_submit,
        SubmitResp: _enc_msgid_result(CMPP_SUBMIT_RESP),
        Deliver: _enc_deliver,
        DeliverResp: _enc_msgid_result(CMPP_DELIVER_RESP),
        Query: _enc_query,
        QueryResp: _enc_query_resp,
        Cancel: _enc_cancel,
        CancelResp: _enc_cancel_resp,
    },
    decoders={
        CMPP_CONNECT: _dec_connect,
        CMPP_CONNECT_RESP: _dec_connect_resp,
        CMPP_TERMINATE: _dec_header_only(Terminate, "CMPP_TERMINATE"),
        CMPP_TERMINATE_RESP: _dec_header_only(TerminateResp, "CMPP_TERMINATE_RESP"),
        CMPP_ACTIVE_TEST: _dec_header_only(ActiveTest, "CMPP_ACTIVE_TEST"),
        CMPP_ACTIVE_TEST_RESP: _dec_active_test_resp,
        CMPP_SUBMIT: _dec_submit,
        CMPP_SUBMIT_RESP: _dec_msgid_result(SubmitResp, "CMPP_SUBMIT_RESP"),
        CMPP_DELIVER: _dec_deliver,
        CMPP_DELIVER_RESP: _dec_msgid_result(DeliverResp, "CMPP_DELIVER_RESP"),
        CMPP_QUERY: _dec_query,
        CMPP_QUERY_RESP: _dec_query_resp,
        CMPP_CANCEL: _dec_cancel,
        CMPP_CANCEL_RESP: _dec_cancel_resp,
    },
)

# 3.0 starts from 2.0 and replaces the PDUs whose bodies changed; CONNECT,
# TERMINATE, ACTIVE_TEST(_RESP), QUERY(_RESP) and CANCEL are the same.
_V30_TABLE = _Table(
    encoders={
        **_V20_TABLE.encoders,
        ConnectResp: _enc_connect_resp_30,
        Submit: _enc_submit_30,
        SubmitResp: _enc_msgid_result_30(CMPP_SUBMIT_RESP),
        Deliver: _enc_deliver_30,
        DeliverResp: _enc_msgid_result_30(CMPP_DELIVER_RESP),
        CancelResp: _enc_cancel_resp_30,
    },
    decoders={
        **_V20_TABLE.decoders,
        CMPP_CONNECT_RESP: _dec_connect_resp_30,
        CMPP_SUBMIT: _dec_submit_30,
        CMPP_SUBMIT_RESP: _dec_msgid_result_30(SubmitResp, "CMPP_SUBMIT_RESP"),
        CMPP_DELIVER: _dec_deliver_30,
        CMPP_DELIVER_RESP: _dec_msgid_result_30(DeliverResp, "CMPP_DELIVER_RESP"),
        CMPP_CANCEL_RESP: _dec_cancel_resp_30,
    },
)

_TABLES: dict[int, _Table] = {V20: _V20_TABLE, V30: _V30_TABLE}

SUPPORTED_VERSIONS = frozenset(_TABLES)


def negotiate_version(requested: int) -> int:
    """The layouts a session runs on when the SP's CONNECT asks for ``requested``.

    CONNECT has the same layout in every version, so a server that speaks
    both reads it first (``decode(pdu)`` with any version, or a
    ``Connection(..., version=None)``) and then picks the session version
    from its Version field: the highest supported version not above the
    request (0x30 for 0x30 and up, 0x20 for 0x20-0x2F). A request below
    every supported version gets the lowest, so that a refusing CONNECT_RESP
    can still be encoded. Whether to accept is the server's call: compare
    ``connect.version`` with the result and answer
    ``ConnectStatus.VERSION_TOO_HIGH`` if it will not serve the request.
    """
    candidates = [v for v in _TABLES if v <= requested]
    return max(candidates) if candidates else min(_TABLES)


def _table(version: int) -> _Table:
    try:
        return _TABLES[version]
    except KeyError:
        raise ValueError(f"CMPP version 0x{version:02X} is not supported; "
                         f"supported: {', '.join(f'0x{v:02X}' for v in sorted(_TABLES))}") from None


# --- public API ----------------------------------------------------------------------

def encode(event: Event, version: int = V20) -> bytes:
    """Serialise one event to a complete PDU, header included.

    Text fields must be ASCII and fit their octet width; integers must fit
    theirs. Anything else raises :class:`CmppError` rather than being
    silently truncated.
    """
    encoder = _table(version).encoders.get(type(event))
    if encoder is None:
        raise CmppError(f"{type(event).__name__} is not a CMPP event")
    try:
        return encoder(event)
    except CmppError as exc:
        raise CmppError(f"cannot encode {type(event).__name__}: {exc}",
                        sequence_id=getattr(event, "sequence_id", None)) from exc
    except (StructError, UnicodeError, TypeError, AttributeError) as exc:
        # struct.error: an integer out of range; UnicodeError: non-ASCII text;
        # TypeError/AttributeError: a field of the wrong type.
        raise CmppError(f"cannot encode {type(event).__name__}: {exc}",
                        sequence_id=getattr(event, "sequence_id", None)) from exc


def decode_body(command_id: int, sequence_id: int, buf, offset: int, length: int,
                version: int = V20) -> Event:
    """Decode a body of ``length`` octets at ``buf[offset:]`` (header already parsed).

    This is the zero-copy entry point the connection uses on its receive
    buffer; most callers want :func:`decode`.
    """
    decoder = _table(version).decoders.get(command_id)
    if decoder is None:
        raise CmppError(f"unknown Command_Id 0x{command_id:08X}",
                        command_id=command_id, sequence_id=sequence_id)
    try:
        return decoder(buf, offset, length, sequence_id)
    except CmppError as exc:
        exc.command_id = command_id
        exc.sequence_id = sequence_id
        raise
    except (StructError, UnicodeDecodeError, IndexError) as exc:
        raise CmppError(f"malformed PDU 0x{command_id:08X}: {exc}",
                        command_id=command_id, sequence_id=sequence_id) from exc


def decode(pdu: bytes, version: int = V20) -> Event:
    """Parse exactly one complete PDU (header and body) into an event.

    Raises :class:`CmppError` if Total_Length disagrees with ``len(pdu)``,
    the Command_Id is unknown, or the body does not match its layout.
    """
    if len(pdu) < HEADER_LENGTH:
        raise CmppError(f"a PDU is at least {HEADER_LENGTH} octets, got {len(pdu)}")
    total, command_id, sequence_id = HEADER.unpack_from(pdu, 0)
    if total != len(pdu):
        raise CmppError(f"Total_Length is {total} but the PDU is {len(pdu)} octets",
                        command_id=command_id, sequence_id=sequence_id)
    return decode_body(command_id, sequence_id, pdu, HEADER_LENGTH, total - HEADER_LENGTH,
                       version)
