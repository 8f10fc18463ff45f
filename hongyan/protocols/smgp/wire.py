"""Byte layouts of SMGP 3.0 PDUs: one event <-> one complete PDU.

A PDU is a 12-octet header (PacketLength, RequestID, SequenceID; big-endian
uint32, SMGP V3.0 section 5.2.1) followed by a body whose layout depends on
the RequestID. Bodies mix big-endian unsigned integers and fixed-width
"octet strings": ASCII text right-padded with NUL octets (section 5.1).
Encoding pads with NULs; decoding cuts at the first NUL. Submit and Deliver
end with optional TLVs (section 6.3, see ``tlv.py``).

Section numbers below refer to "China Telecom Short Message Gateway
Protocol (SMGP) V3.0" (SN RC1 SMGP V3.0.2).

Also here, because they are part of the wire format: the login
authenticators (6.2.2, 6.2.7), the 10-octet MsgID, and the status report
text carried in a Deliver's MsgContent.

This module does no framing: :func:`decode` takes exactly one PDU. Use
:class:`~hongyan.protocols.smgp.connection.Connection` for a byte stream.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import datetime
from struct import Struct, error as StructError
from typing import Callable, NamedTuple

from .constants import (
    ACTIVE_TEST, ACTIVE_TEST_RESP, DELIVER, DELIVER_RESP, EXIT, EXIT_RESP, HEADER_LENGTH,
    LOGIN, LOGIN_RESP, MAX_DEST_TERM_IDS, MSG_ID_LENGTH, QUERY, QUERY_RESP, SUBMIT,
    SUBMIT_RESP, V30,
)
from .errors import SmgpError
from .events import (
    ActiveTest, ActiveTestResp, Deliver, DeliverResp, Event, Exit, ExitResp, Login,
    LoginResp, Query, QueryResp, StatusReport, Submit, SubmitResp,
)
from .tlv import decode_tlvs, encode_tlvs

# Header, section 5.2.1.
HEADER = Struct(">III")

# --- layouts (body structs decode, header+body structs encode in one pack) ---

# 5.2.2.1 Login: ClientID 8, AuthenticatorClient 16, LoginMode 1, TimeStamp 4,
# ClientVersion 1 (30 octets).
_LOGIN = Struct(">8s16sBIB")
_LOGIN_PDU = Struct(">III8s16sBIB")
# 5.2.2.1 Login_Resp: Status 4, AuthenticatorServer 16, ServerVersion 1 (21 octets).
_LOGIN_RESP = Struct(">I16sB")
_LOGIN_RESP_PDU = Struct(">IIII16sB")
# 5.2.2.2 Submit up to and including DestTermIDCount: MsgType 1, NeedReport 1,
# Priority 1, ServiceID 10, FeeType 2, FeeCode 6, FixedFee 6, MsgFormat 1,
# ValidTime 17, AtTime 17, SrcTermID 21, ChargeTermID 21, DestTermIDCount 1
# (105 octets). Then DestTermID 21 x count, MsgLength 1, MsgContent,
# Reserve 8, TLVs.
_SUBMIT_HEAD = Struct(">BBB10s2s6s6sB17s17s21s21sB")
_SUBMIT_HEAD_PDU = Struct(">IIIBBB10s2s6s6sB17s17s21s21sB")
# 5.2.2.2 Submit_Resp and 5.2.2.3 Deliver_Resp: MsgID 10, Status 4.
_MSGID_STATUS = Struct(">10sI")
_MSGID_STATUS_PDU = Struct(">III10sI")
# 5.2.2.3 Deliver up to MsgLength: MsgID 10, IsReport 1, MsgFormat 1,
# RecvTime 14, SrcTermID 21, DestTermID 21, MsgLength 1 (69 octets). Then
# MsgContent, Reserve 8, TLVs.
_DELIVER_HEAD = Struct(">10sBB14s21s21sB")
_DELIVER_HEAD_PDU = Struct(">III10sBB14s21s21sB")
# 5.2.2 Query: Time 8, QueryType 1, QueryCode 10.
_QUERY = Struct(">8sB10s")
_QUERY_PDU = Struct(">III8sB10s")
# 5.2.2 Query_Resp: Time 8, QueryType 1, QueryCode 10, eight uint32 counters
# MT_TLMsg, MT_TLUsr, MT_Scs, MT_WT, MT_FL, MO_Scs, MO_WT, MO_FL, Reserve 8.
_QUERY_RESP = Struct(">8sB10sIIIIIIII8s")
_QUERY_RESP_PDU = Struct(">III8sB10sIIIIIIII8s")

_NUMBER_WIDTH = 21                              # SrcTermID / DestTermID / ChargeTermID
_SUBMIT_FIXED = _SUBMIT_HEAD.size + 1 + 8       # everything except numbers, content, TLVs
_DELIVER_FIXED = _DELIVER_HEAD.size + 8         # everything except content and TLVs
_MAX_CONTENT = 255                              # MsgLength is one octet

_number_structs: dict[int, Struct] = {}


def _numbers_struct(count: int) -> Struct:
    """A Struct for ``count`` consecutive 21-octet numbers, built once per count."""
    s = _number_structs.get(count)
    if s is None:
        s = _number_structs[count] = Struct(f"{_NUMBER_WIDTH}s" * count)
    return s


# --- field helpers -------------------------------------------------------------

def _text(raw: bytes) -> str:
    """Decode a NUL-padded octet string (C semantics: stop at the first NUL)."""
    return raw.partition(b"\0")[0].decode("ascii")


def _octets(value: str, width: int, name: str) -> bytes:
    """Encode text for a ``width``-octet field; struct adds the NUL padding."""
    raw = value.encode("ascii")
    if len(raw) > width:
        raise SmgpError(f"{name} is {len(raw)} octets; the field holds {width}")
    if b"\0" in raw:
        # A NUL would end the string early on the other side.
        raise SmgpError(f"{name} contains a NUL")
    return raw


def _fixed(value: bytes, width: int, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != width:
        raise SmgpError(f"{name} must be {width} octets, not {value!r}")
    return bytes(value)


def _padded(value: bytes, width: int, name: str) -> bytes:
    """Right-pad a binary field (Reserve) with NULs."""
    if len(value) > width:
        raise SmgpError(f"{name} is {len(value)} octets; the field holds {width}")
    return bytes(value) + b"\0" * (width - len(value))


def _expect(body_length: int, expected: int, name: str) -> None:
    if body_length != expected:
        raise SmgpError(f"{name} body must be {expected} octets, got {body_length}")


# --- login authenticators (6.2.2 AuthenticatorClient, 6.2.7 AuthenticatorServer) ---
#
#   AuthenticatorClient = MD5(ClientID + 7 zero octets + shared secret + timestamp)
#   AuthenticatorServer = MD5(Status + AuthenticatorClient + shared secret)
#
# timestamp is the Login's TimeStamp as ten ASCII digits MMDDHHMMSS, Status
# the Login_Resp's four octets, big-endian.

_SEVEN_ZEROS = bytes(7)


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def timestamp_now(dt: datetime | None = None) -> int:
    """The Login TimeStamp for ``dt`` (default: local now) as the integer MMDDHHMMSS."""
    dt = dt or datetime.now()
    return (((dt.month * 100 + dt.day) * 100 + dt.hour) * 100 + dt.minute) * 100 + dt.second


def authenticator_client(client_id: str, secret: str | bytes, timestamp: int) -> bytes:
    """The 16-octet AuthenticatorClient a client puts in its Login."""
    if not 0 <= timestamp <= 9_999_999_999:
        raise ValueError(f"timestamp {timestamp} is not a 10-digit MMDDHHMMSS value")
    data = b"".join((client_id.encode("ascii"), _SEVEN_ZEROS, _secret_bytes(secret),
                     b"%010d" % timestamp))
    return hashlib.md5(data).digest()


def authenticator_server(status: int, auth_client: bytes, secret: str | bytes) -> bytes:
    """The 16-octet AuthenticatorServer a gateway puts in its Login_Resp."""
    data = b"".join((status.to_bytes(4, "big"), auth_client, _secret_bytes(secret)))
    return hashlib.md5(data).digest()


def verify_login(login: Login, secret: str | bytes) -> bool:
    """True if ``login`` was made with ``secret`` (for the gateway side)."""
    expected = authenticator_client(login.client_id, secret, login.timestamp)
    # Constant-time comparison so timing does not leak how much matched.
    return hmac.compare_digest(expected, login.authenticator)


# --- MsgID (chapter 6.2, MsgID) ----------------------------------------------------
#
# Ten octets of packed BCD, two decimal digits per octet, high nibble first:
#
#   SMGW code 3 octets (6 digits) | MMDDHHMM 4 octets (8 digits) | sequence 3 octets (6 digits)
#
# The text form (msg_id_to_str) is the lower-case hex of the ten octets. For a
# well-formed id that is exactly the 20 decimal digits above, the form
# gateways print in their logs and portals; an id from a gateway that puts
# non-BCD octets there still round-trips losslessly instead of failing.

class MsgIdParts(NamedTuple):
    smgw_code: int
    month: int
    day: int
    hour: int
    minute: int
    sequence: int


_MSG_ID_LIMITS = (("smgw_code", 0, 999_999), ("month", 1, 12), ("day", 1, 31),
                  ("hour", 0, 23), ("minute", 0, 59), ("sequence", 0, 999_999))
_SEQUENCE_SPAN = 1_000_000


def pack_msg_id(smgw_code: int, month: int, day: int, hour: int, minute: int,
                sequence: int) -> bytes:
    """The 10-octet BCD MsgID for these parts; each must be in its decimal range."""
    for (name, low, high), part in zip(_MSG_ID_LIMITS,
                                       (smgw_code, month, day, hour, minute, sequence)):
        if not low <= part <= high:
            raise ValueError(f"MsgID {name}={part} is outside {low}..{high}")
    return bytes.fromhex("%06d%02d%02d%02d%02d%06d"
                         % (smgw_code, month, day, hour, minute, sequence))


def unpack_msg_id(msg_id: bytes) -> MsgIdParts:
    """Split a BCD MsgID into its parts; ValueError if it is not 10 BCD octets."""
    if len(msg_id) != MSG_ID_LENGTH:
        raise ValueError(f"a MsgID is {MSG_ID_LENGTH} octets, not {len(msg_id)}")
    digits = msg_id.hex()
    if not digits.isdigit():
        raise ValueError(f"MsgID {digits} is not packed BCD")
    return MsgIdParts(int(digits[:6]), int(digits[6:8]), int(digits[8:10]),
                      int(digits[10:12]), int(digits[12:14]), int(digits[14:]))


def msg_id_to_str(msg_id: bytes) -> str:
    """The text form used to store carrier ids: 20 hex digits (decimal when BCD)."""
    if len(msg_id) != MSG_ID_LENGTH:
        raise ValueError(f"a MsgID is {MSG_ID_LENGTH} octets, not {len(msg_id)}")
    return msg_id.hex()


def msg_id_from_str(text: str) -> bytes:
    """Inverse of :func:`msg_id_to_str` (upper-case hex is accepted too)."""
    if len(text) != 2 * MSG_ID_LENGTH:
        raise ValueError(f"{text!r} is not {2 * MSG_ID_LENGTH} hex digits")
    return bytes.fromhex(text)


class MsgIdGenerator:
    """Mints unique MsgIDs, as a gateway (or a gateway simulator) does.

    The sequence increases by one per id and wraps at 1,000,000. At most
    1,000,000 ids share one minute: when a minute's budget is spent the
    generator moves its notion of "now" one minute ahead rather than repeat
    an id, and it never moves backwards if the clock does. Ids repeat only
    after a year (the time fields hold no year). Not thread-safe; use one
    generator per thread or event loop.
    """

    def __init__(self, smgw_code: int, clock: Callable[[], float] = time.time) -> None:
        if not 0 <= smgw_code <= 999_999:
            raise ValueError(f"SMGW code {smgw_code} is not six decimal digits")
        self.smgw_code = smgw_code
        self._prefix = "%06d" % smgw_code
        self._clock = clock
        self._minute = -1          # the (possibly advanced) minute ids are minted in
        self._stamp = ""           # its MMDDHHMM digits
        self._issued = 0           # ids minted in that minute
        self._sequence = -1

    def __iter__(self) -> MsgIdGenerator:
        return self

    def __next__(self) -> bytes:
        return self.next()

    def next(self) -> bytes:
        now = int(self._clock()) // 60
        if now > self._minute:
            self._set_minute(now)
        elif self._issued >= _SEQUENCE_SPAN:
            # The sequence would wrap onto an id already minted this minute.
            self._set_minute(self._minute + 1)
        self._issued += 1
        self._sequence = (self._sequence + 1) % _SEQUENCE_SPAN
        return bytes.fromhex("%s%s%06d" % (self._prefix, self._stamp, self._sequence))

    def _set_minute(self, minute: int) -> None:
        self._minute, self._issued = minute, 0
        t = time.localtime(minute * 60)
        self._stamp = "%02d%02d%02d%02d" % (t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min)


# --- status report (the MsgContent of a Deliver with IsReport 1; chapter 6.2, MsgContent) ---
#
#   id:<MsgID, 10 raw octets> sub:<3> dlvrd:<3> Submit_date:<10> done_date:<10>
#   Stat:<7> Err:<3> Txt:<20>
#
# The numbers are each field's width in octets; values are written as they
# are (not padded). Parsing ignores case and tolerates runs of blanks,
# "Text:" for "Txt:" and a missing Txt, which is how real gateways vary.

_REPORT_WIDTHS = (("sub", 3), ("dlvrd", 3), ("submit_date", 10), ("done_date", 10),
                  ("stat", 7), ("err", 3))
_REPORT_TAIL = re.compile(
    rb"\s*sub:(\S*)\s+dlvrd:(\S*)\s+submit_date:(\S*)\s+done_date:(\S*)"
    rb"\s+stat:(\S*)\s+err:(\S*)(?:\s+te?xt:(.*)|[\s\0]*)\Z",
    re.IGNORECASE | re.DOTALL)
_BLANK = re.compile(rb"\s")
_TXT_WIDTH = 20


def encode_report(report: StatusReport) -> bytes:
    """The MsgContent carrying ``report``."""
    parts = [b"id:", _fixed(report.msg_id, MSG_ID_LENGTH, "report id")]
    labels = (b" sub:", b" dlvrd:", b" Submit_date:", b" done_date:", b" Stat:", b" Err:")
    for label, (name, width) in zip(labels, _REPORT_WIDTHS):
        value = getattr(report, name)
        if not isinstance(value, str):
            raise SmgpError(f"report {name} must be text, not {value!r}")
        raw = value.encode("ascii")
        if len(raw) > width:
            raise SmgpError(f"report {name} is {len(raw)} octets; the field holds {width}")
        if _BLANK.search(raw):
            # Blanks separate the fields, so a value holding one cannot be read back.
            raise SmgpError(f"report {name} {value!r} contains blanks")
        parts += (label, raw)
    txt = report.txt
    if not isinstance(txt, (bytes, bytearray)) or len(txt) > _TXT_WIDTH:
        raise SmgpError(f"report txt must be at most {_TXT_WIDTH} octets, not {txt!r}")
    parts += (b" Txt:", bytes(txt))
    return b"".join(parts)


def decode_report(content: bytes) -> StatusReport:
    """Parse the MsgContent of a status report."""
    content = bytes(content)
    if len(content) < 3 + MSG_ID_LENGTH or content[:3].lower() != b"id:":
        raise SmgpError("a status report starts with 'id:' and the 10-octet MsgID")
    match = _REPORT_TAIL.match(content, 3 + MSG_ID_LENGTH)
    if match is None:
        raise SmgpError(f"status report text not understood: {content[13:80]!r}")
    sub, dlvrd, submit_date, done_date, stat, err, txt = match.groups()
    try:
        return StatusReport(
            msg_id=content[3:3 + MSG_ID_LENGTH], stat=stat.decode("ascii"),
            submit_date=submit_date.decode("ascii"), done_date=done_date.decode("ascii"),
            err=err.decode("ascii"), sub=sub.decode("ascii"), dlvrd=dlvrd.decode("ascii"),
            txt=txt or b"")
    except UnicodeDecodeError as exc:
        raise SmgpError(f"status report holds non-ASCII text: {exc}") from exc


# --- SMGP 3.0 encoders: event -> whole PDU --------------------------------------

def _enc_login(e: Login) -> bytes:
    return _LOGIN_PDU.pack(_LOGIN_PDU.size, LOGIN, e.sequence_id,
                           _octets(e.client_id, 8, "ClientID"),
                           _fixed(e.authenticator, 16, "AuthenticatorClient"),
                           e.login_mode, e.timestamp, e.version)


def _enc_login_resp(e: LoginResp) -> bytes:
    return _LOGIN_RESP_PDU.pack(_LOGIN_RESP_PDU.size, LOGIN_RESP, e.sequence_id, e.status,
                                _fixed(e.authenticator, 16, "AuthenticatorServer"),
                                e.version)


def _header_only(request_id: int) -> Callable[[Event], bytes]:
    def encode(e: Event) -> bytes:
        return HEADER.pack(HEADER_LENGTH, request_id, e.sequence_id)
    return encode


def _content(content: bytes) -> bytes:
    if not isinstance(content, (bytes, bytearray)):
        raise SmgpError(f"MsgContent must be bytes, not {type(content).__name__}")
    if len(content) > _MAX_CONTENT:
        raise SmgpError(f"MsgContent is {len(content)} octets; MsgLength holds at most "
                        f"{_MAX_CONTENT}")
    return bytes(content)


def _enc_submit(e: Submit) -> bytes:
    numbers = e.dest_term_ids
    if isinstance(numbers, str):
        raise SmgpError("dest_term_ids must be a sequence of numbers, not one string")
    count = len(numbers)
    if count > MAX_DEST_TERM_IDS:
        raise SmgpError(f"{count} DestTermIDs; a Submit carries at most {MAX_DEST_TERM_IDS}")
    content = _content(e.msg_content)
    tlvs = encode_tlvs(e.tlvs)
    total = (HEADER_LENGTH + _SUBMIT_FIXED + count * _NUMBER_WIDTH + len(content)
             + len(tlvs))
    head = _SUBMIT_HEAD_PDU.pack(
        total, SUBMIT, e.sequence_id,
        e.msg_type, e.need_report, e.priority,
        _octets(e.service_id, 10, "ServiceID"),
        _octets(e.fee_type, 2, "FeeType"),
        _octets(e.fee_code, 6, "FeeCode"),
        _octets(e.fixed_fee, 6, "FixedFee"),
        e.msg_format,
        _octets(e.valid_time, 17, "ValidTime"),
        _octets(e.at_time, 17, "AtTime"),
        _octets(e.src_term_id, _NUMBER_WIDTH, "SrcTermID"),
        _octets(e.charge_term_id, _NUMBER_WIDTH, "ChargeTermID"),
        count,
    )
    dests = _numbers_struct(count).pack(
        *[_octets(n, _NUMBER_WIDTH, "DestTermID") for n in numbers])
    return b"".join((head, dests, bytes((len(content),)), content,
                     _padded(e.reserve, 8, "Reserve"), tlvs))


def _enc_msgid_status(request_id: int) -> Callable[[Event], bytes]:
    def encode(e: SubmitResp | DeliverResp) -> bytes:
        return _MSGID_STATUS_PDU.pack(_MSGID_STATUS_PDU.size, request_id, e.sequence_id,
                                      _fixed(e.msg_id, MSG_ID_LENGTH, "MsgID"), e.status)
    return encode


def _enc_deliver(e: Deliver) -> bytes:
    if e.report is not None:
        content = _content(encode_report(e.report))
        is_report = 1
    else:
        content = _content(e.msg_content)
        is_report = 0
    tlvs = encode_tlvs(e.tlvs)
    total = HEADER_LENGTH + _DELIVER_FIXED + len(content) + len(tlvs)
    head = _DELIVER_HEAD_PDU.pack(
        total, DELIVER, e.sequence_id,
        _fixed(e.msg_id, MSG_ID_LENGTH, "MsgID"),
        is_report, e.msg_format,
        _octets(e.recv_time, 14, "RecvTime"),
        _octets(e.src_term_id, _NUMBER_WIDTH, "SrcTermID"),
        _octets(e.dest_term_id, _NUMBER_WIDTH, "DestTermID"),
        len(content),
    )
    return b"".join((head, content, _padded(e.reserve, 8, "Reserve"), tlvs))


def _enc_query(e: Query) -> bytes:
    return _QUERY_PDU.pack(_QUERY_PDU.size, QUERY, e.sequence_id,
                           _octets(e.time, 8, "Time"), e.query_type,
                           _octets(e.query_code, 10, "QueryCode"))


def _enc_query_resp(e: QueryResp) -> bytes:
    return _QUERY_RESP_PDU.pack(_QUERY_RESP_PDU.size, QUERY_RESP, e.sequence_id,
                                _octets(e.time, 8, "Time"), e.query_type,
                                _octets(e.query_code, 10, "QueryCode"),
                                e.mt_tlmsg, e.mt_tlusr, e.mt_scs, e.mt_wt, e.mt_fl,
                                e.mo_scs, e.mo_wt, e.mo_fl,
                                _padded(e.reserve, 8, "Reserve"))


# --- SMGP 3.0 decoders: (buffer, body offset, body length, SequenceID) -> event ---
# They read straight out of the caller's buffer (bytes or bytearray) so the
# connection never copies a PDU before parsing it.

def _dec_login(buf, off: int, n: int, seq: int) -> Login:
    _expect(n, _LOGIN.size, "Login")
    client_id, auth, mode, timestamp, version = _LOGIN.unpack_from(buf, off)
    return Login(seq, _text(client_id), auth, mode, timestamp, version)


def _dec_login_resp(buf, off: int, n: int, seq: int) -> LoginResp:
    _expect(n, _LOGIN_RESP.size, "Login_Resp")
    status, auth, version = _LOGIN_RESP.unpack_from(buf, off)
    return LoginResp(seq, status, auth, version)


def _dec_header_only(cls: type, name: str):
    def decode(buf, off: int, n: int, seq: int):
        _expect(n, 0, name)
        return cls(seq)
    return decode


def _dec_submit(buf, off: int, n: int, seq: int) -> Submit:
    if n < _SUBMIT_FIXED:
        raise SmgpError(f"Submit body is {n} octets; at least {_SUBMIT_FIXED} needed")
    (msg_type, need_report, priority, service_id, fee_type, fee_code, fixed_fee, msg_format,
     valid_time, at_time, src_term_id, charge_term_id, count) = _SUBMIT_HEAD.unpack_from(buf, off)
    without_content = _SUBMIT_FIXED + count * _NUMBER_WIDTH
    if n < without_content:
        raise SmgpError(f"Submit DestTermIDCount={count} does not fit a {n}-octet body")
    p = off + _SUBMIT_HEAD.size
    numbers = _numbers_struct(count).unpack_from(buf, p)
    p += count * _NUMBER_WIDTH
    length = buf[p]
    if n < without_content + length:
        raise SmgpError(f"Submit MsgLength={length} does not fit a {n}-octet body")
    p += 1
    content = bytes(buf[p:p + length])
    p += length
    reserve = bytes(buf[p:p + 8]).rstrip(b"\0")
    p += 8
    return Submit(
        sequence_id=seq,
        dest_term_ids=tuple([_text(x) for x in numbers]),
        msg_content=content,
        msg_type=msg_type,
        need_report=need_report,
        priority=priority,
        service_id=_text(service_id),
        fee_type=_text(fee_type),
        fee_code=_text(fee_code),
        fixed_fee=_text(fixed_fee),
        msg_format=msg_format,
        valid_time=_text(valid_time),
        at_time=_text(at_time),
        src_term_id=_text(src_term_id),
        charge_term_id=_text(charge_term_id),
        reserve=reserve,
        tlvs=decode_tlvs(buf, p, off + n),
    )


def _dec_msgid_status(cls: type, name: str):
    def decode(buf, off: int, n: int, seq: int):
        _expect(n, _MSGID_STATUS.size, name)
        msg_id, status = _MSGID_STATUS.unpack_from(buf, off)
        return cls(seq, msg_id, status)
    return decode


def _dec_deliver(buf, off: int, n: int, seq: int) -> Deliver:
    if n < _DELIVER_FIXED:
        raise SmgpError(f"Deliver body is {n} octets; at least {_DELIVER_FIXED} needed")
    (msg_id, is_report, msg_format, recv_time, src_term_id, dest_term_id,
     length) = _DELIVER_HEAD.unpack_from(buf, off)
    if n < _DELIVER_FIXED + length:
        raise SmgpError(f"Deliver MsgLength={length} does not fit a {n}-octet body")
    p = off + _DELIVER_HEAD.size
    content = bytes(buf[p:p + length])
    p += length
    reserve = bytes(buf[p:p + 8]).rstrip(b"\0")
    p += 8
    # IsReport is 0 or 1 (6.2); any other value is read as an ordinary MO.
    report = decode_report(content) if is_report == 1 else None
    return Deliver(
        sequence_id=seq,
        msg_id=msg_id,
        src_term_id=_text(src_term_id),
        dest_term_id=_text(dest_term_id),
        msg_content=content,
        msg_format=msg_format,
        recv_time=_text(recv_time),
        reserve=reserve,
        tlvs=decode_tlvs(buf, p, off + n),
        report=report,
    )


def _dec_query(buf, off: int, n: int, seq: int) -> Query:
    _expect(n, _QUERY.size, "Query")
    time_, query_type, query_code = _QUERY.unpack_from(buf, off)
    return Query(seq, _text(time_), query_type, _text(query_code))


def _dec_query_resp(buf, off: int, n: int, seq: int) -> QueryResp:
    _expect(n, _QUERY_RESP.size, "Query_Resp")
    time_, query_type, query_code, *counters, reserve = _QUERY_RESP.unpack_from(buf, off)
    return QueryResp(seq, _text(time_), query_type, _text(query_code), *counters,
                     reserve=reserve.rstrip(b"\0"))


# --- version tables ---------------------------------------------------------------

Decoder = Callable[..., Event]
Encoder = Callable[[Event], bytes]


class _Table(NamedTuple):
    encoders: dict[type, Encoder]
    decoders: dict[int, Decoder]


_V30_TABLE = _Table(
    encoders={
        Login: _enc_login,
        LoginResp: _enc_login_resp,
        Exit: _header_only(EXIT),
        ExitResp: _header_only(EXIT_RESP),
        ActiveTest: _header_only(ACTIVE_TEST),
        ActiveTestResp: _header_only(ACTIVE_TEST_RESP),
        Submit: _enc_submit,
        SubmitResp: _enc_msgid_status(SUBMIT_RESP),
        Deliver: _enc_deliver,
        DeliverResp: _enc_msgid_status(DELIVER_RESP),
        Query: _enc_query,
        QueryResp: _enc_query_resp,
    },
    decoders={
        LOGIN: _dec_login,
        LOGIN_RESP: _dec_login_resp,
        EXIT: _dec_header_only(Exit, "Exit"),
        EXIT_RESP: _dec_header_only(ExitResp, "Exit_Resp"),
        ACTIVE_TEST: _dec_header_only(ActiveTest, "Active_Test"),
        ACTIVE_TEST_RESP: _dec_header_only(ActiveTestResp, "Active_Test_Resp"),
        SUBMIT: _dec_submit,
        SUBMIT_RESP: _dec_msgid_status(SubmitResp, "Submit_Resp"),
        DELIVER: _dec_deliver,
        DELIVER_RESP: _dec_msgid_status(DeliverResp, "Deliver_Resp"),
        QUERY: _dec_query,
        QUERY_RESP: _dec_query_resp,
    },
)

_TABLES: dict[int, _Table] = {V30: _V30_TABLE}

SUPPORTED_VERSIONS = frozenset(_TABLES)


def _table(version: int) -> _Table:
    try:
        return _TABLES[version]
    except KeyError:
        raise ValueError(f"SMGP version 0x{version:02X} is not supported; "
                         f"supported: {', '.join(f'0x{v:02X}' for v in sorted(_TABLES))}") from None


# --- public API ----------------------------------------------------------------------

def encode(event: Event, version: int = V30) -> bytes:
    """Serialise one event to a complete PDU, header included.

    Text fields must be ASCII and fit their octet width; integers must fit
    theirs. Anything else raises :class:`SmgpError` rather than being
    silently truncated.
    """
    encoder = _table(version).encoders.get(type(event))
    if encoder is None:
        raise SmgpError(f"{type(event).__name__} is not an SMGP event")
    try:
        return encoder(event)
    except SmgpError as exc:
        raise SmgpError(f"cannot encode {type(event).__name__}: {exc}",
                        sequence_id=getattr(event, "sequence_id", None)) from exc
    except (StructError, UnicodeError, TypeError, AttributeError, ValueError) as exc:
        # struct.error: an integer out of range; UnicodeError: non-ASCII text;
        # TypeError/AttributeError/ValueError: a field of the wrong type.
        raise SmgpError(f"cannot encode {type(event).__name__}: {exc}",
                        sequence_id=getattr(event, "sequence_id", None)) from exc


def decode_body(request_id: int, sequence_id: int, buf, offset: int, length: int,
                version: int = V30) -> Event:
    """Decode a body of ``length`` octets at ``buf[offset:]`` (header already parsed).

    This is the zero-copy entry point the connection uses on its receive
    buffer; most callers want :func:`decode`.
    """
    decoder = _table(version).decoders.get(request_id)
    if decoder is None:
        raise SmgpError(f"unknown RequestID 0x{request_id:08X}",
                        request_id=request_id, sequence_id=sequence_id)
    try:
        return decoder(buf, offset, length, sequence_id)
    except SmgpError as exc:
        exc.request_id = request_id
        exc.sequence_id = sequence_id
        raise
    except (StructError, UnicodeDecodeError, IndexError) as exc:
        raise SmgpError(f"malformed PDU 0x{request_id:08X}: {exc}",
                        request_id=request_id, sequence_id=sequence_id) from exc


def decode(pdu: bytes, version: int = V30) -> Event:
    """Parse exactly one complete PDU (header and body) into an event.

    Raises :class:`SmgpError` if PacketLength disagrees with ``len(pdu)``,
    the RequestID is unknown, or the body does not match its layout.
    """
    if len(pdu) < HEADER_LENGTH:
        raise SmgpError(f"a PDU is at least {HEADER_LENGTH} octets, got {len(pdu)}")
    total, request_id, sequence_id = HEADER.unpack_from(pdu, 0)
    if total != len(pdu):
        raise SmgpError(f"PacketLength is {total} but the PDU is {len(pdu)} octets",
                        request_id=request_id, sequence_id=sequence_id)
    return decode_body(request_id, sequence_id, pdu, HEADER_LENGTH, total - HEADER_LENGTH,
                       version)
