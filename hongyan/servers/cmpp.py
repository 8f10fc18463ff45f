"""The CMPP 2.0/3.0 front door: customers log in with their account and submit over a session.

A customer is the SP and Hongyan the gateway. CONNECT carries the account's
username as Source_Addr and proves the API secret with the MD5
authenticator; the session speaks the version the CONNECT asked for (2.0 or
3.0). Every SUBMIT goes through the same accept rules as HTTP (dialect
``cmpp``, so its reports come back on a session) and its SUBMIT_RESP is
written only after the commit, with the k1680 document's result codes. The
Msg_Id in the SUBMIT_RESP is minted here in the CMPP layout, stored as the
submission's ``client_ref``, and carried back by the status reports.

A long message sent as TP_udhi parts is one submission billed by its parts.
Its parts get consecutive Msg_Ids (one each, as a gateway answers every
SUBMIT), may arrive on any of the account's sessions, and are answered at
once except the part that completes the message, which is answered after
the commit with the result that counts. Its report goes out once per part,
each naming that part's Msg_Id. Parts that never complete are submitted as
far as they go after ``LONG_SMS_WAIT`` seconds (the customer was told each
was taken). Registered_Delivery 0 means no report.

Reports and MO leave as DELIVER through the shared session outbox
(``session.Session`` does the window, the acks and the back-pressure).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import Engine, case, distinct, func, select

from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.cancel import cancel as cancel_submission
from hongyan.core.accounts import Account, Directory
from hongyan.core.receive import Receiver
from hongyan.domain.outcomes import Code
from hongyan.domain.source import request_ext
from hongyan.domain.segments import (Reassembler, concat_udh, decode_payload, encode_chunk, plan,
                                     split_udh)
from hongyan.protocols.cmpp import auth
from hongyan.protocols.cmpp.connection import Connection
from hongyan.protocols.cmpp.constants import CMPP_CONNECT, CMPP_SUBMIT, V20, CommandId
from hongyan.protocols.cmpp.errors import CmppError, CmppProtocolError
from hongyan.protocols.cmpp.events import (
    ActiveTest, ActiveTestResp, Cancel, CancelResp, Connect, ConnectResp, Deliver, DeliverResp, Query,
    QueryResp, StatusReport, Submit, SubmitResp, Terminate, TerminateResp,
)
from hongyan.protocols.cmpp.msgid import MsgIdGenerator
from hongyan.protocols.cmpp.wire import encode
from hongyan.protocols.framing import pump
from hongyan.store.tables import events, messages, submissions

from .outbox import Outbox
# At_Time has the layout of SMPP's schedule_delivery_time ("YYMMDDhhmmsstnnp").
from .smpp import parse_time
from .session import IDLE_TIMEOUT, MAX_SESSIONS_PER_ACCOUNT, WINDOW, Session, SessionServer

log = logging.getLogger(__name__)

LONG_SMS_WAIT = 60.0             # seconds the parts of a long message wait for the rest
MAX_LONG_OPEN = 256              # incomplete long messages kept per account
NO_REPORT = ";rd=0"              # in a client reference: the customer asked for no report
MAX_DESTINATIONS = 100           # DestUsr_tl, CMPP 2.0 section 7.4.3.1

# CONNECT_RESP Status (k1680 section 3.2; CMPP: 5 and above are "other errors").
CONNECT_OK = 0
CONNECT_BAD_STRUCTURE = 1
CONNECT_BAD_SOURCE = 2           # no account with that username
CONNECT_AUTH = 3                 # wrong secret, or an address the account may not log in from
CONNECT_VERSION = 4              # neither 2.0 nor 3.0
CONNECT_SUSPENDED = 5            # the account (or its org) is locked, disabled or expired
CONNECT_TOO_MANY = 6             # the account already has its maximum of sessions
CONNECT_UNAVAILABLE = 7          # the login could not be checked now (the database is away): retry

# Why an account may not log in -> CONNECT_RESP Status.
CONNECT_REFUSALS: dict[Code, int] = {Code.IP_DENIED: CONNECT_AUTH}

# Outcome -> SUBMIT_RESP Result, after the k1680 CMPP document (section 3.3).
RESULTS: dict[Code, int] = {
    Code.OK: 0, Code.CONTENT_HELD: 0,
    Code.ACCOUNT_LOCKED: 3, Code.ACCOUNT_EXPIRED: 3, Code.ACCOUNT_DISABLED: 3, Code.ORG_DISABLED: 3,
    Code.IP_DENIED: 3, Code.AUTH_FAILED: 3, Code.PERMISSION_DENIED: 3,
    Code.CONTENT_EMPTY: 4,
    Code.CONTENT_TOO_LONG: 6,
    Code.RATE_LIMITED: 8, Code.TOO_MANY_CONCURRENT: 8, Code.SYSTEM_BUSY: 8, Code.QUOTA_EXCEEDED: 8,
    Code.OUTSIDE_SEND_WINDOW: 8,
    Code.PRODUCT_UNAVAILABLE: 10, Code.PRODUCT_BALANCE: 10,
    Code.INVALID_NUMBER: 11, Code.RECIPIENTS_EMPTY: 11, Code.RECIPIENTS_TOO_MANY: 11,
    Code.RECIPIENTS_TOO_FEW: 11,
    Code.CONTENT_BLOCKED: 12, Code.CONTENT_REJECTED: 12, Code.NOT_WHITELISTED: 12,
    Code.SIGNATURE_MISSING: 12, Code.SIGNATURE_INVALID: 12,
    Code.INSUFFICIENT_BALANCE: 13,
    Code.INVALID_EXTNO: 14,
}
RESULT_OTHER = 1                 # anything not in the table: "消息结构错" is the closest the table has
RESULT_BAD_STRUCTURE = 1
RESULT_BAD_LENGTH = 4
RESULT_TOO_LONG = 6
RESULT_FLOW_CONTROL = 8
RESULT_MSG_SRC = 9               # Msg_src is not the logged-in account
RESULT_BAD_SRC_ID = 14           # Src_Id does not start with the account's extension

# What the customer may set as Msg_Fmt: text we can read. Binary (4) and SIM
# writes (3) have no place in a text message and are refused.
TEXT_FORMATS = frozenset({0, 8, 15})
# One SMS: 140 octets, or 160 one-octet characters in ASCII (k1680: result 6 above that).
MAX_OCTETS = {0: 160, 8: 140, 15: 140}

# Our message state -> the Stat a report carries when the carrier gave no text.
STAT_FOR_STATE = {"delivered": "DELIVRD", "expired": "EXPIRED", "failed": "UNDELIV"}
# A DELIVER_RESP whose Result is flow control: offer it again after this many seconds.
FLOW_CONTROL_PAUSE = 1.0
STOP_WAIT = 5.0                  # seconds a stopping server waits for the SUBMITs being accepted
LOGIN_TIMEOUT = 30.0             # seconds a connection may stay open without logging in
RECENT_MSG_IDS = 200_000         # Msg_Ids remembered for CANCEL (about a minute of busy traffic and more)
# A DELIVER unanswered this long on a live session is offered again (within the
# outbox's 60 s lease, so no other session is offered it meanwhile).
DELIVER_TIMEOUT = 30.0

_U64 = (1 << 64) - 1


def result_for(code: Code) -> int:
    return RESULTS.get(code, RESULT_OTHER)


_CMPP_TIMES: dict[str, str] = {}


def cmpp_time(iso_text: str | None) -> str:
    """An ISO time from a report as the report's YYMMDDHHMM, in the server's local time."""
    if iso_text:
        # Reports go out by the thousand a second and mostly share their minute, so the
        # answer is kept per minute and UTC offset (seconds and fraction dropped).
        key = iso_text[:16] + iso_text[23:] if len(iso_text) > 23 and iso_text[19:20] == "." else iso_text
        hit = _CMPP_TIMES.get(key)
        if hit is not None:
            return hit
        try:
            text = datetime.fromisoformat(iso_text).astimezone().strftime("%y%m%d%H%M")
        except ValueError:
            return time.strftime("%y%m%d%H%M")
        if len(_CMPP_TIMES) > 4096:
            _CMPP_TIMES.clear()
        _CMPP_TIMES[key] = text
        return text
    return time.strftime("%y%m%d%H%M")


def client_ref(first_id: int, parts: int = 1, report: bool = True) -> str:
    """What a submission keeps of its CMPP answer: the Msg_Id of its first part, how
    many parts it came in (their ids follow the first one), and whether the customer
    asked for no report (Registered_Delivery 0). Shown as the client reference."""
    ref = str(first_id) if parts == 1 else f"{first_id}/{parts}"
    return ref if report else ref + NO_REPORT


def read_client_ref(ref: object) -> tuple[list[int], bool] | None:
    """The Msg_Ids a submission's reports name, and whether to send them; None if
    ``ref`` is not one of ours (the message came in another way)."""
    if not isinstance(ref, str):
        return None
    report = not ref.endswith(NO_REPORT)
    if not report:
        ref = ref[:-len(NO_REPORT)]
    first, _, parts = ref.partition("/")
    if not first.isdigit() or (parts and not parts.isdigit()):
        return None
    n = int(parts) if parts else 1
    start = int(first)
    if not 1 <= n <= 255 or start + n - 1 > _U64:
        return None
    return [start + k for k in range(n)], report


class _Long:
    """A long message whose parts are arriving: the ids its parts are answered with,
    and what its submission is made from (its first part to arrive)."""

    __slots__ = ("first_id", "submit", "account", "client_ip")

    def __init__(self, first_id: int, submit: Submit, account: Account, client_ip: str | None) -> None:
        self.first_id = first_id
        self.submit = submit
        self.account = account
        self.client_ip = client_ip


class CmppSession(Session):
    def __init__(self, server: CmppServer) -> None:
        super().__init__(server)
        self.server: CmppServer = server
        self.conn = Connection("server", version=None)
        self.connected_at = time.monotonic()
        self._mo_ref = 0

    # -- reading ----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.seen()
        try:
            pump(self.conn, data, CmppError, is_open=lambda: self.open, handle=self._handle,
                 on_bad=self._on_bad_pdu)
        except CmppError as e:
            # The byte stream cannot be framed any more (a lying or oversize Total_Length).
            log.info("cmpp server: closing %s: %s", self.who(), e)
            self.close()

    def _on_bad_pdu(self, e: CmppError) -> None:
        """Answer a PDU we could not take; the session reads on unless this closes it."""
        who = self.who()
        if self.account is None:
            if e.command_id == CMPP_CONNECT and e.sequence_id is not None:
                # A CONNECT we cannot read: "bad structure", and the session ends.
                self.write(encode(ConnectResp(e.sequence_id, CONNECT_BAD_STRUCTURE, bytes(16), V20), V20))
            log.info("cmpp server: closing %s before login: %s", who, e)
            self.close_after_write()
            return
        if (e.command_id == CMPP_SUBMIT and e.sequence_id is not None
                and not isinstance(e, CmppProtocolError)):
            # One malformed SUBMIT is refused; the session goes on.
            log.info("cmpp server: %s sent a malformed SUBMIT: %s", who, e)
            self.write(self.conn.send(SubmitResp(e.sequence_id, 0, RESULT_BAD_STRUCTURE)))
            return
        # An unknown Command_Id, a PDU out of place, or a malformed PDU with
        # no answer of its own: the session is out of step, so it is ended.
        known = e.command_id in CommandId._value2member_map_ if e.command_id is not None else False
        log.info("cmpp server: terminating %s (%s Command_Id %s): %s", who,
                 "known" if known else "unknown",
                 f"0x{e.command_id:08X}" if e.command_id is not None else "?", e)
        self.terminate()

    def terminate(self) -> None:
        try:
            self.write(self.conn.send(Terminate(self.conn.next_sequence())))
        except CmppError:
            pass
        self.close_after_write()

    def idle_close(self) -> None:
        self.terminate()

    def tick(self, now: float) -> None:
        if self.account is None:
            # A connection that never logs in holds a socket for nothing.
            if now - self.connected_at >= LOGIN_TIMEOUT:
                log.info("cmpp server: %s did not log in within %.0f s; closing", self.who(), LOGIN_TIMEOUT)
                self.close()
            return
        late = self.release_late(now, DELIVER_TIMEOUT)
        if late:
            log.warning("cmpp server: %d DELIVER to %s unanswered after %.0f s; offered again",
                        late, self.who(), DELIVER_TIMEOUT)

    def _handle(self, ev) -> None:
        t = type(ev)
        if t is Submit:
            self._on_submit(ev)
        elif t is DeliverResp:
            if ev.result == RESULT_FLOW_CONTROL:
                self.answered(ev.sequence_id, False, retry_after=FLOW_CONTROL_PAUSE)
            else:
                if ev.result:
                    # The customer refuses this DELIVER for good (its structure, its
                    # fields): offering the same bytes again would be refused again.
                    log.warning("cmpp server: %s answered DELIVER %d with Result %d; not offered again",
                                self.who(), ev.sequence_id, ev.result)
                self.answered(ev.sequence_id, True)
        elif t is ActiveTest:
            self.write(self.conn.send(ActiveTestResp(sequence_id=ev.sequence_id)))
        elif t is ActiveTestResp:
            pass
        elif t is Connect:
            self._on_connect(ev)
        elif t is Query:
            self.spawn(self._on_query(ev))
        elif t is Cancel:
            self.spawn(self._on_cancel(ev))
        elif t is Terminate:
            self.write(self.conn.send(TerminateResp(sequence_id=ev.sequence_id)))
            self.close_after_write()
        elif t is TerminateResp:
            self.close()

    # -- login ------------------------------------------------------------
    def _on_connect(self, ev: Connect) -> None:
        server = self.server
        version = self.conn.version or V20
        acc: Account | None = None
        secret = ""
        if not 0x20 <= ev.version <= 0x3F:
            status = CONNECT_VERSION
        else:
            try:
                acc = server.directory.by_username(ev.source_addr) if ev.source_addr else None
                lookup_failed = False
            except Exception:  # noqa: BLE001 - the customer is told to retry; the server lives
                log.exception("cmpp server: cannot look up account %r", ev.source_addr)
                acc, lookup_failed = None, True
            if lookup_failed:
                status = CONNECT_UNAVAILABLE
            elif acc is None:
                status = CONNECT_BAD_SOURCE
            elif not auth.verify_connect(ev, acc.secret):
                status = CONNECT_AUTH
            else:
                secret = acc.secret
                refusal = acc.refusal(self.peer_ip())
                if refusal is not None:
                    status = CONNECT_REFUSALS.get(refusal, CONNECT_SUSPENDED)
                elif not server.has_room_for(acc.id):
                    status = CONNECT_TOO_MANY
                else:
                    status = CONNECT_OK
        # Only a customer who proved the secret gets an AuthenticatorISMG made with it.
        answer = ConnectResp(sequence_id=ev.sequence_id, status=status,
                             authenticator=auth.authenticator_ismg(status, ev.authenticator, secret, version),
                             version=version)
        self.write(self.conn.send(answer))
        if status != CONNECT_OK:
            server.refused_logins += 1
            log.info("cmpp server: login of %r from %s refused with status %d", ev.source_addr,
                     self.peer_ip(), status)
            self.close_after_write()
            return
        self.bind(acc)

    # -- submitting -------------------------------------------------------
    def _refuse(self, seq: int, result: int) -> None:
        self.write(self.conn.send(SubmitResp(sequence_id=seq, msg_id=0, result=result)))

    def _on_submit(self, ev: Submit) -> None:
        acc = self.account
        if ev.msg_src and ev.msg_src != acc.username:
            return self._refuse(ev.sequence_id, RESULT_MSG_SRC)
        if request_ext(ev.src_id, acc.extension or "") is None:
            return self._refuse(ev.sequence_id, RESULT_BAD_SRC_ID)
        if ev.msg_fmt not in TEXT_FORMATS:
            return self._refuse(ev.sequence_id, RESULT_BAD_STRUCTURE)
        raw = ev.msg_content
        info = None
        if ev.tp_udhi:
            info, raw = split_udh(raw)
            if info is None and raw is ev.msg_content:
                return self._refuse(ev.sequence_id, RESULT_BAD_STRUCTURE)   # a UDH that overruns the content
        if ev.msg_fmt == 8 and len(raw) % 2:
            return self._refuse(ev.sequence_id, RESULT_BAD_LENGTH)
        if len(ev.msg_content) > MAX_OCTETS[ev.msg_fmt]:
            return self._refuse(ev.sequence_id, RESULT_TOO_LONG)
        if ev.at_time.strip():
            try:
                parse_time(ev.at_time.strip())
            except ValueError:
                return self._refuse(ev.sequence_id, RESULT_BAD_STRUCTURE)   # At_Time not in the CMPP time format
        report = ev.registered_delivery != 0
        if info is not None and info.total > 1:
            self._on_part(ev, info.ref, info.total, info.seq, decode_payload(raw, ev.msg_fmt, part=True), report)
            return None
        text = decode_payload(raw, ev.msg_fmt)
        msg_id = self.server.msg_ids.next()
        self.spawn(self.server.submit(self, ev.sequence_id, msg_id,
                                      self.server.request(acc, ev, text, client_ref(msg_id, 1, report),
                                                          self.peer_ip())))
        return None

    def _on_part(self, ev: Submit, ref: int, total: int, seq: int, text: str, report: bool) -> None:
        """One part of a long message: held until the message is whole, then one submission."""
        server = self.server
        # The parts of one message share the reference, the count, the numbers and the
        # source, and may come on any of the account's sessions.
        key = (ref, total, ev.dest_terminal_ids, ev.src_id or "")
        long = server.long_open(self.account.id)
        head = server.long_heads.get((self.account.id, key))
        if head is None:
            head = server.long_heads[(self.account.id, key)] = _Long(
                server.consecutive_msg_ids(total), ev, self.account, self.peer_ip())
        msg_id = head.first_id + seq - 1
        whole = long.add(key, total, seq, text, time.monotonic())
        if whole is None:
            # Taken and held until the rest arrives (answered now, so that an SP that
            # waits for each answer goes on); the part that completes the message
            # is answered after the commit, with the result that counts.
            self.write(self.conn.send(SubmitResp(ev.sequence_id, msg_id, 0)))
        else:
            del server.long_heads[(self.account.id, key)]
            self.spawn(server.submit(self, ev.sequence_id, msg_id, server.request(
                self.account, head.submit, whole, client_ref(head.first_id, total, report), head.client_ip)))
        server.expire_long()

    # -- withdrawing ------------------------------------------------------
    async def _on_cancel(self, ev: Cancel) -> None:
        ok = await self.server.cancel(self.account.id, ev.msg_id)
        if self.open:
            self.write(self.conn.send(CancelResp(ev.sequence_id, 1 if ok else 0)))

    # -- statistics -------------------------------------------------------
    async def _on_query(self, ev: Query) -> None:
        counts = await self.server.query_counts(self.account.id, ev.time)
        if self.open:
            self.write(self.conn.send(QueryResp(ev.sequence_id, ev.time, ev.query_type, ev.query_code,
                                                **counts)))

    # -- reports and MO out -----------------------------------------------
    def encode_event(self, item: dict) -> tuple[list[int], bytes]:
        conn = self.conn
        if item["kind"] == "report":
            ours = read_client_ref(item.get("client_ref"))
            if ours is None:
                # Came in another way (HTTP) to an account whose reports go by session.
                ids, wanted = [int(item.get("submission_id") or 0) & _U64], True
            else:
                ids, wanted = ours
            if not wanted:
                return [], b""               # Registered_Delivery 0: the customer wants none
            phone = str(item.get("to") or "")
            status = item.get("carrier_status") or STAT_FOR_STATE.get(item.get("status") or "", "UNKNOWN")
            submit_time = cmpp_time(item.get("submitted_at"))
            done_time = cmpp_time(item.get("done_at"))
            smsc_sequence = int(item.get("message_id") or 0) & 0xFFFFFFFF
            seqs, out = [], []
            # One report per part the customer submitted, each naming that part's Msg_Id,
            # as a gateway reports every SUBMIT it took.
            for msg_id in ids:
                seq = conn.next_sequence()
                seqs.append(seq)
                report = StatusReport(msg_id=msg_id, stat=str(status)[:7], submit_time=submit_time,
                                      done_time=done_time, dest_terminal_id=phone, smsc_sequence=smsc_sequence)
                out.append(conn.send(Deliver(sequence_id=seq, msg_id=msg_id, dest_id=self.account.extension or "",
                                             src_terminal_id=phone, registered_delivery=1, report=report)))
            return seqs, b"".join(out)
        text = str(item.get("content") or "")
        p = plan(text) if text else None
        chunks = p.chunks if p else ("",)
        fmt = 8 if p is not None and p.encoding == "ucs2" else 0
        encoding = p.encoding if p is not None else "gsm7"
        common = dict(msg_id=int(item.get("mo_id") or 0) & _U64, dest_id=str(item.get("to") or "")[:21],
                      src_terminal_id=str(item.get("from") or ""), msg_fmt=fmt, registered_delivery=0)
        seqs, out = [], []
        if len(chunks) == 1:
            seq = conn.next_sequence()
            seqs.append(seq)
            out.append(conn.send(Deliver(sequence_id=seq, msg_content=encode_chunk(chunks[0], encoding), **common)))
        else:
            # A long reply goes as UDH parts, each one DELIVER the customer acknowledges.
            ref = self._mo_ref = (self._mo_ref + 1) & 0xFF
            for i, chunk in enumerate(chunks, 1):
                seq = conn.next_sequence()
                seqs.append(seq)
                out.append(conn.send(Deliver(sequence_id=seq, tp_udhi=1,
                                             msg_content=concat_udh(ref, len(chunks), i) + encode_chunk(chunk, encoding),
                                             **common)))
        return seqs, b"".join(out)


class CmppServer(SessionServer):
    name = "CMPP"

    def __init__(self, accept: AcceptService, directory: Directory, outbox: Outbox, *,
                 host: str = "127.0.0.1", port: int = 7890,
                 max_sessions: int = MAX_SESSIONS_PER_ACCOUNT, idle_timeout: float = IDLE_TIMEOUT,
                 window: int = WINDOW, gateway_code: int = 0, receiver: Receiver | None = None,
                 on_events: Callable[[], None] | None = None) -> None:
        super().__init__(outbox, host=host, port=port, max_sessions=max_sessions,
                         idle_timeout=idle_timeout, window=window)
        self.accept = accept
        self.directory = directory
        # Msg_Ids carry the node's code, so two API processes never mint the same one.
        self.msg_ids = MsgIdGenerator(gateway_code & ((1 << 22) - 1))
        self.receiver = receiver          # for CANCEL (its refunds and reports)
        self.on_events = on_events
        self._recent: dict[int, tuple[int, int]] = {}         # Msg_Id -> (account id, submission id)
        self._long: dict[int, Reassembler] = {}               # account id -> its open long messages
        self.long_heads: dict[tuple, _Long] = {}              # (account id, key) -> the message

    def make_session(self) -> CmppSession:
        return CmppSession(self)

    # -- submitting -------------------------------------------------------
    def request(self, account: Account, ev: Submit, text: str, ref: str, client_ip: str | None) -> SendRequest:
        # At_Time (checked when the SUBMIT came) schedules the message.
        at = ev.at_time.strip()
        return SendRequest(account=account, to=list(ev.dest_terminal_ids), content=text,
                           extno=request_ext(ev.src_id, account.extension or "") or "", client_ref=ref,
                           dialect="cmpp",
                           client_ip=client_ip, max_recipients=MAX_DESTINATIONS,
                           schedule_at=parse_time(at) if at else None)

    async def submit(self, session: CmppSession | None, seq: int | None, msg_id: int, req: SendRequest) -> None:
        """Accept one submission and answer its SUBMIT (``seq`` on ``session``) after the commit."""
        outcome = None
        try:
            outcome = await self.accept.send(req)
            code = outcome.code
        except Exception:  # noqa: BLE001 - the customer gets an error, the session lives
            log.exception("cmpp server: accept failed for %s", req.account.username)
            code = Code.SYSTEM_ERROR
        result = result_for(code)
        if outcome is not None and outcome.ok and outcome.data.get("submission_id"):
            self._remember(req, outcome.data["submission_id"])
        if session is None:
            if result:
                log.warning("cmpp server: the incomplete long message %s of %s was refused: %s",
                            req.client_ref, req.account.username, code.value)
            return
        if session.open:
            session.write(session.conn.send(SubmitResp(sequence_id=seq, msg_id=msg_id if result == 0 else 0,
                                                       result=result)))

    def _remember(self, req: SendRequest, submission_id: int) -> None:
        """Keep which submission each recent Msg_Id names, for CANCEL."""
        ours = read_client_ref(req.client_ref)
        if ours is None:
            return
        recent = self._recent
        for msg_id in ours[0]:
            recent[msg_id] = (req.account.id, submission_id)
        while len(recent) > RECENT_MSG_IDS:
            del recent[next(iter(recent))]

    async def cancel(self, account_id: int, msg_id: int) -> bool:
        """Withdraw what of the submission ``msg_id`` names has not gone to the carrier yet.

        Only messages this server accepted lately are known by their Msg_Id; True if
        at least one message was stopped."""
        hit = self._recent.get(msg_id)
        if hit is None or hit[0] != account_id or self.receiver is None:
            return False
        try:
            outcome = await self.accept.writer.run(
                lambda conn, _: cancel_submission(conn, account_id, hit[1], self.receiver))
        except Exception:  # noqa: BLE001 - the customer is told nothing was withdrawn
            log.exception("cmpp server: cancelling submission %d failed", hit[1])
            return False
        if not outcome.ok:
            return False
        if self.on_events is not None:
            self.on_events()           # the cancelled messages' reports
        return outcome.data.get("cancelled", 0) > 0

    def consecutive_msg_ids(self, n: int) -> int:
        """The first of ``n`` Msg_Ids that follow one another (the parts of one message)."""
        while True:
            ids = [self.msg_ids.next() for _ in range(n)]
            # Only a sequence wrap or a new second between two of them breaks the run.
            if ids[-1] - ids[0] == n - 1:
                return ids[0]

    def long_open(self, account_id: int) -> Reassembler:
        long = self._long.get(account_id)
        if long is None:
            long = self._long[account_id] = Reassembler(timeout=LONG_SMS_WAIT, max_open=MAX_LONG_OPEN)
        return long

    def expire_long(self, now: float | None = None) -> None:
        """Submit the long messages that waited too long for their parts, as far as they go
        (the customer was told each part it sent was taken)."""
        now = time.monotonic() if now is None else now
        for account_id, long in list(self._long.items()):
            for key, text in long.expire(now):
                head = self.long_heads.pop((account_id, key), None)
                if head is None:
                    continue
                log.info("cmpp server: long message %d of %s incomplete after %.0f s; submitting the parts "
                         "that came", head.first_id, head.account.username, LONG_SMS_WAIT)
                total = key[1]
                report = head.submit.registered_delivery != 0
                self.spawn(self.submit(None, None, head.first_id, self.request(
                    head.account, head.submit, text, client_ref(head.first_id, total, report), head.client_ip)))
            if not len(long):
                del self._long[account_id]

    def tick(self, now: float) -> None:
        self.expire_long(now)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()                 # no new logins
        # Parts still waiting go out as far as they came, while the writer still runs.
        self.expire_long(float("inf"))
        # Every SUBMIT being accepted is answered, then each bound session is told goodbye.
        await self.finish_requests(STOP_WAIT)
        said = [s for s in list(self.sessions) if s.account is not None and s.open]
        for s in said:
            s.terminate()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while any(s in self.sessions for s in said) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await super().stop()

    async def query_counts(self, account_id: int, day: str) -> dict:
        """QUERY_RESP counts of the account's traffic on ``day`` (YYYYMMDD, local time)."""
        return await asyncio.to_thread(day_counts, self.directory.engine, account_id, day)


