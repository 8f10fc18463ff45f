"""Number policy: numbers that must never be sent to, per account or platform-wide.

Admin functions change the ``blacklist`` table; ``Blacklist`` keeps it in
memory for the accept path, which asks one set lookup per phone.
"""
from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from hongyan.domain.clock import now_ms
from hongyan.store.tables import blacklist, sequences

log = logging.getLogger(__name__)

REASONS = ("manual", "optout", "import")
GLOBAL = 0
# Changes are counted in ``sequences``, so the cache's check is two key
# lookups, not a count(*) of a table that opt-outs grow without end. A removal
# has its own count: on SQLite a row added after the newest was removed takes
# the removed row's id, so ids alone cannot tell that anything changed.
ADDS = "blacklist_adds"
REMOVALS = "blacklist_removals"


def count_change(conn: Connection, name: str) -> None:
    """Count one change of a cached table (``ADDS``, ``REMOVALS``; the word lists use their own name).

    The update locks the counter's row (PostgreSQL) until the transaction
    ends, so writers that count first take their ids in commit order.
    """
    bumped = conn.execute(update(sequences).where(sequences.c.name == name)
                          .values(value=sequences.c.value + 1)).rowcount
    if not bumped:
        conn.execute(insert(sequences).values(name=name, value=1))


def removals(conn: Connection, name: str) -> int:
    return conn.execute(select(sequences.c.value).where(sequences.c.name == name)).scalar() or 0


def add(conn: Connection, account_id: int, phones: list[str], reason: str = "manual", note: str = "") -> int:
    """Add numbers (0 = platform-wide); numbers already listed are left as they are. Returns how many were new."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {REASONS}: {reason!r}")
    phones = list(dict.fromkeys(p.strip() for p in phones if p.strip()))
    if not phones:
        return 0
    # First, so that a cache reading "ids above the last it saw" never misses a
    # row committed late with a lower id.
    count_change(conn, ADDS)
    have = set(conn.execute(select(blacklist.c.phone).where(
        blacklist.c.account_id == account_id, blacklist.c.phone.in_(phones))).scalars())
    new = [p for p in phones if p not in have]
    if new:
        now = now_ms()
        conn.execute(blacklist.insert(), [{"account_id": account_id, "phone": p, "reason": reason,
                                           "note": note, "created_at": now} for p in new])
    return len(new)


def remove(conn: Connection, account_id: int, phones: list[str]) -> int:
    removed = conn.execute(delete(blacklist).where(
        blacklist.c.account_id == account_id, blacklist.c.phone.in_(list(phones)))).rowcount
    if removed:
        count_change(conn, REMOVALS)
    return removed


def list_(conn: Connection, account_id: int | None = None) -> list[dict]:
    """Entries of one account (0 = platform-wide), or all when ``account_id`` is None."""
    q = select(blacklist).order_by(blacklist.c.id)
    if account_id is not None:
        q = q.where(blacklist.c.account_id == account_id)
    return [dict(r._mapping) for r in conn.execute(q).all()]


class Blacklist:
    """The table in memory, checked for changes at most once a second (``poll_s``).

    The check reads the change counts (``ADDS``, ``REMOVALS``) and
    ``max(id)``, all by index. Rows added since are read alone, so an opt-out
    reply costs the accept path one indexed read, not a reload of every
    listed number. Only a removal reads the whole table again (about 0.7 s
    for 500,000 numbers, measured): with ``background`` that read runs on a
    thread, and the lists as they were (which still bar the removed numbers)
    serve until it is done. Refreshes run on the event loop that reads the
    sets, so the sets are updated in place.
    """

    def __init__(self, reader: Engine, poll_s: float = 1.0, *, background: bool = False) -> None:
        self.reader = reader
        self.poll_s = poll_s
        self.background = background
        self._mark: tuple | None = None
        self._checked = 0.0
        self.global_set: set[str] = set()
        self.per_account: dict[int, set[str]] = {}
        self.reloads = 0        # whole-table reads, for tests and metrics
        self._loading: threading.Thread | None = None
        self._loaded: tuple | None = None   # (mark, sets) from a finished background read

    def invalidate(self) -> None:
        """Check for changes at the next use. (What it finds is read as usual: numbers
        added alone, so a customer adding numbers one call at a time never makes
        the whole list be read again.)"""
        self._checked = 0.0

    def refresh(self) -> None:
        if self._loaded is not None:
            mark, sets = self._loaded
            self._loaded = self._loading = None
            self._install(mark, sets)
            self._checked = 0.0     # and look at once for what was added meanwhile
        now = time.monotonic()
        if now - self._checked < self.poll_s:
            return
        self._checked = now
        with self.reader.connect() as conn:
            mark = self._read_mark(conn)
            if mark == self._mark:
                return
            old = self._mark
            if old is not None and (old[0] == mark[0] or self._loading is not None) and mark[2] >= old[2]:
                self._read_added(conn, old[2])
                if old[0] == mark[0]:
                    self._mark = mark
                return
            if old is not None and self.background:
                # A removal: read it all again on a thread; until then the lists
                # as they are (a removed number stays barred a moment longer),
                # with what was added since.
                if mark[2] >= old[2]:
                    self._read_added(conn, old[2])
                self._loading = threading.Thread(target=self._load_in_background, name="hongyan-blacklist",
                                                 daemon=True)
                self._loading.start()
                return
            mark, sets = self._load_all(conn)
        self._install(mark, sets)

    @staticmethod
    def _read_mark(conn: Connection) -> tuple:
        counts = dict(conn.execute(select(sequences.c.name, sequences.c.value)
                                   .where(sequences.c.name.in_((ADDS, REMOVALS)))).all())
        max_id = conn.execute(select(func.max(blacklist.c.id))).scalar() or 0
        return counts.get(REMOVALS, 0), counts.get(ADDS, 0), max_id

    def _read_added(self, conn: Connection, after_id: int) -> None:
        for aid, phone in conn.execute(select(blacklist.c.account_id, blacklist.c.phone)
                                       .where(blacklist.c.id > after_id)).all():
            self._sets(aid).add(phone)

    def _load_all(self, conn: Connection) -> tuple[tuple, dict[int, set[str]]]:
        # The mark first: a row added while the table is read is read again
        # later as added, never missed.
        mark = self._read_mark(conn)
        sets: dict[int, set[str]] = {}
        for aid, phone in conn.execute(select(blacklist.c.account_id, blacklist.c.phone)).all():
            sets.setdefault(aid, set()).add(phone)
        return mark, sets

    def _load_in_background(self) -> None:
        try:
            with self.reader.connect() as conn:
                self._loaded = self._load_all(conn)
        except Exception:  # noqa: BLE001 - the next check starts another read
            log.exception("reading the blacklist again failed")
            self._loading = None

    def _install(self, mark: tuple, sets: dict[int, set[str]]) -> None:
        self.global_set = sets.pop(GLOBAL, set())
        self.per_account = sets
        self._mark = mark
        self.reloads += 1

    def _sets(self, account_id: int) -> set[str]:
        if account_id == GLOBAL:
            return self.global_set
        return self.per_account.setdefault(account_id, set())

    @property
    def empty(self) -> bool:
        return not self.global_set and not self.per_account

    def blocked(self, account_id: int, phone: str) -> bool:
        return phone in self.global_set or phone in self.per_account.get(account_id, ())
