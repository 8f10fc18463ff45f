"""The link machinery every windowed carrier channel shares (CMPP, SMPP, SGIP, SMGP).

A carrier channel is ``config.connections`` TCP links to one gateway. Each
link logs in and then runs a pump that moves messages from the channel's
shared queue onto the wire. Two limits hold at all times: at most
``config.window`` unanswered submits per link, and ``config.mps`` submits per
second over all links together (:class:`~hongyan.channels.throttle.TokenBucket`).
A link that goes away fails everything on it once, retryable; a supervisor
reconnects it with jittered exponential back-off until the channel stops.

The hot path is an :class:`asyncio.Protocol` (no streams): everything ready
in one loop iteration goes out in a single ``transport.write``, and every
answer in one ``data_received`` chunk is handled before the pump runs again.

A protocol module subclasses three things and supplies only login, PDU
encoding/decoding and what each answer means:

:class:`PduLink` — one TCP connection read through a sans-I/O codec.
    Class attributes ``codec_error`` (the codec's base exception) and
    ``state_error`` (its "not allowed in this state" exception), ``peer``
    (how log lines name the other side). Methods to supply: ``new_codec()``
    (a fresh codec ``Connection``) and, optionally, ``answer_bad_pdu(err)``
    (bytes refusing one PDU the codec skipped, or None). ``self._handlers``
    maps event types to ``handler(event, out)``; a handler appends answers to
    ``out`` (written together after the chunk) or keeps one for later with
    ``self.ack_later(resp)``, which returns the ``ack`` callable of
    :class:`~hongyan.channels.base.Report` / ``Inbound``: the carrier hears
    "got it" only once the core has committed what it sent.

:class:`WindowedLink` — a :class:`PduLink` the channel dials, with a window.
    Supply ``login()`` (the bytes that log in; raise ``codec_error`` or
    ``ValueError`` for a configuration no gateway can accept), ``logout()``
    (the bytes that end a bound session; raise ``codec_error`` if the
    session has already ended)
    and ``keepalive()`` (an idle-link probe, or None if the protocol has
    none). The login answer's handler calls ``logged_in()`` or
    ``login_refused()``. A submit answer's handler pops its entry from
    ``self.inflight`` by sequence number and calls ``self.ch.part_accepted``
    or ``self.ch.part_refused``.

:class:`LinkChannel` — the :class:`~hongyan.channels.base.Channel`.
    Class attributes ``link_class``, ``protocol`` (for names and logs) and
    ``keepalive_option`` (the option naming the keepalive interval). Supply
    ``encode(link, msg)``: the submits for one message as
    ``[(sequence, pdu_bytes), ...]`` in part order, built with the link's
    codec; raise ``link.state_error`` if the link cannot take them (it is
    reconnected) or anything else if the message can never be sent (it fails
    alone, ``ENCODE``, final). Received MO parts go to ``take_mo``, which joins
    long messages before they reach the core.

Options every such channel reads from ``config.options`` (seconds):
``submit_timeout`` (30), ``stop_timeout`` (3), ``connect_timeout`` (10),
``reconnect_initial`` (0.5), ``reconnect_max`` (30), ``mo_timeout`` (300, how
long a long MO's parts wait for each other) and the keepalive interval (30).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from datetime import datetime
from typing import Callable, Hashable

from hongyan.channels.base import Channel, ChannelConfig, ChannelEvents, Inbound, Outbound
from hongyan.channels.throttle import TokenBucket
from hongyan.domain.segments import Reassembler, decode_payload, split_udh
from hongyan.protocols.framing import pump

log = logging.getLogger(__name__)

Concat = tuple[int, int, int]   # (reference, total parts, this part's number)


def parse_done_time(text: str) -> datetime | None:
    """A report's done time, YYMMDDhhmm, with seconds when the gateway adds them."""
    try:
        return datetime(2000 + int(text[0:2]), int(text[2:4]), int(text[4:6]),
                        int(text[6:8]), int(text[8:10]), int(text[10:12] or 0))
    except (ValueError, IndexError):
        return None


def udh_concat(content: bytes) -> tuple[Concat | None, bytes]:
    """Split a concatenation UDH off a TP_udhi payload: ((ref, total, seq) or None, text)."""
    info, rest = split_udh(content)
    if info is None:
        return None, rest
    return (info.ref, info.total, info.seq), rest


