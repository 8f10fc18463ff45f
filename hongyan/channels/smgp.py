"""SMGP 3.0 client channel: the SP side of China Telecom's SMS gateway (SMGW).

Built like :mod:`hongyan.channels.cmpp`: ``config.connections`` TCP links,
each logging in (Login, LoginMode 2 "transmit": submits out, reports and MO
in) and running a pump that moves messages from the shared queue onto the
wire, with at most ``config.window`` unanswered Submits per link and
``config.mps`` over all links together.

Long messages go as parts with a user data header in MsgContent and the
TP_udhi TLV set to 1; with the ``pk_tlvs`` option each part also carries the
PkTotal / PkNumber TLVs, which some provincial gateways want. A Submit_Resp
with Status 1 (system busy) or one of ``retry_statuses`` slows the channel
down and fails the message retryable; any other non-zero Status is final.

Reports are matched by the MsgID of the Submit_Resp (stored as 20 hex
digits, see :func:`hongyan.protocols.smgp.wire.msg_id_to_str`), and their
Deliver_Resp leaves only once the core has committed them. Long MO (TP_udhi
with a UDH, or PkTotal / PkNumber TLVs alone) is joined before the core sees
it.

Options (``config.options``; times in seconds): ``active_test_interval``
(30), ``submit_timeout`` (30), ``stop_timeout`` (3), ``connect_timeout`` (10),
``reconnect_initial`` (0.5), ``reconnect_max`` (30), ``mo_timeout`` (300);
``pk_tlvs`` (false); ``retry_statuses`` (extra Status values meaning "slow
down", e.g. "75,76"); ``priority`` (0-3), ``fee_type`` ("00"), ``fee_code``,
``fixed_fee``, ``valid_time``, ``charge_term_id``, passed into every Submit;
``msg_src`` (the SP code, sent as the MsgSrc TLV when set).
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
from hongyan.protocols.smgp import tlv as smgp_tlv
from hongyan.protocols.smgp.connection import Connection
from hongyan.protocols.smgp.constants import DELIVER, V30, LoginMode, MsgFormat, Status
from hongyan.protocols.smgp.errors import SmgpError, SmgpProtocolError
from hongyan.protocols.smgp.events import (
    ActiveTest, ActiveTestResp, Deliver, DeliverResp, Exit, ExitResp, Login, LoginResp, Submit,
    SubmitResp,
)
from hongyan.protocols.smgp.tlv import Tag, Tlv
from hongyan.protocols.smgp.wire import authenticator_client, msg_id_to_str, timestamp_now

log = logging.getLogger(__name__)

# Submit_Resp Status values that mean "too much right now": slow down and retry.
RETRY_STATUSES = frozenset({Status.SYSTEM_BUSY})

# Login_Resp Status values, for log lines a person can act on.
LOGIN_STATUS = {
    Status.SYSTEM_BUSY: "gateway busy",
    Status.TOO_MANY_CONNECTIONS: "too many connections for this account",
    Status.BAD_STRUCTURE: "bad message structure",
    Status.BAD_IP_ADDRESS: "this address is not allowed for the account",
    Status.AUTH_FAILED: "authentication failed (account or shared secret)",
    Status.VERSION_TOO_HIGH: "version too high",
}

_NO_MSG_ID = bytes(10)
_SUBMIT_TEXT_OPTIONS = ("fee_type", "fee_code", "fixed_fee", "valid_time", "charge_term_id")


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _int_list(value) -> list[int]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = value.replace(" ", "").split(",")
    if isinstance(value, int):
        value = [value]
    return [int(v) for v in value if str(v) != ""]


class _Pending:
    """One Outbound on its way: which parts the gateway has accepted so far."""

    __slots__ = ("msg", "ids", "left", "done")

    def __init__(self, msg: Outbound, parts: int) -> None:
        self.msg = msg
        self.ids = [""] * parts
        self.left = parts
        self.done = False


def _done_time(text: str) -> datetime | None:
    # done_date is YYMMDDhhmm; some gateways append seconds.
    try:
        return datetime(2000 + int(text[0:2]), int(text[2:4]), int(text[4:6]),
                        int(text[6:8]), int(text[8:10]), int(text[10:12] or 0))
    except (ValueError, IndexError):
        return None


class _Link(asyncio.Protocol):
    """One TCP connection slot. The same object serves each reconnect in turn."""

    def __init__(self, channel: SmgpChannel, index: int) -> None:
        self.ch = channel
        self.index = index
        self.wake = asyncio.Event()
        self.inflight: dict[int, tuple[_Pending, int, float]] = {}
        self.staged: deque[tuple[int, _Pending, int, bytes]] = deque()
        self.transport: asyncio.Transport | None = None
        self.bound = False
        self.conn = Connection("client")
        self.closed: asyncio.Future | None = None
        self.handshake: asyncio.Future | None = None
        self.last_rx = 0.0
        self.last_test = 0.0
        self.tests_unanswered = 0
        self.terminating = False
        self._acks: list[bytes] = []
        self._ack_flush = False
        self._handlers = {
            SubmitResp: self._on_submit_resp,
            Deliver: self._on_deliver,
            ActiveTest: self._on_active_test,
            ActiveTestResp: self._on_active_test_resp,
            LoginResp: self._on_login_resp,
            Exit: self._on_exit,
            ExitResp: self._on_exit_resp,
        }

    def __repr__(self) -> str:
        return f"<smgp link {self.ch.config.name}#{self.index}>"

    # -- lifecycle -------------------------------------------------------
    def prepare(self) -> None:
        loop = asyncio.get_running_loop()
        self.conn = Connection("client", V30)
        self.closed = loop.create_future()
        self.handshake = loop.create_future()
        self.bound = False
        self.terminating = False
        self.tests_unanswered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        cfg = self.ch.config
        self.last_rx = self.last_test = time.monotonic()
        ts = timestamp_now()
        try:
            data = self.conn.send(Login(self.conn.next_sequence(), cfg.username,
                                        authenticator_client(cfg.username, cfg.password, ts),
                                        LoginMode.TRANSMIT, ts, V30))
        except (SmgpError, ValueError, UnicodeError) as e:
            # A ClientID no gateway can accept (over 8 ASCII octets): say so,
            # and let the back-off keep the retries slow.
            log.error("%r: cannot build Login for account %r: %s", self, cfg.username, e)
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
        handlers = self._handlers
        out: list[bytes] = []
        try:
            conn.receive_data(data)
            while True:
                try:
                    events = conn.events()
                except SmgpError as e:
                    if e.fatal:
                        raise
                    # One bad PDU: skip it and read on. A Deliver we cannot read
                    # is refused so the gateway does not wait for it.
                    log.log(logging.INFO if self.terminating else logging.WARNING,
                            "%r: skipped a PDU the gateway sent: %s", self, e)
                    if e.request_id == DELIVER and e.sequence_id is not None:
                        try:
                            out.append(conn.send(DeliverResp(e.sequence_id, _NO_MSG_ID,
                                                             Status.BAD_STRUCTURE)))
                        except SmgpError:
                            pass
                    continue
                if not events:
                    break
                for ev in events:
                    if self.transport is None or self.transport.is_closing():
                        return  # a handler closed the link; the rest is moot
                    handler = handlers.get(type(ev))
                    if handler is None:
                        log.debug("%r: ignoring %s", self, type(ev).__name__)
                        continue
                    try:
                        handler(ev, out)
                    except SmgpError:
                        raise
                    except Exception:
                        # A failing callback must not take the link down with it.
                        log.exception("%r: error handling %s", self, type(ev).__name__)
        except SmgpError as e:
            log.error("%r: gateway sent bad bytes (%s); reconnecting", self, e)
            self.abort()
            return
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        self.wake.set()

    def _on_login_resp(self, ev: LoginResp, out: list[bytes]) -> None:
        if ev.status != 0:
            log.error("%r: gateway refused Login: status %d (%s)", self, ev.status,
                      LOGIN_STATUS.get(ev.status, "other error"))
            if self.handshake is not None and not self.handshake.done():
                self.handshake.set_result(False)
            self.abort()
            return
        self.bound = True
        log.info("%r logged in to %s:%d", self, self.ch.config.host, self.ch.config.port)
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_result(True)

    def _on_submit_resp(self, ev: SubmitResp, out: list[bytes]) -> None:
        entry = self.inflight.pop(ev.sequence_id, None)
        if entry is None:
            return  # answered after its timeout: the message was already failed
        pend, idx, _ = entry
        if pend.done:
            return
        ch = self.ch
        status = ev.status
        if status == 0:
            pend.ids[idx] = msg_id_to_str(ev.msg_id)
            pend.left -= 1
            if pend.left == 0:
                pend.done = True
                ch._open -= 1
                ch.events.sent(pend.msg.message_id, list(pend.ids))
        elif status in ch._retry_statuses:
            ch._bucket.slow_down(time.monotonic())
            ch._fail(pend, f"SMGP:{status}", True)
        else:
            ch._fail(pend, f"SMGP:{status}", False)

    def _on_deliver(self, ev: Deliver, out: list[bytes]) -> None:
        ch = self.ch
        resp = self.conn.send(DeliverResp(ev.sequence_id, ev.msg_id, 0))
        r = ev.report
        if r is not None:
            # The gateway hears "got it" only once the core has committed the
            # report: if we die before that, it delivers the report again.
            ch.events.report(Report(ch.config.id, msg_id_to_str(r.msg_id), r.stat,
                                    r.stat == "DELIVRD", ev.src_term_id, _done_time(r.done_date),
                                    ack=self._ack_later(resp)))
        else:
            ch._on_mo(ev, self._ack_later(resp), out, resp)

    def _ack_later(self, resp: bytes):
        transport = self.transport

        def ack() -> None:
            # Only on the connection the Deliver came on: after a reconnect the
            # gateway has already queued it again.
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

    def _on_active_test(self, ev: ActiveTest, out: list[bytes]) -> None:
        out.append(self.conn.send(ActiveTestResp(ev.sequence_id)))

    def _on_active_test_resp(self, ev: ActiveTestResp, out: list[bytes]) -> None:
        self.tests_unanswered = 0

    def _on_exit(self, ev: Exit, out: list[bytes]) -> None:
        log.info("%r: gateway sent Exit", self)
        if self.transport is not None:
            self.transport.write(b"".join(out) + self.conn.send(ExitResp(ev.sequence_id)))
            out.clear()
            self.transport.close()

    def _on_exit_resp(self, ev: ExitResp, out: list[bytes]) -> None:
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
                log.warning("%r: 3 Active_Tests unanswered; reconnecting", self)
                self.abort()
                return
            self.last_test = now
            self.tests_unanswered += 1
            self.transport.write(self.conn.send(ActiveTest(self.conn.next_sequence())))


class SmgpChannel(Channel):
    """An SMGP 3.0 carrier connection, as many TCP links as configured."""

    def __init__(self, config: ChannelConfig, events: ChannelEvents) -> None:
        super().__init__(config, events)
        opt = config.options
        self._test_interval = float(opt.get("active_test_interval", 30))
        self._submit_timeout = float(opt.get("submit_timeout", 30))
        self._stop_timeout = float(opt.get("stop_timeout", 3))
        self._connect_timeout = float(opt.get("connect_timeout", 10))
        self._backoff_initial = float(opt.get("reconnect_initial", 0.5))
        self._backoff_max = float(opt.get("reconnect_max", 30))
        self._pk_tlvs = _flag(opt.get("pk_tlvs", False))
        try:
            self._retry_statuses = RETRY_STATUSES | set(_int_list(opt.get("retry_statuses")))
        except ValueError:
            raise ValueError(f"channel {config.name!r}: retry_statuses must be Status numbers, "
                             f"e.g. \"75,76\"") from None
        self._submit_extra: dict = {k: str(opt[k]) for k in _SUBMIT_TEXT_OPTIONS if k in opt}
        if "priority" in opt:
            self._submit_extra["priority"] = int(opt["priority"])
        self._extra_tlvs: tuple[Tlv, ...] = ()
        if opt.get("msg_src"):
            self._extra_tlvs = (Tlv(Tag.MSG_SRC, str(opt["msg_src"])),)
        self._queue: deque[Outbound] = deque()
        self._open = 0            # messages taken from the queue and not yet resolved
        self._ref = random.randrange(256)
        self._reassembler = Reassembler(float(opt.get("mo_timeout", 300)))
        self._bucket = TokenBucket(config.mps, time.monotonic())
        self._links = [_Link(self, i) for i in range(max(1, config.connections))]
        self._tasks: list[asyncio.Task] = []
        self._running = False
        self._taking = True       # False once stopped; before start() messages just wait
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
        self._tasks.append(asyncio.create_task(self._housekeeping(), name=f"smgp {self.config.name} timers"))

    async def stop(self) -> None:
        if not self._running:
            return
        self._taking = False
        self._running = False     # supervisors stop reconnecting
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
                    raise SmgpProtocolError("not logged in")
                pdu = link.conn.send(Exit(link.conn.next_sequence()))
            except SmgpError:
                link.abort()  # not logged in, or the gateway already ended the session
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
        """Turn one Outbound into encoded Submits waiting on ``link``."""
        cfg = self.config
        try:
            p = plan(msg.text)
            chunks = p.chunks
            if not chunks:
                raise ValueError("empty text")
            fmt = MsgFormat.UCS2 if p.encoding == "ucs2" else MsgFormat.ASCII
            total = len(chunks)
            pend = _Pending(msg, total)
            conn = link.conn
            common = dict(dest_term_ids=(msg.phone,), need_report=1 if msg.need_report else 0,
                          service_id=cfg.service_id, msg_format=int(fmt),
                          src_term_id=msg.source or cfg.access_code, **self._submit_extra)
            ref = self._ref
            if total > 1:
                self._ref = (ref + 1) & 0xFF
            parts = []
            for i, chunk in enumerate(chunks):
                body = encode_chunk(chunk, p.encoding)
                tlvs = self._extra_tlvs
                if total > 1:
                    body = concat_udh(ref, total, i + 1) + body
                    tlvs = (Tlv(Tag.TP_UDHI, 1),) + tlvs
                    if self._pk_tlvs:
                        tlvs += (Tlv(Tag.PK_TOTAL, total), Tlv(Tag.PK_NUMBER, i + 1))
                seq = conn.next_sequence()
                parts.append((seq, pend, i, conn.send(Submit(seq, msg_content=body, tlvs=tlvs,
                                                             **common))))
        except SmgpProtocolError:
            raise  # the link's state, not the message: the pump reconnects
        except Exception as e:
            # A message the segment rules or the codec cannot express never will be sent.
            log.error("message %d cannot be encoded: %s", msg.message_id, e)
            self.events.failed(msg.message_id, "ENCODE", False)
            return
        self._open += 1
        link.staged.extend(parts)

    async def _pump(self, link: _Link) -> None:
        queue = self._queue
        bucket = self._bucket
        window = max(1, self.config.window)
        inflight = link.inflight
        staged = link.staged
        wake = link.wake
        monotonic = time.monotonic
        while True:
            room = window - len(inflight)
            if room <= 0 or not link.bound or not self._taking or not (staged or queue):
                wake.clear()
                await wake.wait()
                continue
            now = monotonic()
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
            except SmgpProtocolError as e:
                log.error("%r: cannot submit (%s); reconnecting", link, e)
                link.abort()
            if len(out) < n:
                bucket.give_back(n - len(out))
            if out and link.transport is not None:
                link.transport.write(b"".join(out))
            # Let the loop read answers before filling the window again.
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
                    log.warning("%r: no Login_Resp within %.0f s", link, self._connect_timeout)
                    ok = False
                    link.abort()
                if ok:
                    delay = self._backoff_initial
                    link.wake.set()
                await link.closed
            if not self._running:
                break
            # Jitter keeps many links (and many SPs) from reconnecting in step.
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
            # Parts that never completed still reach the core, as far as they go.
            for (phone, dest, _, _), text in self._reassembler.expire(now):
                self._deliver_mo(phone, dest, text)

    def _on_mo(self, ev: Deliver, ack, out: list[bytes], resp: bytes) -> None:
        content = ev.msg_content
        tlvs = ev.tlvs
        key = info = None
        if smgp_tlv.get(tlvs, Tag.TP_UDHI) == 1:
            udh, content = split_udh(content)
            if udh is not None:
                key, info = udh.ref, (udh.total, udh.seq)
        else:
            total = smgp_tlv.get(tlvs, Tag.PK_TOTAL)
            if isinstance(total, int) and total > 1:
                # No reference number without a UDH: parts of one phone's long
                # MO to one number are told apart by their count alone.
                seq = smgp_tlv.get(tlvs, Tag.PK_NUMBER, 1)
                key, info = "pk", (total, seq if isinstance(seq, int) else 1)
        phone, dest = ev.src_term_id, ev.dest_term_id
        if info is not None and info[0] > 1:
            total, seq = info
            text = decode_payload(content, ev.msg_format, part=True)
            text = self._reassembler.add((phone, dest, key, total), total, seq, text, time.monotonic())
            if text is None:
                # A held part is answered now; only the part that completes
                # the message waits for the commit.
                out.append(resp)
                return
        else:
            text = decode_payload(content, ev.msg_format)
        self._deliver_mo(phone, dest, text, ack)

    def _deliver_mo(self, phone: str, dest: str, text: str, ack=None) -> None:
        self.events.mo(Inbound(self.config.id, phone=phone, dest=dest, text=text, ack=ack))
