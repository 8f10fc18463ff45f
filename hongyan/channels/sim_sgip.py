"""An SGIP 1.2 SMG that plays China Unicom's gateway, over real TCP, for tests and demos.

Same keywords and API as the other simulators (``hongyan.channels.SIMULATORS``):
accepts the SP's Bind (Login Type 1) and Submits, answers each Submit_Resp
echoing its Sequence Number, and ``report_delay`` seconds later connects back
to the SP's listener (``sp_host``:``sp_port``, logging in with Login Type 2
as ``sp_login`` / ``sp_password``) to send a Report per user number, a
``fail_rate`` share of them failed with an error code from ``FAIL_CODES``.
``inject_mo`` delivers MO the same way, long ones as parts with a
concatenation UDH and TP_udhi 1.

Like a real SMG, it resends every Deliver and Report that the SP did not
answer before the connection back went away. ``flow_control_every`` answers
Submit_Resp Result 11 (node busy); ``drop_after`` cuts a submit link
mid-window.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque

from hongyan.channels.sim_base import SimSession, Simulator
from hongyan.protocols.sgip import (
    Bind, BindResp, Connection, Deliver, DeliverResp, LoginType, Report, ReportResp, ReportState,
    ReportType, Result, SequenceGenerator, SequenceNumber, SgipError, Submit, SubmitResp, Unbind,
    UnbindResp, UserRptResp,
)

log = logging.getLogger(__name__)

FAIL_CODES = (Result.USER_UNREACHABLE, Result.HANDSET_MEMORY_FULL, Result.UNKNOWN_USER)
SMG_NODE_ID = 2000001001        # node id the simulated SMG stamps on its own requests


class _Session(SimSession):
    """A submit link the SP opened (Bind, Login Type 1)."""

    ERROR = SgipError

    def __init__(self, sim: SgipSimulator) -> None:
        super().__init__(sim)
        self.conn = Connection("smg", node_id=SMG_NODE_ID)

    def handle(self, ev, out: list[bytes]) -> None:
        sim = self.sim
        if isinstance(ev, Bind):
            if ev.login_type != LoginType.SP_TO_SMG or not sim.password_ok(ev.login_name, ev.login_password):
                sim.stats["auth_failures"] += 1
                self.write(self.conn.send(BindResp(ev.sequence_number, Result.BAD_LOGIN)))
                self.close()
                return
            out.append(self.conn.send(BindResp(ev.sequence_number, Result.OK)))
            self.bind(ev.login_name)
        elif isinstance(ev, Submit):
            sim.submitted.append(ev)
            fault = self.take_submit(out)
            if fault == "drop":
                return
            if fault == "busy":
                out.append(self.conn.send(SubmitResp(ev.sequence_number, Result.NODE_BUSY)))
                return
            out.append(self.conn.send(SubmitResp(ev.sequence_number, Result.OK)))
            sim._submitted_ok(ev)
        elif isinstance(ev, Unbind):
            self.write(b"".join(out) + self.conn.send(UnbindResp(ev.sequence_number)))
            out.clear()
            self.close()
        elif isinstance(ev, UnbindResp):
            self.close()


class _Back(asyncio.Protocol):
    """The SMG's connection to the SP's listener (Bind, Login Type 2)."""

    def __init__(self, sim: SgipSimulator) -> None:
        self.sim = sim
        self.conn = Connection("smg", node_id=SMG_NODE_ID)
        self.transport: asyncio.Transport | None = None
        self.bound = False
        self.pending: dict[SequenceNumber, object] = {}   # sent, not yet answered

    def connection_made(self, transport) -> None:
        self.transport = transport
        sim = self.sim
        transport.write(self.conn.send(Bind(next(sim._sequences), LoginType.SMG_TO_SP,
                                            sim.sp_login, sim.sp_password)))

    def connection_lost(self, exc) -> None:
        self.transport = None
        self.sim._back_lost(self)
        self.bound = False

    def send_queued(self) -> None:
        if not self.bound or self.transport is None:
            return
        sim = self.sim
        out = []
        while sim._outbox:
            ev = sim._outbox.popleft()
            self.pending[ev.sequence_number] = ev
            out.append(self.conn.send(ev))
        if out:
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        sim = self.sim
        try:
            self.conn.receive_data(data)
            for ev in self.conn.events():
                if isinstance(ev, BindResp):
                    if ev.result != 0:
                        sim.stats["back_refused"] += 1
                        self.transport.close()
                        return
                    self.bound = True
                    sim._back_failures = 0
                    self.send_queued()
                elif isinstance(ev, (DeliverResp, ReportResp, UserRptResp)):
                    if self.pending.pop(ev.sequence_number, None) is not None and ev.result == 0:
                        sim.stats["acked"] += 1
                elif isinstance(ev, Unbind):
                    self.transport.write(self.conn.send(UnbindResp(ev.sequence_number)))
                    self.transport.close()
                    return
                elif isinstance(ev, UnbindResp):
                    self.transport.close()
                    return
        except SgipError:
            sim.stats["bad_pdus"] += 1
            if self.transport is not None:
                self.transport.abort()


class SgipSimulator(Simulator):
    """An SGIP 1.2 SMG. ``accounts`` maps the SP's login name to its password (None: any)."""

    NAME = "SGIP"
    STATS = (*Simulator.STATS, "back_connects", "back_refused", "redelivered")

    def __init__(self, host: str = "127.0.0.1", port: int = 8801,
                 accounts: dict[str, str | None] | None = None, report_delay: float = 0.5,
                 fail_rate: float = 0.0, seed: int | None = None, *, sp_host: str = "127.0.0.1",
                 sp_port: int = 8802, sp_login: str = "", sp_password: str = "",
                 **_ignored) -> None:
        super().__init__(host, port, accounts, report_delay, fail_rate, seed)
        self.sp_host = sp_host
        self.sp_port = sp_port
        self.sp_login = sp_login
        self.sp_password = sp_password
        self.submitted: list[Submit] = []
        self._sequences = SequenceGenerator(SMG_NODE_ID)
        self._outbox: deque = deque()
        self._back: _Back | None = None
        self._connecting: asyncio.Task | None = None
        self._retry_delay = 0.2
        self._back_failures = 0     # connections back that ended without a bind, in a row
        self._running = False

    def new_session(self) -> _Session:
        return _Session(self)

    def deliver_to(self, host: str, port: int, login: str = "", password: str = "") -> None:
        """Where the SP listens for the SMG, and the login it expects there."""
        self.sp_host, self.sp_port, self.sp_login, self.sp_password = host, port, login, password

    async def start(self) -> None:
        await super().start()
        self._running = True

    async def stop(self) -> None:
        self._running = False
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
            self._connecting = None
        if self._back is not None and self._back.transport is not None:
            self._back.transport.abort()
        self._back = None
        await super().stop()

    @property
    def queued(self) -> int:
        """Delivers and Reports not yet answered by the SP (waiting or sent)."""
        return len(self._outbox) + (len(self._back.pending) if self._back is not None else 0)

    # -- reports -----------------------------------------------------------
    def _submitted_ok(self, ev: Submit) -> None:
        # ReportFlag 0: only failures are reported; 2: none; 1 and 3: always.
        if ev.report_flag == 2:
            return
        for number in ev.user_numbers:
            code = self._failure(FAIL_CODES)
            if ev.report_flag == 0 and code is None:
                continue
            state = ReportState.DELIVERED if code is None else ReportState.FAILED
            self._later(self.report_delay, self._report, ev.sequence_number, number, state, code or 0)

    def _report(self, submit_seq: SequenceNumber, number: str, state: int, code: int) -> None:
        self._post(Report(next(self._sequences), submit_seq, ReportType.SUBMIT, number, state, code))
        self.stats["reports_sent"] += 1

    def inject_mo(self, phone: str, dest: str, text: str) -> int:
        """Queue an MO from ``phone`` to ``dest``; returns the parts queued."""
        parts = self._mo_parts(text)
        user = phone if phone.startswith("86") and len(phone) == 13 else "86" + phone
        for part in parts:
            self._post(Deliver(next(self._sequences), user, dest, part.with_udh(),
                               tp_udhi=1 if part.total > 1 else 0, message_coding=part.coding))
        self.stats["mo_sent"] += 1
        return len(parts)

    # -- the connection back to the SP ---------------------------------------
    def _post(self, ev) -> None:
        self._outbox.append(ev)
        back = self._back
        if back is not None and back.transport is not None:
            back.send_queued()
        elif self._running and self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect(0.0))

    async def _connect(self, wait: float) -> None:
        loop = asyncio.get_running_loop()
        delay = max(wait, self._retry_delay)
        if wait:
            await asyncio.sleep(wait)
        while self._running and self._outbox:
            try:
                back = _Back(self)
                await loop.create_connection(lambda: back, self.sp_host, self.sp_port)
            except OSError as e:
                log.info("SGIP simulator: SP listener %s:%d not reachable: %s", self.sp_host, self.sp_port, e)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                continue
            self._back = back
            self.stats["back_connects"] += 1
            break
        self._connecting = None

    def _back_lost(self, back: _Back) -> None:
        if self._back is back:
            self._back = None
        if back.pending:
            # Unanswered requests go out again on the next connection, first.
            self.stats["redelivered"] += len(back.pending)
            self._outbox.extendleft(reversed(list(back.pending.values())))
            back.pending.clear()
        if not back.bound:
            self._back_failures += 1
        if self._running and self._outbox and self._connecting is None:
            wait = min(5.0, self._retry_delay * 2 ** min(self._back_failures, 5))
            self._connecting = asyncio.get_running_loop().create_task(self._connect(wait))

    def close_back(self) -> None:
        """Cut the connection back to the SP (as a network fault would)."""
        if self._back is not None and self._back.transport is not None:
            self._back.transport.abort()
