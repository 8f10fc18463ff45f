"""What the CMPP and SMPP servers for customers share, whatever the protocol.

``SessionServer`` listens, keeps the live sessions, counts them per account
(a login beyond ``max_sessions`` is refused), and closes sessions that have
sent nothing for ``idle_timeout`` seconds. ``Session`` is the asyncio side of
one customer connection: it binds to the outbox once logged in, keeps the
window of unanswered report/MO PDUs, gives them back when it closes, and
stops reading (and stops being offered events) while the peer is not reading
what we write, so a stuck customer costs a bounded amount of memory.

A protocol module subclasses ``SessionServer`` (``make_session``) and
``Session``, which supplies ``data_received`` (its codec) and ``encode_event``
(one outbox item as the PDUs that carry it).
"""
from __future__ import annotations

import asyncio
import logging
import time

from hongyan.core.accounts import Account

from .outbox import Outbox

log = logging.getLogger(__name__)

WINDOW = 16                      # unanswered report/MO PDUs per session
MAX_SESSIONS_PER_ACCOUNT = 4
IDLE_TIMEOUT = 180.0             # seconds without a PDU from the customer
# Write buffer above which the peer counts as not reading: stop reading its
# requests and stop offering it events until the buffer drains to LOW_WATER.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# Requests being accepted at once per session; past this the session stops
# reading until some are answered (TCP then pushes back on the customer).
MAX_IN_FLIGHT = 256
SWEEP_EVERY = 5.0                # seconds between looks for idle sessions and other housekeeping


