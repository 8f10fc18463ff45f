"""The SMPP 3.4 front door: customers bind with their account and submit over a session.

The platform is the SMSC here. A customer binds as transmitter, receiver or
transceiver with ``system_id`` = account username and ``password`` = the first
eight characters of the account's API secret (the field holds eight octets).
Every submit_sm / submit_multi / data_sm goes through the same accept rules as
HTTP (dialect ``smpp``, so reports come back on the session) and is answered
only after the commit, with the submission id as ``message_id``; the delivery
receipts carry that id. Reports and MO leave as deliver_sm through the shared
session outbox, to receiver and transceiver sessions only, at most ``WINDOW``
unanswered per session.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from hongyan.core import secrets
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Account, Directory
from hongyan.domain import numbers
from hongyan.domain.clock import now_ms
from hongyan.domain.source import request_ext
from hongyan.domain.outcomes import Code, Outcome
from hongyan.domain.segments import Reassembler, concat_udh, decode_payload, encode_chunk, plan, split_udh
from hongyan.protocols.framing import pump
from hongyan.protocols.smpp.connection import Connection
from hongyan.protocols.smpp.constants import (
    ESM_MESSAGE_TYPE_MASK, ESM_UDHI, INTERFACE_VERSION, RESPONSE_BIT, CommandId, CommandStatus as S,
    EsmClass, MessageState,
)
from hongyan.protocols.smpp.errors import SmppError, SmppProtocolError
from hongyan.protocols.smpp.events import (
    BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp, BindTransmitter,
    BindTransmitterResp, CancelSm, CancelSmResp, DataSm, DataSmResp, DeliverSm, DeliverSmResp,
    DistributionList, EnquireLink, EnquireLinkResp, GenericNack, QuerySm, QuerySmResp, Receipt,
    ReplaceSm, ReplaceSmResp, SubmitMulti, SubmitMultiResp, SubmitSm, SubmitSmResp, Unbind,
    UnbindResp, UnsuccessSme,
)
from hongyan.protocols.smpp.state import BOUND_STATES
from hongyan.protocols.smpp.tlv import Tag, Tlv, find as find_tlv
from hongyan.protocols.smpp.wire import encode, format_receipt

from .outbox import Outbox
from .session import IDLE_TIMEOUT, MAX_SESSIONS_PER_ACCOUNT, WINDOW, Session, SessionServer

log = logging.getLogger(__name__)

PASSWORD_LENGTH = 8              # the SMPP 3.4 password field: 8 octets and its NUL
SYSTEM_ID = "HONGYAN"            # our system_id in bind responses

# Timers, in seconds; the server takes each as a keyword so tests can shorten them.
BIND_TIMEOUT = 30.0              # a connection that has not bound by then is closed
ENQUIRE_INTERVAL = 30.0          # a silent bound customer is probed with enquire_link
DELIVER_TIMEOUT = 30.0           # an unanswered deliver_sm goes back to the outbox
REFUSED_RETRY = 5.0              # a deliver_sm refused with a temporary error is offered again
LONG_SMS_TIMEOUT = 120.0         # the parts of a long message wait this long for the rest
UNBIND_WAIT = 1.0                # on stop, how long bound customers get to answer our unbind
STOP_WAIT = 5.0                  # on stop, how long the submits being accepted get to finish

# Outcome -> command_status of the submit response. SMPP 3.4 has no code for
# "no money", so it gets one from the SMSC vendor range (0x400-0x4FF, 5.1.3).
ESME_RNOBALANCE = 0x00000401
STATUS: dict[Code, int] = {
    Code.OK: S.ESME_ROK, Code.CONTENT_HELD: S.ESME_ROK,
    Code.INVALID_NUMBER: S.ESME_RINVDSTADR, Code.RECIPIENTS_EMPTY: S.ESME_RINVDSTADR,
    Code.RECIPIENTS_TOO_MANY: S.ESME_RINVNUMDESTS, Code.RECIPIENTS_TOO_FEW: S.ESME_RINVNUMDESTS,
    Code.INVALID_EXTNO: S.ESME_RINVSRCADR,
    Code.CONTENT_EMPTY: S.ESME_RINVMSGLEN, Code.CONTENT_TOO_LONG: S.ESME_RINVMSGLEN,
    Code.INVALID_SCHEDULE: S.ESME_RINVSCHED,
    Code.RATE_LIMITED: S.ESME_RTHROTTLED, Code.TOO_MANY_CONCURRENT: S.ESME_RTHROTTLED,
    Code.SYSTEM_BUSY: S.ESME_RMSGQFUL,
    Code.SYSTEM_ERROR: S.ESME_RSYSERR,
    Code.INSUFFICIENT_BALANCE: ESME_RNOBALANCE, Code.PRODUCT_BALANCE: ESME_RNOBALANCE,
    Code.QUOTA_EXCEEDED: ESME_RNOBALANCE,
    # Content policy, account state and product: the message is refused for good.
    Code.CONTENT_BLOCKED: S.ESME_RSUBMITFAIL, Code.CONTENT_REJECTED: S.ESME_RSUBMITFAIL,
    Code.NOT_WHITELISTED: S.ESME_RSUBMITFAIL, Code.SIGNATURE_MISSING: S.ESME_RSUBMITFAIL,
    Code.SIGNATURE_INVALID: S.ESME_RSUBMITFAIL, Code.OUTSIDE_SEND_WINDOW: S.ESME_RSUBMITFAIL,
    Code.PRODUCT_UNAVAILABLE: S.ESME_RSUBMITFAIL, Code.ACCOUNT_LOCKED: S.ESME_RSUBMITFAIL,
    Code.ACCOUNT_EXPIRED: S.ESME_RSUBMITFAIL, Code.ACCOUNT_DISABLED: S.ESME_RSUBMITFAIL,
    Code.ORG_DISABLED: S.ESME_RSUBMITFAIL, Code.IP_DENIED: S.ESME_RSUBMITFAIL,
    Code.PERMISSION_DENIED: S.ESME_RSUBMITFAIL,
}
OTHER_ERROR = S.ESME_RSUBMITFAIL


def status_for(code: Code) -> int:
    return STATUS.get(code, OTHER_ERROR)


# Answers to each request a customer may send, for refusing one before it is understood.
RESPONSES: dict[int, type] = {
    CommandId.BIND_TRANSMITTER: BindTransmitterResp, CommandId.BIND_RECEIVER: BindReceiverResp,
    CommandId.BIND_TRANSCEIVER: BindTransceiverResp, CommandId.SUBMIT_SM: SubmitSmResp,
    CommandId.SUBMIT_MULTI: SubmitMultiResp, CommandId.DATA_SM: DataSmResp,
    CommandId.QUERY_SM: QuerySmResp, CommandId.CANCEL_SM: CancelSmResp,
    CommandId.REPLACE_SM: ReplaceSmResp, CommandId.ENQUIRE_LINK: EnquireLinkResp,
    CommandId.UNBIND: UnbindResp, CommandId.DELIVER_SM: DeliverSmResp,
}
_BINDS = {BindTransmitter: (BindTransmitterResp, False), BindReceiver: (BindReceiverResp, True),
          BindTransceiver: (BindTransceiverResp, True)}
_SUBMIT_RESP = {SubmitSm: SubmitSmResp, SubmitMulti: SubmitMultiResp, DataSm: DataSmResp}
# Requests we understand but do not serve, and the status each is refused with.
_UNSERVED = {QuerySm: (QuerySmResp, S.ESME_RQUERYFAIL), CancelSm: (CancelSmResp, S.ESME_RCANCELFAIL),
             ReplaceSm: (ReplaceSmResp, S.ESME_RREPLACEFAIL)}
# deliver_sm_resp statuses that mean "never send this again" (5.1.3).
_PERMANENT_REFUSALS = frozenset({S.ESME_RX_P_APPN, S.ESME_RX_R_APPN})

# -- text ------------------------------------------------------------------------

# GSM 03.38 default alphabet, one character per septet value, and its
# extension table (reached with the escape 0x1B). data_coding 0 is this
# alphabet unpacked, one septet per octet, in both directions.
GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
             "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
                 0x3E: "]", 0x40: "|", 0x65: "€"}
assert len(GSM_BASIC) == 128
_GSM_ENCODE = {ch: bytes((i,)) for i, ch in enumerate(GSM_BASIC) if i != 0x1B}
_GSM_ENCODE.update({ch: bytes((0x1B, code)) for code, ch in GSM_EXTENSION.items()})

# data_coding (5.2.19) -> Python codec for the alphabets with one; 0 (GSM) and 8 (UCS2)
# are handled apart, 15 is GBK as the Chinese SMPP gateways use it.
_CODECS = {1: "ascii", 3: "latin-1", 5: "shift_jis", 6: "iso8859_5", 7: "iso8859_8",
           10: "iso2022_jp", 14: "euc_kr", 15: "gbk"}


# C0 controls other than TAB, LF, FF and CR: meaningless in IA5 text, GSM characters as septets.
_GSM_ONLY_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f]")


# Septets whose GSM character is not the ASCII character of the same code (and every
# octet above 0x7F); text without them reads the same in both alphabets.
_GSM_NOT_ASCII = re.compile(rb"[\x00-\x1f$@\[-`{-\xff]")


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 03.38 septets to text; an unknown escape reads as its base character."""
    if not _GSM_NOT_ASCII.search(data):
        return data.decode("ascii")     # letters, digits and the punctuation both alphabets share
    out = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x1B and i + 1 < n:
            i += 1
            out.append(GSM_EXTENSION.get(data[i]) or GSM_BASIC[data[i] & 0x7F])
        elif b != 0x1B:
            out.append(GSM_BASIC[b])
        i += 1
    return "".join(out)