def day_counts(engine: Engine, account_id: int, day: str) -> dict:
    """MT and MO counts for one account and one local day, as QUERY_RESP has them.

    MT_TLMsg counts SMS (parts), MT_TLUsr distinct numbers; MT_Scs delivered,
    MT_FL failed or expired, MT_WT the rest (not final yet). MO_Scs counts the
    MO handed to the customer, MO_WT those still waiting, MO_FL those given up.
    """
    try:
        start_dt = datetime.strptime(day, "%Y%m%d") if day else datetime.now().replace(
            hour=0, minute=0, second=0, microsecond=0)
    except ValueError:
        return {}
    start = int(start_dt.astimezone().timestamp() * 1000)
    end = int((start_dt + timedelta(days=1)).astimezone().timestamp() * 1000)
    final_failed = ("failed", "expired")
    with engine.connect() as conn:
        mt = conn.execute(
            select(func.coalesce(func.sum(messages.c.parts), 0), func.count(distinct(messages.c.phone)),
                   func.sum(case((messages.c.state == "delivered", 1), else_=0)),
                   func.sum(case((messages.c.state.in_(final_failed), 1), else_=0)),
                   func.count())
            .select_from(messages.join(submissions, submissions.c.id == messages.c.submission_id))
            .where(submissions.c.account_id == account_id, submissions.c.created_at >= start,
                   submissions.c.created_at < end)).one()
        mo_rows = dict(conn.execute(
            select(events.c.push_state, func.count())
            .where(events.c.account_id == account_id, events.c.kind == "mo", events.c.created_at >= start,
                   events.c.created_at < end)
            .group_by(events.c.push_state)).all())
    parts, users, delivered, failed, total = (int(v or 0) for v in mt)
    return {"mt_tlmsg": parts, "mt_tlusr": users, "mt_scs": delivered, "mt_fl": failed,
            "mt_wt": total - delivered - failed, "mo_scs": int(mo_rows.get("done", 0)),
            "mo_wt": int(mo_rows.get("session", 0) + mo_rows.get("pending", 0)),
            "mo_fl": int(mo_rows.get("dead", 0))}
