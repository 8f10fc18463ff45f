"""An SMPP 3.4 SMSC that plays a carrier, over real TCP, for tests and demos.

Same keywords and API as :class:`hongyan.channels.simulator.CmppSimulator`:
binds ESMEs, answers submit_sm with a fresh message_id and, ``report_delay``
seconds later, sends a delivery receipt (deliver_sm, esm_class 0x04) with a
``fail_rate`` share of failure stats. ``flow_control_every`` answers
ESME_RTHROTTLED; ``drop_after`` cuts a link mid-window.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time

from hongyan.domain.segments import concat_udh, encode_chunk, plan
from hongyan.protocols.smpp.connection import Connection
from hongyan.protocols.smpp.constants import ESM_UDHI, CommandStatus, EsmClass
from hongyan.protocols.smpp.errors import SmppError
from hongyan.protocols.smpp.events import (
    BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp, BindTransmitter,
    BindTransmitterResp, DeliverSm, DeliverSmResp, EnquireLink, EnquireLinkResp, Receipt,
    SubmitSm, SubmitSmResp, Unbind, UnbindResp,
)
from hongyan.protocols.smpp.tlv import Tag, Tlv
from hongyan.protocols.smpp.wire import format_receipt

log = logging.getLogger(__name__)

FAIL_STATUSES = ("UNDELIV", "EXPIRED", "REJECTD")
_BIND_RESP = {BindTransceiver: BindTransceiverResp, BindTransmitter: BindTransmitterResp,
              BindReceiver: BindReceiverResp}


class _Session(asyncio.Protocol):
    def __init__(self, sim: SmppSimulator) -> None:
        self.sim = sim
        self.conn = Connection("smsc")
        self.transport = None
        self.bound = False
        self.open = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.open = True
        self.sim.stats["accepted"] += 1
        self.sim._sessions.add(self)

    def connection_lost(self, exc) -> None:
        self.open = False
        self.transport = None
        self.sim._sessions.discard(self)
        if self.bound:
            self.bound = False
            self.sim.stats["connections"] -= 1

    def close(self, abort: bool = False) -> None:
        if self.transport is not None:
            self.transport.abort() if abort else self.transport.close()
        self.open = False

    def write(self, data: bytes) -> None:
        if self.transport is not None and self.open:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        out: list[bytes] = []
        try:
            self.conn.receive_data(data)
            while self.open:
                try:
                    events = self.conn.events()
                except SmppError as e:
                    if e.fatal:
                        raise
                    self.sim.stats["bad_pdus"] += 1
                    continue
                if not events:
                    break
                for ev in events:
                    if not self.open:
                        return
                    self._handle(ev, out)
        except SmppError:
            self.close(abort=True)
            return
        if out:
            self.write(b"".join(out))

    def _handle(self, ev, out: list[bytes]) -> None:
        sim = self.sim
        if type(ev) in _BIND_RESP:
            ok = sim.accounts is None or sim.accounts.get(ev.system_id, object()) in (ev.password, None)
            status = 0 if ok else CommandStatus.ESME_RINVPASWD
            resp = _BIND_RESP[type(ev)](ev.sequence_number, command_status=status, system_id="HYSIM")
            if not ok:
                sim.stats["auth_failures"] += 1
                self.write(self.conn.send(resp))
                self.close()
                return
            out.append(self.conn.send(resp))
            self.bound = True
            sim.stats["connections"] += 1
        elif isinstance(ev, SubmitSm):
            sim._count += 1
            sim.stats["submits"] += 1
            sim.submitted.append(ev)
            if sim._drop_at and sim._count >= sim._drop_at:
                sim._drop_at = 0
                self.write(b"".join(out))
                out.clear()
                self.close(abort=True)
                return
            if sim._fc_every and sim._count % sim._fc_every == 0:
                sim.stats["refused"] += 1
                out.append(self.conn.send(SubmitSmResp(ev.sequence_number,
                                                       command_status=CommandStatus.ESME_RTHROTTLED)))
                return
            sim._next_id += 1
            mid = f"{sim._next_id:X}"
            out.append(self.conn.send(SubmitSmResp(ev.sequence_number, message_id=mid)))
            if ev.registered_delivery:
                stat = "DELIVRD"
                if sim._rng.random() < sim.fail_rate:
                    stat = sim._rng.choice(FAIL_STATUSES)
                asyncio.get_running_loop().call_later(sim.report_delay, sim._report, self, ev, mid, stat)
        elif isinstance(ev, DeliverSmResp):
            sim.stats["acked"] += 1
        elif isinstance(ev, EnquireLink):
            out.append(self.conn.send(EnquireLinkResp(ev.sequence_number)))
        elif isinstance(ev, Unbind):
            self.write(b"".join(out) + self.conn.send(UnbindResp(ev.sequence_number)))
            out.clear()
            self.close()


class SmppSimulator:
    """An SMPP 3.4 SMSC. ``accounts`` maps system_id to password (None: any)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2775,
                 accounts: dict[str, str | None] | None = None, report_delay: float = 0.5,
                 fail_rate: float = 0.0, seed: int | None = None, **_ignored) -> None:
        self.host = host
        self._port = port
        self.accounts = accounts
        self.report_delay = report_delay
        self.fail_rate = fail_rate
        self.stats = {"connections": 0, "accepted": 0, "auth_failures": 0, "submits": 0,
                      "refused": 0, "reports_sent": 0, "mo_sent": 0, "acked": 0, "bad_pdus": 0}
        self.submitted: list[SubmitSm] = []
        self.mo_style = "udh"     # or "sar": how inject_mo marks long MO parts
        self._rng = random.Random(seed)
        self._server = None
        self._sessions: set[_Session] = set()
        self._count = 0
        self._drop_at = 0
        self._fc_every = 0
        self._next_id = 0x1000
        self._mo_ref = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self._sessions):
            s.close(abort=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    def drop_after(self, n: int) -> None:
        """Cut the connection carrying the n-th submit from now, unanswered. Once."""
        self._drop_at = self._count + n if n > 0 else 0

    def flow_control_every(self, k: int) -> None:
        """Answer every k-th submit with ESME_RTHROTTLED; 0 turns it off."""
        self._fc_every = max(0, k)

    def _live(self) -> _Session | None:
        for s in self._sessions:
            if s.open and s.bound:
                return s
        return None

    def _report(self, session: _Session, ev: SubmitSm, mid: str, stat: str) -> None:
        if not session.open:
            session = self._live()
            if session is None:
                return
        stamp = time.strftime("%y%m%d%H%M")
        text = format_receipt(Receipt(mid, stat, stamp, stamp, err="000" if stat == "DELIVRD" else "001"))
        session.write(session.conn.send(DeliverSm(
            session.conn.next_sequence(), source_addr=ev.destination_addr,
            destination_addr=ev.source_addr, esm_class=EsmClass.DELIVERY_RECEIPT,
            short_message=text, tlvs=(Tlv(Tag.RECEIPTED_MESSAGE_ID, mid),))))
        self.stats["reports_sent"] += 1

    def inject_mo(self, phone: str, dest: str, text: str) -> int:
        """Deliver an MO; returns the parts sent, 0 if no ESME is bound."""
        s = self._live()
        if s is None:
            return 0
        p = plan(text)
        coding = 8 if p.encoding == "ucs2" else 0
        total = len(p.chunks)
        ref = self._mo_ref = (self._mo_ref + 1) & 0xFF
        out = []
        for i, chunk in enumerate(p.chunks, 1):
            body = encode_chunk(chunk, p.encoding)
            esm, tlvs = 0, ()
            if total > 1 and self.mo_style == "sar":
                tlvs = (Tlv(Tag.SAR_MSG_REF_NUM, ref), Tlv(Tag.SAR_TOTAL_SEGMENTS, total),
                        Tlv(Tag.SAR_SEGMENT_SEQNUM, i))
            elif total > 1:
                esm, body = ESM_UDHI, concat_udh(ref, total, i) + body
            out.append(s.conn.send(DeliverSm(s.conn.next_sequence(), source_addr=phone,
                                             destination_addr=dest, esm_class=esm, data_coding=coding,
                                             short_message=body, tlvs=tlvs)))
        s.write(b"".join(out))
        self.stats["mo_sent"] += 1
        return total