class SessionServer:
    """A TCP listener whose connections are the ``Session`` objects ``make_session`` makes."""

    name = "session"

    def __init__(self, outbox: Outbox, *, host: str = "127.0.0.1", port: int = 0,
                 max_sessions: int = MAX_SESSIONS_PER_ACCOUNT, idle_timeout: float = IDLE_TIMEOUT,
                 window: int = WINDOW) -> None:
        self.outbox = outbox
        self.host = host
        self._port = port
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.window = window
        self.sessions: set[Session] = set()
        self._bound: dict[int, int] = {}          # account id -> bound sessions
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task | None = None
        self._acks: list[int] = []
        self._acks_flushing = False
        self._background: set[asyncio.Task] = set()
        self.logins = 0
        self.refused_logins = 0

    # -- the protocol's part ----------------------------------------------------
    def make_session(self) -> Session:
        raise NotImplementedError

    def tick(self, now: float) -> None:
        """Periodic housekeeping of the server (``now`` is time.monotonic()); nothing by default."""

    # -- listening ------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self.make_session, self.host, self._port)
        except OSError as e:
            raise OSError(e.errno, f"the {self.name} server cannot listen on {self.host}:{self._port}: "
                                   f"{e.strerror or e} (change its port, or turn it off)") from e
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("%s server listening on %s:%d", self.name, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for s in list(self.sessions):
            s.close()
        # connection_lost runs on a later turn of the loop; it hands back what
        # each session had unanswered, which flush() below then writes.
        for _ in range(100):
            if not self.sessions:
                break
            await asyncio.sleep(0.01)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        # Answers already taken from customers (acks, releases) reach the database
        # before the writer stops.
        await self.flush()

    async def finish_requests(self, timeout: float) -> None:
        """Stop reading every session and wait (up to ``timeout`` s) for the requests
        being accepted, so their answers are written before the sessions close: a
        customer then never misses the answer to a message that was accepted."""
        for s in list(self.sessions):
            s.stop_reading()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            pending = [t for s in list(self.sessions) for t in s.tasks]
            if not pending:
                break
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        await asyncio.sleep(0)              # let the answers' sends run

    async def flush(self) -> None:
        while self._acks or self._background:
            if self._acks:
                await self._flush_acks()
            pending = list(self._background)
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    def stats(self) -> dict:
        return {"host": self.host, "port": self.port, "sessions": len(self.sessions),
                "bound": sum(self._bound.values()), "logins": self.logins,
                "refused_logins": self.refused_logins}

    # -- accounts -------------------------------------------------------------
    def bound_sessions(self, account_id: int) -> int:
        return self._bound.get(account_id, 0)

    def has_room_for(self, account_id: int) -> bool:
        return self._bound.get(account_id, 0) < self.max_sessions

    def _count(self, account_id: int, delta: int) -> None:
        n = self._bound.get(account_id, 0) + delta
        if n > 0:
            self._bound[account_id] = n
        else:
            self._bound.pop(account_id, None)

    # -- answers to the outbox, batched ---------------------------------------
    def ack(self, event_id: int) -> None:
        """The customer acknowledged this event: done, in one write with the others of this turn."""
        self._acks.append(event_id)
        if not self._acks_flushing:
            self._acks_flushing = True
            self.spawn(self._flush_acks())

    async def _flush_acks(self) -> None:
        # Yield once so every ack read from the sockets in this turn of the loop
        # joins the same UPDATE.
        await asyncio.sleep(0)
        ids, self._acks = self._acks, []
        self._acks_flushing = False
        if ids:
            await self.outbox.done(ids)

    def release(self, event_ids: list[int]) -> None:
        """Hand events back to the outbox (not sent, or sent and never answered)."""
        if event_ids:
            self.spawn(self.outbox.release(event_ids))

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s server: background task failed", self.name, exc_info=task.exception())

    # -- idle sessions --------------------------------------------------------
    async def _sweep(self) -> None:
        idle = self.idle_timeout if self.idle_timeout and self.idle_timeout > 0 else None
        every = max(0.05, min(idle / 4, SWEEP_EVERY)) if idle else SWEEP_EVERY
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            try:
                self.tick(now)
            except Exception:  # noqa: BLE001 - housekeeping must not stop the sweep
                log.exception("%s server: housekeeping failed", self.name)
            for s in list(self.sessions):
                if idle and s.last_seen < now - idle:
                    log.info("%s server: closing %s, silent for %.0f s", self.name, s.who(), idle)
                    s.idle_close()
                    continue
                try:
                    s.tick(now)
                except Exception:  # noqa: BLE001 - one session's housekeeping must not stop the others'
                    log.exception("%s server: housekeeping of %s failed", self.name, s.who())


class Session(asyncio.Protocol):
    """One customer connection. Subclasses read and write their protocol's PDUs."""

    def __init__(self, server: SessionServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.account: Account | None = None
        self.open = False
        self.last_seen = time.monotonic()
        # request sequence id -> outbox event id, for PDUs sent and not yet answered
        self.awaiting: dict[int, int] = {}
        self._pdus_left: dict[int, int] = {}     # event id -> its PDUs not yet answered
        self._offered_at: dict[int, float] = {}  # sequence id -> when it was sent
        self.in_flight = 0
        self._write_paused = False
        self._read_paused = False
        self._hold_until = 0.0
        self.tasks: set[asyncio.Task] = set()
        self._out: list[bytes] = []             # written this turn of the loop, sent together
        self._stopping = False

    # -- what a protocol supplies ----------------------------------------------
    def encode_event(self, item: dict) -> tuple[list[int], bytes]:
        """One outbox item (a report or an MO) as PDUs: (their sequence ids, their bytes).

        An item may take several PDUs (a long MO as UDH parts); it is done when
        the customer has acknowledged every one of them.
        """
        raise NotImplementedError

    def tick(self, now: float) -> None:
        """Periodic housekeeping (``now`` is time.monotonic()); nothing by default."""

    def release_late(self, now: float, timeout: float) -> int:
        """Give back the events whose PDUs went unanswered for ``timeout`` seconds on this
        live session, so they are offered again and their window slots free up."""
        late = [seq for seq, at in self._offered_at.items() if now - at >= timeout]
        released = 0
        for seq in late:
            if seq in self.awaiting:
                self.answered(seq, False)
                released += 1
            self._offered_at.pop(seq, None)
        return released

    def idle_close(self) -> None:
        """Close a session that has been silent too long (a protocol may say goodbye first)."""
        self.close()

    # -- transport ------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.open = True
        self.last_seen = time.monotonic()
        try:
            transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        except (AttributeError, NotImplementedError):
            pass
        self.server.sessions.add(self)

    def connection_lost(self, exc) -> None:
        self.open = False
        self.transport = None
        self.server.sessions.discard(self)
        if self.account is not None:
            self.server.outbox.unbind(self.account.id, self)
            self.server._count(self.account.id, -1)
        if self.awaiting:
            # Sent but not acknowledged: the outbox offers them again, on this
            # account's next session.
            ids = list(dict.fromkeys(self.awaiting.values()))
            self.awaiting.clear()
            self._pdus_left.clear()
            self._offered_at.clear()
            self.server.release(ids)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        self.server.outbox.wake()

    def stop_reading(self) -> None:
        """Read nothing more from this customer (the server is stopping)."""
        self._stopping = True
        self._update_reading()

    def _update_reading(self) -> None:
        want_paused = self._write_paused or self._stopping or self.in_flight >= MAX_IN_FLIGHT
        if want_paused == self._read_paused or self.transport is None:
            return
        self._read_paused = want_paused
        try:
            if want_paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()
        except (RuntimeError, AttributeError):
            pass        # the transport is closing

    def write(self, data: bytes) -> None:
        """Queue PDUs for the peer; everything written in one turn of the loop goes out
        in one send (a window of answers finishing together costs one syscall, not 16)."""
        if self.transport is None or not self.open:
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._send_out)
        self._out.append(data)

    def _send_out(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def close(self) -> None:
        """Drop the connection now (what is buffered is discarded)."""
        self.open = False
        self._out.clear()
        if self.transport is not None:
            self.transport.abort()

    def close_after_write(self) -> None:
        """Close once what is already written has gone out (a refusal, a TERMINATE)."""
        self.open = False
        self._send_out()
        if self.transport is not None:
            self.transport.close()

    def who(self) -> str:
        peer = self.peer_ip()
        name = self.account.username if self.account is not None else "(not logged in)"
        return f"{name}@{peer}" if peer else name

    def peer_ip(self) -> str | None:
        if self.transport is None:
            return None
        peer = self.transport.get_extra_info("peername")
        return peer[0] if peer else None

    def seen(self) -> None:
        self.last_seen = time.monotonic()

    # -- login ----------------------------------------------------------------
    def bind(self, account: Account) -> None:
        """Logged in: count the session and let the outbox offer it events."""
        self.account = account
        self.server._count(account.id, +1)
        self.server.logins += 1
        self.server.outbox.bind(account.id, self)

    # -- requests in flight ---------------------------------------------------
    def spawn(self, coro) -> None:
        """Run one request's work; while too many run, stop reading this session."""
        self.in_flight += 1
        if self.in_flight >= MAX_IN_FLIGHT:
            self._update_reading()
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._request_done)

    def _request_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        self.in_flight -= 1
        if self._read_paused and not self._write_paused and not self._stopping and self.in_flight < MAX_IN_FLIGHT:
            self._update_reading()
        if not task.cancelled() and task.exception() is not None:
            log.error("%s server: request of %s failed", self.server.name, self.who(),
                      exc_info=task.exception())

    # -- the outbox's side ----------------------------------------------------
    def room(self) -> int:
        if not self.open or self._write_paused or self.account is None:
            return 0
        if self._hold_until and time.monotonic() < self._hold_until:
            return 0
        return max(0, self.server.window - len(self.awaiting))

    def offer(self, items: list[dict]) -> None:
        out: list[bytes] = []
        unsent: list[int] = []
        now = time.monotonic()
        for item in items:
            if not self.open:
                unsent.append(item["id"])
                continue
            try:
                seqs, pdu = self.encode_event(item)
            except Exception:  # noqa: BLE001 - one unencodable event must not stop the others
                log.exception("%s server: cannot encode event %s for %s", self.server.name,
                              item.get("id"), self.who())
                unsent.append(item["id"])
                continue
            if not seqs:
                # Nothing to send for it (the customer asked for no report): done.
                self.server.ack(item["id"])
                continue
            for seq in seqs:
                self.awaiting[seq] = item["id"]
                self._offered_at[seq] = now
            if len(seqs) > 1:
                self._pdus_left[item["id"]] = len(seqs)
            out.append(pdu)
        if out:
            self.write(b"".join(out))
        self.server.release(unsent)

    def answered(self, sequence_id: int, accepted: bool, *, retry_after: float = 0.0) -> None:
        """The customer answered the event PDU ``sequence_id``.

        ``accepted``: it took it (done). Otherwise it is offered again, after
        ``retry_after`` seconds during which this session is offered nothing.
        """
        event_id = self.awaiting.pop(sequence_id, None)
        self._offered_at.pop(sequence_id, None)
        if event_id is None:
            return
        if accepted:
            left = self._pdus_left.get(event_id)
            if left is not None:
                if left > 1:
                    self._pdus_left[event_id] = left - 1
                    return
                del self._pdus_left[event_id]
            self.server.ack(event_id)
            if len(self.awaiting) == self.server.window - 1:
                self.server.outbox.wake()
            return
        # Not taken: the whole event goes back, and its other PDUs no longer count.
        if event_id in self._pdus_left:
            del self._pdus_left[event_id]
            for seq in [q for q, e in self.awaiting.items() if e == event_id]:
                del self.awaiting[seq]
                self._offered_at.pop(seq, None)
        if retry_after:
            self._hold_until = time.monotonic() + retry_after
            asyncio.get_running_loop().call_later(retry_after, self.server.outbox.wake)
        self.server.release([event_id])
