"""Byte layouts of SGIP 1.2 PDUs: one event <-> one complete PDU.

A PDU is a 20-octet header (Message Length 4, Command ID 4, Sequence
Number 12; big-endian) followed by a body whose layout depends on the
Command ID. Bodies mix big-endian unsigned integers and fixed-width text
fields right-padded with NUL octets. Encoding pads with NULs; decoding cuts
at the first NUL.

Each layout below names the command whose field table in "中国联通短消息网关
系统接口协议 (SGIP) 1.2", China Unicom, it follows; widths were checked
against the public SGIP implementations ElegantCloud/feiying_sgip (sgip.c,
sgip.h) and yedamao/go_sgip.

Layouts are kept in ``_TABLES`` per version so a later revision (SGIP 1.3
adds LinkID to Submit and Deliver) can be a second table. Only 1.2 exists.

This module does no framing: :func:`decode` takes exactly one PDU. Use
:class:`~hongyan.protocols.sgip.connection.Connection` for a byte stream.
"""
from __future__ import annotations

from struct import Struct, error as StructError
from typing import Callable, NamedTuple

from .constants import HEADER_LENGTH, MAX_USER_COUNT, CommandId
from .errors import SgipError
from .events import (
    Bind, BindResp, Deliver, DeliverResp, Event, Report, ReportResp, SequenceNumber, Submit,
    SubmitResp, Trace, TraceResp, TraceResult, Unbind, UnbindResp, UserRpt, UserRptResp,
)

V12 = 0x12
"""SGIP 1.2, the only layout table."""

# SGIP 1.2 message header: Message Length, Command ID, Sequence Number as three uint32.
HEADER = Struct(">IIIII")

# --- layouts (body structs decode, header+body structs encode in one pack) ---

# SGIP 1.2 Bind: Login Type 1, Login Name 16, Login Password 16, Reserve 8.
_BIND = Struct(">B16s16s8s")
_BIND_PDU = Struct(">IIIIIB16s16s8s")
# SGIP 1.2 Bind_Resp, Submit_Resp, Deliver_Resp, Report_Resp, UserRpt_Resp: Result 1, Reserve 8.
_RESULT = Struct(">B8s")
_RESULT_PDU = Struct(">IIIIIB8s")
# SGIP 1.2 Submit up to UserCount: SPNumber 21, ChargeNumber 21, UserCount 1.
_SUBMIT_HEAD = Struct(">21s21sB")
_SUBMIT_HEAD_PDU = Struct(">IIIII21s21sB")
# Then UserNumber 21 x UserCount, then CorpId 5, ServiceType 10, FeeType 1,
# FeeValue 6, GivenValue 6, AgentFlag 1, MorelatetoMTFlag 1, Priority 1,
# ExpireTime 16, ScheduleTime 16, ReportFlag 1, TP_pid 1, TP_udhi 1,
# MessageCoding 1, MessageType 1, MessageLength 4 (72 octets), then
# MessageContent and Reserve 8.
_SUBMIT_MIDDLE = Struct(">5s10sB6s6sBBB16s16sBBBBBI")
# SGIP 1.2 Deliver: UserNumber 21, SPNumber 21, TP_pid 1, TP_udhi 1, MessageCoding 1,
# MessageLength 4 (49 octets), then MessageContent and Reserve 8.
_DELIVER_HEAD = Struct(">21s21sBBBI")
_DELIVER_HEAD_PDU = Struct(">IIIII21s21sBBBI")
# SGIP 1.2 Report: SubmitSequenceNumber 12, ReportType 1, UserNumber 21, State 1,
# ErrorCode 1, Reserve 8.
_REPORT = Struct(">IIIB21sBB8s")
_REPORT_PDU = Struct(">IIIIIIIIB21sBB8s")
# SGIP 1.2 UserRpt: SPNumber 21, UserNumber 21, UserCondition 1, Reserve 8.
_USERRPT = Struct(">21s21sB8s")
_USERRPT_PDU = Struct(">IIIII21s21sB8s")
# SGIP 1.2 Trace: SubmitSequenceNumber 12, UserNumber 21, Reserve 8.
_TRACE = Struct(">III21s8s")
_TRACE_PDU = Struct(">IIIIIIII21s8s")
# SGIP 1.2 Trace_Resp: Count 1, then per node: Result 1, NodeId 6, ReceiveTime 16,
# SendTime 16, Reserve 8 (47 octets).
_TRACE_ITEM = Struct(">B6s16s16s8s")

