"""SMPP 3.4 client channel: the ESME side of a carrier's SMSC.

Built like :mod:`hongyan.channels.cmpp`: ``config.connections`` TCP links,
each binding (bind_transceiver by default) and running a pump that moves
messages from the shared queue onto the wire, with at most ``config.window``
unanswered submit_sm per link and ``config.mps`` over all links together.

Options (``config.options``; times in seconds): ``bind`` ("transceiver" /
"trx", "transmitter" / "tx"), ``system_type``, ``long_sms`` ("udh" default,
"sar" or "payload"), ``source_ton`` / ``source_npi`` / ``dest_ton`` /
``dest_npi``, ``enquire_link_interval`` (30), ``submit_timeout`` (30),
``stop_timeout`` (3), ``connect_timeout`` (10), ``reconnect_initial`` (0.5),
``reconnect_max`` (30), ``mo_timeout`` (300).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from datetime import datetime

from hongyan.channels.base import Channel, ChannelConfig, ChannelEvents, Inbound, Outbound, Report
from hongyan.channels.throttle import TokenBucket
from hongyan.domain.segments import Reassembler, concat_udh, decode_payload, encode_chunk, plan, split_udh
from hongyan.protocols.smpp.connection import Connection
from hongyan.protocols.smpp.constants import ESM_UDHI, CommandId, CommandStatus, MessageState
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


class _Pending:
    """One Outbound on its way: which parts the SMSC has accepted so far."""

    __slots__ = ("msg", "ids", "left", "done")

    def __init__(self, msg: Outbound, parts: int) -> None:
        self.msg = msg
        self.ids = [""] * parts
        self.left = parts
        self.done = False


def _done_time(text: str) -> datetime | None:
    # done date is YYMMDDhhmm, some SMSCs add seconds.
    try:
        return datetime(2000 + int(text[0:2]), int(text[2:4]), int(text[4:6]),
                        int(text[6:8]), int(text[8:10]), int(text[10:12] or 0))
    except (ValueError, IndexError):
        return None


class _Link(asyncio.Protocol):
    """One TCP connection slot. The same object serves each reconnect in turn."""

    def __init__(self, channel: SmppChannel, index: int) -> None:
        self.ch = channel
        self.index = index
        self.wake = asyncio.Event()
        self.inflight: dict[int, tuple[_Pending, int, float]] = {}
        self.staged: deque[tuple[int, _Pending, int, bytes]] = deque()
        self.transport: asyncio.Transport | None = None
        self.bound = False
        self.conn = Connection("esme")
        self.closed: asyncio.Future | None = None
        self.handshake: asyncio.Future | None = None
        self.last_rx = 0.0
        self.last_test = 0.0
        self.tests_unanswered = 0
        self.terminating = False
        self._acks: list[bytes] = []
        self._ack_flush = False
        bind_resp = channel._bind[1]
        self._handlers = {
            SubmitSmResp: self._on_submit_resp,
            DeliverSm: self._on_deliver,
            EnquireLink: self._on_enquire_link,
            EnquireLinkResp: self._on_enquire_link_resp,
            bind_resp: self._on_bind_resp,
            Unbind: self._on_unbind,
            UnbindResp: self._on_unbind_resp,
            GenericNack: self._on_generic_nack,
        }

    def __repr__(self) -> str:
        return f"<smpp link {self.ch.config.name}#{self.index}>"

    # -- lifecycle -------------------------------------------------------
    def prepare(self) -> None:
        loop = asyncio.get_running_loop()
        self.conn = Connection("esme")
        self.closed = loop.create_future()
        self.handshake = loop.create_future()
        self.bound = False
        self.terminating = False
        self.tests_unanswered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        cfg = self.ch.config
        self.last_rx = self.last_test = time.monotonic()
        try:
            data = self.conn.send(self.ch._bind[0](
                self.conn.next_sequence(), system_id=cfg.username, password=cfg.password,
                system_type=str(cfg.options.get("system_type", ""))))
        except SmppError as e:
            # A system_id or password too long for the PDU: no SMSC can accept it.
            log.error("%r: cannot build bind for %r: %s", self, cfg.username, e)
            transport.abort()  # type: ignore[attr-defined]
            return
        transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        was_bound = self.bound
        self.bound = False
        self.transport = None
        if was_bound and not self.terminating:
            log.warning("%r lost%s", self, f": {exc}" if exc else "")
        self.ch._link_down(self)
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_result(False)
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)
        self.wake.set()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- receiving -------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.tests_unanswered = 0
        conn = self.conn
        out: list[bytes] = []
        try:
            conn.receive_data(data)
            while True:
                try:
                    events = conn.events()
                except SmppError as e:
                    if e.fatal:
                        raise
                    # One bad PDU: refuse it so the SMSC does not wait, read on.
                    log.warning("%r: skipped a PDU the SMSC sent: %s", self, e)
                    if e.sequence_number and e.command_id is not None and not e.command_id & 0x80000000:
                        try:
                            out.append(conn.send(e.generic_nack()))
                        except SmppError:
                            pass
                    continue
                if not events:
                    break
                for ev in events:
                    if self.transport is None or self.transport.is_closing():
                        return
                    handler = self._handlers.get(type(ev))
                    if handler is None:
                        log.debug("%r: ignoring %s", self, type(ev).__name__)
                        continue
                    try:
                        handler(ev, out)
                    except SmppError:
                        raise
                    except Exception:
                        # A failing callback must not take the link down with it.
                        log.exception("%r: error handling %s", self, type(ev).__name__)
        except SmppError as e:
            log.error("%r: SMSC sent bad bytes (%s); reconnecting", self, e)
            self.abort()
            return
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        self.wake.set()

    def _on_bind_resp(self, ev, out: list[bytes]) -> None:
        if ev.command_status != 0:
            try:
                name = CommandStatus(ev.command_status).name
            except ValueError:
                name = "other error"
            log.error("%r: SMSC refused bind: status 0x%X (%s)", self, ev.command_status, name)
            if self.handshake is not None and not self.handshake.done():
                self.handshake.set_result(False)
            self.abort()
            return
        self.bound = True
        log.info("%r bound to %s:%d as %s", self, self.ch.config.host, self.ch.config.port, ev.system_id)
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_result(True)

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
        pend, idx, _ = entry
        if pend.done:
            return
        ch = self.ch
        if status == 0:
            pend.ids[idx] = message_id
            pend.left -= 1
            if pend.left == 0:
                pend.done = True
                ch._open -= 1
                ch.events.sent(pend.msg.message_id, list(pend.ids))
        elif status in RETRY_STATUSES:
            ch._bucket.slow_down(time.monotonic())
            ch._fail(pend, f"SMPP:0x{status:X}", True)
        else:
            ch._fail(pend, f"SMPP:0x{status:X}", False)

    def _on_deliver(self, ev: DeliverSm, out: list[bytes]) -> None:
        ch = self.ch
        resp = self.conn.send(DeliverSmResp(ev.sequence_number))
        if is_receipt(ev):
            report = ch._receipt(ev, self._ack_later(resp))
            if report is None:
                out.append(resp)  # unreadable: answered so it is not sent forever
                return
            # The SMSC hears "got it" only once the core committed the report.
            ch.events.report(report)
        else:
            ch._on_mo(ev, self._ack_later(resp), out, resp)

    def _ack_later(self, resp: bytes):
        transport = self.transport

        def ack() -> None:
            # Only on the connection the deliver_sm came on: after a reconnect
            # the SMSC has already queued it again.
            if transport is None or self.transport is not transport or transport.is_closing():
                return
            self._acks.append(resp)
            if not self._ack_flush:
                self._ack_flush = True
                asyncio.get_running_loop().call_soon(self._flush_acks)
        return ack

    def _flush_acks(self) -> None:
        self._ack_flush = False
        acks, self._acks = self._acks, []
        if acks and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(acks))

    def _on_enquire_link(self, ev: EnquireLink, out: list[bytes]) -> None:
        out.append(self.conn.send(EnquireLinkResp(ev.sequence_number)))

    def _on_enquire_link_resp(self, ev: EnquireLinkResp, out: list[bytes]) -> None:
        self.tests_unanswered = 0

    def _on_unbind(self, ev: Unbind, out: list[bytes]) -> None:
        log.info("%r: SMSC sent unbind", self)
        if self.transport is not None:
            self.transport.write(b"".join(out) + self.conn.send(UnbindResp(ev.sequence_number)))
            out.clear()
            self.transport.close()

    def _on_unbind_resp(self, ev: UnbindResp, out: list[bytes]) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- periodic checks -------------------------------------------------
    def housekeep(self, now: float, submit_timeout: float, test_interval: float) -> None:
        if not self.bound or self.terminating or self.transport is None:
            return
        if self.inflight:
            limit = now - submit_timeout
            late = [seq for seq, (_, _, at) in self.inflight.items() if at < limit]
            for seq in late:
                self.ch._fail(self.inflight.pop(seq)[0], "LINK", True)
            if late:
                log.warning("%r: %d submits unanswered after %.0f s", self, len(late), submit_timeout)
                self.wake.set()
        if now - self.last_rx >= test_interval and now - self.last_test >= test_interval:
            if self.tests_unanswered >= 3:
                log.warning("%r: 3 enquire_links unanswered; reconnecting", self)
                self.abort()
                return
            self.last_test = now
            self.tests_unanswered += 1
            self.transport.write(self.conn.send(EnquireLink(self.conn.next_sequence())))


class SmppChannel(Channel):
    """An SMPP 3.4 carrier connection, as many TCP links as configured."""

    def __init__(self, config: ChannelConfig, events: ChannelEvents) -> None:
        super().__init__(config, events)
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
        self._test_interval = float(opt.get("enquire_link_interval", 30))
        self._submit_timeout = float(opt.get("submit_timeout", 30))
        self._stop_timeout = float(opt.get("stop_timeout", 3))
        self._connect_timeout = float(opt.get("connect_timeout", 10))
        self._backoff_initial = float(opt.get("reconnect_initial", 0.5))
        self._backoff_max = float(opt.get("reconnect_max", 30))
        self._queue: deque[Outbound] = deque()
        self._open = 0            # messages taken from the queue and not yet resolved
        self._ref = random.randrange(256)
        self._reassembler = Reassembler(float(opt.get("mo_timeout", 300)))
        self._bucket = TokenBucket(config.mps, time.monotonic())
        self._links = [_Link(self, i) for i in range(max(1, config.connections))]
        self._tasks: list[asyncio.Task] = []
        self._running = False
        self._taking = True
        self._rng = random.Random()

    # -- Channel interface ----------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._taking = True
        self._bucket = TokenBucket(self.config.mps, time.monotonic())
        for link in self._links:
            self._tasks.append(asyncio.create_task(self._supervise(link), name=f"{link!r} supervisor"))
            self._tasks.append(asyncio.create_task(self._pump(link), name=f"{link!r} pump"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name=f"smpp {self.config.name} timers"))

    async def stop(self) -> None:
        if not self._running:
            return
        self._taking = False
        self._running = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout
        while loop.time() < deadline and any(l.inflight and l.bound for l in self._links):
            await asyncio.sleep(0.02)
        closing = []
        for link in self._links:
            if link.transport is None:
                continue
            try:
                if not link.bound:
                    raise SmppProtocolError("not bound")
                pdu = link.conn.send(Unbind(link.conn.next_sequence()))
            except SmppError:
                link.abort()
                continue
            link.terminating = True
            link.transport.write(pdu)
            if link.closed is not None:
                closing.append(link.closed)
        if closing:
            await asyncio.wait(closing, timeout=1.0)
        for link in self._links:
            link.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for link in self._links:
            self._link_down(link)
        while self._queue:
            self.events.failed(self._queue.popleft().message_id, "STOPPED", True)

    def send(self, messages: list[Outbound]) -> None:
        if not self._taking:
            for m in messages:
                self.events.failed(m.message_id, "STOPPED", True)
            return
        self._queue.extend(messages)
        for link in self._links:
            if link.bound:
                link.wake.set()

    def queued(self) -> int:
        return len(self._queue) + self._open

    @property
    def connected(self) -> bool:
        return any(link.bound for link in self._links)

    # -- internals -------------------------------------------------------
    def _fail(self, pend: _Pending, status: str, retryable: bool) -> None:
        if pend.done:
            return
        pend.done = True
        self._open -= 1
        self.events.failed(pend.msg.message_id, status, retryable)

    def _link_down(self, link: _Link) -> None:
        """Everything on a link that is gone fails once, retryable."""
        if link.inflight:
            pending = [p for p, _, _ in link.inflight.values()]
            link.inflight.clear()
            for p in pending:
                self._fail(p, "LINK", True)
        while link.staged:
            self._fail(link.staged.popleft()[1], "LINK", True)

    def _stage(self, link: _Link, msg: Outbound) -> None:
        """Turn one Outbound into encoded submit_sm PDUs waiting on ``link``."""
        cfg = self.config
        try:
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
            pend = _Pending(msg, total)
            ref = self._ref
            if total > 1:
                self._ref = (ref + 1) & 0xFF
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
                parts.append((seq, pend, i, conn.send(SubmitSm(
                    seq, esm_class=esm, short_message=body, tlvs=tlvs, **common))))
        except SmppProtocolError:
            raise  # the link's state, not the message: the pump reconnects
        except Exception as e:
            # A message the segment rules or the codec cannot express never will be sent.
            log.error("message %d cannot be encoded: %s", msg.message_id, e)
            self.events.failed(msg.message_id, "ENCODE", False)
            return
        self._open += 1
        link.staged.extend(parts)

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
            done = _done_time(r.done_date)
        if not carrier_id or not stat:
            log.warning("channel %s: unreadable delivery receipt %r", self.config.name, ev.short_message[:80])
            return None
        return Report(self.config.id, str(carrier_id), stat, stat == "DELIVRD",
                      ev.source_addr, done, ack=ack)

    async def _pump(self, link: _Link) -> None:
        queue = self._queue
        bucket = self._bucket
        window = max(1, self.config.window)
        inflight = link.inflight
        staged = link.staged
        wake = link.wake
        while True:
            room = window - len(inflight)
            if room <= 0 or not link.bound or not self._taking or not (staged or queue):
                wake.clear()
                await wake.wait()
                continue
            now = time.monotonic()
            n = bucket.take(room, now)
            if n == 0:
                await asyncio.sleep(bucket.wait_time())
                continue
            out = []
            try:
                while len(out) < n:
                    if not staged:
                        if not queue:
                            break
                        self._stage(link, queue.popleft())
                        continue
                    seq, pend, idx, data = staged.popleft()
                    if pend.done:
                        continue  # a sibling part already failed the message
                    inflight[seq] = (pend, idx, now)
                    out.append(data)
            except SmppProtocolError as e:
                log.error("%r: cannot submit (%s); reconnecting", link, e)
                link.abort()
            if len(out) < n:
                bucket.give_back(n - len(out))
            if out and link.transport is not None:
                link.transport.write(b"".join(out))
            await asyncio.sleep(0)

    async def _supervise(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        delay = self._backoff_initial
        while self._running:
            link.prepare()
            try:
                await asyncio.wait_for(loop.create_connection(lambda: link, cfg.host, cfg.port),
                                       self._connect_timeout)
            except (OSError, asyncio.TimeoutError) as e:
                log.warning("%r: cannot connect to %s:%d: %s", link, cfg.host, cfg.port, e or "timeout")
            else:
                try:
                    ok = await asyncio.wait_for(asyncio.shield(link.handshake), self._connect_timeout)
                except asyncio.TimeoutError:
                    log.warning("%r: no bind_resp within %.0f s", link, self._connect_timeout)
                    ok = False
                    link.abort()
                if ok:
                    delay = self._backoff_initial
                    link.wake.set()
                await link.closed
            if not self._running:
                break
            # Jitter keeps many links from reconnecting in step.
            await asyncio.sleep(delay * self._rng.uniform(0.75, 1.25))
            delay = min(self._backoff_max, delay * 2)

    async def _housekeeping(self) -> None:
        tick = max(0.05, min(1.0, self._test_interval / 4, self._submit_timeout / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for link in self._links:
                try:
                    link.housekeep(now, self._submit_timeout, self._test_interval)
                except Exception:
                    log.exception("%r: housekeeping failed", link)
                    link.abort()
            for (phone, dest, _, _), text in self._reassembler.expire(now):
                self._deliver_mo(phone, dest, text)

    def _on_mo(self, ev: DeliverSm, ack, out: list[bytes], resp: bytes) -> None:
        content = ev.short_message
        payload = find_tlv(ev.tlvs, Tag.MESSAGE_PAYLOAD)
        if payload and not content:
            content = payload
        info = None
        if ev.esm_class & ESM_UDHI:
            info, content = split_udh(content)
            if info is not None:
                info = (info.ref, info.total, info.seq)
        else:
            total = find_tlv(ev.tlvs, Tag.SAR_TOTAL_SEGMENTS)
            if total:
                info = (find_tlv(ev.tlvs, Tag.SAR_MSG_REF_NUM, 0), total,
                        find_tlv(ev.tlvs, Tag.SAR_SEGMENT_SEQNUM, 1))
        phone, dest = ev.source_addr, ev.destination_addr
        if info is not None and info[1] > 1:
            ref, total, seq = info
            text = decode_payload(content, ev.data_coding, part=True)
            text = self._reassembler.add((phone, dest, ref, total), total, seq, text, time.monotonic())
            if text is None:
                # A held part is answered now; only the part that completes
                # the message waits for the commit.
                out.append(resp)
                return
        else:
            text = decode_payload(content, ev.data_coding)
        self._deliver_mo(phone, dest, text, ack)

    def _deliver_mo(self, phone: str, dest: str, text: str, ack=None) -> None:
        self.events.mo(Inbound(self.config.id, phone=phone, dest=dest, text=text, ack=ack))