class Pending:
    """One Outbound on its way: which parts the gateway has accepted so far."""

    __slots__ = ("msg", "ids", "left", "done")

    def __init__(self, msg: Outbound, parts: int) -> None:
        self.msg = msg
        self.ids = [""] * parts
        self.left = parts
        self.done = False


# inflight[sequence] = (pending message, part index, monotonic time written)
Entry = tuple[Pending, int, float]


class QueueIntake:
    """``send`` and the stop-time drain of every channel that queues messages itself.

    The class using it keeps ``_queue`` (a deque of Outbound), ``_taking``
    (False once stopped) and ``events``, and says in ``_wake_senders`` who
    should look at the queue now.
    """

    _queue: deque[Outbound]
    _taking: bool
    events: ChannelEvents

    def send(self, messages: list[Outbound]) -> None:
        if not self._taking:
            for m in messages:
                self.events.failed(m.message_id, "STOPPED", True)
            return
        self._queue.extend(messages)
        self._wake_senders()

    def _wake_senders(self) -> None:
        raise NotImplementedError

    def _fail_queued(self) -> None:
        """Messages never taken off the queue go back to the dispatcher."""
        while self._queue:
            self.events.failed(self._queue.popleft().message_id, "STOPPED", True)


class PduLink(asyncio.Protocol):
    """One TCP connection read through a codec; handlers answer its events."""

    codec_error: type[Exception] = Exception
    state_error: type[Exception] = Exception
    peer = "gateway"

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.conn = None
        self.last_rx = 0.0
        self.terminating = False
        self._handlers: dict[type, Callable[[object, list[bytes]], None]] = {}
        self._acks: list[bytes] = []
        self._ack_flush = False

    def new_codec(self):
        raise NotImplementedError

    def answer_bad_pdu(self, err: Exception) -> bytes | None:
        """The answer refusing one PDU the codec skipped, so the peer does not wait for it."""
        return None

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def received(self) -> None:
        """Called for every chunk read, before it is parsed."""
        self.last_rx = time.monotonic()

    def data_received(self, data: bytes) -> None:
        self.received()
        out: list[bytes] = []
        try:
            # Events after a handler closed the link are not handled.
            pump(self.conn, data, self.codec_error, is_open=self._is_open,
                 handle=lambda ev: self._dispatch(ev, out), on_bad=lambda e: self._skipped(e, out))
        except self.codec_error as e:
            log.error("%r: %s sent bad bytes (%s); closing", self, self.peer, e)
            self.abort()
            return
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        self.after_receive()

    def _is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def _dispatch(self, ev, out: list[bytes]) -> None:
        handler = self._handlers.get(type(ev))
        if handler is None:
            log.debug("%r: ignoring %s", self, type(ev).__name__)
            return
        try:
            handler(ev, out)
        except self.codec_error:
            raise
        except Exception:
            # A failing callback must not take the link down with it.
            log.exception("%r: error handling %s", self, type(ev).__name__)

    def _skipped(self, e: Exception, out: list[bytes]) -> None:
        # One bad PDU: skip it (refused, if it was a request) and read on.
        # While our logout is out, crossing requests land here too; the peer
        # sends them again on the next login.
        log.log(logging.INFO if self.terminating else logging.WARNING,
                "%r: skipped a PDU the %s sent: %s", self, self.peer, e)
        answer = self.answer_bad_pdu(e)
        if answer:
            out.append(answer)

    def after_receive(self) -> None:
        """Called after a chunk was handled and its answers written."""

    def close_with(self, out: list[bytes], last: bytes) -> None:
        """Write what is pending plus ``last`` (a logout answer) and close."""
        if self.transport is not None:
            self.transport.write(b"".join(out) + last)
            out.clear()
            self.transport.close()

    def ack_later(self, resp: bytes) -> Callable[[], None]:
        transport = self.transport

        def ack() -> None:
            # Only on the connection the request came on: after a reconnect
            # the peer has already queued it again.
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