_NUMBER_WIDTH = 21
_RESERVE_WIDTH = 8
_SUBMIT_FIXED = _SUBMIT_HEAD.size + _SUBMIT_MIDDLE.size + _RESERVE_WIDTH  # without numbers, text
_DELIVER_FIXED = _DELIVER_HEAD.size + _RESERVE_WIDTH                       # without text

_number_structs: dict[int, Struct] = {}


def _numbers_struct(count: int) -> Struct:
    """A Struct for ``count`` consecutive 21-octet numbers, built once per count."""
    s = _number_structs.get(count)
    if s is None:
        s = _number_structs[count] = Struct(f"{_NUMBER_WIDTH}s" * count)
    return s


# --- field helpers -------------------------------------------------------------

def _text(raw: bytes) -> str:
    """Decode a NUL-padded text field (C semantics: stop at the first NUL)."""
    return raw.partition(b"\0")[0].decode("ascii")


def _octets(value: str, width: int, name: str) -> bytes:
    """Encode text for a ``width``-octet field; struct adds the NUL padding.

    struct would silently cut a longer value, so the width is checked here.
    """
    raw = value.encode("ascii")
    if len(raw) > width:
        raise SgipError(f"{name} is {len(raw)} octets; the field holds {width}")
    if b"\0" in raw:
        # A NUL would end the string early on the other side.
        raise SgipError(f"{name} contains a NUL")
    return raw


def _reserve(value: bytes) -> bytes:
    if len(value) > _RESERVE_WIDTH:
        raise SgipError(f"Reserve is {len(value)} octets; the field holds {_RESERVE_WIDTH}")
    return bytes(value)


def _unreserve(raw: bytes) -> bytes:
    return bytes(raw).rstrip(b"\0")


def _seq(value: SequenceNumber) -> tuple[int, int, int]:
    node_id, timestamp, number = value
    return node_id, timestamp, number


def _expect(body_length: int, expected: int, name: str) -> None:
    if body_length != expected:
        raise SgipError(f"{name} body must be {expected} octets, got {body_length}")


# --- encoders: event -> whole PDU ------------------------------------------------

def _enc_bind(e: Bind) -> bytes:
    return _BIND_PDU.pack(_BIND_PDU.size, CommandId.BIND, *_seq(e.sequence_number),
                          e.login_type,
                          _octets(e.login_name, 16, "Login Name"),
                          _octets(e.login_password, 16, "Login Password"),
                          _reserve(e.reserve))


def _enc_result(command_id: int) -> Callable[[Event], bytes]:
    def encode(e) -> bytes:
        return _RESULT_PDU.pack(_RESULT_PDU.size, command_id, *_seq(e.sequence_number),
                                e.result, _reserve(e.reserve))
    return encode


def _enc_header_only(command_id: int) -> Callable[[Event], bytes]:
    def encode(e) -> bytes:
        return HEADER.pack(HEADER_LENGTH, command_id, *_seq(e.sequence_number))
    return encode


def _enc_submit(e: Submit) -> bytes:
    numbers = e.user_numbers
    if isinstance(numbers, str):
        raise SgipError("user_numbers must be a sequence of numbers, not one string")
    count = len(numbers)
    if not 1 <= count <= MAX_USER_COUNT:
        raise SgipError(f"UserCount is {count}; SGIP allows 1 to {MAX_USER_COUNT}")
    content = e.message_content
    total = HEADER_LENGTH + _SUBMIT_FIXED + count * _NUMBER_WIDTH + len(content)
    head = _SUBMIT_HEAD_PDU.pack(
        total, CommandId.SUBMIT, *_seq(e.sequence_number),
        _octets(e.sp_number, 21, "SPNumber"),
        _octets(e.charge_number, 21, "ChargeNumber"),
        count)
    users = _numbers_struct(count).pack(
        *[_octets(n, _NUMBER_WIDTH, "UserNumber") for n in numbers])
    middle = _SUBMIT_MIDDLE.pack(
        _octets(e.corp_id, 5, "CorpId"),
        _octets(e.service_type, 10, "ServiceType"),
        e.fee_type,
        _octets(e.fee_value, 6, "FeeValue"),
        _octets(e.given_value, 6, "GivenValue"),
        e.agent_flag, e.morelateto_mt_flag, e.priority,
        _octets(e.expire_time, 16, "ExpireTime"),
        _octets(e.schedule_time, 16, "ScheduleTime"),
        e.report_flag, e.tp_pid, e.tp_udhi, e.message_coding, e.message_type,
        len(content))
    return b"".join((head, users, middle, content,
                     _reserve(e.reserve).ljust(_RESERVE_WIDTH, b"\0")))


