"""Dispatch: claim due messages in batches, route them, hand them to channels.

The database is the queue. A dispatcher claims a batch of due messages in one
UPDATE (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes share the
work), marks them ``submitting`` under its node id, and hands them to the
channel the router picks (``hongyan.core.routing``). Each channel throttles
itself at its messages per second and window; the dispatcher only claims as
much as the channels have room for, so nothing waits in memory for long.

Failover. Every channel reports through a :class:`ChannelWatch`, which tells
the router how the channel fares (retryable failures in a row suspend it) and
remembers which channel a message failed on, so that its next attempt goes
elsewhere when another channel can take it. That channel is also written to
``messages.channel_id`` (batched, on the failure path only), so a restarted
process or another node avoids it too; once the message is submitted the
column holds the channel that took it. A channel that loses its connection
keeps the messages it had queued until it is back; after ``release_after``
seconds down it is restarted, which fails those messages retryably, so they
fail over as well.

Shape of what a channel is handed:

* the source number is the channel's access code + the account's extension +
  the request's extno, composed and cut by ``hongyan.domain.source`` to the
  channel's ``source_max_len``;
* on a channel with ``supports_long`` false, a long text goes as separate
  SMS numbered "1/3)", "2/3)", ... (``segments.split_with_seqno``), never
  fewer of them than the parts billed. The channel sees each piece as an
  Outbound of its own (with a negative stand-in id); when every piece is
  sent the message is recorded as sent with all their carrier ids, and the
  first piece that fails fails the message, as a failed part of a
  concatenated SMS does. Billing stays by the parts counted at accept; the
  message is final once as many reports as billed parts have come.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, or_, select, update

from hongyan.aio import wait_event
from hongyan.channels.base import Channel, ChannelEvents, Inbound, Outbound, Report
from hongyan.domain import segments, source, windows
from hongyan.domain.clock import now_ms, to_ms
from hongyan.store.tables import messages, submissions
from hongyan.store.writer import Writer

from .accounts import Directory
from .routing import Router

log = logging.getLogger(__name__)

NO_CHANNEL_DELAY_MS = 5000
_MEMORY = 100_000   # messages whose failed channel is kept in memory


class Dispatcher:
    def __init__(self, writer: Writer, reader: Engine, directory: Directory, router: Router, node_id: int, *,
                 batch: int = 1000, postgres: bool = False, idle_poll: float = 0.2,
                 release_after: float = 5.0) -> None:
        self.writer = writer
        self.reader = reader
        self.directory = directory
        self.router = router
        self.node_id = node_id
        self.batch = batch
        self.postgres = postgres
        self.idle_poll = idle_poll
        self.release_after = release_after
        self._wake = asyncio.Event()
        # submission id -> (content, extno, product id, daily window or None)
        self._contents: OrderedDict[int, tuple] = OrderedDict()
        self.claimed = 0
        self.pieces = Pieces()
        # message id -> channels it failed on retryably, newest last
        self._tried: OrderedDict[int, tuple[int, ...]] = OrderedDict()
        self._tried_unsaved: list[dict] = []
        self._sources: dict[tuple[int, str, str], str | None] = {}
        self._seqno: OrderedDict[tuple[str, int], list[str]] = OrderedDict()
        self._seqno_on: dict[int, bool] = {}     # channel -> whether it takes long SMS as numbered pieces
        self._down_since: dict[int, float] = {}
        self._restarting: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._checked_channels = 0.0
        self.closing = False

    def wake(self) -> None:
        self._wake.set()

    def watch(self, channel_id: int, events: ChannelEvents) -> "ChannelWatch":
        """The events a channel is given: ``events`` (the recorder's sink) behind the failover bookkeeping."""
        return ChannelWatch(self, channel_id, events)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._housekeeping(loop)
            room = self.router.room()
            if room <= 0:
                # Channels full: they drain within milliseconds. No channel up: wait longer.
                await asyncio.sleep(0.005 if self.router.any_connected() else 0.2)
                continue
            try:
                rows = await self.writer.run(self._claim, min(room, self.batch))
            except Exception:  # noqa: BLE001 - the database is away: wait and try again
                log.exception("claiming messages failed")
                await asyncio.sleep(1.0)
                continue
            if rows:
                self.claimed += len(rows)
                await self._hand_over(rows)
                continue  # there may be more due right away
            self._wake.clear()
            await wait_event(self._wake, self.idle_poll)

    async def _housekeeping(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once a second at most: reload changed routes, restart channels long down; always: save tried channels."""
        if self._tried_unsaved:
            unsaved, self._tried_unsaved = self._tried_unsaved, []
            try:
                await self.writer.run(_save_tried, unsaved)
            except Exception:  # noqa: BLE001 - memory still has them; the column is a hint for other nodes
                log.exception("recording the channels %d messages failed on", len(unsaved))
        if self.router.refresh_due():
            try:
                await loop.run_in_executor(None, self.router.refresh)
            except Exception:  # noqa: BLE001 - keep routing by what was loaded last
                log.exception("reloading routes failed")
        now = time.monotonic()
        if now - self._checked_channels >= 1.0:
            self._checked_channels = now
            self._restart_stuck(now)

    def _restart_stuck(self, now: float) -> None:
        for ch in self.router.channels():
            if ch.connected or ch.queued() == 0:
                self._down_since.pop(ch.id, None)
                continue
            since = self._down_since.setdefault(ch.id, now)
            if now - since >= self.release_after and ch.id not in self._restarting and not self.closing:
                self._restarting.add(ch.id)
                task = asyncio.create_task(self._restart(ch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _restart(self, ch: Channel) -> None:
        log.warning("channel %s down for %.0f s with %d messages queued: restarting it so they fail over",
                    ch.config.name, self.release_after, ch.queued())
        try:
            await ch.stop()   # fails what it holds, retryably; the watch steers those elsewhere
            if not self.closing:
                await ch.start()
        except Exception:  # noqa: BLE001
            log.exception("restarting channel %s", ch.config.name)
        finally:
            self._restarting.discard(ch.id)
            self._down_since.pop(ch.id, None)

    async def close(self) -> None:
        """Stop restarting channels (shutdown): wait for a restart under way."""
        self.closing = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _claim(self, conn: Connection, limit: int) -> list:
        now = now_ms()
        due = (select(messages.c.id)
               .where(messages.c.state == "queued", messages.c.due_at <= now)
               .order_by(messages.c.due_at, messages.c.id).limit(limit))
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        return conn.execute(
            update(messages).where(messages.c.id.in_(due.scalar_subquery()))
            .values(state="submitting", claimed_by=self.node_id, claimed_at=now,
                    attempts=messages.c.attempts + 1)
            .returning(messages.c.id, messages.c.submission_id, messages.c.account_id,
                       messages.c.phone, messages.c.carrier, messages.c.parts, messages.c.attempts,
                       messages.c.channel_id)
        ).all()

    async def _hand_over(self, rows: list) -> None:
        missing = {r.submission_id for r in rows if r.submission_id not in self._contents}
        if missing:
            found = await asyncio.get_running_loop().run_in_executor(None, self._load_contents, missing)
            for sid, value in found.items():
                self.remember(sid, value)
        by_channel: dict[int, list[Outbound]] = {}
        unroutable: list[int] = []
        bad_source: list[int] = []
        closed: dict[int, list[int]] = {}   # due time -> messages whose daily window has closed
        now_local: datetime | None = None
        route = self.router.chooser()   # no await until the batch is handed over
        tried = self._tried
        directory = self.directory
        for r in rows:
            content, extno, product_id, window = self._contents[r.submission_id]
            if window is not None:
                # Accepted inside its window but reached only now (a backlog): it
                # waits for the next opening rather than going out late.
                now_local = now_local or datetime.now()
                opens = windows.next_open(window, now_local)
                if opens != now_local:
                    closed.setdefault(to_ms(opens), []).append(r.id)
                    continue
            account = directory.by_id(r.account_id)
            if account is None:
                unroutable.append(r.id)
                continue
            avoid = tried.get(r.id, ())
            if r.attempts > 1 and r.channel_id is not None and r.channel_id not in avoid:
                avoid = (*avoid, r.channel_id)
            channel = route(r.carrier, product_id, r.account_id, avoid)
            if channel is None:
                unroutable.append(r.id)
                continue
            src = self._source(channel, account.extension, extno)
            if src is None:
                bad_source.append(r.id)
                continue
            msg = Outbound(message_id=r.id, phone=r.phone, text=content, source=src, parts=r.parts,
                           attempt=r.attempts)
            out = by_channel.setdefault(channel.id, [])
            if r.parts > 1 and self._seqno_channel(channel):
                out.extend(self.pieces.split(msg, self._seqno_texts(content, r.parts)))
            else:
                out.append(msg)
        for cid, batch in by_channel.items():
            self.router.channel(cid).send(batch)
        if unroutable:
            # No channel can take them now: give them back to the queue a little later.
            await self.writer.run(_release, (unroutable, now_ms() + NO_CHANNEL_DELAY_MS, "no channel available"))
        for due, ids in closed.items():
            await self.writer.run(_release, (ids, due, "outside the request's daily send window"))
        if bad_source:
            await self.writer.run(_release, (bad_source, now_ms() + NO_CHANNEL_DELAY_MS,
                                             "the channel's source number settings are invalid (see the log)"))

    def _source(self, channel: Channel, account_ext: str, extno: str) -> str | None:
        """The composed source number, cached: a batch repeats the same few combinations."""
        key = (channel.id, account_ext, extno)
        try:
            return self._sources[key]
        except KeyError:
            pass
        cfg = channel.config
        try:
            number = source.compose(cfg.access_code, account_ext, extno, cfg.source_max_len).number
        except ValueError as exc:
            # A configuration error (an access code longer than the limit, letters in an
            # extension): logged once per combination; the messages wait for a fix.
            log.error("channel %s: cannot compose a source number: %s", cfg.name, exc)
            number = None
        if len(self._sources) > 10_000:
            self._sources.clear()
        self._sources[key] = number
        return number

    def _seqno_channel(self, channel: Channel) -> bool:
        found = self._seqno_on.get(channel.id)
        if found is None:
            found = self._seqno_on[channel.id] = channel.config.seqno_split
        return found

    def _seqno_texts(self, content: str, parts: int) -> list[str]:
        """Numbered pieces of ``content``, at least ``parts`` of them (one per billed part)."""
        key = (content, parts)
        found = self._seqno.get(key)
        if found is not None:
            return found
        texts = segments.split_with_seqno(content)
        # GSM text has more room per piece (160 less the prefix) than per
        # concatenated part (153): the pieces could be fewer than the parts
        # billed, and the message would wait for reports that never come.
        room = segments.GSM7_SINGLE if segments.encoding_of(content) == "gsm7" else segments.UCS2_SINGLE
        while len(texts) < parts and room > 10:
            room -= 1
            texts = segments.split_with_seqno(content, room)
        self._seqno[key] = texts
        if len(self._seqno) > 1000:
            self._seqno.popitem(last=False)
        return texts

    def _load_contents(self, ids: set[int]) -> dict[int, tuple]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(submissions.c.id, submissions.c.content, submissions.c.extno,
                                       submissions.c.product_id, submissions.c.window_start,
                                       submissions.c.window_end)
                                .where(submissions.c.id.in_(ids))).all()
        return {r.id: (r.content, r.extno, r.product_id,
                       None if r.window_start is None else (r.window_start, r.window_end)) for r in rows}

    def remember(self, sid: int, value: tuple) -> None:
        """Keep a submission's content at hand for when its messages are claimed."""
        self._contents[sid] = value
        if len(self._contents) > 20_000:
            self._contents.popitem(last=False)

    # -- what the channels report (through ChannelWatch) ----------------------
    def _failed_on(self, message_id: int, channel_id: int) -> None:
        before = self._tried.pop(message_id, ())
        self._tried[message_id] = (*[c for c in before if c != channel_id], channel_id)
        if len(self._tried) > _MEMORY:
            self._tried.popitem(last=False)
        self._tried_unsaved.append({"mid": message_id, "cid": channel_id})
        self._wake.set()

    def _sent(self, message_id: int) -> None:
        if self._tried:
            self._tried.pop(message_id, None)


class ChannelWatch:
    """A channel's events on their way to the recorder: failover bookkeeping and seqno pieces joined."""

    __slots__ = ("dispatcher", "router", "channel_id", "inner", "pieces")

    def __init__(self, dispatcher: Dispatcher, channel_id: int, inner: ChannelEvents) -> None:
        self.dispatcher = dispatcher
        self.router = dispatcher.router
        self.channel_id = channel_id
        self.inner = inner
        self.pieces = dispatcher.pieces

    def sent(self, message_id: int, carrier_ids: list[str]) -> None:
        self.router.note_sent(self.channel_id)
        if message_id < 0:
            whole = self.pieces.sent(message_id, carrier_ids)
            if whole is None:
                return
            message_id, carrier_ids = whole
        self.dispatcher._sent(message_id)
        self.inner.sent(message_id, carrier_ids)

    def failed(self, message_id: int, status: str, retryable: bool) -> None:
        self.router.note_failed(self.channel_id, retryable)
        if message_id < 0:
            message_id = self.pieces.failed(message_id)
            if message_id is None:
                return
        if retryable:
            self.dispatcher._failed_on(message_id, self.channel_id)
        self.inner.failed(message_id, status, retryable)

    def report(self, report: Report) -> None:
        self.inner.report(report)

    def mo(self, inbound: Inbound) -> None:
        self.inner.mo(inbound)


class _Split:
    __slots__ = ("message_id", "ids", "left", "done")

    def __init__(self, message_id: int, n: int) -> None:
        self.message_id = message_id
        self.ids: list[str] = [""] * n
        self.left = n
        self.done = False


class Pieces:
    """Seqno pieces in flight: stand-in id -> (the message's split, piece index).

    Stand-in ids are negative, so they never meet a real message id. Every
    piece a channel takes is answered once (sent or failed, ``stop`` included),
    so every entry is removed again.
    """

    def __init__(self) -> None:
        self._next = -1
        self._of: dict[int, tuple[_Split, int]] = {}

    def __len__(self) -> int:
        return len(self._of)

    def split(self, msg: Outbound, texts: list[str]) -> list[Outbound]:
        entry = _Split(msg.message_id, len(texts))
        out = []
        for i, text in enumerate(texts):
            pid = self._next
            self._next -= 1
            self._of[pid] = (entry, i)
            out.append(Outbound(message_id=pid, phone=msg.phone, text=text, source=msg.source, parts=1,
                                need_report=msg.need_report, attempt=msg.attempt))
        return out

    def sent(self, piece_id: int, carrier_ids: list[str]) -> tuple[int, list[str]] | None:
        """The message and all its carrier ids once its last piece is sent; else None."""
        found = self._of.pop(piece_id, None)
        if found is None:
            return None
        entry, i = found
        if entry.done:
            return None
        entry.ids[i] = carrier_ids[0] if carrier_ids else ""
        entry.left -= 1
        if entry.left:
            return None
        entry.done = True
        return entry.message_id, entry.ids

    def failed(self, piece_id: int) -> int | None:
        """The message id when this is the first of its pieces to fail; else None."""
        found = self._of.pop(piece_id, None)
        if found is None:
            return None
        entry, _ = found
        if entry.done:
            return None
        entry.done = True
        return entry.message_id


def _release(conn: Connection, arg: tuple[list[int], int, str]) -> None:
    ids, due, note = arg
    conn.execute(update(messages).where(messages.c.id.in_(ids), messages.c.state == "submitting")
                 .values(state="queued", due_at=due, claimed_by=None,
                         attempts=messages.c.attempts - 1, note=note))


def _save_tried(conn: Connection, rows: list[dict]) -> None:
    # Only while the message waits for its next attempt (or is still on its way
    # back to the queue): once submitted, the column is the channel that took it.
    waiting = or_(messages.c.state == "submitting", messages.c.state == "queued")  # IN cannot executemany
    conn.execute(update(messages).where(messages.c.id == bindparam("mid"), waiting)
                 .values(channel_id=bindparam("cid")), rows)