class WindowedLink(PduLink):
    """One dialled TCP connection slot. The same object serves each reconnect in turn."""

    keepalive_name = "keepalives"

    def __init__(self, channel: LinkChannel, index: int) -> None:
        super().__init__()
        self.ch = channel
        self.index = index
        self.wake = asyncio.Event()
        self.inflight: dict[Hashable, Entry] = {}
        self.staged: deque[tuple[Hashable, Pending, int, bytes]] = deque()
        self.bound = False
        self.closed: asyncio.Future | None = None
        self.handshake: asyncio.Future | None = None
        self.last_test = 0.0
        self.tests_unanswered = 0
        self.conn = self.new_codec()

    def __repr__(self) -> str:
        return f"<{self.ch.protocol} link {self.ch.config.name}#{self.index}>"

    # -- what a protocol supplies -----------------------------------------
    def login(self) -> bytes:
        raise NotImplementedError

    def logout(self) -> bytes:
        raise NotImplementedError

    def keepalive(self) -> bytes | None:
        return None

    # -- lifecycle -------------------------------------------------------
    def prepare(self) -> None:
        loop = asyncio.get_running_loop()
        self.conn = self.new_codec()
        self.closed = loop.create_future()
        self.handshake = loop.create_future()
        self.bound = False
        self.terminating = False
        self.tests_unanswered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last_rx = self.last_test = time.monotonic()
        try:
            data = self.login()
        except (self.codec_error, ValueError) as e:
            # A configuration no gateway can accept (a login name too long for
            # its field): say so, and let the back-off keep the retries slow.
            log.error("%r: cannot build the login for %r: %s", self, self.ch.config.username, e)
            transport.abort()  # type: ignore[attr-defined]
            return
        transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        was_bound = self.bound
        self.bound = False
        self.transport = None
        if was_bound:
            if self.terminating:
                log.info("%r closed", self)
            else:
                log.warning("%r lost%s", self, f": {exc}" if exc else "")
        self.ch._link_down(self)
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_result(False)
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)
        self.wake.set()

    def logged_in(self) -> None:
        self.bound = True
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_result(True)

    def login_refused(self) -> None:
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_result(False)
        self.abort()

    # -- receiving -------------------------------------------------------
    def received(self) -> None:
        self.last_rx = time.monotonic()
        self.tests_unanswered = 0

    def after_receive(self) -> None:
        self.wake.set()   # answers opened the window

    def keepalive_answered(self) -> None:
        self.tests_unanswered = 0

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
            probe = self.keepalive()
            if probe is None:
                return
            if self.tests_unanswered >= 3:
                log.warning("%r: 3 %s unanswered; reconnecting", self, self.keepalive_name)
                self.abort()
                return
            self.last_test = now
            self.tests_unanswered += 1
            self.transport.write(probe)