def _enc_deliver(e: Deliver) -> bytes:
    content = e.message_content
    total = HEADER_LENGTH + _DELIVER_FIXED + len(content)
    head = _DELIVER_HEAD_PDU.pack(
        total, CommandId.DELIVER, *_seq(e.sequence_number),
        _octets(e.user_number, 21, "UserNumber"),
        _octets(e.sp_number, 21, "SPNumber"),
        e.tp_pid, e.tp_udhi, e.message_coding, len(content))
    return b"".join((head, content, _reserve(e.reserve).ljust(_RESERVE_WIDTH, b"\0")))


def _enc_report(e: Report) -> bytes:
    return _REPORT_PDU.pack(_REPORT_PDU.size, CommandId.REPORT, *_seq(e.sequence_number),
                            *_seq(e.submit_sequence_number), e.report_type,
                            _octets(e.user_number, 21, "UserNumber"),
                            e.state, e.error_code, _reserve(e.reserve))


def _enc_userrpt(e: UserRpt) -> bytes:
    return _USERRPT_PDU.pack(_USERRPT_PDU.size, CommandId.USERRPT, *_seq(e.sequence_number),
                             _octets(e.sp_number, 21, "SPNumber"),
                             _octets(e.user_number, 21, "UserNumber"),
                             e.user_condition, _reserve(e.reserve))


def _enc_trace(e: Trace) -> bytes:
    return _TRACE_PDU.pack(_TRACE_PDU.size, CommandId.TRACE, *_seq(e.sequence_number),
                           *_seq(e.submit_sequence_number),
                           _octets(e.user_number, 21, "UserNumber"),
                           _reserve(e.reserve))


def _enc_trace_resp(e: TraceResp) -> bytes:
    results = e.results
    count = len(results)
    if count > 0xFF:
        raise SgipError(f"Trace_Resp has {count} results; Count holds at most 255")
    total = HEADER_LENGTH + 1 + count * _TRACE_ITEM.size
    parts = [HEADER.pack(total, CommandId.TRACE_RESP, *_seq(e.sequence_number)),
             bytes((count,))]
    for r in results:
        parts.append(_TRACE_ITEM.pack(r.result, _octets(r.node_id, 6, "NodeId"),
                                      _octets(r.receive_time, 16, "ReceiveTime"),
                                      _octets(r.send_time, 16, "SendTime"),
                                      _reserve(r.reserve)))
    return b"".join(parts)


# --- decoders: (buffer, body offset, body length, SequenceNumber) -> event --------
# They read straight out of the caller's buffer (bytes or bytearray) so the
# connection never copies a PDU before parsing it.

def _dec_bind(buf, off: int, n: int, seq: SequenceNumber) -> Bind:
    _expect(n, _BIND.size, "Bind")
    login_type, name, password, reserve = _BIND.unpack_from(buf, off)
    return Bind(seq, login_type, _text(name), _text(password), _unreserve(reserve))


def _dec_result(cls: type, name: str):
    def decode(buf, off: int, n: int, seq: SequenceNumber):
        _expect(n, _RESULT.size, name)
        result, reserve = _RESULT.unpack_from(buf, off)
        return cls(seq, result, _unreserve(reserve))
    return decode


def _dec_header_only(cls: type, name: str):
    def decode(buf, off: int, n: int, seq: SequenceNumber):
        _expect(n, 0, name)
        return cls(seq)
    return decode


def _dec_submit(buf, off: int, n: int, seq: SequenceNumber) -> Submit:
    if n < _SUBMIT_FIXED + _NUMBER_WIDTH:
        raise SgipError(f"Submit body is {n} octets; at least "
                        f"{_SUBMIT_FIXED + _NUMBER_WIDTH} needed")
    sp_number, charge_number, count = _SUBMIT_HEAD.unpack_from(buf, off)
    if not 1 <= count <= MAX_USER_COUNT:
        raise SgipError(f"Submit UserCount is {count}; SGIP allows 1 to {MAX_USER_COUNT}")
    without_content = _SUBMIT_FIXED + count * _NUMBER_WIDTH
    if n < without_content:
        raise SgipError(f"Submit UserCount={count} does not fit a {n}-octet body")
    p = off + _SUBMIT_HEAD.size
    numbers = _numbers_struct(count).unpack_from(buf, p)
    p += count * _NUMBER_WIDTH
    (corp_id, service_type, fee_type, fee_value, given_value, agent_flag, morelateto_mt_flag,
     priority, expire_time, schedule_time, report_flag, tp_pid, tp_udhi, message_coding,
     message_type, length) = _SUBMIT_MIDDLE.unpack_from(buf, p)
    if n != without_content + length:
        raise SgipError(f"Submit MessageLength={length} does not match a {n}-octet body")
    p += _SUBMIT_MIDDLE.size
    content = bytes(buf[p:p + length])
    p += length
    return Submit(
        sequence_number=seq,
        sp_number=_text(sp_number),
        user_numbers=tuple([_text(x) for x in numbers]),
        message_content=content,
        charge_number=_text(charge_number),
        corp_id=_text(corp_id),
        service_type=_text(service_type),
        fee_type=fee_type,
        fee_value=_text(fee_value),
        given_value=_text(given_value),
        agent_flag=agent_flag,
        morelateto_mt_flag=morelateto_mt_flag,
        priority=priority,
        expire_time=_text(expire_time),
        schedule_time=_text(schedule_time),
        report_flag=report_flag,
        tp_pid=tp_pid,
        tp_udhi=tp_udhi,
        message_coding=message_coding,
        message_type=message_type,
        reserve=_unreserve(buf[p:p + _RESERVE_WIDTH]),
    )


