"""An SMGP 3.0 gateway (SMGW) that plays China Telecom, over real TCP.

Same keywords and API as :class:`hongyan.channels.simulator.CmppSimulator`:
it logs SPs in (Login with the MD5 authenticator, checked against
``accounts``), answers every Submit with a fresh 10-octet MsgID and,
``report_delay`` seconds later, sends a status report (Deliver with
IsReport 1) with a ``fail_rate`` share of failure stats, one fate per long
message. Reports and MO go only to connections logged in to receive
(LoginMode 1 or 2). A report written but not answered with Deliver_Resp is
sent again on another connection of the SP, or when it logs in again, as a
real gateway does.

MO injection (``inject_mo``) splits long text into parts marked either by a
user data header with the TP_udhi TLV (``mo_style = "udh"``, the default) or
by the PkTotal / PkNumber TLVs alone (``mo_style = "pk"``).

Fault switches: ``drop_after(n)`` cuts the connection carrying the n-th
submit from now without answering it; ``flow_control_every(k)`` answers every
k-th submit with Status 1 (system busy), the gateway's "slow down".
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable

from hongyan.channels.sim_base import SimSession, Simulator
from hongyan.domain.segments import concat_udh, encode_chunk, plan, split_udh
from hongyan.protocols.smgp import tlv as smgp_tlv
from hongyan.protocols.smgp.connection import Connection
from hongyan.protocols.smgp.constants import SUBMIT, V30, LoginMode, Status
from hongyan.protocols.smgp.errors import SmgpError
from hongyan.protocols.smgp.events import (
    ActiveTest, ActiveTestResp, Deliver, DeliverResp, Exit, ExitResp, Login, LoginResp, Query,
    QueryResp, StatusReport, Submit, SubmitResp,
)
from hongyan.protocols.smgp.tlv import Tag, Tlv
from hongyan.protocols.smgp.wire import MsgIdGenerator, authenticator_server, verify_login

log = logging.getLogger(__name__)

TICK = 0.02                       # seconds between report flushes
BACKLOG_LIMIT = 100_000           # reports kept per SP while none of its connections receives
FAIL_STATUSES = ("UNDELIV", "EXPIRED", "REJECTD", "MI:0013", "MK:0005")
_RECEIVING = (LoginMode.RECEIVE, LoginMode.TRANSMIT)
_NO_MSG_ID = bytes(10)


def _stamp(t: float) -> str:
    return time.strftime("%y%m%d%H%M", time.localtime(t))


class _Session(SimSession):
    """One SP connection on the gateway side."""

    sim: SmgpSimulator

    def __init__(self, sim: SmgpSimulator) -> None:
        super().__init__(sim)
        self.conn = Connection("server")
        self.client_id = ""
        self.login_mode = -1
        # Reports written but not yet answered, by SequenceID.
        self.awaiting: dict[int, tuple] = {}
        self.mo_awaiting: set[int] = set()
        self.delayed: deque[tuple[float, bytes]] = deque()   # Submit_Resps held by resp_delay
        self.unanswered = 0       # Submits read whose answer has not been written
        self._handlers = {
            Login: self._on_login,
            Submit: self._on_submit,
            DeliverResp: self._on_deliver_resp,
            ActiveTest: self._on_active_test,
            ActiveTestResp: lambda ev, out: None,
            Exit: self._on_exit,
            ExitResp: lambda ev, out: self.close(),
            Query: self._on_query,
        }

    @property
    def receives(self) -> bool:
        return self.open and self.bound and self.login_mode in _RECEIVING

    def connection_lost(self, exc: Exception | None) -> None:
        self.sim._unbind(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        out: list[bytes] = []
        try:
            conn.receive_data(data)
            while self.open:
                try:
                    events = conn.events()
                except SmgpError as e:
                    if e.fatal:
                        raise
                    # One malformed Submit is answered "bad structure"; others are skipped.
                    self.sim.stats["bad_pdus"] += 1
                    if e.request_id == SUBMIT and e.sequence_id is not None and self.bound:
                        out.append(conn.send(SubmitResp(e.sequence_id, _NO_MSG_ID,
                                                        Status.BAD_STRUCTURE)))
                    continue
                if not events:
                    break
                for ev in events:
                    if not self.open:
                        return  # cut by drop_after or closed: nothing more is answered
                    handler = self._handlers.get(type(ev))
                    if handler is not None:
                        handler(ev, out)
        except SmgpError as e:
            log.warning("SMGP simulator: bad bytes from %s (%s); closing", self.client_id or "?", e)
            self.close(abort=True)
            return
        if out:
            self.write(b"".join(out))
        self.unanswered = len(self.delayed)

    def _answer(self, out: list[bytes], data: bytes) -> None:
        if self.sim.resp_delay:
            self.delayed.append((time.monotonic() + self.sim.resp_delay, data))
        else:
            out.append(data)

    def _on_login(self, ev: Login, out: list[bytes]) -> None:
        sim = self.sim
        status = Status.OK
        secret = ""
        if ev.version > V30:
            status = Status.VERSION_TOO_HIGH
        elif ev.login_mode not in tuple(LoginMode):
            status = Status.BAD_STRUCTURE
        elif sim.accounts is not None:
            secret = sim.accounts.get(ev.client_id) or ""
            if ev.client_id not in sim.accounts or not verify_login(ev, secret):
                status = Status.AUTH_FAILED
        answer = self.conn.send(LoginResp(ev.sequence_id, int(status),
                                          authenticator_server(status, ev.authenticator, secret),
                                          V30))
        if status:
            sim.stats["auth_failures"] += 1
            self.write(answer)
            self.close()
            return
        out.append(answer)
        self.client_id = ev.client_id
        self.login_mode = ev.login_mode
        self.bind()
        sim._by_client.setdefault(self.client_id, []).append(self)

    def _on_submit(self, ev: Submit, out: list[bytes]) -> None:
        sim = self.sim
        sim.submitted.append(ev)
        fault = sim.fault()
        if fault == "drop":
            log.info("SMGP simulator: dropping %s at submit %d", self.client_id, sim._count)
            self.write(b"".join(out))
            out.clear()
            self.close(abort=True)
            return
        self.unanswered += 1
        if self.unanswered > sim.stats["max_inflight"]:
            sim.stats["max_inflight"] = self.unanswered
        status = Status.SYSTEM_BUSY if fault == "busy" else 0
        if not status:
            if self.login_mode == LoginMode.RECEIVE:
                status = Status.BAD_REQUEST_ID  # this connection logged in only to receive
            for hook in sim.on_submit:
                answer = hook(ev)
                if answer is not None:
                    status = answer
            if status:
                sim.stats["refused"] += 1
        if status:
            self._answer(out, self.conn.send(SubmitResp(ev.sequence_id, _NO_MSG_ID, status)))
            return
        msg_id = sim._ids.next()
        self._answer(out, self.conn.send(SubmitResp(ev.sequence_id, msg_id, Status.OK)))
        if ev.need_report:
            sim._schedule_report(self, ev, msg_id)

    def _on_deliver_resp(self, ev: DeliverResp, out: list[bytes]) -> None:
        if self.awaiting.pop(ev.sequence_id, None) is not None:
            self.sim.stats["acked"] += 1
        elif ev.sequence_id in self.mo_awaiting:
            self.mo_awaiting.discard(ev.sequence_id)
            self.sim.stats["mo_acked"] += 1
        if ev.status:
            self.sim.stats["resp_errors"] += 1

    def _on_active_test(self, ev: ActiveTest, out: list[bytes]) -> None:
        if self.sim.answer_active_test:
            out.append(self.conn.send(ActiveTestResp(ev.sequence_id)))

    def _on_exit(self, ev: Exit, out: list[bytes]) -> None:
        out.append(self.conn.send(ExitResp(ev.sequence_id)))
        self.write(b"".join(out))
        out.clear()
        self.close()

    def _on_query(self, ev: Query, out: list[bytes]) -> None:
        st = self.sim.stats
        out.append(self.conn.send(QueryResp(
            ev.sequence_id, ev.time, ev.query_type, ev.query_code,
            mt_tlmsg=st["submits"], mt_scs=st["submits"] - st["refused"], mt_fl=st["refused"],
            mo_scs=st["mo_sent"])))


class SmgpSimulator(Simulator):
    """An SMGP 3.0 gateway for tests, the demo and the benchmark.

    ``accounts`` maps ClientID to shared secret; None accepts any account.
    ``fail_statuses`` are the Stat values a failed report carries.
    ``on_submit`` is a list of callables given each Submit; one that returns
    an int makes that the Submit_Resp Status. Setting ``answer_active_test``
    False plays a gateway that hangs while keeping TCP open. ``resp_delay``
    holds every Submit_Resp that long (to fill the SP's window);
    ``stats["max_inflight"]`` is the most Submits one connection had unanswered.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8890,
                 accounts: dict[str, str] | None = None, report_delay: float = 0.5,
                 fail_rate: float = 0.0, fail_statuses: tuple[str, ...] = FAIL_STATUSES,
                 seed: int | None = None, smgw_code: int = 59001, resp_delay: float = 0.0,
                 **_ignored) -> None:
        super().__init__(host, port, accounts, report_delay, fail_rate, seed)
        self.fail_statuses = tuple(fail_statuses)
        self.mo_style = "udh"
        self.answer_active_test = True
        # reports_redelivered: written, unanswered, then sent again after a link loss.
        self.stats.update(reports_redelivered=0, mo_acked=0, resp_errors=0, max_inflight=0)
        self.resp_delay = resp_delay
        self.submitted: list[Submit] = []
        self.on_submit: list[Callable[[Submit], int | None]] = []
        self._ids = MsgIdGenerator(smgw_code)
        self._ticker: asyncio.Task | None = None
        self._by_client: dict[str, list[_Session]] = {}
        self._reports: deque[tuple] = deque()
        self._backlog: dict[str, deque[tuple]] = {}
        self._fates: dict[tuple, list] = {}
        self._mo_ref = 0

    def new_session(self) -> _Session:
        return _Session(self)

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        await super().start()
        self._ticker = asyncio.create_task(self._tick_loop(), name="smgp simulator ticker")
        log.info("SMGP simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        await super().stop()

    # -- MO --------------------------------------------------------------
    def inject_mo(self, phone: str, dest: str, text: str) -> int:
        """Deliver an MO from ``phone`` to ``dest``; returns the parts sent, 0 if no SP receives."""
        session = self._receiver()
        if session is None:
            return 0
        p = plan(text)
        fmt = 8 if p.encoding == "ucs2" else 0
        total = len(p.chunks)
        ref = self._mo_ref = (self._mo_ref + 1) & 0xFF
        conn = session.conn
        recv_time = time.strftime("%Y%m%d%H%M%S")
        out = []
        for i, chunk in enumerate(p.chunks, 1):
            body = encode_chunk(chunk, p.encoding)
            tlvs: tuple[Tlv, ...] = ()
            if total > 1 and self.mo_style == "pk":
                tlvs = (Tlv(Tag.PK_TOTAL, total), Tlv(Tag.PK_NUMBER, i))
            elif total > 1:
                body = concat_udh(ref, total, i) + body
                tlvs = (Tlv(Tag.TP_UDHI, 1),)
            seq = conn.next_sequence()
            session.mo_awaiting.add(seq)
            out.append(conn.send(Deliver(seq, self._ids.next(), src_term_id=phone,
                                         dest_term_id=dest, msg_content=body, msg_format=fmt,
                                         recv_time=recv_time, tlvs=tlvs)))
        session.write(b"".join(out))
        self.stats["mo_sent"] += 1
        return total

    # -- logins ----------------------------------------------------------
    def _unbind(self, session: _Session) -> None:
        if session.awaiting:
            # Unanswered reports go out again, on another connection or after the next login.
            self.stats["reports_redelivered"] += len(session.awaiting)
            now = time.monotonic()
            self._reports.extendleft((now,) + e[1:] for e in reversed(list(session.awaiting.values())))
            session.awaiting.clear()
        sessions = self._by_client.get(session.client_id, [])
        if session in sessions:
            sessions.remove(session)

    def _receiver(self, client_id: str | None = None) -> _Session | None:
        groups = [self._by_client.get(client_id, ())] if client_id is not None else self._by_client.values()
        for sessions in groups:
            for s in sessions:
                if s.receives:
                    return s
        return None

    # -- reports ---------------------------------------------------------
    def _fate(self, ev: Submit) -> str:
        """DELIVRD or a failure Stat, decided once per message for all its parts."""
        if self.fail_rate <= 0:
            return "DELIVRD"
        key = None
        if smgp_tlv.get(ev.tlvs, Tag.TP_UDHI) == 1:
            info, _ = split_udh(ev.msg_content)
            if info is not None and info.total > 1:
                key = (ev.dest_term_ids, ev.src_term_id, info.ref, info.total)
                fate = self._fates.get(key)
                if fate is not None:
                    fate[1] -= 1
                    if fate[1] <= 0:
                        del self._fates[key]
                    return fate[0]
        stat = "DELIVRD"
        if self._rng.random() < self.fail_rate:
            stat = self._rng.choice(self.fail_statuses)
        if key is not None:
            if len(self._fates) > 100_000:
                self._fates.clear()  # parts that never completed; bound the memory
            self._fates[key] = [stat, key[3] - 1]
        return stat

    def _schedule_report(self, session: _Session, ev: Submit, msg_id: bytes) -> None:
        stat = self._fate(ev)
        due = time.monotonic() + self.report_delay
        submitted = time.time()
        for phone in ev.dest_term_ids:
            self._reports.append((due, session.client_id, msg_id, stat, phone, ev.src_term_id,
                                  submitted))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self._tick()
            except Exception:
                log.exception("SMGP simulator tick failed")

    def _tick(self) -> None:
        now = time.monotonic()
        for s in list(self._sessions):
            if s.delayed:
                d, ready = s.delayed, []
                while d and d[0][0] <= now:
                    ready.append(d.popleft()[1])
                s.unanswered = len(d)
                if ready:
                    s.write(b"".join(ready))
        due = []
        q = self._reports
        while q and q[0][0] <= now:
            due.append(q.popleft())
        for client, backlog in list(self._backlog.items()):
            if self._receiver(client) is not None:
                due.extend(backlog)
                del self._backlog[client]
        if not due:
            return
        batches: dict[_Session, list[bytes]] = {}
        done_date = _stamp(time.time())
        for entry in due:
            _, client, msg_id, stat, phone, src, submitted = entry
            session = self._receiver(client)
            if session is None:
                self._backlog.setdefault(client, deque(maxlen=BACKLOG_LIMIT)).append(entry)
                continue
            conn = session.conn
            seq = conn.next_sequence()
            report = StatusReport(msg_id=msg_id, stat=stat, submit_date=_stamp(submitted),
                                  done_date=done_date, err="000" if stat == "DELIVRD" else "001")
            try:
                data = conn.send(Deliver(seq, self._ids.next(), src_term_id=phone, dest_term_id=src,
                                         recv_time=time.strftime("%Y%m%d%H%M%S"), report=report))
            except SmgpError as e:
                log.warning("SMGP simulator: cannot send a report to %s: %s", client, e)
                continue
            if len(session.awaiting) < BACKLOG_LIMIT:
                session.awaiting[seq] = entry
            batches.setdefault(session, []).append(data)
            self.stats["reports_sent"] += 1
        for s, chunks in batches.items():
            s.write(b"".join(chunks))