def gsm_encode(text: str) -> bytes:
    """Text in the GSM alphabet to unpacked septets; KeyError for a character outside it."""
    return b"".join(_GSM_ENCODE[ch] for ch in text)


def _alphabet(dc: int) -> str | None:
    """"gsm", "ucs2", a codec name, or None for binary or unknown data codings."""
    if dc == 0:
        return "gsm"
    if dc == 8:
        return "ucs2"
    if dc in _CODECS:
        return _CODECS[dc]
    if dc < 0x10 or 0x80 <= dc < 0xC0:
        return None  # binary (2, 4), pictogram (9), JIS X 0212 (13), reserved
    # Above 0x0F the octet is read as a GSM 03.38 data coding scheme.
    group = dc & 0xF0
    if dc < 0x80:
        if dc & 0x20:
            return None  # compressed
        return {0: "gsm", 2: "ucs2"}.get((dc >> 2) & 3)
    if group in (0xC0, 0xD0):
        return "gsm"
    if group == 0xE0:
        return "ucs2"
    return None if dc & 0x04 else "gsm"  # 0xF0: class with 8-bit data or default alphabet


def decode_text(data: bytes, dc: int, *, part: bool = False) -> str:
    """The text of a short message; ValueError for a data coding that is not text."""
    alphabet = _alphabet(dc)
    if alphabet is None:
        raise ValueError(f"data_coding 0x{dc:02X} is not a text alphabet")
    if alphabet == "gsm":
        if all(b < 0x80 for b in data):
            return gsm_decode(data)
        # Octets above 0x7F are no GSM septets: most likely Chinese sent with data_coding 0.
        return decode_payload(data, 0)
    if alphabet == "ascii" and _GSM_ONLY_CONTROLS.search(data):
        # IA5 text has no use for these controls, while GSM septets such as '@' (0x00),
        # '$' (0x02) and '_' (0x11) are exactly these octets: some client libraries
        # (node-smpp) encode with the GSM table and label the result IA5.
        return gsm_decode(data) if data.isascii() else decode_payload(data, 0)
    if alphabet == "ucs2":
        return decode_payload(data, 8, part=part)
    if alphabet == "gbk":
        return decode_payload(data, 15)
    return data.decode(alphabet, errors="replace")


