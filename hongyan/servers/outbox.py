"""Reports and MO for customers bound over CMPP or SMPP: the session outbox.

Events whose ``push_state`` is ``session`` (see ``core.notify.push_state_for``)
wait in the events table until a session of their account is bound. The
outbox claims them for bound accounts in batches (leased, so a crash hands
them out again), offers them to one of the account's sessions, and marks
them ``done`` once the customer has answered the DELIVER. Nothing is held
only in memory: a session that closes gives its unanswered events back.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Protocol

import orjson
from sqlalchemy import Connection, select, update

from hongyan.aio import wait_event
from hongyan.domain.clock import now_ms
from hongyan.store.tables import events
from hongyan.store.writer import Writer

log = logging.getLogger(__name__)

LEASE_MS = 60_000


class Session(Protocol):
    def room(self) -> int:
        """How many more events this session can take now (its window)."""

    def offer(self, items: list[dict]) -> None:
        """Send these events as DELIVER PDUs; answer each through ``Outbox.done``
        (the customer acknowledged it) or ``Outbox.release`` (not sent)."""


class Outbox:
    def __init__(self, writer: Writer, *, batch: int = 256, poll: float = 0.2) -> None:
        self.writer = writer
        self.batch = batch
        self.poll = poll
        self._sessions: dict[int, list[Session]] = defaultdict(list)
        self._wake = asyncio.Event()
        self.delivered = 0

    # -- sessions ---------------------------------------------------------
    def bind(self, account_id: int, session: Session) -> None:
        self._sessions[account_id].append(session)
        self.wake()

    def unbind(self, account_id: int, session: Session) -> None:
        live = self._sessions.get(account_id)
        if live and session in live:
            live.remove(session)
            if not live:
                del self._sessions[account_id]

    def sessions(self, account_id: int) -> int:
        return len(self._sessions.get(account_id, ()))

    def wake(self) -> None:
        self._wake.set()

    # -- answers from sessions --------------------------------------------
    async def done(self, event_ids: list[int]) -> None:
        if event_ids:
            await self.writer.run(_settle, (event_ids, "done"))
            self.delivered += len(event_ids)

    async def release(self, event_ids: list[int]) -> None:
        """Give events back (session closed, customer refused): offered again at once."""
        if event_ids:
            await self.writer.run(_settle, (event_ids, "session"))
            self.wake()

    # -- the loop ---------------------------------------------------------
    async def run(self) -> None:
        while True:
            handed = 0
            try:
                handed = await self._round()
            except Exception:  # noqa: BLE001 - the database is away: wait and try again
                log.exception("session outbox round failed")
                await asyncio.sleep(1.0)
            if handed:
                continue
            self._wake.clear()
            await wait_event(self._wake, self.poll)

    async def _round(self) -> int:
        room = {aid: sum(s.room() for s in ss) for aid, ss in self._sessions.items()}
        room = {aid: n for aid, n in room.items() if n > 0}
        if not room:
            return 0
        rows = await self.writer.run(_claim, (room, self.batch))
        by_account: dict[int, list[dict]] = defaultdict(list)
        for r in rows:
            by_account[r.account_id].append({"id": r.id, "kind": r.kind, **orjson.loads(r.payload)})
        unsent: list[int] = []
        for aid, items in by_account.items():
            for s in list(self._sessions.get(aid, ())):
                n = min(s.room(), len(items))
                if n > 0:
                    s.offer(items[:n])
                    items = items[n:]
                if not items:
                    break
            unsent.extend(i["id"] for i in items)
        await self.release(unsent)
        return len(rows)


def _claim(conn: Connection, arg: tuple[dict[int, int], int]) -> list:
    room, batch = arg
    now = now_ms()
    rows = []
    for aid, n in room.items():
        q = (select(events.c.id, events.c.account_id, events.c.kind, events.c.payload)
             .where(events.c.push_state == "session", events.c.account_id == aid, events.c.next_at <= now)
             .order_by(events.c.id).limit(min(n, batch)))
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows.extend(conn.execute(q).all())
    if rows:
        conn.execute(update(events).where(events.c.id.in_([r.id for r in rows])).values(next_at=now + LEASE_MS))
    return rows


def _settle(conn: Connection, arg: tuple[list[int], str]) -> None:
    ids, state = arg
    values = {"push_state": state}
    if state == "session":
        values["next_at"] = now_ms()
    conn.execute(update(events).where(events.c.id.in_(ids)).values(**values))
