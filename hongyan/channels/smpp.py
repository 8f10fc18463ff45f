"""SMPP 3.4 client channel: the ESME side of a carrier's SMSC.

Built on :mod:`hongyan.channels.link` like :mod:`hongyan.channels.cmpp`:
``config.connections`` TCP links, each binding (bind_transceiver by default)
and running a pump that moves messages from the shared queue onto the wire,
with at most ``config.window`` unanswered submit_sm per link and
``config.mps`` over all links together.

Options (``config.options``; times in seconds): ``bind`` ("transceiver" /
"trx", "transmitter" / "tx"), ``system_type``, ``long_sms`` ("udh" default,
"sar" or "payload"), ``source_ton`` / ``source_npi`` / ``dest_ton`` /
``dest_npi``, ``enquire_link_interval`` (30), ``submit_timeout`` (30),
``stop_timeout`` (3), ``connect_timeout`` (10), ``reconnect_initial`` (0.5),
``reconnect_max`` (30), ``mo_timeout`` (300).
"""
from __future__ import annotations

import logging

from hongyan.channels.base import ChannelConfig, ChannelEvents, Outbound, Report
from hongyan.channels.link import LinkChannel, WindowedLink, parse_done_time, udh_concat
from hongyan.domain.segments import concat_udh, encode_chunk, plan
from hongyan.protocols.smpp.connection import Connection
from hongyan.protocols.smpp.constants import ESM_UDHI, CommandStatus, MessageState
from hongyan.protocols.smpp.errors import SmppError, SmppProtocolError
from hongyan.protocols.smpp.events import (
    BindTransceiver, BindTransceiverResp, BindTransmitter, BindTransmitterResp, DeliverSm,
    DeliverSmResp, EnquireLink, EnquireLinkResp, GenericNack, SubmitSm, SubmitSmResp, Unbind,
    UnbindResp, is_receipt,
)
from hongyan.protocols.smpp.tlv import Tag, Tlv, find as find_tlv
from hongyan.protocols.smpp.wire import parse_receipt

log = logging.getLogger(__name__)

# Answers that mean "too fast / too much right now": slow down and retry.
RETRY_STATUSES = (CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL)

# message_state TLV values as the receipt stat texts of appendix B.
STATE_TEXT = {
    MessageState.ENROUTE: "ENROUTE", MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED", MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV", MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN", MessageState.REJECTED: "REJECTD",
}

_BINDS = {
    "transceiver": (BindTransceiver, BindTransceiverResp),
    "trx": (BindTransceiver, BindTransceiverResp),
    "transmitter": (BindTransmitter, BindTransmitterResp),
    "tx": (BindTransmitter, BindTransmitterResp),
}


class _Link(WindowedLink):
    """One SMPP TCP connection slot."""

    codec_error = SmppError
    state_error = SmppProtocolError
    peer = "SMSC"
    keepalive_name = "enquire_links"

    def __init__(self, channel: SmppChannel, index: int) -> None:
        super().__init__(channel, index)
        self._handlers = {
            SubmitSmResp: self._on_submit_resp,
            DeliverSm: self._on_deliver,
            EnquireLink: self._on_enquire_link,
            EnquireLinkResp: self._on_enquire_link_resp,
            channel._bind[1]: self._on_bind_resp,
            Unbind: self._on_unbind,
            UnbindResp: self._on_unbind_resp,
            GenericNack: self._on_generic_nack,
        }

    def new_codec(self) -> Connection:
        return Connection("esme")

    def login(self) -> bytes:
        cfg = self.ch.config
        return self.conn.send(self.ch._bind[0](
            self.conn.next_sequence(), system_id=cfg.username, password=cfg.password,
            system_type=str(cfg.options.get("system_type", ""))))

    def logout(self) -> bytes:
        return self.conn.send(Unbind(self.conn.next_sequence()))

    def keepalive(self) -> bytes:
        return self.conn.send(EnquireLink(self.conn.next_sequence()))

    def answer_bad_pdu(self, err: SmppError) -> bytes | None:
        # A request we cannot read is refused so the SMSC does not wait for it.
        if err.sequence_number and err.command_id is not None and not err.command_id & 0x80000000:
            try:
                return self.conn.send(err.generic_nack())
            except SmppError:
                pass
        return None

    # -- answers ---------------------------------------------------------
    def _on_bind_resp(self, ev, out: list[bytes]) -> None:
        if ev.command_status != 0:
            try:
                name = CommandStatus(ev.command_status).name
            except ValueError:
                name = "other error"
            log.error("%r: SMSC refused bind: status 0x%X (%s)", self, ev.command_status, name)
            self.login_refused()
            return
        log.info("%r bound to %s:%d as %s", self, self.ch.config.host, self.ch.config.port, ev.system_id)
        self.logged_in()

    def _on_submit_resp(self, ev: SubmitSmResp, out: list[bytes]) -> None:
        entry = self.inflight.pop(ev.sequence_number, None)
        if entry is None:
            return  # answered after its timeout: the message was already failed
        self._resolve(entry, ev.command_status, ev.message_id)

    def _on_generic_nack(self, ev: GenericNack, out: list[bytes]) -> None:
        entry = self.inflight.pop(ev.sequence_number, None)
        if entry is not None:
            self._resolve(entry, ev.command_status or CommandStatus.ESME_RUNKNOWNERR, "")

    def _resolve(self, entry, status: int, message_id: str) -> None:
        if status == 0:
            self.ch.part_accepted(entry, message_id)
        else:
            self.ch.part_refused(entry, f"SMPP:0x{status:X}", status in RETRY_STATUSES,
                                 busy=status in RETRY_STATUSES)

    def _on_deliver(self, ev: DeliverSm, out: list[bytes]) -> None:
        ch = self.ch
        resp = self.conn.send(DeliverSmResp(ev.sequence_number))
        if is_receipt(ev):
            report = ch._receipt(ev, self.ack_later(resp))
            if report is None:
                out.append(resp)  # unreadable: answered so it is not sent forever
                return
            # The SMSC hears "got it" only once the core committed the report.
            ch.events.report(report)
        elif not ch._on_mo(ev, self.ack_later(resp)):
            out.append(resp)

    def _on_enquire_link(self, ev: EnquireLink, out: list[bytes]) -> None:
        out.append(self.conn.send(EnquireLinkResp(ev.sequence_number)))

    def _on_enquire_link_resp(self, ev: EnquireLinkResp, out: list[bytes]) -> None:
        self.keepalive_answered()

    def _on_unbind(self, ev: Unbind, out: list[bytes]) -> None:
        log.info("%r: SMSC sent unbind", self)
        self.close_with(out, self.conn.send(UnbindResp(ev.sequence_number)))

    def _on_unbind_resp(self, ev: UnbindResp, out: list[bytes]) -> None:
        if self.transport is not None:
            self.transport.close()