# -- times -------------------------------------------------------------------------

def parse_time(text: str, now: float | None = None) -> int | None:
    """An SMPP time (7.1.1) as epoch ms: "YYMMDDhhmmsstnnp", absolute (p is + or -,
    nn quarter hours from UTC) or relative (p is R, from now). "" is None."""
    if not text:
        return None
    if len(text) != 16 or not text[:15].isdigit() or text[15] not in "+-R":
        raise ValueError(f"not an SMPP time: {text!r}")
    yy, mo, dd, hh, mi, ss = (int(text[i:i + 2]) for i in range(0, 12, 2))
    now = time.time() if now is None else now
    if text[15] == "R":
        # Relative years and months have no fixed length; 365 and 30 days are what SMSCs use.
        delta = timedelta(days=yy * 365 + mo * 30 + dd, hours=hh, minutes=mi, seconds=ss)
        return int((now + delta.total_seconds()) * 1000)
    offset = timedelta(minutes=15 * int(text[13:15]))
    tz = timezone(offset if text[15] == "+" else -offset)
    when = datetime(2000 + yy, mo, dd, hh, mi, ss, int(text[12]) * 100_000, tzinfo=tz)
    return int(when.timestamp() * 1000)


_STAMPS: dict[str, str] = {}


def _stamp(iso_text: str | None) -> str:
    """A receipt date (YYMMDDhhmm, the server's local time) from a report's ISO time."""
    if not iso_text:
        return datetime.now().astimezone().strftime("%y%m%d%H%M")
    # Receipts come by the thousand per minute: parse each minute (and UTC offset) once.
    offset = iso_text[-6:]
    minute = iso_text[:16] + offset if offset[:1] in ("+", "-") and offset[3:4] == ":" else None
    stamp = _STAMPS.get(minute) if minute else None
    if stamp is None:
        try:
            when = datetime.fromisoformat(iso_text)
        except (TypeError, ValueError):
            return datetime.now().astimezone().strftime("%y%m%d%H%M")
        stamp = when.astimezone().strftime("%y%m%d%H%M")
        if minute:
            if len(_STAMPS) > 1024:
                _STAMPS.clear()
            _STAMPS[minute] = stamp
    return stamp


# -- receipts ------------------------------------------------------------------------

_STATES = {"DELIVRD": MessageState.DELIVERED, "EXPIRED": MessageState.EXPIRED,
           "DELETED": MessageState.DELETED, "UNDELIV": MessageState.UNDELIVERABLE,
           "ACCEPTD": MessageState.ACCEPTED, "UNKNOWN": MessageState.UNKNOWN,
           "REJECTD": MessageState.REJECTED}


