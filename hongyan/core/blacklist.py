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
# Removals are counted in ``sequences``: the cache's check is then two
# lookups by key, not a count(*) of a table that opt-outs grow without end.
# Adds show in max(id), but a removal may not: on SQLite a row added after the
# newest was removed takes the removed row's id.
REMOVALS = "blacklist_removals"
# On PostgreSQL a row can commit after one with a higher id was already read,
# so that an "ids above the last seen" read misses it: this often (off the
# event loop) the cache counts the rows it should have and reads the list
# again if the count differs.
AUDIT_S = 30.0


def count_change(conn: Connection, name: str) -> None:
    """Count one change of a cached table (``REMOVALS``; the word and rule caches use their own names)."""
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

    The check reads the removal count (``REMOVALS``) and ``max(id)``, both
    by index. Rows added since are read alone, so an opt-out
    reply costs the accept path one indexed read, not a reload of every
    listed number. Only a removal reads the whole table again (about 0.7 s
    for 500,000 numbers, measured): with ``background`` that read runs on a
    thread, and the lists as they were (which still bar the removed numbers)
    serve until it is done. Refreshes run on the event loop that reads the
    sets, so the sets are updated in place.
    """

    def __init__(self, reader: Engine, poll_s: float = 1.0, *, background: bool = False,
                 audit_s: float = AUDIT_S) -> None:
        self.reader = reader
        self.poll_s = poll_s
        self.background = background
        self.audit_s = audit_s
        self._audited = time.monotonic()
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
        if (self.background and self._loading is None and self._mark is not None
                and now - self._audited >= self.audit_s and self.reader.dialect.name == "postgresql"):
            self._audited = now
            size = len(self.global_set) + sum(map(len, self.per_account.values()))
            self._loading = threading.Thread(target=self._audit, args=(self._mark, size),
                                             name="hongyan-blacklist", daemon=True)
            self._loading.start()
        with self.reader.connect() as conn:
            mark = self._read_mark(conn)
            if mark == self._mark:
                return
            old = self._mark
            if old is not None and (old[0] == mark[0] or self._loading is not None) and mark[-1] >= old[-1]:
                self._read_added(conn, old[-1])
                if old[0] == mark[0]:
                    self._mark = mark
                return
            if old is not None and self.background:
                # A removal: read it all again on a thread; until then the lists
                # as they are (a removed number stays barred a moment longer),
                # with what was added since.
                if mark[-1] >= old[-1]:
                    self._read_added(conn, old[-1])
                self._loading = threading.Thread(target=self._load_in_background, name="hongyan-blacklist",
                                                 daemon=True)
                self._loading.start()
                return
            mark, sets = self._load_all(conn)
        self._install(mark, sets)

    @staticmethod
    def _read_mark(conn: Connection) -> tuple:
        # (removals, max id): the id is last, as the incremental read uses mark[-1].
        return removals(conn, REMOVALS), conn.execute(select(func.max(blacklist.c.id))).scalar() or 0

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

    def _audit(self, mark: tuple, size: int) -> None:
        """Count the rows the lists hold (those up to ``mark``'s id); read them all again if they differ."""
        try:
            with self.reader.connect() as conn:
                n = conn.execute(select(func.count()).select_from(blacklist)
                                 .where(blacklist.c.id <= mark[-1])).scalar()
                if n == size:
                    self._loading = None
                    return
                log.warning("blacklist cache holds %d numbers, the table %d: reading it again", size, n)
                self._loaded = self._load_all(conn)
        except Exception:  # noqa: BLE001 - the next audit tries again
            log.exception("checking the blacklist cache failed")
            self._loading = None

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
