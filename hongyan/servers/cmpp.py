"""The CMPP 2.0/3.0 front door: customers log in with their account and submit over a session.

A customer is the SP and Hongyan the gateway. CONNECT carries the account's
username as Source_Addr and proves the API secret with the MD5
authenticator; the session speaks the version the CONNECT asked for (2.0 or
3.0). Every SUBMIT goes through the same accept rules as HTTP (dialect
``cmpp``, so its reports come back on a session) and its SUBMIT_RESP is
written only after the commit, with the k1680 document's result codes. The
Msg_Id in the SUBMIT_RESP is minted here in the CMPP layout, stored as the
submission's ``client_ref``, and carried back by the status reports.

A long message sent as TP_udhi parts is one submission billed by its parts:
each earlier part is answered at once with the message's Msg_Id, the part
that completes it is answered after the commit with the real result. Parts
that never complete are submitted as far as they go (the customer was told
they were taken), after ``LONG_SMS_WAIT`` seconds or when the session ends.

Reports and MO leave as DELIVER through the shared session outbox
(``session.Session`` does the window, the acks and the back-pressure).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Hashable

from sqlalchemy import Engine, case, distinct, func, select

from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Account, Directory
from hongyan.domain.outcomes import Code
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
from hongyan.store.tables import events, messages, submissions

from .outbox import Outbox
from .session import IDLE_TIMEOUT, MAX_SESSIONS_PER_ACCOUNT, WINDOW, Session, SessionServer

log = logging.getLogger(__name__)

LONG_SMS_WAIT = 60.0             # seconds the parts of a long message wait for the rest
MAX_LONG_OPEN = 64               # incomplete long messages kept per session
MAX_DESTINATIONS = 100           # DestUsr_tl, CMPP 2.0 section 7.4.3.1

# CONNECT_RESP Status (k1680 section 3.2; CMPP: 5 and above are "other errors").
CONNECT_OK = 0
CONNECT_BAD_STRUCTURE = 1
CONNECT_BAD_SOURCE = 2           # no account with that username
CONNECT_AUTH = 3                 # wrong secret, or an address the account may not log in from
CONNECT_VERSION = 4              # neither 2.0 nor 3.0
CONNECT_SUSPENDED = 5            # the account (or its org) is locked, disabled or expired
CONNECT_TOO_MANY = 6             # the account already has its maximum of sessions

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

_U64 = (1 << 64) - 1


def result_for(code: Code) -> int:
    return RESULTS.get(code, RESULT_OTHER)


def cmpp_time(iso_text: str | None) -> str:
    """An ISO time from a report as the report's YYMMDDHHMM, in the server's local time."""
    if iso_text:
        try:
            return datetime.fromisoformat(iso_text).astimezone().strftime("%y%m%d%H%M")
        except ValueError:
            pass
    return time.strftime("%y%m%d%H%M")


def report_msg_id(item: dict) -> int:
    """The Msg_Id a report names: the one the SUBMIT_RESP gave (kept as client_ref),
    else, for messages that came in another way, the submission id."""
    ref = item.get("client_ref")
    if isinstance(ref, str) and ref.isdigit() and int(ref) <= _U64:
        return int(ref)
    return int(item.get("submission_id") or 0) & _U64


class _Long:
    """The first part of a long message: what its submission is made from."""

    __slots__ = ("msg_id", "submit")

    def __init__(self, msg_id: int, submit: Submit) -> None:
        self.msg_id = msg_id
        self.submit = submit


class CmppSession(Session):
    def __init__(self, server: CmppServer) -> None:
        super().__init__(server)
        self.server: CmppServer = server
        self.conn = Connection("server", version=None)
        self.long = Reassembler(timeout=LONG_SMS_WAIT, max_open=MAX_LONG_OPEN)
        self._long_heads: dict[Hashable, _Long] = {}
        self._mo_ref = 0

    # -- reading ----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.seen()
        conn = self.conn
        conn.receive_data(data)
        while self.open:
            try:
                events = conn.events()
            except CmppError as e:
                if not self._on_bad_pdu(e):
                    return
                continue
            if not events:
                return
            for ev in events:
                if not self.open:
                    return
                self._handle(ev)

    def _on_bad_pdu(self, e: CmppError) -> bool:
        """Answer a PDU we could not take; True if the session reads on."""
        who = self.who()
        if e.fatal:
            # The byte stream cannot be framed any more (a lying or oversize Total_Length).
            log.info("cmpp server: closing %s: %s", who, e)
            self.close()
            return False
        if self.account is None:
            if e.command_id == CMPP_CONNECT and e.sequence_id is not None:
                # A CONNECT we cannot read: "bad structure", and the session ends.
                self.write(encode(ConnectResp(e.sequence_id, CONNECT_BAD_STRUCTURE, bytes(16), V20), V20))
            log.info("cmpp server: closing %s before login: %s", who, e)
            self.close_after_write()
            return False
        if (e.command_id == CMPP_SUBMIT and e.sequence_id is not None
                and not isinstance(e, CmppProtocolError)):
            # One malformed SUBMIT is refused; the session goes on.
            log.info("cmpp server: %s sent a malformed SUBMIT: %s", who, e)
            self.write(self.conn.send(SubmitResp(e.sequence_id, 0, RESULT_BAD_STRUCTURE)))
            return True
        # An unknown Command_Id, a PDU out of place, or a malformed PDU with
        # no answer of its own: the session is out of step, so it is ended.
        known = e.command_id in CommandId._value2member_map_ if e.command_id is not None else False
        log.info("cmpp server: terminating %s (%s Command_Id %s): %s", who,
                 "known" if known else "unknown",
                 f"0x{e.command_id:08X}" if e.command_id is not None else "?", e)
        self.terminate()
        return False

    def terminate(self) -> None:
        try:
            self.write(self.conn.send(Terminate(self.conn.next_sequence())))
        except CmppError:
            pass
        self.close_after_write()

    def idle_close(self) -> None:
        self.terminate()

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
            # Messages accepted here are queued at once; there is nothing to withdraw.
            self.write(self.conn.send(CancelResp(ev.sequence_id, 0)))
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
            acc = server.directory.by_username(ev.source_addr) if ev.source_addr else None
            if acc is None:
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
        ext = acc.extension or ""
        src = ev.src_id or ""
        if src and not src.startswith(ext):
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
        if info is not None and info.total > 1:
            # The key holds the total, so the reassembler returns text only for a
            # message whose every part is in (repeats are ignored).
            key = (info.ref, info.total, ev.dest_terminal_ids, src)
            head = self._long_heads.get(key)
            if head is None:
                head = self._long_heads[key] = _Long(self.server.msg_ids.next(), ev)
            text = self.long.add(key, info.total, info.seq, decode_payload(raw, ev.msg_fmt, part=True),
                                 time.monotonic())
            if text is None:
                # Taken and held until the rest arrives; the part that completes
                # the message carries the result of its commit.
                self.write(self.conn.send(SubmitResp(ev.sequence_id, head.msg_id, 0)))
                self._flush_expired()
                return None
            del self._long_heads[key]
            self._flush_expired()
            return self._send(ev.sequence_id, head.msg_id, self._request(head.submit, text, head.msg_id))
        text = decode_payload(raw, ev.msg_fmt)
        msg_id = self.server.msg_ids.next()
        self._send(ev.sequence_id, msg_id, self._request(ev, text, msg_id))

    def _request(self, ev: Submit, text: str, msg_id: int) -> SendRequest:
        acc = self.account
        ext = acc.extension or ""
        src = ev.src_id or ""
        return SendRequest(account=acc, to=list(ev.dest_terminal_ids), content=text,
                           extno=src[len(ext):] if src else "", client_ref=str(msg_id), dialect="cmpp",
                           client_ip=self.peer_ip(), max_recipients=MAX_DESTINATIONS)

    def _send(self, seq: int | None, msg_id: int, req: SendRequest) -> None:
        self.spawn(self._submit(seq, msg_id, req))

    async def _submit(self, seq: int | None, msg_id: int, req: SendRequest) -> None:
        try:
            outcome = await self.server.accept.send(req)
            code = outcome.code
        except Exception:  # noqa: BLE001 - the customer gets an error, the session lives
            log.exception("cmpp server: accept failed for %s", self.who())
            code = Code.SYSTEM_ERROR
        result = result_for(code)
        if seq is None:
            if result:
                log.warning("cmpp server: the incomplete long message %d of %s was refused: %s",
                            msg_id, req.account.username, code.value)
            return
        if self.open:
            self.write(self.conn.send(SubmitResp(sequence_id=seq, msg_id=msg_id if result == 0 else 0,
                                                 result=result)))

    def tick(self, now: float) -> None:
        self._flush_expired(now)

    def _flush_expired(self, now: float | None = None) -> None:
        """Submit the long messages that waited too long for their parts, as far as they go."""
        for key, text in self.long.expire(time.monotonic() if now is None else now):
            head = self._long_heads.pop(key, None)
            if head is not None:
                log.info("cmpp server: long message %d of %s incomplete; submitting the parts that came",
                         head.msg_id, self.who())
                self.server.spawn(self._submit(None, head.msg_id, self._request(head.submit, text, head.msg_id)))

    def connection_lost(self, exc) -> None:
        if self.account is not None and len(self.long):
            # The customer was told its parts were taken: they are sent as far as they go.
            self._flush_expired(float("inf"))
        super().connection_lost(exc)

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
            seq = conn.next_sequence()
            msg_id = report_msg_id(item)
            phone = str(item.get("to") or "")
            status = item.get("carrier_status") or STAT_FOR_STATE.get(item.get("status") or "", "UNKNOWN")
            report = StatusReport(msg_id=msg_id, stat=str(status)[:7],
                                  submit_time=cmpp_time(item.get("submitted_at")),
                                  done_time=cmpp_time(item.get("done_at")), dest_terminal_id=phone,
                                  smsc_sequence=int(item.get("message_id") or 0) & 0xFFFFFFFF)
            return [seq], conn.send(Deliver(sequence_id=seq, msg_id=msg_id, dest_id=self.account.extension or "",
                                            src_terminal_id=phone, registered_delivery=1, report=report))
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
                 window: int = WINDOW, gateway_code: int = 0) -> None:
        super().__init__(outbox, host=host, port=port, max_sessions=max_sessions,
                         idle_timeout=idle_timeout, window=window)
        self.accept = accept
        self.directory = directory
        # Msg_Ids carry the node's code, so two API processes never mint the same one.
        self.msg_ids = MsgIdGenerator(gateway_code & ((1 << 22) - 1))

    def make_session(self) -> CmppSession:
        return CmppSession(self)

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