def receipt_state(status: str | None, carrier_status: str | None) -> tuple[str, int]:
    """(stat text, message_state) of a report: the appendix-B stats only, since SMPP
    clients match on them; other carrier codes go in ``err``."""
    if status == "delivered":
        return "DELIVRD", MessageState.DELIVERED
    carrier = (carrier_status or "").upper()
    if carrier in _STATES and carrier != "DELIVRD":
        return carrier, _STATES[carrier]
    if status == "expired":
        return "EXPIRED", MessageState.EXPIRED
    return "UNDELIV", MessageState.UNDELIVERABLE


def receipt_err(delivered: bool, carrier_status: str | None) -> str:
    if delivered:
        return "000"
    digits = "".join(ch for ch in carrier_status or "" if ch.isdigit())
    return digits[-3:].rjust(3, "0") if digits and int(digits) else "001"


# What a submit asked of its receipts travels with the submission as its client
# reference: "smpp;rd=<registered_delivery>" and, for a long message, the parts'
# ids (";parts=<first id>,<parts>,<the part that completed it>"), so the receipt
# can go out once per part. The common case (one part, receipts wanted) needs none.
_REF_PREFIX = "smpp;"


def receipt_ref(registered_delivery: int, parts: tuple[int, int, int] | None = None) -> str | None:
    rd = 1 if registered_delivery == 3 else registered_delivery   # 3 is reserved: as 1
    if rd == 1 and parts is None:
        return None
    ref = f"{_REF_PREFIX}rd={rd}"
    return ref + (";parts={},{},{}".format(*parts) if parts is not None else "")


def read_receipt_ref(ref: str | None) -> tuple[int, tuple[int, int, int] | None]:
    """(registered_delivery, parts) from a submission's client reference; a reference
    that is not ours (a submission from another front door) wants every receipt."""
    if not ref or not ref.startswith(_REF_PREFIX):
        return 1, None
    rd, parts = 1, None
    for field in ref[len(_REF_PREFIX):].split(";"):
        name, _, value = field.partition("=")
        try:
            if name == "rd":
                rd = int(value)
            elif name == "parts":
                first, total, last = (int(v) for v in value.split(","))
                parts = (first, total, last)
        except ValueError:
            log.warning("smpp server: unreadable receipt reference %r", ref)
    return rd, parts


def _address(text: object) -> str:
    """An address for a deliver_sm field: ASCII, at most 20 characters."""
    value = str(text or "")
    if not (value.isascii() and value.isprintable()):
        value = "".join(ch for ch in value if ch.isascii() and ch.isprintable())
    return value[:20]


@dataclass(slots=True)
class _LongHead:
    """A long message whose parts are coming: its parts' first id and its first part's request."""
    first_id: int
    req: SendRequest
    receipts: int               # registered_delivery


