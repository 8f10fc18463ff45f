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
from collections import Counter
from collections.abc import Callable

from hongyan.channels.sim_base import ReportStamps, SimSession, Simulator, listening_port
from hongyan.domain.segments import split_udh
from hongyan.protocols.cmpp import auth
from hongyan.protocols.cmpp.connection import Connection
from hongyan.protocols.cmpp.constants import CMPP_SUBMIT
from hongyan.protocols.cmpp.errors import CmppError
from hongyan.protocols.cmpp.events import (
    ActiveTest, ActiveTestResp, Connect, ConnectResp, Deliver, DeliverResp, StatusReport, Submit,
    SubmitResp, Terminate, TerminateResp,
)
from hongyan.protocols.cmpp.msgid import MsgIdGenerator

CMPP2 = 0x20
CMPP3 = 0x30
# Stat values real gateways put in failure reports.
FAIL_STATUSES = ("UNDELIV", "EXPIRED", "REJECTD", "MK:0001", "MI:0013", "MA:0054")

SubmitHook = Callable[[Submit], "int | None"]


class _Session(SimSession):
    """One SP connection on the gateway side."""

    sim: CmppSimulator
    ERROR = CmppError

    def __init__(self, sim: CmppSimulator) -> None:
        super().__init__(sim)
        # A gateway that speaks 3.0 reads the CONNECT first and takes the
        # session's layouts from its Version; a 2.0-only one has just one.
        self.conn = Connection(role="server", version=None if sim.max_version >= CMPP3 else CMPP2)
        self._handlers = {
            Connect: self._on_connect,
            Submit: self._on_submit,
            DeliverResp: self._on_deliver_resp,
            ActiveTest: self._on_active_test,
            ActiveTestResp: lambda ev, out: None,
            Terminate: self._on_terminate,
            TerminateResp: self._on_terminate_resp,
        }

    @property
    def sp_id(self) -> str:
        return self.account

    def bad_pdu(self, e: CmppError, out: list[bytes]) -> None:
        # One malformed SUBMIT is answered "bad structure"; others are skipped.
        if e.command_id == CMPP_SUBMIT and e.sequence_id is not None and self.bound:
            out.append(self.conn.send(SubmitResp(sequence_id=e.sequence_id, msg_id=0, result=1)))

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
            return
        out.append(self.conn.send(answer))
        sim.login_versions[self.conn.version] += 1
        self.bind(ev.source_addr)

    def _on_submit(self, ev: Submit, out: list[bytes]) -> None:
        sim = self.sim
        fault = self.take_submit(out)
        if fault == "drop":
            return
        self.count_unanswered()
        if ev.src_id:
            sim._learn(self.sp_id, ev.src_id)
        # Hooks see every submit, even one flow control refuses.
        result = sim._submit_hooks(ev) or 0
        if fault == "busy":
            result = 8            # fault() counted it refused
        elif result:
            sim.stats["refused"] += 1
        if result:
            answer = self.conn.send(SubmitResp(sequence_id=ev.sequence_id, msg_id=0, result=result))
        else:
            msg_id = sim._ids.next()
            answer = self.conn.send(SubmitResp(sequence_id=ev.sequence_id, msg_id=msg_id, result=0))
            if ev.registered_delivery:
                sim._schedule_reports(self, msg_id, sim._fate(ev), ev.dest_terminal_ids, ev.src_id)
        self.answer(out, answer)

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

    def _on_terminate_resp(self, ev: TerminateResp, out: list[bytes]) -> None:
        self.close()


class CmppSimulator(Simulator):
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

    NAME = "CMPP"
    STATS = ("connections", "accepted", "auth_failures", "submits", "refused", "reports_sent",
             "mo_sent", "resp_errors", "bad_pdus", "max_inflight")
    ticking = True

    def __init__(self, host: str = "127.0.0.1", port: int = 7891,
                 accounts: dict[str, str] | None = None, report_delay: float = 0.5,
                 fail_rate: float = 0.0, fail_statuses: tuple[str, ...] = FAIL_STATUSES,
                 seed: int | None = None, gateway_code: int = 10001,
                 access_codes: dict[str, str] | None = None, resp_delay: float = 0.0,
                 max_version: int = CMPP3) -> None:
        if max_version not in (CMPP2, CMPP3):
            raise ValueError(f"max_version must be 0x20 or 0x30, not {max_version!r}")
        super().__init__(host, port, accounts, report_delay, fail_rate, seed)
        self.fail_statuses = tuple(fail_statuses)
        self.resp_delay = resp_delay
        self.max_version = max_version
        self.login_versions: Counter[int] = Counter()
        self.access_codes = dict(access_codes or {})
        self.answer_active_test = True
        self._ids = MsgIdGenerator(gateway_code)
        self._learned: dict[str, set[str]] = {}
        # The first MO's concatenation reference is 0 (_mo_parts counts up before using it).
        self._mo_ref = 0xFF

    def new_session(self) -> _Session:
        return _Session(self)

    # -- MO --------------------------------------------------------------
    def inject_mo(self, phone: str, dest: str, text: str) -> int:
        """Deliver an MO from ``phone`` to ``dest``; returns the parts sent, 0 if no SP is bound.

        It goes to a bound SP whose access code ``dest`` starts with, or else
        to any bound SP. Long text is split into UDH-concatenated parts.
        """
        session = self._route_mo(dest)
        if session is None:
            return 0
        conn = session.conn
        out = []
        for part in self._mo_parts(text):
            out.append(conn.send(Deliver(sequence_id=conn.next_sequence(), msg_id=self._ids.next(),
                                         dest_id=dest, src_terminal_id=phone, msg_content=part.with_udh(),
                                         tp_udhi=1 if part.total > 1 else 0, msg_fmt=part.coding,
                                         registered_delivery=0)))
        session.write(b"".join(out))
        self.stats["mo_sent"] += 1
        return len(out)

    def _route_mo(self, dest: str) -> _Session | None:
        fallback = None
        for sp, sessions in self._by_account.items():
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

    # -- reports ---------------------------------------------------------
    def _long_message(self, ev: Submit) -> tuple | None:
        if ev.pk_total > 1 and ev.tp_udhi:
            info, _ = split_udh(ev.msg_content)
            if info is not None:
                return (ev.dest_terminal_ids, ev.src_id, info.ref, info.total)
        return None

    def _report_session(self, entry: tuple) -> _Session | None:
        # The link the message came on; if it is gone, another link of the same SP.
        session = entry[2]
        return session if session.open else self._live(entry[1])

    def _report_pdu(self, session: _Session, seq: int, entry: tuple, stamps: ReportStamps) -> bytes:
        _, _, _, msg_id, stat, phone, src_id, submitted = entry
        report = StatusReport(msg_id=msg_id, stat=stat, submit_time=stamps.submitted(submitted),
                              done_time=stamps.done, dest_terminal_id=phone)
        return session.conn.send(Deliver(sequence_id=seq, msg_id=self._ids.next(), dest_id=src_id,
                                         src_terminal_id=phone, registered_delivery=1, report=report))


class SimulatorControl:
    """A tiny HTTP/1.1 side door: ``GET /stats`` and ``POST /mo``.

    One request per connection; enough for a script or a test in another
    process to look at the simulator and make it send MOs.
    """

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 7892) -> None:
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
        return listening_port(self._server, self._port)

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
