"""Manual review: submissions held by a review word wait here for an operator.

Accept holds a submission whose text hits a ``review`` word: it is billed, its
messages are ``held`` and nothing is sent. An operator then decides, once:

* ``approve`` queues the held messages (at the submission's scheduled time,
  or now if that has passed, but never outside the account's allowed hours)
  and the submission becomes ``accepted`` or ``scheduled`` as if it had never
  been held;
* ``reject`` ends them ``failed`` with status ``REJECT`` through
  ``Receiver.finalize`` (so the customer gets a report like any other), and
  refunds them whatever the account's refund policy says: a rejected message
  was never sent, so keeping its money would be charging for nothing.

Each decision is a row in ``reviews`` (who, when, why); its unique
``submission_id`` makes a second decision on the same submission impossible
even when two operators click at once. A request naming several submissions
is checked whole before anything is written: one that cannot be decided
refuses the request and changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (Connection, func, select,
                        update)

from hongyan.domain.clock import now_ms, to_ms
from hongyan.domain.windows import next_open, parse_hours
from hongyan.domain.words import WordList
from hongyan.store.tables import accounts, messages, reviews, submissions
from hongyan.store.tables import words as words_table

from .accounts import AdminError
from .receive import Final, Receiver
from .blacklist import removals
from .rules import WORD_REMOVALS, get_rules

HELD = "held"
REJECT = "REJECT"
MAX_IDS = 1000  # submissions decided in one request


class ReviewError(AdminError):
    """A review decision that cannot be made, with the reason for the operator."""


class NotReviewable(ReviewError):
    """Every submission named exists, but one is no longer (or never was) waiting for review."""


@dataclass(frozen=True, slots=True)
class Decision:
    submission_id: int
    account_id: int
    decision: str            # approved | rejected
    messages: int            # held messages it moved
    refunded: int            # money given back (rejections)
    state: str               # the submission's state now
    due_at: int | None       # when approved messages become due
    # What the dispatcher keeps at hand for an approved submission's messages.
    content: str
    extno: str
    product_id: int | None
    window: tuple[int, int] | None = None    # the request's own daily send window

    @property
    def scheduled(self) -> bool:
        return self.state == "scheduled"


# -- listing ---------------------------------------------------------------------

_review_list: tuple[tuple, WordList] | None = None


def review_words(conn: Connection) -> WordList:
    """The review list as it reads now, to say which words a held text contains.

    Building the automaton for 10,000 words takes about 0.2 s, so the list is
    kept until the table's review rows change (their count, newest id or time).
    """
    global _review_list
    review_rows = words_table.c.list == "review"
    stamp = (str(conn.engine.url), *conn.execute(
        select(func.count(), func.max(words_table.c.id), func.max(words_table.c.created_at))
        .where(review_rows)).one(), removals(conn, WORD_REMOVALS))
    cached = _review_list
    if cached is not None and cached[0] == stamp:
        return cached[1]
    wordlist = WordList((), conn.execute(select(words_table.c.word).where(review_rows)).scalars())
    _review_list = (stamp, wordlist)
    return wordlist


def matched_words(wordlist: WordList, text: str) -> list[str]:
    """Every listed word in ``text``, left to right, each once."""
    found: list[str] = []
    start = 0
    while start < len(text):
        m = wordlist.match(text[start:])
        if m is None:
            break
        if m.word not in found:
            found.append(m.word)
        start += m.end
    return found


def held(conn: Connection, account_id: int | None = None, *, after: int = 0, limit: int = 100,
         wordlist: WordList | None = None) -> list[dict]:
    """Held submissions (of one account, or all), oldest first, after submission id ``after``.

    ``words`` are the review words the text contains as the list reads now; a
    word removed since the message was held is no longer shown.
    """
    q = (select(submissions.c.id, submissions.c.account_id, accounts.c.username, submissions.c.dialect,
                submissions.c.content, submissions.c.extno, submissions.c.recipients, submissions.c.parts,
                submissions.c.cost, submissions.c.scheduled_at, submissions.c.created_at,
                submissions.c.client_ref)
         .outerjoin(accounts, accounts.c.id == submissions.c.account_id)
         .where(submissions.c.state == HELD, submissions.c.id > after)
         .order_by(submissions.c.id).limit(limit))
    if account_id is not None:
        q = q.where(submissions.c.account_id == account_id)
    rows = conn.execute(q).all()
    if not rows:
        return []
    counts = dict(conn.execute(
        select(messages.c.submission_id, func.count())
        .where(messages.c.submission_id.in_([r.id for r in rows]), messages.c.state == HELD)
        .group_by(messages.c.submission_id)).all())
    wordlist = wordlist if wordlist is not None else review_words(conn)
    return [{"submission_id": r.id, "account_id": r.account_id, "username": r.username, "dialect": r.dialect,
             "client_ref": r.client_ref, "content": r.content, "extno": r.extno, "recipients": r.recipients,
             "held": counts.get(r.id, 0), "parts": r.parts, "cost": r.cost, "scheduled_at": r.scheduled_at,
             "created_at": r.created_at, "words": matched_words(wordlist, r.content)} for r in rows]


def decisions(conn: Connection, submission_ids: list[int]) -> dict[int, dict]:
    """The recorded decision of each submission that has one."""
    if not submission_ids:
        return {}
    return {r.submission_id: dict(r._mapping) for r in conn.execute(
        select(reviews).where(reviews.c.submission_id.in_(submission_ids))).all()}


# -- deciding ---------------------------------------------------------------------

def _pending(conn: Connection, submission_ids: list[int], operator: str) -> list:
    """The submissions to decide, locked; every one must exist and still be held."""
    ids = list(dict.fromkeys(int(i) for i in submission_ids))
    if not ids:
        raise ReviewError("name at least one submission")
    if len(ids) > MAX_IDS:
        raise ReviewError(f"at most {MAX_IDS} submissions at once")
    if not operator or not operator.strip():
        raise ReviewError("say who decides (operator)")
    rows = {r.id: r for r in conn.execute(
        select(submissions.c.id, submissions.c.account_id, submissions.c.state, submissions.c.scheduled_at,
               submissions.c.content, submissions.c.extno, submissions.c.product_id, submissions.c.balance_id,
               submissions.c.window_start, submissions.c.window_end)
        .where(submissions.c.id.in_(ids)).with_for_update()).all()}
    done = decisions(conn, [i for i in ids if i in rows and rows[i].state != HELD])
    problems = []
    missing = [sid for sid in ids if sid not in rows]
    for sid in ids:
        row = rows.get(sid)
        if row is None:
            problems.append(f"there is no submission {sid}")
        elif sid in done:
            d = done[sid]
            problems.append(f"submission {sid} was already {d['decision']} by {d['operator']}")
        elif row.state != HELD:
            problems.append(f"submission {sid} is not held for review (it is {row.state})")
    if problems:
        raise (ReviewError if missing else NotReviewable)("; ".join(problems) + "; nothing was changed")
    return [rows[sid] for sid in ids]


def _claim(conn: Connection, sid: int, state: str, **values) -> None:
    """Move the submission out of ``held``; a decision made meanwhile by someone else refuses this one."""
    moved = conn.execute(update(submissions).where(submissions.c.id == sid, submissions.c.state == HELD)
                         .values(state=state, **values)).rowcount
    if moved != 1:
        raise NotReviewable(f"submission {sid} was decided by someone else meanwhile; nothing was changed")


def _record(conn: Connection, row, decision: str, operator: str, reason: str, count: int, refunded: int,
            now: int) -> None:
    conn.execute(reviews.insert().values(submission_id=row.id, account_id=row.account_id, decision=decision,
                                         operator=operator.strip()[:128], reason=reason, messages=count,
                                         refunded=refunded, created_at=now))


def approve(conn: Connection, submission_ids: list[int], operator: str, *, now: int | None = None) -> list[Decision]:
    """Queue the held messages of these submissions. All or none; returns what was done.

    The caller should tell the dispatcher (``Dispatcher.remember`` + ``wake``)
    of each decision that is not ``scheduled``; a dispatcher that is not told
    still finds the messages at its next poll.
    """
    now = now or now_ms()
    out = []
    for row in _pending(conn, submission_ids, operator):
        # A scheduled time still ahead is kept; one that passed while the text
        # waited for review means "as soon as possible" -- within the account's
        # allowed hours, which accept checked for the time the text was due then.
        due = max(now, row.scheduled_at or 0)
        # And within the request's own daily window (kxt3 dailyBeginTime), as accept would have put it.
        window = None if row.window_start is None else (row.window_start, row.window_end)
        hours = get_rules(conn, row.account_id).allowed_hours
        opens = [w for w in (window, parse_hours(hours) if hours else None) if w is not None]
        for _ in range(4):  # each opening may fall outside the other window: a few rounds find both open
            before = due
            for w in opens:
                due = max(due, to_ms(next_open(w, datetime.fromtimestamp(due / 1000))))
            if due == before:
                break
        state = "scheduled" if due > now else "accepted"
        # A scheduled submission says when, as accept writes one.
        _claim(conn, row.id, state, **({"scheduled_at": due} if state == "scheduled" else {}))
        count = conn.execute(update(messages).where(messages.c.submission_id == row.id,
                                                    messages.c.state == HELD)
                             .values(state="queued", due_at=due)).rowcount
        _record(conn, row, "approved", operator, "", count, 0, now)
        out.append(Decision(row.id, row.account_id, "approved", count, 0, state, due, row.content, row.extno,
                            row.product_id, window))
    return out


def reject(conn: Connection, submission_ids: list[int], operator: str, reason: str, receiver: Receiver, *,
           now: int | None = None) -> list[Decision]:
    """Fail the held messages of these submissions with ``REJECT``, refunded and reported. All or none."""
    now = now or now_ms()
    reason = (reason or "").strip()
    note = f"rejected by review: {reason}" if reason else "rejected by review"
    out = []
    for row in _pending(conn, submission_ids, operator):
        _claim(conn, row.id, "rejected")
        still_held = (messages.c.submission_id == row.id) & (messages.c.state == HELD)
        refundable = still_held & (messages.c.cost > 0) & messages.c.refunded.is_(False)
        refunded = int(conn.execute(select(func.coalesce(func.sum(messages.c.cost), 0))
                                    .where(refundable)).scalar())
        ids = list(conn.execute(select(messages.c.id).where(still_held).order_by(messages.c.id)).scalars())
        conn.execute(update(messages).where(still_held).values(note=note))
        # A rejection is refunded under every refund policy: nothing was sent.
        receiver.finalize(conn, [Final(mid, "failed", REJECT, always_refund=True) for mid in ids], now)
        _record(conn, row, "rejected", operator, reason, len(ids), refunded, now)
        out.append(Decision(row.id, row.account_id, "rejected", len(ids), refunded, "rejected", None,
                            row.content, row.extno, row.product_id))
    return out
