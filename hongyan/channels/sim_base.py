"""What the carrier simulators share: the listening socket, sessions, fault switches, reports.

A simulator subclasses :class:`Simulator` and says in ``new_session()`` which
:class:`SimSession` serves an accepted connection. The session names its
codec's error class (``ERROR``) and answers the events its codec yields in
``handle()``; the base reads the bytes, skips malformed PDUs and closes the
link on a broken stream.

Every submit goes through ``fault()``: "drop" (cut the connection now, the
submit unanswered: ``SimSession.cut``), "busy" (answer with the protocol's
flow control code) or None (answer normally). Tests and the demo switch
faults on with ``drop_after(n)`` and ``flow_control_every(k)``.

Gateways that deliver reports on the submitting connection's side (CMPP,
SMGP) set ``ticking``: reports are queued with ``_schedule_reports`` and
leave on a timer tick, one write per connection per tick, together with the
answers ``resp_delay`` held back. A report written but not answered is kept
in the session's ``awaiting`` and queued again when the link drops, as a real
gateway does; reports for an account with no receiving link wait in a
bounded backlog until one binds. The subclass only encodes one report PDU
(``_report_pdu``).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from hongyan.domain.segments import concat_udh, encode_chunk, plan
from hongyan.protocols.framing import pump

log = logging.getLogger(__name__)

TICK = 0.02                       # seconds between report / delayed-answer flushes
BACKLOG_LIMIT = 100_000           # reports kept per account while none of its links receives
FATES_LIMIT = 100_000             # long messages whose fate is remembered for their next parts


def stamp(t: float) -> str:
    """YYMMDDHHMM in local time, the stamp reports carry."""
    return time.strftime("%y%m%d%H%M", time.localtime(t))


def listening_port(server: asyncio.AbstractServer | None, configured: int) -> int:
    """The port ``server`` listens on (the one the OS chose for port 0), else ``configured``."""
    if server is not None and server.sockets:
        return server.sockets[0].getsockname()[1]
    return configured


class MoPart(NamedTuple):
    """One part of an injected MO: its number (from 1), the total, the reference, the coding
    (0 GSM 7-bit / 8 UCS2) and its encoded text, without any concatenation header."""

    number: int
    total: int
    ref: int
    coding: int
    body: bytes

    def with_udh(self) -> bytes:
        """The body behind a concatenation UDH when the MO has several parts."""
        return concat_udh(self.ref, self.total, self.number) + self.body if self.total > 1 else self.body


class ReportStamps:
    """Time stamps for the reports of one tick: computed once, not once per report."""

    def __init__(self) -> None:
        self.done = stamp(time.time())
        self._minutes: dict[int, str] = {}
        self._now_long: str | None = None

    def submitted(self, t: float) -> str:
        minute = int(t // 60)
        s = self._minutes.get(minute)
        if s is None:
            s = self._minutes[minute] = stamp(t)
        return s

    @property
    def now_long(self) -> str:
        """YYYYMMDDHHMMSS, local time."""
        if self._now_long is None:
            self._now_long = time.strftime("%Y%m%d%H%M%S")
        return self._now_long


class SimSession(asyncio.Protocol):
    """One accepted connection of a simulator."""

    ERROR: type[Exception] = Exception   # the codec's error; ``fatal`` says the stream is lost

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.conn: Any = None
        self.transport: asyncio.Transport | None = None
        self.account = ""         # the login it bound with
        self.bound = False
        self.open = False
        self.unanswered = 0       # submits read whose answer has not been written
        self.max_inflight = 0
        self.delayed: deque[tuple[float, bytes]] = deque()   # answers held by resp_delay
        # Reports written but not yet answered, by sequence id: sent again if the link drops.
        self.awaiting: dict[int, tuple] = {}
        self._handlers: dict[type, Callable[[Any, list[bytes]], None]] = {}

    @property
    def receives(self) -> bool:
        """Whether reports and MO may go out on this connection."""
        return self.open and self.bound

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.open = True
        self.sim.stats["accepted"] += 1
        self.sim._sessions.add(self)

    def connection_lost(self, exc) -> None:
        self.open = False
        self.transport = None
        self.sim._lost(self)

    def bind(self, account: str = "") -> None:
        self.account = account
        self.bound = True
        self.sim.stats["connections"] += 1
        self.sim._by_account.setdefault(account, []).append(self)

    def close(self, abort: bool = False) -> None:
        if self.transport is not None:
            self.transport.abort() if abort else self.transport.close()
        self.open = False

    def take_submit(self, out: list[bytes]) -> str | None:
        """Count a submit against the fault switches (``Simulator.fault``); on "drop" the
        link is cut here, with ``out`` written first."""
        sim = self.sim
        fault = sim.fault()
        if fault == "drop":
            log.info("%s simulator: dropping %s at submit %d", sim.NAME, self.account or "?", sim._count)
            self.cut(out)
        return fault

    def cut(self, out: list[bytes]) -> None:
        """Drop the link as a failing gateway does: what is answered so far leaves, then nothing."""
        if out:
            self.write(b"".join(out))
            out.clear()
        self.close(abort=True)

    def write(self, data: bytes) -> None:
        if self.transport is not None and self.open:
            self.transport.write(data)

    def answer(self, out: list[bytes], data: bytes) -> None:
        """A submit's answer: now, or after ``resp_delay`` (to fill the client's window)."""
        if self.sim.resp_delay:
            self.delayed.append((time.monotonic() + self.sim.resp_delay, data))
        else:
            out.append(data)

    def count_unanswered(self) -> None:
        self.unanswered += 1
        if self.unanswered > self.max_inflight:
            self.max_inflight = self.unanswered
            st = self.sim.stats
            if self.max_inflight > st.get("max_inflight", 0):
                st["max_inflight"] = self.max_inflight

    # -- reading -----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        out: list[bytes] = []
        try:
            # Once a handler has closed the session (drop_after, a logout),
            # write() drops whatever else would be answered.
            pump(self.conn, data, self.ERROR, is_open=lambda: self.open,
                 handle=lambda ev: self.handle(ev, out), on_bad=lambda e: self._skipped(e, out))
        except self.ERROR as e:
            log.warning("%s simulator: bad bytes from %s (%s); closing", self.sim.NAME,
                        self.account or "?", e)
            self.close(abort=True)
            return
        if out:
            self.write(b"".join(out))
        # Immediate answers were written above; only delayed ones stay open.
        self.unanswered = len(self.delayed)

    def handle(self, ev, out: list[bytes]) -> None:
        """Answer one event into ``out``; by default through ``_handlers`` keyed by event type."""
        handler = self._handlers.get(type(ev))
        if handler is not None:
            handler(ev, out)

    def _skipped(self, e: Exception, out: list[bytes]) -> None:
        self.sim.stats["bad_pdus"] += 1
        self.bad_pdu(e, out)

    def bad_pdu(self, e: Exception, out: list[bytes]) -> None:
        """One malformed PDU the stream survives; by default it is skipped."""


class Simulator:
    """A carrier over real TCP. ``accounts`` maps login to password (None: any)."""

    NAME = "carrier"
    STATS = ("connections", "accepted", "auth_failures", "submits", "refused", "reports_sent",
             "mo_sent", "acked", "bad_pdus")
    ticking = False               # reports and delayed answers leave on the tick
    resp_delay = 0.0

    def __init__(self, host: str, port: int, accounts: dict[str, str | None] | None,
                 report_delay: float, fail_rate: float, seed: int | None) -> None:
        self.host = host
        self._port = port
        self.accounts = accounts
        self.report_delay = report_delay
        self.fail_rate = fail_rate
        self.fail_statuses: tuple = ()
        # connections: bound now; accepted: TCP connections ever accepted.
        self.stats = dict.fromkeys(self.STATS, 0)
        # Callables given each submit; one that returns an int makes that the answer's
        # status (in the simulators that consult them through _submit_hooks).
        self.on_submit: list[Callable[[Any], int | None]] = []
        self._rng = random.Random(seed)
        self._server: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._sessions: set[SimSession] = set()
        self._by_account: dict[str, list[SimSession]] = {}
        self._reports: deque[tuple] = deque()
        self._backlog: dict[str, deque[tuple]] = {}
        self._fates: dict[tuple, list] = {}
        self._count = 0
        self._drop_at = 0
        self._fc_every = 0
        self._mo_ref = 0

    def new_session(self) -> SimSession:
        raise NotImplementedError

    def password_ok(self, login: str, password: str) -> bool:
        return self.accounts is None or self.accounts.get(login, object()) in (password, None)

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.new_session, self.host, self._port)
        if self.ticking:
            self._ticker = asyncio.create_task(self._tick_loop(), name=f"{self.NAME} simulator ticker")
        log.info("%s simulator listening on %s:%d", self.NAME, self.host, self.port)

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._server is not None:
            self._server.close()
        for s in list(self._sessions):
            s.close(abort=True)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        return listening_port(self._server, self._port)

    def _later(self, delay: float, fn, *args) -> None:
        """Run ``fn(*args)`` after ``delay`` seconds unless the simulator stops first."""
        handle: asyncio.TimerHandle | None = None

        def run() -> None:
            self._timers.discard(handle)
            fn(*args)
        handle = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(handle)

    # -- fault switches ----------------------------------------------------
    def drop_after(self, n: int) -> None:
        """Cut the connection carrying the n-th submit from now, unanswered. Once."""
        self._drop_at = self._count + n if n > 0 else 0

    def flow_control_every(self, k: int) -> None:
        """Answer every k-th submit with the protocol's flow control code; 0 turns it off."""
        self._fc_every = max(0, k)

    def fault(self) -> str | None:
        """Count one submit and say what to do with it: "drop", "busy" or None."""
        self._count += 1
        self.stats["submits"] += 1
        if self._drop_at and self._count >= self._drop_at:
            self._drop_at = 0
            return "drop"
        if self._fc_every and self._count % self._fc_every == 0:
            self.stats["refused"] += 1
            return "busy"
        return None

    def _submit_hooks(self, ev) -> int | None:
        """The status the last ``on_submit`` hook with an opinion gave, or None."""
        result = None
        for hook in self.on_submit:
            r = hook(ev)
            if r is not None:
                result = r
        return result

    # -- sessions ----------------------------------------------------------
    def _lost(self, session: SimSession) -> None:
        self._sessions.discard(session)
        if session.awaiting:
            # Unanswered reports go out again, on another link of the account or when it binds.
            self.stats["reports_redelivered"] = self.stats.get("reports_redelivered", 0) + len(session.awaiting)
            now = time.monotonic()
            self._reports.extendleft((now,) + e[1:] for e in reversed(list(session.awaiting.values())))
            session.awaiting.clear()
        if session.bound:
            session.bound = False
            self.stats["connections"] -= 1
            sessions = self._by_account.get(session.account, [])
            if session in sessions:
                sessions.remove(session)

    def _live(self, account: str | None = None) -> SimSession | None:
        """A bound connection that receives: of ``account``, or of anyone."""
        groups = [self._by_account.get(account, ())] if account is not None else self._by_account.values()
        for sessions in groups:
            for s in sessions:
                if s.receives:
                    return s
        return None

    # -- MO ----------------------------------------------------------------
    def _mo_parts(self, text: str) -> list[MoPart]:
        """``text`` split and encoded as an MO's parts, under the next concatenation reference."""
        p = plan(text)
        coding = 8 if p.encoding == "ucs2" else 0
        total = len(p.chunks)
        ref = self._mo_ref = (self._mo_ref + 1) & 0xFF
        return [MoPart(i, total, ref, coding, encode_chunk(chunk, p.encoding))
                for i, chunk in enumerate(p.chunks, 1)]

    # -- reports -----------------------------------------------------------
    def _failure(self, choices: tuple):
        """One of ``choices`` for a ``fail_rate`` share of draws, else None."""
        if self._rng.random() < self.fail_rate:
            return self._rng.choice(choices)
        return None

    def _long_message(self, ev) -> tuple | None:
        """A key naming the long message ``ev`` is a part of, ending with (ref, total); or None."""
        return None

    def _fate(self, ev) -> str:
        """DELIVRD or a failure Stat, decided once per message for all its parts."""
        if self.fail_rate <= 0:
            return "DELIVRD"
        key = self._long_message(ev)
        if key is not None:
            fate = self._fates.get(key)
            if fate is not None:
                fate[1] -= 1
                if fate[1] <= 0:
                    del self._fates[key]
                return fate[0]
        stat = self._failure(self.fail_statuses) or "DELIVRD"
        if key is not None:
            if len(self._fates) > FATES_LIMIT:
                self._fates.clear()  # parts that never completed; bound the memory
            self._fates[key] = [stat, key[-1] - 1]
        return stat

    def _schedule_reports(self, session: SimSession, msg_id, stat: str, phones, src: str) -> None:
        """Queue one report per phone, due ``report_delay`` from now (a ticking simulator)."""
        due = time.monotonic() + self.report_delay
        submitted = time.time()
        for phone in phones:
            self._reports.append((due, session.account, session, msg_id, stat, phone, src, submitted))

    def _report_session(self, entry: tuple) -> SimSession | None:
        """Where a queued report goes now: a receiving link of its account."""
        return self._live(entry[1])

    def _report_pdu(self, session: SimSession, seq: int, entry: tuple, stamps: ReportStamps) -> bytes:
        """The encoded report ``entry`` (due, account, session, msg_id, stat, phone, src,
        submitted) under sequence id ``seq``."""
        raise NotImplementedError

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self._tick()
            except Exception:
                log.exception("%s simulator tick failed", self.NAME)

    def _tick(self) -> None:
        now = time.monotonic()
        batches: dict[SimSession, list[bytes]] = {}
        for s in list(self._sessions):
            if s.delayed:
                d = s.delayed
                chunk = batches.setdefault(s, [])
                while d and d[0][0] <= now:
                    chunk.append(d.popleft()[1])
                s.unanswered = len(d)
        due = []
        q = self._reports
        while q and q[0][0] <= now:
            due.append(q.popleft())
        for account, backlog in list(self._backlog.items()):
            if self._live(account) is not None:
                due.extend(backlog)
                del self._backlog[account]
        if due:
            self._encode_reports(due, batches)
        for s, chunks in batches.items():
            if chunks and s.open:
                s.write(b"".join(chunks))

    def _encode_reports(self, due: list[tuple], batches: dict[SimSession, list[bytes]]) -> None:
        stamps = ReportStamps()
        sent = 0
        for entry in due:
            session = self._report_session(entry)
            if session is None:
                self._backlog.setdefault(entry[1], deque(maxlen=BACKLOG_LIMIT)).append(entry)
                continue
            seq = session.conn.next_sequence()
            try:
                data = self._report_pdu(session, seq, entry, stamps)
            except session.ERROR as e:
                log.warning("%s simulator: cannot send a report to %s: %s", self.NAME, entry[1], e)
                continue
            if len(session.awaiting) < BACKLOG_LIMIT:
                session.awaiting[seq] = entry
            chunk = batches.get(session)
            if chunk is None:
                chunk = batches[session] = []
            chunk.append(data)
            sent += 1
        self.stats["reports_sent"] += sent
