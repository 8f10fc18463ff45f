"""Housekeeping that keeps the queue honest across crashes.

- Each process registers as a node and keeps a heartbeat.
- Messages left ``submitting`` by a node that died are queued again: the carrier
  may or may not have taken them, and sending again is better than never. The
  message's ``note`` says so, and its ``attempts`` count shows it.
- Reports that came before their submit answer was recorded are matched again.
- Reports that never come: a message ``submitted`` longer than the report
  timeout (setting ``report_timeout_hours``) is closed ``expired``, refunded
  by the account's policy and reported (``Receiver.expire``). Every node runs
  this; on PostgreSQL the batches are claimed with SKIP LOCKED, so two nodes
  never expire the same message.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket

from sqlalchemy import Connection, and_, insert, or_, select, update

from hongyan.domain.clock import now_ms
from hongyan.store.tables import messages, nodes
from hongyan.store.writer import Writer

from .receive import Receiver

log = logging.getLogger(__name__)

HEARTBEAT_S = 5
DEAD_AFTER_MS = 20_000
# Messages expired in one transaction, and at most this many transactions a
# pass, so a large backlog drains over a few passes without holding up the writer.
EXPIRE_BATCH = 1000
EXPIRE_BATCHES_PER_PASS = 10
REQUEUE_NOTE = "re-queued: the node that was submitting it stopped before the carrier's answer was recorded"


def register_node(conn: Connection, roles: list[str], name: str = "") -> int:
    now = now_ms()
    name = name or f"{socket.gethostname()}:{os.getpid()}"
    return conn.execute(insert(nodes).values(name=name, roles=",".join(roles), started_at=now,
                                             heartbeat_at=now)).inserted_primary_key[0]


def heartbeat(conn: Connection, node_id: int) -> None:
    conn.execute(update(nodes).where(nodes.c.id == node_id).values(heartbeat_at=now_ms()))


def requeue_orphans(conn: Connection, arg: tuple[int, bool]) -> int:
    """Queue again what dead nodes left ``submitting``. With ``all_others`` (the
    embedded single process at start), every other node counts as dead."""
    me, all_others = arg
    if all_others:
        owner_dead = or_(messages.c.claimed_by.is_(None), messages.c.claimed_by != me)
    else:
        alive = select(nodes.c.id).where(nodes.c.heartbeat_at >= now_ms() - DEAD_AFTER_MS)
        owner_dead = or_(messages.c.claimed_by.is_(None), messages.c.claimed_by.not_in(alive))
    result = conn.execute(update(messages).where(and_(messages.c.state == "submitting", owner_dead))
                          .values(state="queued", due_at=now_ms(), claimed_by=None, note=REQUEUE_NOTE))
    return result.rowcount or 0


class Maintenance:
    def __init__(self, writer: Writer, receiver: Receiver, node_id: int, *, on_requeued=None,
                 on_events=None, report_timeout_hours: float = 72.0) -> None:
        self.writer = writer
        self.receiver = receiver
        self.node_id = node_id
        self.on_requeued = on_requeued
        self.on_events = on_events
        if not report_timeout_hours > 0:
            # 0 would expire every message the moment it is submitted.
            raise ValueError(f"report_timeout_hours must be more than 0, not {report_timeout_hours!r}")
        self.report_timeout_ms = int(report_timeout_hours * 3600 * 1000)
        self.expired = 0

    async def expire_unreported(self) -> int:
        """Close messages whose report did not come within the timeout; returns how many."""
        done = 0
        for _ in range(EXPIRE_BATCHES_PER_PASS):
            n = await self.writer.run(
                lambda conn, _: self.receiver.expire(conn, self.report_timeout_ms, EXPIRE_BATCH))
            done += n
            if n < EXPIRE_BATCH:
                break
        if done:
            self.expired += done
            log.info("expired %d messages whose report did not come within %.0f h",
                     done, self.report_timeout_ms / 3_600_000)
            if self.on_events:
                self.on_events()
        return done

    async def run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.writer.run(heartbeat, self.node_id)
                n = await self.writer.run(requeue_orphans, (self.node_id, False))
                if n:
                    log.warning("re-queued %d messages left by a stopped node", n)
                    if self.on_requeued:
                        self.on_requeued()
                matched = await self.writer.run(lambda conn, _: self.receiver.retry_orphans(conn))
                if matched and self.on_events:
                    self.on_events()
                await self.expire_unreported()
            except Exception:  # noqa: BLE001
                log.exception("maintenance pass failed")
