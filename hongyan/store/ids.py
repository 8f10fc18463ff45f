"""Ids for submissions and messages, reserved from the database in blocks.

A process reserves a block of ids with one UPDATE on the ``sequences`` row and
hands them out from memory, so inserting a batch needs no round trip to learn
its ids, and several processes on one PostgreSQL never collide.

Reservation runs inside the caller's transaction (the writer's). If that
transaction rolls back, the reservation is rolled back with it, so the block
must be forgotten: :meth:`IdBlocks.forget` is hooked to the writer's rollback.
"""
from __future__ import annotations

import threading

from sqlalchemy import Connection, insert, select, update

from .tables import sequences


class IdBlocks:
    def __init__(self, name: str, block: int = 10_000) -> None:
        self.name = name
        self.block = block
        self._next = 0
        self._end = 0
        self._lock = threading.Lock()

    def forget(self) -> None:
        with self._lock:
            self._next = self._end = 0

    def take(self, conn: Connection, n: int) -> list[int]:
        with self._lock:
            out: list[int] = []
            while len(out) < n:
                if self._next >= self._end:
                    self._reserve(conn, max(self.block, n - len(out)))
                k = min(n - len(out), self._end - self._next)
                out.extend(range(self._next, self._next + k))
                self._next += k
            return out

    def _reserve(self, conn: Connection, size: int) -> None:
        row = conn.execute(
            update(sequences).where(sequences.c.name == self.name)
            .values(value=sequences.c.value + size).returning(sequences.c.value)
        ).first()
        if row is None:
            conn.execute(insert(sequences).values(name=self.name, value=1 + size))
            end = 1 + size
        else:
            end = row[0]
        self._next, self._end = end - size, end


def current(conn: Connection, name: str) -> int:
    return conn.execute(select(sequences.c.value).where(sequences.c.name == name)).scalar() or 0
