"""Dispatch: claim due messages in batches, route them, hand them to channels.

The database is the queue. A dispatcher claims a batch of due messages in one
UPDATE (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes share the
work), marks them ``submitting`` under its node id, and hands them to the
channel the route picks. Each channel throttles itself at its messages per
second and window; the dispatcher only claims as much as the channels have
room for, so nothing waits in memory for long.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from sqlalchemy import Connection, Engine, select, update

from hongyan.channels.base import Outbound
from hongyan.domain.clock import now_ms
from hongyan.store.tables import messages, submissions
from hongyan.store.writer import Writer

from .accounts import Directory
from .routing import Router

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, writer: Writer, reader: Engine, directory: Directory, router: Router, node_id: int, *,
                 batch: int = 1000, postgres: bool = False, idle_poll: float = 0.2) -> None:
        self.writer = writer
        self.reader = reader
        self.directory = directory
        self.router = router
        self.node_id = node_id
        self.batch = batch
        self.postgres = postgres
        self.idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._contents: OrderedDict[int, tuple[str, str, int | None]] = OrderedDict()
        self.claimed = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
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
            try:
                await asyncio.wait_for(self._wake.wait(), self.idle_poll)
            except asyncio.TimeoutError:
                pass

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
                       messages.c.phone, messages.c.carrier, messages.c.parts, messages.c.attempts)
        ).all()

    async def _hand_over(self, rows: list) -> None:
        missing = {r.submission_id for r in rows if r.submission_id not in self._contents}
        if missing:
            found = await asyncio.get_running_loop().run_in_executor(None, self._load_contents, missing)
            for sid, value in found.items():
                self.remember(sid, value)
        by_channel: dict[int, list[Outbound]] = {}
        unroutable: list[int] = []
        for r in rows:
            content, extno, product_id = self._contents[r.submission_id]
            account = self.directory.by_id(r.account_id)
            channel = self.router.route(r.carrier, product_id)
            if channel is None or account is None:
                unroutable.append(r.id)
                continue
            source = (channel.config.access_code + account.extension + extno)[:21]
            by_channel.setdefault(channel.id, []).append(Outbound(
                message_id=r.id, phone=r.phone, text=content, source=source, parts=r.parts,
                attempt=r.attempts))
        for cid, batch in by_channel.items():
            self.router.channel(cid).send(batch)
        if unroutable:
            # No channel can take them now: give them back to the queue a little later.
            await self.writer.run(_release, (unroutable, now_ms() + 5000))

    def _load_contents(self, ids: set[int]) -> dict[int, tuple[str, str, int | None]]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(submissions.c.id, submissions.c.content, submissions.c.extno,
                                       submissions.c.product_id)
                                .where(submissions.c.id.in_(ids))).all()
        return {r.id: (r.content, r.extno, r.product_id) for r in rows}

    def remember(self, sid: int, value: tuple) -> None:
        """Keep a submission's content at hand for when its messages are claimed."""
        self._contents[sid] = value
        if len(self._contents) > 20_000:
            self._contents.popitem(last=False)


def _release(conn: Connection, arg: tuple[list[int], int]) -> None:
    ids, due = arg
    conn.execute(update(messages).where(messages.c.id.in_(ids), messages.c.state == "submitting")
                 .values(state="queued", due_at=due, claimed_by=None,
                         attempts=messages.c.attempts - 1, note="no channel available"))