class LinkChannel(QueueIntake, Channel):
    """A carrier connection over as many windowed links as configured."""

    link_class: type[WindowedLink] = WindowedLink
    protocol = "link"
    keepalive_option = "keepalive_interval"

    def __init__(self, config: ChannelConfig, events: ChannelEvents) -> None:
        super().__init__(config, events)
        opt = config.options
        self._test_interval = float(opt.get(self.keepalive_option, 30))
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
        self._tasks: list[asyncio.Task] = []
        self._running = False
        self._taking = True       # False once stopped; before start() messages just wait
        self._rng = random.Random()
        self._last_done: tuple[str, datetime | None] = ("", None)
        self._links = [self.link_class(self, i) for i in range(max(1, config.connections))]

    # -- what a protocol supplies -----------------------------------------
    def encode(self, link: WindowedLink, msg: Outbound) -> list[tuple[Hashable, bytes]]:
        raise NotImplementedError

    async def on_start(self) -> None:
        """Called once the links are starting (e.g. to open a listener)."""

    async def on_stop(self) -> None:
        """Called once the links are closed and everything on them resolved."""

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
        self._tasks.append(asyncio.create_task(self._housekeeping(),
                                               name=f"{self.protocol} {self.config.name} timers"))
        await self.on_start()

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
            if not link.bound:
                link.abort()
                continue
            try:
                pdu = link.logout()
            except link.codec_error:
                link.abort()  # the gateway already ended the session
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
        self._fail_queued()
        await self.on_stop()

    def _wake_senders(self) -> None:
        for link in self._links:
            if link.bound:
                link.wake.set()

    def queued(self) -> int:
        return len(self._queue) + self._open

    @property
    def connected(self) -> bool:
        return any(link.bound for link in self._links)

    # -- answers ---------------------------------------------------------
    def part_accepted(self, entry: Entry, carrier_id: str) -> None:
        """The gateway took one part; the message is sent once all parts are."""
        pend, idx, _ = entry
        if pend.done:
            return
        pend.ids[idx] = carrier_id
        pend.left -= 1
        if pend.left == 0:
            pend.done = True
            self._open -= 1
            self.events.sent(pend.msg.message_id, list(pend.ids))

    def part_refused(self, entry: Entry, status: str, retryable: bool, busy: bool = False) -> None:
        """The gateway refused one part, so the message; ``busy`` also halves the send rate."""
        if busy:
            self._bucket.slow_down(time.monotonic())
        self._fail(entry[0], status, retryable)

    def _fail(self, pend: Pending, status: str, retryable: bool) -> None:
        if pend.done:
            return
        pend.done = True
        self._open -= 1
        self.events.failed(pend.msg.message_id, status, retryable)

    def _link_down(self, link: WindowedLink) -> None:
        """Everything on a link that is gone fails once, retryable."""
        if link.inflight:
            pending = [p for p, _, _ in link.inflight.values()]
            link.inflight.clear()
            for p in pending:
                self._fail(p, "LINK", True)
        while link.staged:
            self._fail(link.staged.popleft()[1], "LINK", True)

    # -- reports and MO ----------------------------------------------------
    def done_at(self, text: str) -> datetime | None:
        # Reports arrive in runs with the same minute; parse each minute once.
        last = self._last_done
        if last[0] == text:
            return last[1]
        value = parse_done_time(text)
        self._last_done = (text, value)
        return value

    def next_ref(self) -> int:
        """The concatenation reference for the next long message."""
        ref = self._ref
        self._ref = (ref + 1) & 0xFF
        return ref

    def take_mo(self, phone: str, dest: str, content: bytes, coding: int,
                concat: Concat | None, ack: Callable[[], None] | None) -> bool:
        """Hand an MO (or one part of a long one) towards the core.

        Returns False for a part held in memory until its message is whole:
        the caller answers that part now, and only the part that completes
        the message waits for the commit (``ack``).
        """
        if concat is not None and concat[1] > 1:
            ref, total, seq = concat
            text = decode_payload(content, coding, part=True)
            text = self._reassembler.add((phone, dest, ref, total), total, seq, text, time.monotonic())
            if text is None:
                return False
        else:
            text = decode_payload(content, coding)
        self._deliver_mo(phone, dest, text, ack)
        return True

    def _deliver_mo(self, phone: str, dest: str, text: str, ack=None) -> None:
        self.events.mo(Inbound(self.config.id, phone=phone, dest=dest, text=text, ack=ack))

    # -- the loops -------------------------------------------------------
    def _stage(self, link: WindowedLink, msg: Outbound) -> None:
        """Turn one Outbound into encoded submits waiting on ``link``."""
        try:
            parts = self.encode(link, msg)
            if not parts:
                raise ValueError("no parts")
        except link.state_error:
            raise  # the link's state, not the message: the pump reconnects
        except Exception as e:
            # A message the segment rules or the codec cannot express never will be sent.
            log.error("message %d cannot be encoded: %s", msg.message_id, e)
            self.events.failed(msg.message_id, "ENCODE", False)
            return
        pend = Pending(msg, len(parts))
        self._open += 1
        link.staged.extend((seq, pend, i, data) for i, (seq, data) in enumerate(parts))

    async def _pump(self, link: WindowedLink) -> None:
        queue = self._queue
        bucket = self._bucket
        window = max(1, self.config.window)
        inflight = link.inflight
        staged = link.staged
        wake = link.wake
        monotonic = time.monotonic
        state_error = link.state_error
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
            except state_error as e:
                log.error("%r: cannot submit (%s); reconnecting", link, e)
                link.abort()
            if len(out) < n:
                bucket.give_back(n - len(out))
            if out and link.transport is not None:
                link.transport.write(b"".join(out))
            # Let the loop read answers before filling the window again.
            await asyncio.sleep(0)

    async def _supervise(self, link: WindowedLink) -> None:
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
                    log.warning("%r: no login answer within %.0f s", link, self._connect_timeout)
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