class SmppChannel(LinkChannel):
    """An SMPP 3.4 carrier connection, as many TCP links as configured."""

    link_class = _Link
    protocol = "smpp"
    keepalive_option = "enquire_link_interval"

    def __init__(self, config: ChannelConfig, events: ChannelEvents) -> None:
        opt = config.options
        bind = str(opt.get("bind", "transceiver")).lower()
        if bind not in _BINDS:
            raise ValueError(f"channel {config.name!r}: unknown SMPP bind {bind!r}")
        self._bind = _BINDS[bind]
        self._long = str(opt.get("long_sms", "udh")).lower()
        if self._long not in ("udh", "sar", "payload"):
            raise ValueError(f"channel {config.name!r}: long_sms must be udh, sar or payload")
        self._addr = dict(source_addr_ton=int(opt.get("source_ton", 0)),
                          source_addr_npi=int(opt.get("source_npi", 0)),
                          dest_addr_ton=int(opt.get("dest_ton", 0)),
                          dest_addr_npi=int(opt.get("dest_npi", 0)))
        super().__init__(config, events)   # builds the links, which read self._bind

    def encode(self, link: _Link, msg: Outbound) -> list[tuple[int, bytes]]:
        cfg = self.config
        p = plan(msg.text)
        if not p.chunks:
            raise ValueError("empty text")
        coding = 8 if p.encoding == "ucs2" else 0
        conn = link.conn
        common = dict(source_addr=msg.source or cfg.access_code, destination_addr=msg.phone,
                      service_type=cfg.service_id, data_coding=coding,
                      registered_delivery=1 if msg.need_report else 0, **self._addr)
        chunks = p.chunks
        if len(chunks) > 1 and self._long == "payload":
            chunks = ("".join(chunks),)
        total = len(chunks)
        ref = self.next_ref() if total > 1 else 0
        parts = []
        for i, chunk in enumerate(chunks):
            body = encode_chunk(chunk, p.encoding)
            esm = 0
            tlvs: tuple[Tlv, ...] = ()
            if len(p.chunks) > 1 and self._long == "payload":
                tlvs = (Tlv(Tag.MESSAGE_PAYLOAD, body),)
                body = b""
            elif total > 1 and self._long == "sar":
                tlvs = (Tlv(Tag.SAR_MSG_REF_NUM, ref), Tlv(Tag.SAR_TOTAL_SEGMENTS, total),
                        Tlv(Tag.SAR_SEGMENT_SEQNUM, i + 1))
            elif total > 1:
                esm = ESM_UDHI
                body = concat_udh(ref, total, i + 1) + body
            seq = conn.next_sequence()
            parts.append((seq, conn.send(SubmitSm(seq, esm_class=esm, short_message=body, tlvs=tlvs,
                                                  **common))))
        return parts

    def _receipt(self, ev: DeliverSm, ack) -> Report | None:
        carrier_id = find_tlv(ev.tlvs, Tag.RECEIPTED_MESSAGE_ID)
        state = find_tlv(ev.tlvs, Tag.MESSAGE_STATE)
        stat = STATE_TEXT.get(state) if state is not None else None
        done = None
        try:
            r = parse_receipt(ev.short_message)
        except SmppError:
            r = None
        if r is not None:
            carrier_id = carrier_id or r.message_id
            stat = r.stat or stat
            done = parse_done_time(r.done_date)
        if not carrier_id or not stat:
            log.warning("channel %s: unreadable delivery receipt %r", self.config.name, ev.short_message[:80])
            return None
        return Report(self.config.id, str(carrier_id), stat, stat == "DELIVRD",
                      ev.source_addr, done, ack=ack)

    def _on_mo(self, ev: DeliverSm, ack) -> bool:
        content = ev.short_message
        payload = find_tlv(ev.tlvs, Tag.MESSAGE_PAYLOAD)
        if payload and not content:
            content = payload
        concat = None
        if ev.esm_class & ESM_UDHI:
            concat, content = udh_concat(content)
        else:
            total = find_tlv(ev.tlvs, Tag.SAR_TOTAL_SEGMENTS)
            if total:
                concat = (find_tlv(ev.tlvs, Tag.SAR_MSG_REF_NUM, 0), total,
                          find_tlv(ev.tlvs, Tag.SAR_SEGMENT_SEQNUM, 1))
        return self.take_mo(ev.source_addr, ev.destination_addr, content, ev.data_coding, concat, ack)