class _Refused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class _Session(Session):
    def __init__(self, server: SmppServer) -> None:
        super().__init__(server)
        self.server: SmppServer = server
        self.conn = Connection("smsc")
        self.receiver = False          # bound as receiver or transceiver
        self.unbind_seq: int | None = None
        self.submits = 0               # submits being accepted
        self.started = time.monotonic()
        self.probe_at: float | None = None
        self.sent_at: dict[int, float] = {}   # deliver_sm sequence -> when it went out

    def __repr__(self) -> str:
        return f"<smpp session {self.who()}>"

    # -- reading ----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.seen()
        self.probe_at = None
        out: list[bytes] = []
        try:
            pump(self.conn, data, SmppError, is_open=lambda: self.open,
                 handle=lambda ev: self._handle(ev, out), on_bad=lambda e: self._refuse(e, out))
        except SmppError as e:
            # The stream can no longer be framed (a lying or oversize command_length):
            # say why, then drop this session only.
            log.warning("%r: closing: %s", self, e)
            self.write(b"".join(out) + encode(GenericNack(e.sequence_number or 0, int(e.status))))
            self.close_after_write()
            return
        if out:
            self.write(b"".join(out))

    def _refuse(self, e: SmppError, out: list[bytes]) -> None:
        """Answer a PDU that was skipped: its own response where it has one, else generic_nack."""
        seq = e.sequence_number or 0
        cid = e.command_id
        status = int(e.status)
        if isinstance(e, SmppProtocolError):
            ev = e.event
            if type(ev) in _BINDS and self.conn.state in BOUND_STATES:
                status = S.ESME_RALYBND
            if type(ev) is GenericNack or (cid is not None and cid & RESPONSE_BIT):
                log.info("%r: ignored %s out of place", self, type(ev).__name__)
                return
        elif cid is not None and cid & RESPONSE_BIT:
            log.info("%r: ignored a malformed response: %s", self, e)
            return
        resp = RESPONSES.get(cid) if cid is not None else None
        log.info("%r: refused a PDU (0x%X): %s", self, status, e)
        # Encoded directly: the state table does not allow answering a PDU it refused.
        out.append(encode(resp(seq, status) if resp is not None else GenericNack(seq, status)))

    def _handle(self, ev, out: list[bytes]) -> None:
        t = type(ev)
        if t in _SUBMIT_RESP:
            self._on_submit(ev, out)
        elif t is DeliverSmResp or t is GenericNack:
            self._on_deliver_resp(ev)
        elif t is EnquireLink:
            out.append(self.conn.send(EnquireLinkResp(ev.sequence_number)))
        elif t is EnquireLinkResp:
            pass
        elif t in _BINDS:
            self._on_bind(ev, out)
        elif t is Unbind:
            self._on_unbind(ev, out)
        elif t is UnbindResp:
            self.close_after_write()
        elif t in _UNSERVED:
            resp, status = _UNSERVED[t]
            out.append(self.conn.send(resp(ev.sequence_number, status)))
        else:
            log.info("%r: ignored %s", self, t.__name__)

    # -- bind and unbind --------------------------------------------------
    def _on_bind(self, ev, out: list[bytes]) -> None:
        server = self.server
        resp_cls, receiver = _BINDS[type(ev)]
        try:
            acc = server.directory.by_username(ev.system_id) if ev.system_id else None
            status = self._bind_status(acc, ev.password)
        except Exception:  # noqa: BLE001 - the database is away: refuse, the customer retries
            log.exception("smpp server: bind lookup failed")
            acc, status = None, S.ESME_RSYSERR
        if status:
            server.refused_logins += 1
            log.info("smpp server: bind %r from %s refused (0x%X)", ev.system_id, self.peer_ip(), status)
            out.append(self.conn.send(resp_cls(ev.sequence_number, status)))
            # One guess per connection: a refused customer reconnects to try again.
            self.write(b"".join(out))
            out.clear()
            self.close_after_write()
            return
        tlvs = (Tlv(Tag.SC_INTERFACE_VERSION, INTERFACE_VERSION),) if ev.interface_version >= 0x34 else ()
        out.append(self.conn.send(resp_cls(ev.sequence_number, 0, SYSTEM_ID, tlvs)))
        self.receiver = receiver
        self.bind(acc)

    def _bind_status(self, acc: Account | None, password: str) -> int:
        # An unknown name and a wrong password get the same answer: a bind does not
        # tell which usernames exist.
        if acc is None or not password or not secrets.same(acc.secret[:PASSWORD_LENGTH], password):
            return S.ESME_RINVPASWD
        if acc.refusal(self.peer_ip()) is not None or not self.server.has_room_for(acc.id):
            return S.ESME_RBINDFAIL
        return S.ESME_ROK

    def _on_unbind(self, ev: Unbind, out: list[bytes]) -> None:
        self.unbind_seq = ev.sequence_number
        if self.submits == 0:
            self._finish_unbind(out)

    def _finish_unbind(self, out: list[bytes]) -> None:
        # Every submit the customer sent before its unbind has been answered.
        out.append(self.conn.send(UnbindResp(self.unbind_seq)))
        self.write(b"".join(out))
        out.clear()
        self.close_after_write()

    # -- submits ----------------------------------------------------------
    def _on_submit(self, ev, out: list[bytes]) -> None:
        resp_cls = _SUBMIT_RESP[type(ev)]
        server = self.server
        try:
            req, part = self._request(ev)
        except _Refused as r:
            log.info("%r: refused %s: %s", self, type(ev).__name__, r)
            out.append(self.conn.send(resp_cls(ev.sequence_number, r.status)))
            return
        receipts = ev.registered_delivery & 0x03
        if part is None:
            req.client_ref = receipt_ref(receipts)
        else:
            key, total, seq, text = part
            refusal = self._part_refusal(req)
            if refusal is not None:
                out.append(self.conn.send(resp_cls(ev.sequence_number, status_for(refusal))))
                return
            first = server.part_ids(key, total, req, receipts)
            whole = server.long_parts.add(key, total, seq, text, time.monotonic())
            if whole is None:
                # Earlier parts are answered at once (a customer may wait for each answer
                # before the next part); the message is accepted with the part that completes it.
                out.append(self.conn.send(resp_cls(ev.sequence_number, 0, str(first + seq - 1))))
                return
            server.long_heads.pop(key, None)
            req.content = whole
            req.client_ref = receipt_ref(receipts, (first, total, seq))
        self.submits += 1
        self.spawn(self._submit(ev, resp_cls, req))

    def _request(self, ev) -> tuple[SendRequest, tuple | None]:
        """The send request of a submit PDU, and (key, total, seq, text) when it is one part
        of a long message. Raises _Refused for what no rule needs to look at."""
        acc = self.account
        if ev.esm_class & ESM_MESSAGE_TYPE_MASK:
            raise _Refused(S.ESME_RINVESMCLASS, f"esm_class 0x{ev.esm_class:02X} is not a message")
        multi = type(ev) is SubmitMulti
        if multi:
            dests = [d.destination_addr for d in ev.dest_addresses if not isinstance(d, DistributionList)]
            if not dests:
                raise _Refused(S.ESME_RCNTSUBDL if ev.dest_addresses else S.ESME_RINVNUMDESTS,
                               "no SME address among the destinations")
        else:
            dests = [ev.destination_addr]
            # One address: a list separator inside it would make it several recipients.
            if not dests[0] or any(ch not in "+0123456789" for ch in dests[0]):
                raise _Refused(S.ESME_RINVDSTADR, f"destination {dests[0]!r} is not a number")
        extno = self._extno(ev.source_addr)
        schedule = None
        if type(ev) is not DataSm:
            try:
                schedule = parse_time(ev.schedule_delivery_time)
            except ValueError as e:
                raise _Refused(S.ESME_RINVSCHED, str(e)) from None
        sm = ev.short_message if type(ev) is not DataSm else b""
        payload = find_tlv(ev.tlvs, Tag.MESSAGE_PAYLOAD)
        if payload is not None and sm:
            raise _Refused(S.ESME_ROPTPARNOTALLWD, "short_message and message_payload together")
        body = payload if payload is not None else sm
        part_info = None
        if ev.esm_class & ESM_UDHI:
            if not body or body[0] + 1 > len(body):
                raise _Refused(S.ESME_RINVMSGLEN, "the user data header overruns the message")
            info, body = split_udh(body)
            if info is not None and info.total > 1:
                part_info = ("udh", info.ref, info.total, info.seq)
        else:
            total = find_tlv(ev.tlvs, Tag.SAR_TOTAL_SEGMENTS)
            if total is not None and total > 1:
                ref = find_tlv(ev.tlvs, Tag.SAR_MSG_REF_NUM)
                seq = find_tlv(ev.tlvs, Tag.SAR_SEGMENT_SEQNUM)
                if ref is None or seq is None:
                    raise _Refused(S.ESME_RMISSINGOPTPARAM, "sar_total_segments without its reference or number")
                if not 1 <= seq <= total:
                    raise _Refused(S.ESME_RINVOPTPARAMVAL, f"sar_segment_seqnum {seq} of {total}")
                part_info = ("sar", ref, total, seq)
        try:
            text = decode_text(body, ev.data_coding, part=part_info is not None)
        except ValueError as e:
            raise _Refused(S.ESME_RSUBMITFAIL, str(e)) from None
        req = SendRequest(account=acc, to=dests, content=text, extno=extno, schedule_at=schedule,
                          dialect="smpp", client_ip=self.peer_ip(), skip_invalid=multi)
        if part_info is None:
            return req, None
        kind, ref, total, seq = part_info
        key = (acc.id, kind, ev.source_addr, tuple(dests), ref, total)
        return req, (key, total, seq, text)

    def _part_refusal(self, req: SendRequest) -> Code | None:
        """What refuses a part before the whole message is in: who sends and to whom. The
        content rules (signature, words) wait for the whole text."""
        refusal = req.account.refusal(req.client_ip)
        if refusal is not None:
            return refusal
        parsed = numbers.parse_recipients(req.to)
        if not parsed.valid or (parsed.invalid and not req.skip_invalid):
            return Code.INVALID_NUMBER
        return None

    def _extno(self, source: str) -> str:
        """The extension a customer chose: what its source address adds to the account's own."""
        ext = self.account.extension or ""
        extno = request_ext(source, ext)
        if extno is None:
            raise _Refused(S.ESME_RINVSRCADR,
                           f"source {source!r} is not the account's extension {ext!r} followed by digits")
        return extno

    async def _submit(self, ev, resp_cls: type, req: SendRequest) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await self.server.accept.send(req)
            code = outcome.code
            sid = str(outcome.data["submission_id"]) if outcome.ok else ""
        except Exception:  # noqa: BLE001 - the customer gets a system error, the session lives
            log.exception("smpp server: accept failed")
            code, sid = Code.SYSTEM_ERROR, ""
        finally:
            self.submits -= 1
        if sid:
            self.server.submitted += 1
        status = status_for(code)
        if resp_cls is SubmitMultiResp and status == 0:
            resp = SubmitMultiResp(ev.sequence_number, 0, sid, self._unsuccessful(ev, outcome))
        elif status == 0:
            resp = resp_cls(ev.sequence_number, 0, sid)
        else:
            resp = resp_cls(ev.sequence_number, status)
        if not self.open:
            return
        out: list[bytes] = []
        try:
            out.append(self.conn.send(resp))
            if self.unbind_seq is not None and self.submits == 0:
                self._finish_unbind(out)
        except SmppError as e:
            log.warning("%r: cannot answer submit %d: %s", self, ev.sequence_number, e)
        if out:
            self.write(b"".join(out))

    @staticmethod
    def _unsuccessful(ev: SubmitMulti, outcome: Outcome | None) -> tuple[UnsuccessSme, ...]:
        bad = set(outcome.data.get("invalid") or ()) if outcome is not None else set()
        out = []
        for d in ev.dest_addresses:
            if isinstance(d, DistributionList):
                out.append(UnsuccessSme(0, 0, d.dl_name[:20], S.ESME_RCNTSUBDL))
            elif d.destination_addr in bad or not d.destination_addr:
                out.append(UnsuccessSme(d.dest_addr_ton, d.dest_addr_npi, d.destination_addr,
                                        S.ESME_RINVDSTADR))
        return tuple(out)

    # -- deliveries (outbox) ----------------------------------------------
    def room(self) -> int:
        # A transmitter takes no deliver_sm (2.4); an unbinding customer takes no more.
        if not self.receiver or self.unbind_seq is not None:
            return 0
        return super().room()

    def encode_event(self, item: dict) -> tuple[list[int], bytes]:
        pdus = self._delivers_for(item)
        if not pdus:
            self.server.ack(item["id"])   # nothing to send: done as it is
            return [], b""
        data = b"".join(self.conn.send(p) for p in pdus)
        now = time.monotonic()
        seqs = [p.sequence_number for p in pdus]
        for seq in seqs:
            self.sent_at[seq] = now
        return seqs, data

    def _delivers_for(self, item: dict) -> list[DeliverSm]:
        conn = self.conn
        if item["kind"] == "report":
            sid = str(item["submission_id"])
            delivered = item.get("status") == "delivered"
            receipts, parts = read_receipt_ref(item.get("client_ref"))
            if receipts == 0 or (receipts == 2 and delivered):
                return []   # registered_delivery asked for no receipt (or for failures only)
            ids = [sid]
            if parts is not None:
                # One receipt per submit_sm, as an SMSC sends for each part it took.
                first, total, last = parts
                ids = [sid if seq == last else str(first + seq - 1) for seq in range(1, total + 1)]
            stat, state = receipt_state(item.get("status"), item.get("carrier_status"))
            common = dict(stat=stat, submit_date=_stamp(item.get("submitted_at")),
                          done_date=_stamp(item.get("done_at")), sub="001", dlvrd="001" if delivered else "000",
                          err=receipt_err(delivered, item.get("carrier_status")))
            return [DeliverSm(conn.next_sequence(), source_addr=_address(item.get("to")),
                              destination_addr=_address(self.account.extension),
                              esm_class=EsmClass.DELIVERY_RECEIPT,
                              short_message=format_receipt(Receipt(message_id=mid, **common)),
                              tlvs=(Tlv(Tag.RECEIPTED_MESSAGE_ID, mid), Tlv(Tag.MESSAGE_STATE, state)))
                    for mid in ids]
        text = str(item.get("content") or "")
        p = plan(text)
        chunks = p.chunks or ("",)
        coding = 0 if p.encoding == "gsm7" else 8
        ref = int(item.get("mo_id") or 0) & 0xFF
        out = []
        for i, chunk in enumerate(chunks, 1):
            body = gsm_encode(chunk) if coding == 0 else encode_chunk(chunk, "ucs2")
            esm = 0
            if len(chunks) > 1:
                esm, body = ESM_UDHI, concat_udh(ref, len(chunks), i) + body
            out.append(DeliverSm(conn.next_sequence(), source_addr=_address(item.get("from")),
                                 destination_addr=_address(item.get("to")), esm_class=esm,
                                 data_coding=coding, short_message=body))
        return out

    def _on_deliver_resp(self, ev) -> None:
        seq = ev.sequence_number
        self.sent_at.pop(seq, None)
        if seq not in self.awaiting:
            if type(ev) is GenericNack:
                log.info("%r: generic_nack 0x%X for sequence %d", self, ev.command_status, seq)
            return
        status = ev.command_status
        if status and status in _PERMANENT_REFUSALS:
            log.warning("%r: customer refused event %d for good (0x%X)", self, self.awaiting[seq], status)
            self.answered(seq, True)
        elif status:
            # A temporary refusal: offered again a little later, not in a tight loop.
            self.answered(seq, False, retry_after=self.server.refused_retry)
        else:
            self.answered(seq, True)

    # -- timers -----------------------------------------------------------
    def tick(self, now: float) -> None:
        server = self.server
        if self.account is None:
            if now - self.started >= server.bind_timeout:
                log.info("%r: not bound after %.0f s; closing", self, server.bind_timeout)
                self.close()
            return
        if now - self.last_seen >= server.enquire_interval and (
                self.probe_at is None or now - self.probe_at >= server.enquire_interval):
            try:
                self.write(self.conn.send(EnquireLink(self.conn.next_sequence())))
                self.probe_at = now
            except SmppError:
                pass
        if self.sent_at:
            late = [seq for seq, at in self.sent_at.items() if now - at >= server.deliver_timeout]
            for seq in late:
                del self.sent_at[seq]
            late = [seq for seq in late if seq in self.awaiting]
            if late:
                log.warning("%r: %d deliver_sm unanswered after %.0f s; offered again",
                            self, len(late), server.deliver_timeout)
                for seq in late:
                    self.answered(seq, False)

    def say_goodbye(self) -> bool:
        """Ask a bound customer to unbind (the server stops); False if there is nobody to ask."""
        if self.account is None or self.unbind_seq is not None or not self.open:
            return False
        try:
            self.write(self.conn.send(Unbind(self.conn.next_sequence())))
        except SmppError:
            return False
        return True