def _dec_deliver(buf, off: int, n: int, seq: SequenceNumber) -> Deliver:
    if n < _DELIVER_FIXED:
        raise SgipError(f"Deliver body is {n} octets; at least {_DELIVER_FIXED} needed")
    (user_number, sp_number, tp_pid, tp_udhi, message_coding,
     length) = _DELIVER_HEAD.unpack_from(buf, off)
    if n != _DELIVER_FIXED + length:
        raise SgipError(f"Deliver MessageLength={length} does not match a {n}-octet body")
    p = off + _DELIVER_HEAD.size
    content = bytes(buf[p:p + length])
    p += length
    return Deliver(seq, _text(user_number), _text(sp_number), content, tp_pid, tp_udhi,
                   message_coding, _unreserve(buf[p:p + _RESERVE_WIDTH]))


def _dec_report(buf, off: int, n: int, seq: SequenceNumber) -> Report:
    _expect(n, _REPORT.size, "Report")
    (node_id, timestamp, number, report_type, user_number, state, error_code,
     reserve) = _REPORT.unpack_from(buf, off)
    return Report(seq, SequenceNumber(node_id, timestamp, number), report_type,
                  _text(user_number), state, error_code, _unreserve(reserve))


def _dec_userrpt(buf, off: int, n: int, seq: SequenceNumber) -> UserRpt:
    _expect(n, _USERRPT.size, "UserRpt")
    sp_number, user_number, condition, reserve = _USERRPT.unpack_from(buf, off)
    return UserRpt(seq, _text(sp_number), _text(user_number), condition, _unreserve(reserve))


def _dec_trace(buf, off: int, n: int, seq: SequenceNumber) -> Trace:
    _expect(n, _TRACE.size, "Trace")
    node_id, timestamp, number, user_number, reserve = _TRACE.unpack_from(buf, off)
    return Trace(seq, SequenceNumber(node_id, timestamp, number), _text(user_number),
                 _unreserve(reserve))


def _dec_trace_resp(buf, off: int, n: int, seq: SequenceNumber) -> TraceResp:
    if n < 1:
        raise SgipError("Trace_Resp body is empty; the Count octet is missing")
    count = buf[off]
    _expect(n, 1 + count * _TRACE_ITEM.size, f"Trace_Resp with Count={count}")
    results = []
    p = off + 1
    for _ in range(count):
        result, node_id, receive_time, send_time, reserve = _TRACE_ITEM.unpack_from(buf, p)
        results.append(TraceResult(result, _text(node_id), _text(receive_time),
                                   _text(send_time), _unreserve(reserve)))
        p += _TRACE_ITEM.size
    return TraceResp(seq, tuple(results))


# --- version tables ---------------------------------------------------------------

Decoder = Callable[..., Event]
Encoder = Callable[[Event], bytes]


class _Table(NamedTuple):
    encoders: dict[type, Encoder]
    decoders: dict[int, Decoder]


