"""A CMPP 2.0 / 3.0 gateway (ISMG) that plays a carrier, over real TCP.

It binds SPs in the version their CONNECT asks for (2.0 or 3.0; one built
with ``max_version=0x20`` plays a gateway that speaks only 2.0 and refuses a
3.0 CONNECT in its 2.0 layout), answers every SUBMIT with a fresh Msg_Id and,
``report_delay`` seconds later, delivers a status report for each part that
asked for one. A share of messages (``fail_rate``) gets a failure Stat instead of DELIVRD.
MOs can be injected, and a few switches stage the faults a real gateway
produces: a link cut in the middle of a window, flow-control answers, slow
answers.

Reports and delayed answers leave on a timer tick, one write per connection
per tick, so the simulator keeps up with tens of thousands of submits per
second on one core.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter, deque
from typing import Callable

from hongyan.domain.segments import concat_udh, encode_chunk, plan, split_udh
from hongyan.protocols.cmpp import auth
from hongyan.protocols.cmpp.connection import Connection
from hongyan.protocols.cmpp.constants import CMPP_SUBMIT
from hongyan.protocols.cmpp.errors import CmppError
from hongyan.protocols.cmpp.events import (
    ActiveTest, ActiveTestResp, Connect, ConnectResp, Deliver, DeliverResp, StatusReport, Submit,
    SubmitResp, Terminate, TerminateResp,
)
from hongyan.protocols.cmpp.msgid import MsgIdGenerator

log = logging.getLogger(__name__)

CMPP2 = 0x20
CMPP3 = 0x30
TICK = 0.02                       # seconds between report / delayed-answer flushes
BACKLOG_LIMIT = 100_000           # reports kept per SP while none of its links is bound
# Stat values real gateways put in failure reports.
FAIL_STATUSES = ("UNDELIV", "EXPIRED", "REJECTD", "MK:0001", "MI:0013", "MA:0054")

SubmitHook = Callable[[Submit], "int | None"]


def _stamp(t: float) -> str:
    return time.strftime("%y%m%d%H%M", time.localtime(t))


class _Session(asyncio.Protocol):
    """One SP connection on the gateway side."""

    def __init__(self, sim: CmppSimulator) -> None:
        self.sim = sim
        # A gateway that speaks 3.0 reads the CONNECT first and takes the
        # session's layouts from its Version; a 2.0-only one has just one.
        self.conn = Connection(role="server", version=None if sim.max_version >= CMPP3 else CMPP2)
        self.transport: asyncio.Transport | None = None
        self.sp_id = ""
        self.bound = False
        self.open = False
        self.unanswered = 0       # submits received whose answer has not been written
        self.max_inflight = 0
        self.delayed: deque[tuple[float, bytes]] = deque()
        # Reports written but not yet answered, by sequence id: a real gateway
        # delivers them again if the link drops before the SP answers.
        self.awaiting: dict[int, tuple] = {}
        self._handlers = {
            Connect: self._on_connect,
            Submit: self._on_submit,
            DeliverResp: self._on_deliver_resp,
            ActiveTest: self._on_active_test,
            ActiveTestResp: lambda ev, out: None,
            Terminate: self._on_terminate,
            TerminateResp: self._on_terminate_resp,
        }

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True
        self.sim.stats["accepted"] += 1
        self.sim._sessions.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.transport = None
        self.sim._unbind(self)

    def close(self, abort: bool = False) -> None:
        if self.transport is not None:
            self.transport.abort() if abort else self.transport.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        handlers = self._handlers
        out: list[bytes] = []
        try:
            conn.receive_data(data)
            while self.open:
                try:
                    events = conn.events()
                except CmppError as e:
                    if e.fatal:
                        raise
                    # One malformed PDU: answer a SUBMIT with "bad structure", read on.
                    self.sim.stats["bad_pdus"] += 1
                    if e.command_id == CMPP_SUBMIT and e.sequence_id is not None and self.bound:
                        out.append(conn.send(SubmitResp(sequence_id=e.sequence_id, msg_id=0, result=1)))
                    continue
                if not events:
                    break
                for ev in events:
                    if not self.open:
                        return  # cut by drop_after or closed: nothing more is answered
                    handler = handlers.get(type(ev))
                    if handler is not None:
                        handler(ev, out)
        except CmppError as e:
            log.warning("simulator: bad bytes from %s (%s); closing", self.sp_id or "?", e)
            self.close(abort=True)
            self.open = False
            return
        if out and self.open:
            self.write(b"".join(out))
        # Immediate answers were written above; only delayed ones stay open.
        self.unanswered = len(self.delayed)

    def _on_connect(self, ev: Connect, out: list[bytes]) -> None:
        sim = self.sim
        status = 0
        secret = ""
        if ev.version != self.conn.version:
            # Only the versions the documents define: 0x20, and 0x30 when it speaks 3.0
            # (pycmpp's stock 0x21 is refused, as a real gateway does).
            status = 4
        elif sim.accounts is not None:
            if ev.source_addr not in sim.accounts:
                status = 2
            else:
                secret = sim.accounts[ev.source_addr]
                if not auth.verify_connect(ev, secret):
                    status = 3
        answer = ConnectResp(sequence_id=ev.sequence_id, status=status,
                             authenticator=auth.authenticator_ismg(status, ev.authenticator, secret,
                                                                   self.conn.version),
                             version=self.conn.version)
        if status:
            sim.stats["auth_failures"] += 1
            self.write(self.conn.send(answer))
            self.close()
            self.open = False
            return
        out.append(self.conn.send(answer))
        self.sp_id = ev.source_addr
        self.bound = True
        sim.login_versions[self.conn.version] += 1
        sim._bind(self)

    def _on_submit(self, ev: Submit, out: list[bytes]) -> None:
        sim = self.sim
        st = sim.stats
        st["submits"] += 1
        sim._count += 1
        if sim._drop_at and sim._count >= sim._drop_at:
            sim._drop_at = 0
            log.info("simulator: dropping %s after submit %d", self.sp_id, sim._count)
            if out:
                self.write(b"".join(out))
                out.clear()
            self.close(abort=True)
            self.open = False
            return
        self.unanswered += 1
        if self.unanswered > self.max_inflight:
            self.max_inflight = self.unanswered
            if self.max_inflight > st["max_inflight"]:
                st["max_inflight"] = self.max_inflight
        if ev.src_id:
            sim._learn(self.sp_id, ev.src_id)
        result = 0
        for hook in sim.on_submit:
            r = hook(ev)
            if r is not None:
                result = r
        if sim._fc_every and sim._count % sim._fc_every == 0:
            result = 8
        if result:
            st["refused"] += 1
            answer = self.conn.send(SubmitResp(sequence_id=ev.sequence_id, msg_id=0, result=result))
        else:
            msg_id = sim._ids.next()
            answer = self.conn.send(SubmitResp(sequence_id=ev.sequence_id, msg_id=msg_id, result=0))
            if ev.registered_delivery:
                sim._schedule_report(self, ev, msg_id)
        if sim.resp_delay:
            self.delayed.append((time.monotonic() + sim.resp_delay, answer))
        else:
            out.append(answer)

    def _on_deliver_resp(self, ev: DeliverResp, out: list[bytes]) -> None:
        self.awaiting.pop(ev.sequence_id, None)
        if ev.result:
            self.sim.stats["resp_errors"] += 1

    def _on_active_test(self, ev: ActiveTest, out: list[bytes]) -> None:
        if not self.sim.answer_active_test:
            return
        out.append(self.conn.send(ActiveTestResp(sequence_id=ev.sequence_id)))

    def _on_terminate(self, ev: Terminate, out: list[bytes]) -> None:
        out.append(self.conn.send(TerminateResp(sequence_id=ev.sequence_id)))
        self.write(b"".join(out))
        out.clear()
        self.close()
        self.open = False

    def _on_terminate_resp(self, ev: TerminateResp, out: list[bytes]) -> None:
        self.close()


class CmppSimulator:
    """A CMPP 2.0 / 3.0 gateway for tests and local runs.

    ``accounts`` maps SP id to shared secret; None accepts any SP and secret.
    ``access_codes`` optionally maps SP id to its access code for routing
    injected MOs; otherwise the simulator learns codes from SUBMIT Src_Id.
    ``resp_delay`` holds every SUBMIT_RESP that long (to fill the SP's window).
    ``on_submit`` is a list of callables given each Submit; one that returns
    an int makes that the SUBMIT_RESP result. Setting ``answer_active_test``
    False plays a gateway that hangs while keeping TCP open.
    ``max_version`` is the highest CMPP version it accepts (0x30, or 0x20);
    ``login_versions`` counts the bound logins by the version they run.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 7891,
                 accounts: dict[str, str] | None = None, report_delay: float = 0.5,
                 fail_rate: float = 0.0, fail_statuses: tuple[str, ...] = FAIL_STATUSES,
                 seed: int | None = None, gateway_code: int = 10001,
                 access_codes: dict[str, str] | None = None, resp_delay: float = 0.0,
                 max_version: int = CMPP3) -> None:
        if max_version not in (CMPP2, CMPP3):
            raise ValueError(f"max_version must be 0x20 or 0x30, not {max_version!r}")
        self.host = host
        self._port = port
        self.accounts = accounts
        self.report_delay = report_delay
        self.fail_rate = fail_rate
        self.fail_statuses = tuple(fail_statuses)
        self.resp_delay = resp_delay
        self.max_version = max_version
        self.login_versions: Counter[int] = Counter()
        self.access_codes = dict(access_codes or {})
        self.on_submit: list[SubmitHook] = []
        self.answer_active_test = True
        # connections: bound now; accepted: TCP connections ever accepted.
        self.stats = {"connections": 0, "accepted": 0, "auth_failures": 0, "submits": 0,
                      "refused": 0, "reports_sent": 0, "mo_sent": 0, "resp_errors": 0,
                      "bad_pdus": 0, "max_inflight": 0}
        self._rng = random.Random(seed)
        self._ids = MsgIdGenerator(gateway_code)
        self._server: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task | None = None
        self._sessions: set[_Session] = set()
        self._by_sp: dict[str, list[_Session]] = {}
        self._learned: dict[str, set[str]] = {}
        self._reports: deque[tuple] = deque()
        self._backlog: dict[str, deque[tuple]] = {}
        self._fates: dict[tuple, list] = {}
        self._count = 0
        self._drop_at = 0
        self._fc_every = 0
        self._mo_ref = 0

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), self.host, self._port)
        self._ticker = asyncio.create_task(self._tick_loop(), name="cmpp simulator ticker")
        log.info("CMPP simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
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
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    # -- fault switches --------------------------------------------------
    def drop_after(self, n: int) -> None:
        """Cut the connection that carries the n-th submit from now, unanswered. Once."""
        self._drop_at = self._count + n if n > 0 else 0

    def flow_control_every(self, k: int) -> None:
        """Answer every k-th submit with result 8 (flow control); 0 turns it off."""
        self._fc_every = max(0, k)

    # -- MO --------------------------------------------------------------
    def inject_mo(self, phone: str, dest: str, text: str) -> int:
        """Deliver an MO from ``phone`` to ``dest``; returns the parts sent, 0 if no SP is bound.

        It goes to a bound SP whose access code ``dest`` starts with, or else
        to any bound SP. Long text is split into UDH-concatenated parts.
        """
        session = self._route_mo(dest)
        if session is None:
            return 0
        p = plan(text)
        fmt = 8 if p.encoding == "ucs2" else 0
        total = len(p.chunks)
        ref = self._mo_ref
        self._mo_ref = (ref + 1) & 0xFF
        conn = session.conn
        out = []
        for i, chunk in enumerate(p.chunks, 1):
            body = encode_chunk(chunk, p.encoding)
            if total > 1:
                body = concat_udh(ref, total, i) + body
            out.append(conn.send(Deliver(sequence_id=conn.next_sequence(), msg_id=self._ids.next(),
                                         dest_id=dest, src_terminal_id=phone, msg_content=body,
                                         tp_udhi=1 if total > 1 else 0, msg_fmt=fmt,
                                         registered_delivery=0)))
        session.write(b"".join(out))
        self.stats["mo_sent"] += 1
        return total

    def _route_mo(self, dest: str) -> _Session | None:
        fallback = None
        for sp, sessions in self._by_sp.items():
            live = [s for s in sessions if s.open]
            if not live:
                continue
            fallback = fallback or live[0]
            codes = set(self._learned.get(sp, ()))
            if sp in self.access_codes:
                codes.add(self.access_codes[sp])
            if any(dest.startswith(c) for c in codes):
                return live[0]
        return fallback

    def _learn(self, sp: str, src_id: str) -> None:
        seen = self._learned.setdefault(sp, set())
        if src_id not in seen and len(seen) < 64:
            seen.add(src_id)

    # -- binding ---------------------------------------------------------
    def _bind(self, session: _Session) -> None:
        self._by_sp.setdefault(session.sp_id, []).append(session)
        self.stats["connections"] += 1

    def _unbind(self, session: _Session) -> None:
        self._sessions.discard(session)
        if session.awaiting:
            # Unanswered reports go out again, on another link of the SP or when it binds.
            self.stats["reports_redelivered"] = self.stats.get("reports_redelivered", 0) + len(session.awaiting)
            now = time.monotonic()
            self._reports.extendleft((now,) + tuple(e[1:]) for e in reversed(list(session.awaiting.values())))
            session.awaiting.clear()
        if session.bound:
            session.bound = False
            self.stats["connections"] -= 1
            sessions = self._by_sp.get(session.sp_id, [])
            if session in sessions:
                sessions.remove(session)

    def _live(self, sp: str) -> _Session | None:
        for s in self._by_sp.get(sp, ()):
            if s.open:
                return s
        return None

    # -- reports ---------------------------------------------------------
    def _fate(self, ev: Submit) -> str:
        """DELIVRD or a failure Stat, decided once per message for all its parts."""
        if self.fail_rate <= 0:
            return "DELIVRD"
        key = None
        if ev.pk_total > 1 and ev.tp_udhi:
            info, _ = split_udh(ev.msg_content)
            if info is not None:
                key = (ev.dest_terminal_ids, ev.src_id, info.ref, info.total)
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

    def _schedule_report(self, session: _Session, ev: Submit, msg_id: int) -> None:
        now = time.time()
        stat = self._fate(ev)
        for phone in ev.dest_terminal_ids:
            self._reports.append((time.monotonic() + self.report_delay, session.sp_id, session,
                                  msg_id, stat, phone, ev.src_id, now))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self._tick()
            except Exception:
                log.exception("simulator tick failed")

    def _tick(self) -> None:
        now = time.monotonic()
        batches: dict[_Session, list[bytes]] = {}
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
        for sp, backlog in list(self._backlog.items()):
            if self._live(sp) is not None:
                due.extend(backlog)
                del self._backlog[sp]
        if due:
            self._encode_reports(due, batches)
        for s, chunks in batches.items():
            if chunks and s.open:
                s.write(b"".join(chunks))

    def _encode_reports(self, due: list[tuple], batches: dict[_Session, list[bytes]]) -> None:
        done_time = _stamp(time.time())
        stamps: dict[int, str] = {}
        next_id = self._ids.next
        sent = 0
        for entry in due:
            _, sp, session, msg_id, stat, phone, src_id, submitted = entry
            if not session.open:
                # A real gateway sends it on another link of the same SP.
                session = self._live(sp)
                if session is None:
                    backlog = self._backlog.setdefault(sp, deque(maxlen=BACKLOG_LIMIT))
                    backlog.append(entry)
                    continue
            minute = int(submitted // 60)
            submit_time = stamps.get(minute)
            if submit_time is None:
                submit_time = stamps[minute] = _stamp(submitted)
            conn = session.conn
            report = StatusReport(msg_id=msg_id, stat=stat, submit_time=submit_time,
                                  done_time=done_time, dest_terminal_id=phone)
            seq = conn.next_sequence()
            try:
                data = conn.send(Deliver(sequence_id=seq, msg_id=next_id(),
                                         dest_id=src_id, src_terminal_id=phone,
                                         registered_delivery=1, report=report))
            except CmppError as e:
                log.warning("simulator: cannot send a report to %s: %s", sp, e)
                continue
            if len(session.awaiting) < BACKLOG_LIMIT:
                session.awaiting[seq] = entry
            chunk = batches.get(session)
            if chunk is None:
                chunk = batches[session] = []
            chunk.append(data)
            sent += 1
        self.stats["reports_sent"] += sent


class SimulatorControl:
    """A tiny HTTP/1.1 side door: ``GET /stats`` and ``POST /mo``.

    One request per connection; enough for a script or a test in another
    process to look at the simulator and make it send MOs.
    """

    def __init__(self, simulator: CmppSimulator, host: str = "127.0.0.1", port: int = 7892) -> None:
        self.simulator = simulator
        self.host = host
        self._port = port
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._serve(reader), 10)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            status, body = 400, {"error": "bad request"}
        data = json.dumps(body).encode()
        writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + data)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader) -> tuple[int, dict]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        if length > 65536:
            return 413, {"error": "body too large"}
        body = await reader.readexactly(length) if length else b""
        path = path.split("?", 1)[0]
        if method == "GET" and path == "/stats":
            return 200, dict(self.simulator.stats)
        if method == "POST" and path == "/mo":
            try:
                req = json.loads(body)
                parts = self.simulator.inject_mo(str(req["phone"]), str(req["dest"]), str(req["text"]))
            except (ValueError, KeyError, TypeError):
                return 400, {"error": "expected JSON {phone, dest, text}"}
            if not parts:
                return 409, {"error": "no SP connection is bound"}
            return 200, {"parts": parts}
        return 404, {"error": "not found"}


async def run_simulator(host: str = "127.0.0.1", port: int = 7891, control_port: int = 7892,
                        report_delay: float = 0.5, fail_rate: float = 0.0,
                        accounts: dict[str, str] | None = None, protocol: str = "cmpp2", **options) -> None:
    """Run a simulator of ``protocol`` and its control server until cancelled.

    ``options`` go to that protocol's simulator (SGIP: ``sp_host`` / ``sp_port``,
    where it connects back to deliver reports and MO)."""
    from hongyan.channels import make_simulator

    sim = make_simulator(protocol, host=host, port=port, accounts=accounts, report_delay=report_delay,
                         fail_rate=fail_rate, **options)
    control = SimulatorControl(sim, host, control_port)
    await sim.start()
    await control.start()
    print(f"{protocol.upper()} simulator on {host}:{sim.port}, control http://{host}:{control.port} "
          f"(GET /stats, POST /mo)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await control.stop()
        await sim.stop()