class SmppServer(SessionServer):
    """SMPP 3.4 server for customers. ``start()`` listens, ``stop()`` unbinds and closes."""

    name = "SMPP"

    def __init__(self, accept: AcceptService, directory: Directory, outbox: Outbox, *,
                 host: str = "127.0.0.1", port: int = 2775,
                 max_sessions: int = MAX_SESSIONS_PER_ACCOUNT, window: int = WINDOW,
                 idle_timeout: float = IDLE_TIMEOUT, bind_timeout: float = BIND_TIMEOUT,
                 enquire_interval: float = ENQUIRE_INTERVAL, deliver_timeout: float = DELIVER_TIMEOUT,
                 refused_retry: float = REFUSED_RETRY, long_sms_timeout: float = LONG_SMS_TIMEOUT,
                 unbind_wait: float = UNBIND_WAIT) -> None:
        super().__init__(outbox, host=host, port=port, max_sessions=max_sessions,
                         idle_timeout=idle_timeout, window=window)
        self.accept = accept
        self.directory = directory
        self.bind_timeout = bind_timeout
        self.enquire_interval = enquire_interval
        self.deliver_timeout = deliver_timeout
        self.refused_retry = refused_retry
        self.unbind_wait = unbind_wait
        # Parts of long messages, per account (a customer may spread them over its
        # sessions, or reconnect between them).
        self.long_parts = Reassembler(long_sms_timeout)
        self.long_heads: dict[tuple, _LongHead] = {}   # long message -> its first part
        # Part ids: bit 62 set (never a submission id), then the start time in ms and a
        # counter, so ids stay unique across restarts and between processes.
        self._next_part_id = (1 << 62) | (now_ms() & ((1 << 41) - 1)) << 20
        self._long_timer: asyncio.Task | None = None
        self.submitted = 0        # submissions accepted

    def make_session(self) -> _Session:
        return _Session(self)

    def part_ids(self, key: tuple, total: int, req: SendRequest, receipts: int) -> int:
        """The first of the ``total`` consecutive message_ids kept for a long message's parts
        (part n answers with first + n - 1, except the part that completes the message,
        which answers with the submission id)."""
        head = self.long_heads.get(key)
        if head is None:
            head = self.long_heads[key] = _LongHead(self._next_part_id, req, receipts)
            self._next_part_id += total
        return head.first_id

    def expire_long_parts(self, now: float) -> None:
        """Submit the long messages whose parts stopped coming, as far as they came: the
        customer was told each part it sent was taken."""
        for key, text in self.long_parts.expire(now):
            head = self.long_heads.pop(key, None)
            if head is None:
                continue
            total = key[-1]
            log.info("smpp server: long message %d of %s incomplete after %.0f s; submitting the "
                     "parts that came", head.first_id, head.req.account.username, self.long_parts.timeout)
            req = head.req
            req.content = text
            # No part completed it, so no part was answered with the submission id: the
            # receipts go to the parts' own ids.
            req.client_ref = receipt_ref(head.receipts, (head.first_id, total, 0))
            self.spawn(self._submit_incomplete(req))

    async def _submit_incomplete(self, req: SendRequest) -> None:
        try:
            outcome = await self.accept.send(req)
        except Exception:  # noqa: BLE001 - nobody to answer; the log says what was lost
            log.exception("smpp server: the incomplete long message of %s failed", req.account.username)
            return
        if outcome.ok:
            self.submitted += 1
        else:
            log.warning("smpp server: the incomplete long message of %s was refused: %s",
                        req.account.username, outcome.code.value)

    async def start(self) -> None:
        await super().start()
        self._long_timer = asyncio.create_task(self._expire_long_loop(), name="smpp long messages")

    async def _expire_long_loop(self) -> None:
        every = max(0.05, min(5.0, self.long_parts.timeout / 4))
        while True:
            await asyncio.sleep(every)
            self.expire_long_parts(time.monotonic())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()                # no new binds
        if self._long_timer is not None:
            self._long_timer.cancel()
            await asyncio.gather(self._long_timer, return_exceptions=True)
            self._long_timer = None
        # Parts still waiting go out as far as they came, while the writer still runs.
        self.expire_long_parts(float("inf"))
        # Every submit being accepted is answered (the customer may not see an answer after
        # its unbind_resp), then each bound customer is asked to unbind.
        await self.finish_requests(STOP_WAIT)
        asked = [s for s in list(self.sessions) if s.say_goodbye()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unbind_wait
        while any(s.open for s in asked) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await super().stop()