_V12_TABLE = _Table(
    encoders={
        Bind: _enc_bind,
        BindResp: _enc_result(CommandId.BIND_RESP),
        Unbind: _enc_header_only(CommandId.UNBIND),
        UnbindResp: _enc_header_only(CommandId.UNBIND_RESP),
        Submit: _enc_submit,
        SubmitResp: _enc_result(CommandId.SUBMIT_RESP),
        Deliver: _enc_deliver,
        DeliverResp: _enc_result(CommandId.DELIVER_RESP),
        Report: _enc_report,
        ReportResp: _enc_result(CommandId.REPORT_RESP),
        UserRpt: _enc_userrpt,
        UserRptResp: _enc_result(CommandId.USERRPT_RESP),
        Trace: _enc_trace,
        TraceResp: _enc_trace_resp,
    },
    decoders={
        CommandId.BIND: _dec_bind,
        CommandId.BIND_RESP: _dec_result(BindResp, "Bind_Resp"),
        CommandId.UNBIND: _dec_header_only(Unbind, "Unbind"),
        CommandId.UNBIND_RESP: _dec_header_only(UnbindResp, "Unbind_Resp"),
        CommandId.SUBMIT: _dec_submit,
        CommandId.SUBMIT_RESP: _dec_result(SubmitResp, "Submit_Resp"),
        CommandId.DELIVER: _dec_deliver,
        CommandId.DELIVER_RESP: _dec_result(DeliverResp, "Deliver_Resp"),
        CommandId.REPORT: _dec_report,
        CommandId.REPORT_RESP: _dec_result(ReportResp, "Report_Resp"),
        CommandId.USERRPT: _dec_userrpt,
        CommandId.USERRPT_RESP: _dec_result(UserRptResp, "UserRpt_Resp"),
        CommandId.TRACE: _dec_trace,
        CommandId.TRACE_RESP: _dec_trace_resp,
    },
)

_TABLES: dict[int, _Table] = {V12: _V12_TABLE}

SUPPORTED_VERSIONS = frozenset(_TABLES)


def _table(version: int) -> _Table:
    try:
        return _TABLES[version]
    except KeyError:
        raise ValueError(f"SGIP version 0x{version:02X} is not supported; "
                         f"supported: {', '.join(f'0x{v:02X}' for v in sorted(_TABLES))}") from None


def _name(command_id: int) -> str:
    try:
        return CommandId(command_id).name
    except ValueError:
        return f"0x{command_id:08X}"


# --- public API ----------------------------------------------------------------------

def encode(event: Event, version: int = V12) -> bytes:
    """Serialise one event to a complete PDU, header included.

    Text fields must be ASCII and fit their octet width; integers must fit
    theirs. Anything else raises :class:`SgipError` rather than being
    silently truncated.
    """
    encoder = _table(version).encoders.get(type(event))
    if encoder is None:
        raise SgipError(f"{type(event).__name__} is not an SGIP event")
    try:
        return encoder(event)
    except (SgipError, StructError, UnicodeError, TypeError, AttributeError, ValueError) as exc:
        # struct.error: an integer out of range; UnicodeError: non-ASCII text;
        # TypeError/AttributeError/ValueError: a field of the wrong type or shape.
        raise SgipError(f"cannot encode {type(event).__name__}: {exc}",
                        sequence_number=getattr(event, "sequence_number", None)) from exc


def decode_body(command_id: int, sequence_number: SequenceNumber, buf, offset: int,
                length: int, version: int = V12) -> Event:
    """Decode a body of ``length`` octets at ``buf[offset:]`` (header already parsed).

    This is the zero-copy entry point the connection uses on its receive
    buffer; most callers want :func:`decode`.
    """
    decoder = _table(version).decoders.get(command_id)
    if decoder is None:
        raise SgipError(f"unknown Command ID 0x{command_id:08X}",
                        command_id=command_id, sequence_number=sequence_number)
    try:
        return decoder(buf, offset, length, sequence_number)
    except SgipError as exc:
        exc.command_id = command_id
        exc.sequence_number = sequence_number
        raise
    except (StructError, UnicodeDecodeError, IndexError) as exc:
        raise SgipError(f"malformed {_name(command_id)}: {exc}",
                        command_id=command_id, sequence_number=sequence_number) from exc


def decode(pdu: bytes, version: int = V12) -> Event:
    """Parse exactly one complete PDU (header and body) into an event.

    Raises :class:`SgipError` if Message Length disagrees with ``len(pdu)``,
    the Command ID is unknown, or the body does not match its layout.
    """
    if len(pdu) < HEADER_LENGTH:
        raise SgipError(f"a PDU is at least {HEADER_LENGTH} octets, got {len(pdu)}")
    total, command_id, node_id, timestamp, number = HEADER.unpack_from(pdu, 0)
    seq = SequenceNumber(node_id, timestamp, number)
    if total != len(pdu):
        raise SgipError(f"Message Length is {total} but the PDU is {len(pdu)} octets",
                        command_id=command_id, sequence_number=seq)
    return decode_body(command_id, seq, pdu, HEADER_LENGTH, total - HEADER_LENGTH, version)
