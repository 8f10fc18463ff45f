"""An SMPP 3.4 SMSC that plays a carrier, over real TCP, for tests and demos.

Same keywords and API as :class:`hongyan.channels.simulator.CmppSimulator`:
binds ESMEs, answers submit_sm with a fresh message_id and, ``report_delay``
seconds later, sends a delivery receipt (deliver_sm, esm_class 0x04) with a
``fail_rate`` share of failure stats. ``flow_control_every`` answers
ESME_RTHROTTLED; ``drop_after`` cuts a link mid-window.
"""
from __future__ import annotations

import time

from hongyan.channels.sim_base import SimSession, Simulator
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

FAIL_STATUSES = ("UNDELIV", "EXPIRED", "REJECTD")
_BIND_RESP = {BindTransceiver: BindTransceiverResp, BindTransmitter: BindTransmitterResp,
              BindReceiver: BindReceiverResp}


class _Session(SimSession):
    ERROR = SmppError

    def __init__(self, sim: SmppSimulator) -> None:
        super().__init__(sim)
        self.conn = Connection("smsc")

    def handle(self, ev, out: list[bytes]) -> None:
        sim = self.sim
        if type(ev) in _BIND_RESP:
            ok = sim.password_ok(ev.system_id, ev.password)
            status = 0 if ok else CommandStatus.ESME_RINVPASWD
            resp = _BIND_RESP[type(ev)](ev.sequence_number, command_status=status, system_id="HYSIM")
            if not ok:
                sim.stats["auth_failures"] += 1
                self.write(self.conn.send(resp))
                self.close()
                return
            out.append(self.conn.send(resp))
            self.bind(ev.system_id)
        elif isinstance(ev, SubmitSm):
            sim.submitted.append(ev)
            fault = self.take_submit(out)
            if fault == "drop":
                return
            if fault == "busy":
                out.append(self.conn.send(SubmitSmResp(ev.sequence_number,
                                                       command_status=CommandStatus.ESME_RTHROTTLED)))
                return
            sim._next_id += 1
            mid = f"{sim._next_id:X}"
            out.append(self.conn.send(SubmitSmResp(ev.sequence_number, message_id=mid)))
            if ev.registered_delivery:
                stat = sim._failure(FAIL_STATUSES) or "DELIVRD"
                sim._later(sim.report_delay, sim._report, self, ev, mid, stat)
        elif isinstance(ev, DeliverSmResp):
            sim.stats["acked"] += 1
        elif isinstance(ev, EnquireLink):
            out.append(self.conn.send(EnquireLinkResp(ev.sequence_number)))
        elif isinstance(ev, Unbind):
            self.write(b"".join(out) + self.conn.send(UnbindResp(ev.sequence_number)))
            out.clear()
            self.close()


class SmppSimulator(Simulator):
    """An SMPP 3.4 SMSC. ``accounts`` maps system_id to password (None: any)."""

    NAME = "SMPP"

    def __init__(self, host: str = "127.0.0.1", port: int = 2775,
                 accounts: dict[str, str | None] | None = None, report_delay: float = 0.5,
                 fail_rate: float = 0.0, seed: int | None = None, **_ignored) -> None:
        super().__init__(host, port, accounts, report_delay, fail_rate, seed)
        self.submitted: list[SubmitSm] = []
        self.mo_style = "udh"     # or "sar": how inject_mo marks long MO parts
        self._next_id = 0x1000

    def new_session(self) -> _Session:
        return _Session(self)

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
        out = []
        for part in self._mo_parts(text):
            body, esm, tlvs = part.body, 0, ()
            if part.total > 1 and self.mo_style == "sar":
                tlvs = (Tlv(Tag.SAR_MSG_REF_NUM, part.ref), Tlv(Tag.SAR_TOTAL_SEGMENTS, part.total),
                        Tlv(Tag.SAR_SEGMENT_SEQNUM, part.number))
            elif part.total > 1:
                esm, body = ESM_UDHI, part.with_udh()
            out.append(s.conn.send(DeliverSm(s.conn.next_sequence(), source_addr=phone,
                                             destination_addr=dest, esm_class=esm,
                                             data_coding=part.coding, short_message=body, tlvs=tlvs)))
        s.write(b"".join(out))
        self.stats["mo_sent"] += 1
        return len(out)
