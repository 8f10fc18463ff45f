"""Number policy: numbers that must never be sent to, per account or platform-wide.

Admin functions change the ``blacklist`` table; ``Blacklist`` keeps it in
memory for the accept path, which asks one set lookup per phone.
"""
from __future__ import annotations

import time

from sqlalchemy import Connection, Engine, delete, func, select

from hongyan.domain.clock import now_ms
from hongyan.store.tables import blacklist

REASONS = ("manual", "optout", "import")
GLOBAL = 0


def add(conn: Connection, account_id: int, phones: list[str], reason: str = "manual", note: str = "") -> int:
    """Add numbers (0 = platform-wide); numbers already listed are left as they are. Returns how many were new."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {REASONS}: {reason!r}")
    phones = list(dict.fromkeys(p.strip() for p in phones if p.strip()))
    if not phones:
        return 0
    have = set(conn.execute(select(blacklist.c.phone).where(
        blacklist.c.account_id == account_id, blacklist.c.phone.in_(phones))).scalars())
    new = [p for p in phones if p not in have]
    if new:
        now = now_ms()
        conn.execute(blacklist.insert(), [{"account_id": account_id, "phone": p, "reason": reason,
                                           "note": note, "created_at": now} for p in new])
    return len(new)


def remove(conn: Connection, account_id: int, phones: list[str]) -> int:
    return conn.execute(delete(blacklist).where(
        blacklist.c.account_id == account_id, blacklist.c.phone.in_(list(phones)))).rowcount


def list_(conn: Connection, account_id: int | None = None) -> list[dict]:
    """Entries of one account (0 = platform-wide), or all when ``account_id`` is None."""
    q = select(blacklist).order_by(blacklist.c.id)
    if account_id is not None:
        q = q.where(blacklist.c.account_id == account_id)
    return [dict(r._mapping) for r in conn.execute(q).all()]


class Blacklist:
    """The table in memory; reloads when ``max(id), count(*)`` changes, checked at most once a second."""

    def __init__(self, reader: Engine, poll_s: float = 1.0) -> None:
        self.reader = reader
        self.poll_s = poll_s
        self._mark: tuple | None = None
        self._checked = 0.0
        self.global_set: frozenset[str] = frozenset()
        self.per_account: dict[int, frozenset[str]] = {}

    def invalidate(self) -> None:
        self._checked = 0.0
        self._mark = None

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.poll_s:
            return
        self._checked = now
        with self.reader.connect() as conn:
            mark = tuple(conn.execute(select(func.max(blacklist.c.id), func.count()).select_from(blacklist)).one())
            if mark == self._mark:
                return
            sets: dict[int, set[str]] = {}
            for aid, phone in conn.execute(select(blacklist.c.account_id, blacklist.c.phone)).all():
                sets.setdefault(aid, set()).add(phone)
        self.global_set = frozenset(sets.pop(GLOBAL, ()))
        self.per_account = {a: frozenset(s) for a, s in sets.items()}
        self._mark = mark

    @property
    def empty(self) -> bool:
        return not self.global_set and not self.per_account

    def blocked(self, account_id: int, phone: str) -> bool:
        return phone in self.global_set or phone in self.per_account.get(account_id, ())
