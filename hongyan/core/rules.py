"""Per-account content rules: the one place rule keys, defaults and validation live.

Settings are JSON in ``account_rules``: account 0 holds the platform defaults,
an account's own row overrides them key by key.  ``RuleBook`` caches the
effective settings and the sensitive-word list for accept, which runs on the
event loop and must not query the database per request.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable

import orjson
from sqlalchemy import Connection, Engine, func, select

from hongyan.core.accounts import AdminError
from hongyan.core.blacklist import count_change, removals
from hongyan.domain.clock import now_ms
from hongyan.domain.optout import DEFAULT_KEYWORDS, OptOut, normalise as normalise_reply
from hongyan.domain.templates import Template, TemplateSet
from hongyan.domain.windows import BadWindow, parse_hours
from hongyan.domain.words import WordList
from hongyan.store.tables import account_rules, words

# Removals from the word lists, counted (see blacklist.REMOVALS: on SQLite a
# removed newest row's id is handed out again, so count and max(id) may not change).
WORD_REMOVALS = "word_removals"
# Changes of any account's rules (set_rules, unset_rules), counted so that the
# cache checks one row every few seconds instead of reading every account's.
RULE_CHANGES = "rule_changes"
# A cached account's rules are read again after this long even with no change
# counted (a row edited by hand).
RULES_MAX_AGE_S = 60.0
log = logging.getLogger(__name__)

# Bounds on the whole-number settings: beyond them a value means nothing more
# (a billion a second is no limit) but would overflow the counters (Redis
# expiry times, 64-bit JSON), so it is refused when set.
MAX_NUMBER = 1_000_000_000
MAX_SAME_CONTENT_MINUTES = 366 * 24 * 60

@dataclass(frozen=True, slots=True)
class RuleSettings:
    signature_required: bool = False
    default_signature: str = ""
    signatures: tuple[str, ...] = ()   # approved signatures; empty = any
    templates_only: bool = False       # the content must match one of ``templates``
    templates: tuple[str, ...] = ()    # approved templates, e.g. "【店】验证码{code}，5分钟有效"
    mps: int = 0                       # messages a second, counted numbers x parts; 0 = no limit
    concurrency: int = 5               # HTTP requests in flight at once; 0 = no limit
    monthly_quota: int = 0             # messages (numbers x parts) a calendar month; 0 = no quota
    per_number_daily: int = 0          # messages to one number a day; 0 = no limit
    same_content_minutes: int = 0      # the same text to one number at most once in this many minutes
    allowed_hours: str = ""            # "" = any time, else e.g. "08-21" or "08:30-21:00"
    # Replies that unsubscribe (domain.optout): their sender goes on the account's blacklist; () = none.
    optout_words: tuple[str, ...] = DEFAULT_KEYWORDS

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: RuleSettings | None = None) -> RuleSettings:
        """``base`` with ``data`` applied; unknown keys and wrong types raise AdminError."""
        base = base or cls()
        unknown = set(data) - set(cls.keys())
        if unknown:
            raise AdminError(f"unknown rule setting {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(cls.keys())})")
        values = {k: _coerce(k, v) for k, v in data.items()}
        return replace(base, **values)

    @classmethod
    def from_stored(cls, data: dict[str, Any], base: RuleSettings | None = None, *,
                    where: str = "") -> RuleSettings:
        """``base`` with a stored row applied, never refusing it.

        A row may hold what today's checks refuse: a key since renamed, or a
        value stored before its check existed. Such a value must not stop
        every request of the account (or, in the platform row, of every
        account) and every reply it receives. A bad item of a list (a
        template, an opt-out word) is dropped and the rest kept, so a
        templates-only account stays limited to its good templates; any other
        bad value leaves the one underneath it (platform, then default).
        Each is logged, to be repaired with ``rules unset`` or ``rules set``.
        """
        base = base or cls()
        values: dict[str, Any] = {}
        known = set(cls.keys())
        for key, value in data.items():
            if key not in known:
                log.warning("rules%s: ignoring the unknown stored setting %s", where, key)
                continue
            try:
                values[key] = _coerce(key, value)
            except AdminError as exc:
                if key in _CHECK_LIST and isinstance(value, (list, tuple)):
                    kept = [v for v in value if isinstance(v, str) and _item_ok(key, v)]
                    log.warning("rules%s: dropping the bad items of %s (%s)", where, key, exc)
                    values[key] = _CHECK_LIST[key](kept)
                else:
                    log.warning("rules%s: ignoring the stored %s (%s)", where, key, exc)
        return replace(base, **values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["signatures"] = list(self.signatures)
        return d


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False, "": False}


def _coerce(key: str, value: Any) -> Any:
    """Type-check one value; strings (from the CLI) are parsed to the key's type."""
    kind = {f.name: f.default for f in fields(RuleSettings)}[key]
    if isinstance(kind, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise AdminError(f"{key} must be true or false, not {value!r}")
    if isinstance(kind, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise AdminError(f"{key} must be a whole number >= 0, not {value!r}")
        top = MAX_SAME_CONTENT_MINUTES if key == "same_content_minutes" else MAX_NUMBER
        if value > top:
            raise AdminError(f"{key} must be at most {top:,}, not {value:,}")
        return value
    if isinstance(kind, tuple):
        if isinstance(value, str):
            # From the CLI: a comma-separated list (templates contain commas: one per call, or JSON).
            value = [value] if key == "templates" else [s for s in (p.strip() for p in value.split(",")) if s]
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
            raise AdminError(f"{key} must be a list of strings, not {value!r}")
        return _CHECK_LIST.get(key, _strip)(value)
    if not isinstance(value, str):
        raise AdminError(f"{key} must be text, not {value!r}")
    value = value.strip()
    if key == "allowed_hours" and value:
        try:
            parse_hours(value)
        except BadWindow as exc:
            raise AdminError(f"allowed_hours: {exc}") from None
    return value


def _strip(items) -> tuple[str, ...]:
    return tuple(s.strip() for s in items if s.strip())


def _signatures(items) -> tuple[str, ...]:
    return tuple(s.strip().removeprefix("【").removesuffix("】").strip() for s in items if s.strip())


def _templates(items) -> tuple[str, ...]:
    out = _strip(items)
    for text in out:
        try:
            Template("check", text)
        except ValueError as exc:
            raise AdminError(f"template {text!r}: {exc}") from None
    return out


def _optout_words(items) -> tuple[str, ...]:
    out = _strip(items)
    try:
        OptOut(out)
    except ValueError as exc:
        raise AdminError(f"optout_words: {exc}") from None
    return out


_CHECK_LIST = {"signatures": _signatures, "templates": _templates, "optout_words": _optout_words}


def _item_ok(key: str, item: str) -> bool:
    try:
        _CHECK_LIST[key]([item])
    except AdminError:
        return False
    return True


def _row(conn: Connection, account_id: int) -> dict[str, Any]:
    raw = conn.execute(select(account_rules.c.settings)
                       .where(account_rules.c.account_id == account_id)).scalar()
    return orjson.loads(raw) if raw else {}


def _stored_row(conn: Connection, account_id: int) -> dict[str, Any]:
    """The row as ``_row`` reads it, or nothing when it is not a JSON object (logged)."""
    try:
        data = _row(conn, account_id)
    except orjson.JSONDecodeError as exc:
        log.warning("rules of account %d: the stored row is not JSON (%s); using the rules under it",
                    account_id, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("rules of account %d: the stored row is not an object; using the rules under it", account_id)
        return {}
    return data


def get_rules(conn: Connection, account_id: int) -> RuleSettings:
    """Defaults <- the platform row (account 0) <- the account's row.

    What is stored is applied leniently (``RuleSettings.from_stored``): a value
    that no longer passes the checks is logged and left out, never raised.
    """
    rules = RuleSettings.from_stored(_stored_row(conn, 0), where=" of the platform")
    if not account_id:
        return rules
    return RuleSettings.from_stored(_stored_row(conn, account_id), rules, where=f" of account {account_id}")


def set_rules(conn: Connection, account_id: int, **changes: Any) -> RuleSettings:
    """Store ``changes`` in the account's row (validated first); returns the effective rules."""
    current = _row(conn, account_id)
    checked = RuleSettings.from_dict(changes)  # raises before anything is written
    current.update({k: checked.to_dict()[k] for k in changes})
    text = orjson.dumps(current).decode()
    now = now_ms()
    count_change(conn, RULE_CHANGES)
    if conn.execute(select(account_rules.c.account_id).where(account_rules.c.account_id == account_id)).first():
        conn.execute(account_rules.update().where(account_rules.c.account_id == account_id)
                     .values(settings=text, updated_at=now))
    else:
        conn.execute(account_rules.insert().values(account_id=account_id, settings=text, updated_at=now))
    return get_rules(conn, account_id)


class RuleBook:
    """Cached effective rules per account and the word list, for accept.

    Every ``ttl`` seconds one read of the change count (``RULE_CHANGES``)
    tells whether any rules changed; only then are the accounts' rows read
    again, each when next used. Reading every active account's row every few
    seconds instead cost about 0.75 ms a row on PostgreSQL (measured), on
    the event loop: a third of it with a thousand busy accounts.
    """

    def __init__(self, reader: Engine, *, ttl: float = 2.0, word_check: float = 1.0,
                 max_age: float = RULES_MAX_AGE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.reader, self.ttl, self.word_check, self.clock = reader, ttl, word_check, clock
        self.max_age = max_age
        self._changes: int | None = None
        self._changes_checked = float("-inf")
        self._rules: dict[int, tuple[float, RuleSettings]] = {}
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = float("-inf")
        self._words = WordList(())
        self._templates: dict[tuple[str, ...], TemplateSet] = {}
        self._optouts: dict[tuple[str, ...], OptOut] = {}
        self._hours: dict[str, tuple[int, int]] = {}

    def rules(self, account_id: int) -> RuleSettings:
        now = self.clock()
        if now - self._changes_checked >= self.ttl:
            self._changes_checked = now
            with self.reader.connect() as conn:
                changes = removals(conn, RULE_CHANGES)
            if changes != self._changes:
                self._rules.clear()
                self._changes = changes
        hit = self._rules.get(account_id)
        if hit and now - hit[0] < self.max_age:
            return hit[1]
        with self.reader.connect() as conn:
            rules = get_rules(conn, account_id)
        self._rules[account_id] = (now, rules)
        return rules

    def words(self) -> WordList:
        """The word list, rebuilt when the table changed (checked at most every ``word_check`` s).

        count, max(id) and the count of removals together see every add and
        remove; the automaton is built once per change, never per request. It
        is built before the request that saw the change is answered (10,000
        words take about a fifth of a second, once per change): a word an
        operator has just listed must stop the next message, not the one after.
        """
        now = self.clock()
        if now - self._checked < self.word_check:
            return self._words
        with self._lock:
            self._checked = now
            with self.reader.connect() as conn:
                stamp = (*conn.execute(select(func.count(), func.max(words.c.id))).one(),
                         removals(conn, WORD_REMOVALS))
                if stamp != self._stamp:
                    rows = conn.execute(select(words.c.list, words.c.word)).all()
                    self._words = WordList([w for k, w in rows if k == "block"],
                                           [w for k, w in rows if k == "review"])
                    self._stamp = stamp
        return self._words

    def templates(self, rules: RuleSettings) -> TemplateSet:
        """The account's approved templates, compiled once per distinct list."""
        return _built(self._templates, rules.templates,
                      lambda texts: TemplateSet(Template(i, text) for i, text in enumerate(texts)))

    def optout(self, rules: RuleSettings) -> OptOut:
        """The account's opt-out words as a matcher, built once per distinct list.

        Rules are checked when set; a word that is only punctuation is dropped
        here anyway, since a bad setting must never stop replies being received.
        """
        return _built(self._optouts, rules.optout_words,
                      lambda words: OptOut([w for w in words if normalise_reply(w)]))

    def hours(self, rules: RuleSettings) -> tuple[int, int] | None:
        """The account's allowed hours as a window, None for any time."""
        if not rules.allowed_hours:
            return None
        return _built(self._hours, rules.allowed_hours, parse_hours)

    def invalidate(self) -> None:
        self._rules.clear()
        self._checked = float("-inf")
        self._changes_checked = float("-inf")


# Distinct settings kept compiled; past this many (accounts come and go) the cache starts over.
_BUILT_MAX = 1000


def _built(cache: dict, key, build: Callable):
    """``build(key)``, made once per distinct setting and kept in ``cache``."""
    found = cache.get(key)
    if found is None:
        if len(cache) >= _BUILT_MAX:
            cache.clear()
        found = cache[key] = build(key)
    return found


def add_words(conn: Connection, kind: str, items: list[str]) -> int:
    """Add words to a list; returns how many were new."""
    if kind not in ("block", "review"):
        raise AdminError("list must be 'block' or 'review'")
    have = set(conn.execute(select(words.c.word).where(words.c.list == kind)).scalars())
    new = list(dict.fromkeys(w.strip() for w in items if w.strip() and w.strip() not in have))
    if new:
        now = now_ms()
        conn.execute(words.insert(), [{"list": kind, "word": w, "created_at": now} for w in new])
    return len(new)


def remove_words(conn: Connection, kind: str, items: list[str]) -> int:
    if kind not in ("block", "review"):
        raise AdminError("list must be 'block' or 'review'")
    removed = conn.execute(words.delete().where(words.c.list == kind, words.c.word.in_(items))).rowcount
    if removed:
        count_change(conn, WORD_REMOVALS)
    return removed
