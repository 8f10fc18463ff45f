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

import time

from hongyan.channels.sim_base import ReportStamps, SimSession, Simulator
from hongyan.domain.segments import split_udh
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

FAIL_STATUSES = ("UNDELIV", "EXPIRED", "REJECTD", "MI:0013", "MK:0005")
_RECEIVING = (LoginMode.RECEIVE, LoginMode.TRANSMIT)
_NO_MSG_ID = bytes(10)


class _Session(SimSession):
    """One SP connection on the gateway side."""

    sim: SmgpSimulator
    ERROR = SmgpError

    def __init__(self, sim: SmgpSimulator) -> None:
        super().__init__(sim)
        self.conn = Connection("server")
        self.login_mode = -1
        self.mo_awaiting: set[int] = set()
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
    def client_id(self) -> str:
        return self.account

    @property
    def receives(self) -> bool:
        return self.open and self.bound and self.login_mode in _RECEIVING

    def bad_pdu(self, e: SmgpError, out: list[bytes]) -> None:
        # One malformed Submit is answered "bad structure"; others are skipped.
        if e.request_id == SUBMIT and e.sequence_id is not None and self.bound:
            out.append(self.conn.send(SubmitResp(e.sequence_id, _NO_MSG_ID, Status.BAD_STRUCTURE)))

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
        self.login_mode = ev.login_mode
        self.bind(ev.client_id)

    def _on_submit(self, ev: Submit, out: list[bytes]) -> None:
        sim = self.sim
        sim.submitted.append(ev)
        fault = self.take_submit(out)
        if fault == "drop":
            return
        self.count_unanswered()
        status = Status.SYSTEM_BUSY if fault == "busy" else 0
        if not status:
            if self.login_mode == LoginMode.RECEIVE:
                status = Status.BAD_REQUEST_ID  # this connection logged in only to receive
            answer = sim._submit_hooks(ev)
            if answer is not None:
                status = answer
            if status:
                sim.stats["refused"] += 1
        if status:
            self.answer(out, self.conn.send(SubmitResp(ev.sequence_id, _NO_MSG_ID, status)))
            return
        msg_id = sim._ids.next()
        self.answer(out, self.conn.send(SubmitResp(ev.sequence_id, msg_id, Status.OK)))
        if ev.need_report:
            sim._schedule_reports(self, msg_id, sim._fate(ev), ev.dest_term_ids, ev.src_term_id)

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

    NAME = "SMGP"
    ticking = True

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
        self._ids = MsgIdGenerator(smgw_code)

    def new_session(self) -> _Session:
        return _Session(self)

    # -- MO --------------------------------------------------------------
    def inject_mo(self, phone: str, dest: str, text: str) -> int:
        """Deliver an MO from ``phone`` to ``dest``; returns the parts sent, 0 if no SP receives."""
        session = self._live()
        if session is None:
            return 0
        conn = session.conn
        recv_time = time.strftime("%Y%m%d%H%M%S")
        out = []
        for part in self._mo_parts(text):
            body, tlvs = part.body, ()
            if part.total > 1 and self.mo_style == "pk":
                tlvs = (Tlv(Tag.PK_TOTAL, part.total), Tlv(Tag.PK_NUMBER, part.number))
            elif part.total > 1:
                body, tlvs = part.with_udh(), (Tlv(Tag.TP_UDHI, 1),)
            seq = conn.next_sequence()
            session.mo_awaiting.add(seq)
            out.append(conn.send(Deliver(seq, self._ids.next(), src_term_id=phone,
                                         dest_term_id=dest, msg_content=body, msg_format=part.coding,
                                         recv_time=recv_time, tlvs=tlvs)))
        session.write(b"".join(out))
        self.stats["mo_sent"] += 1
        return len(out)

    # -- reports ---------------------------------------------------------
    def _long_message(self, ev: Submit) -> tuple | None:
        if smgp_tlv.get(ev.tlvs, Tag.TP_UDHI) == 1:
            info, _ = split_udh(ev.msg_content)
            if info is not None and info.total > 1:
                return (ev.dest_term_ids, ev.src_term_id, info.ref, info.total)
        return None

    def _report_pdu(self, session: _Session, seq: int, entry: tuple, stamps: ReportStamps) -> bytes:
        _, _, _, msg_id, stat, phone, src, submitted = entry
        report = StatusReport(msg_id=msg_id, stat=stat, submit_date=stamps.submitted(submitted),
                              done_date=stamps.done, err="000" if stat == "DELIVRD" else "001")
        return session.conn.send(Deliver(seq, self._ids.next(), src_term_id=phone, dest_term_id=src,
                                         recv_time=stamps.now_long, report=report))
