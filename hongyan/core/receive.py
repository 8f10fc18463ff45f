"""Receive: carrier reports and MO become message states, refunds and customer events.

Everything here runs inside a writer job, so a report's state change, its
refund and its push-outbox row commit together or not at all.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update

from hongyan.channels.base import Inbound, Report
from hongyan.domain import numbers
from hongyan.domain.clock import iso, now_ms, to_ms
from hongyan.domain.optout import OptOut
from hongyan.store.bulk import insert_rows, update_rows
from hongyan.store.tables import (balances, carrier_ids, events, ledger, messages, mo,
                                  orphan_reports, submissions)

from . import blacklist
from .accounts import Directory
from .notify import push_state_for
from .rules import RuleBook

FINAL_STATES = ("delivered", "failed", "expired")
EVENT_COLUMNS = ("account_id", "kind", "ref_id", "payload", "created_at", "push_state", "attempts", "next_at")
DELIVERED = "DELIVRD"
EXPIRED = "EXPIRED"
MO_COLUMNS = ("account_id", "channel_id", "phone", "dest", "extno", "content", "received_at")
# How far back a reply's extension is matched to the submission it answers.
REPLY_WINDOW_MS = 7 * 24 * 3600 * 1000
# How long a reply route (the front door an extension last sent by) is reused without reading it again.
REPLY_ROUTE_TTL_S = 5.0
_CHUNK = 1000
_MESSAGE_COLUMNS = (messages.c.id, messages.c.account_id, messages.c.submission_id, messages.c.phone,
                    messages.c.parts, messages.c.parts_done, messages.c.cost, messages.c.refunded,
                    messages.c.state, messages.c.status, messages.c.submitted_at,
                    submissions.c.client_ref, submissions.c.balance_id, submissions.c.dialect)
_MESSAGE_JOIN = messages.join(submissions, submissions.c.id == messages.c.submission_id)


def _chunks(seq: list, n: int = _CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


@dataclass(slots=True)
class Final:
    """A message that reached its final state, to be refunded and reported."""
    message_id: int
    state: str              # delivered | failed | expired
    status: str             # the carrier's status text, or ours (REJECT, EXPIRED, CANCEL, CMPP:11, ...)
    # Refund whatever the account's refund policy says: for messages that were
    # never sent (cancelled), where keeping the money would charge for nothing.
    always_refund: bool = False


class Receiver:
    def __init__(self, directory: Directory, rulebook: RuleBook | None = None) -> None:
        self.directory = directory
        # The accept path's rule cache, shared: one cache, invalidated in one place.
        self.rulebook = rulebook or RuleBook(directory.engine)
        self._last_dialect: dict[tuple[int, str], tuple[float, str | None]] = {}

    # -- finishing messages -------------------------------------------------

    def finalize(self, conn: Connection, finals: list[Final], now: int | None = None,
                 rows: dict[int, object] | None = None) -> int:
        """Set final states, refund failures by the account's policy, write report events.

        ``rows`` may hold the messages' rows (``_MESSAGE_COLUMNS``) already read by the caller.
        """
        if not finals:
            return 0
        now = now or now_ms()
        by_id = {f.message_id: f for f in finals}
        if rows is None:
            rows = {}
            for chunk in _chunks(list(by_id)):
                for r in conn.execute(select(*_MESSAGE_COLUMNS).select_from(_MESSAGE_JOIN)
                                      .where(messages.c.id.in_(chunk))).all():
                    rows[r.id] = r
        rows = [rows[mid] for mid in by_id if mid in rows]
        if conn.dialect.name == "postgresql":
            rows = self._lock_unfinished(conn, rows)
        updates, refunds, event_rows = [], defaultdict(int), []
        ledger_rows = []
        done_at = iso(now)
        accounts_seen: dict[int, object] = {}
        for r in rows:
            # Unpacked by position: this loop runs for every report, and a Row's
            # attribute lookup costs more than the rest of it.
            (mid, account_id, submission_id, phone, parts, _done, cost, refunded, state, _status,
             submitted_at, client_ref, balance_id) = r[:13]
            if state in FINAL_STATES:
                continue  # a late or repeated report: the first final state stands
            f = by_id[mid]
            acc = accounts_seen.get(account_id)
            if acc is None:
                acc = accounts_seen[account_id] = self.directory.by_id(account_id)
            refund = (f.state != "delivered" and cost > 0 and not refunded
                      and (f.always_refund or (acc is not None and acc.refund_policy == "failed")))
            if refund:
                refunds[balance_id] += cost
                ledger_rows.append({"balance_id": balance_id, "kind": "refund", "amount": cost,
                                    "submission_id": submission_id, "message_id": mid,
                                    "note": f.status, "created_at": now})
            was_refunded = bool(refunded or refund)
            updates.append((f.state, f.status, now, was_refunded, mid))
            payload = orjson.dumps({
                "message_id": mid, "submission_id": submission_id, "client_ref": client_ref, "to": phone,
                "status": f.state, "carrier_status": f.status, "parts": parts,
                "submitted_at": iso(submitted_at), "done_at": done_at, "cost": cost,
                "refunded": was_refunded}).decode()
            event_rows.append((account_id, "report", mid, payload, now, push_state_for(acc, "report", r[13]), 0, now))
        update_rows(conn, messages, ("state", "status", "done_at", "refunded"), "id = ?", updates)
        if refunds:
            # In balance id order, as every writer does, so two nodes refunding
            # into the same balances never wait on each other in a circle.
            conn.execute(update(balances).where(balances.c.id == bindparam("bid"))
                         .values(amount=balances.c.amount + bindparam("amt")),
                         [{"bid": b, "amt": refunds[b]} for b in sorted(refunds)])
            conn.execute(insert(ledger), ledger_rows)
        insert_rows(conn, events, EVENT_COLUMNS, event_rows)
        return len(event_rows)

    @staticmethod
    def _lock_unfinished(conn: Connection, rows: list) -> list:
        """The rows whose message is still unfinished, with those messages locked (PostgreSQL).

        Rows were read without a lock, and another node may be finishing the
        same messages at this moment (a report racing expiry or a cancel).
        Locking them and reading their state again, in id order, makes the
        first final state stand: the second finisher waits, then skips them,
        so nothing is refunded or reported twice.
        """
        open_ids = sorted(r[0] for r in rows if r[8] not in FINAL_STATES)
        still: set[int] = set()
        for chunk in _chunks(open_ids):
            still.update(conn.execute(
                select(messages.c.id).where(messages.c.id.in_(chunk), messages.c.state.not_in(FINAL_STATES))
                .order_by(messages.c.id).with_for_update()).scalars())
        return [r for r in rows if r[0] in still]

    # -- reports ------------------------------------------------------------

    def apply_reports(self, conn: Connection, reports: list[Report], *, keep_orphans: bool = True,
                      now: int | None = None) -> tuple[int, list[Report]]:
        """Match reports to parts; roll parts up into messages. Returns (events, unmatched)."""
        now = now or now_ms()
        by_channel: dict[int, list[Report]] = defaultdict(list)
        for r in reports:
            by_channel[r.channel_id].append(r)
        # One read per chunk: the part, its message and its submission together.
        parts: dict[tuple[int, str], object] = {}
        for channel_id, reps in by_channel.items():
            for chunk in _chunks(list({r.carrier_id for r in reps})):
                for row in conn.execute(
                        select(carrier_ids.c.id.label("part_id"), carrier_ids.c.carrier_id,
                               carrier_ids.c.status.label("part_status"), *_MESSAGE_COLUMNS)
                        .select_from(carrier_ids.join(messages, messages.c.id == carrier_ids.c.message_id)
                                     .join(submissions, submissions.c.id == messages.c.submission_id))
                        .where(carrier_ids.c.channel_id == channel_id, carrier_ids.c.carrier_id.in_(chunk))
                        .order_by(carrier_ids.c.id)).all():
                    # The newest part with this id wins if a carrier ever reused one.
                    parts[(channel_id, row[1])] = row
        unmatched: list[Report] = []
        part_updates = []
        seen: set[tuple[int, str]] = set()
        per_message: dict[int, list[str]] = defaultdict(list)
        message_rows: dict[int, object] = {}
        for r in reports:
            key = (r.channel_id, r.carrier_id)
            row = parts.get(key)
            if row is None:
                unmatched.append(r)
                continue
            # (part id, carrier id, part status, then the message's columns)
            part_id, part_status, mid, m_parts, m_state = row[0], row[2], row[3], row[7], row[11]
            if key in seen or part_status is not None or m_state in FINAL_STATES:
                continue  # this part was already reported
            seen.add(key)
            status = r.status if not r.delivered else DELIVERED
            if m_parts > 1:
                # Only a long message needs to remember which parts it has heard of;
                # a one-part message's final state is its memory.
                part_updates.append((status, part_id))
            per_message[mid].append(status)
            message_rows[mid] = row[3:]  # the message's own columns, as finalize reads them
        update_rows(conn, carrier_ids, ("status",), "id = ?", part_updates)
        finals: list[Final] = []
        progress: list[tuple] = []
        for mid, new in per_message.items():
            m = message_rows[mid]
            m_parts, m_done, m_status = m[4], m[5], m[9]
            done = m_done + len(new)
            failure = m_status if (m_status and m_status != DELIVERED) else next(
                (st for st in new if st != DELIVERED), None)
            if done >= m_parts:
                finals.append(Final(mid, "failed" if failure else "delivered", failure or DELIVERED))
            else:
                progress.append((done, failure, mid))
        update_rows(conn, messages, ("parts_done", "status"), "id = ?", progress)
        if unmatched and keep_orphans:
            conn.execute(insert(orphan_reports), [
                {"channel_id": r.channel_id, "carrier_id": r.carrier_id, "status": r.status,
                 "delivered": r.delivered, "phone": r.phone,
                 "done_at": to_ms(r.done_at) if r.done_at else None, "received_at": now, "attempts": 0}
                for r in unmatched])
        return self.finalize(conn, finals, now, message_rows), unmatched

    def retry_orphans(self, conn: Connection, limit: int = 2000, max_attempts: int = 720) -> int:
        """Match reports that came before their submit was recorded. Returns how many matched.

        A report still unmatched after ``max_attempts`` passes (an hour at the
        maintenance pace) is kept for inspection but no longer retried.
        """
        rows = conn.execute(select(orphan_reports).where(orphan_reports.c.attempts < max_attempts)
                            .order_by(orphan_reports.c.id).limit(limit)).all()
        if not rows:
            return 0
        reports = [Report(r.channel_id, r.carrier_id, r.status, r.delivered, r.phone) for r in rows]
        _, unmatched = self.apply_reports(conn, reports, keep_orphans=False)
        still = {(r.channel_id, r.carrier_id) for r in unmatched}
        done_ids = [r.id for r in rows if (r.channel_id, r.carrier_id) not in still]
        for chunk in _chunks(done_ids):
            conn.execute(delete(orphan_reports).where(orphan_reports.c.id.in_(chunk)))
        left = [r.id for r in rows if (r.channel_id, r.carrier_id) in still]
        for chunk in _chunks(left):
            conn.execute(update(orphan_reports).where(orphan_reports.c.id.in_(chunk))
                         .values(attempts=orphan_reports.c.attempts + 1))
        return len(done_ids)

    # -- reports that never come ------------------------------------------

    def expire(self, conn: Connection, timeout_ms: int, limit: int = 1000, now: int | None = None) -> int:
        """Close up to ``limit`` messages whose report never came. Returns how many.

        A message ``submitted`` longer ago than ``timeout_ms`` ends ``expired``
        with status ``EXPIRED``, refunded by the account's policy and reported
        like any other final state. On PostgreSQL the batch is claimed with
        ``FOR UPDATE SKIP LOCKED``, so nodes running this at once take
        different messages; a report that comes later finds the message final
        and changes nothing.
        """
        now = now or now_ms()
        cutoff = now - timeout_ms
        # due_at <= submitted_at always (a message is sent when due or later), so
        # the due_at bound lets the (state, due_at) index find the candidates.
        q = (select(*_MESSAGE_COLUMNS).select_from(_MESSAGE_JOIN)
             .where(messages.c.state == "submitted", messages.c.due_at < cutoff,
                    messages.c.submitted_at < cutoff)
             .order_by(messages.c.due_at, messages.c.id).limit(limit))
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(of=messages, skip_locked=True)
        rows = {r.id: r for r in conn.execute(q).all()}
        return self.finalize(conn, [Final(mid, "expired", EXPIRED) for mid in rows], now, rows)

    # -- MO -----------------------------------------------------------------

    def apply_mo(self, conn: Connection, items: list[tuple[Inbound, str]], now: int | None = None) -> int:
        """Store MO, act on opt-outs, and write an event for the account each belongs to.

        ``items`` pairs each MO with its channel's access code, which the
        destination number starts with. The MO rows go in with one executemany
        and the events with another. A reply that is one of the
        account's opt-out words (rule ``optout_words``) puts its sender on the
        account's blacklist in this same transaction, and its event says
        ``"optout": true``. Returns the events written.
        """
        now = now or now_ms()
        if not items:
            return 0
        routed = []
        for inbound, access_code in items:
            account, extno = self.directory.route_mo(inbound.dest, access_code)
            received = to_ms(inbound.received_at) if inbound.received_at else now
            routed.append((inbound, account, extno, received))
        mo_ids = self._insert_mo(conn, [
            (account.id if account else None, inbound.channel_id, inbound.phone, inbound.dest, extno,
             inbound.text, received) for inbound, account, extno, received in routed])
        via = self._mo_dialects(conn, {(a.id, extno) for _, a, extno, _ in routed if a is not None}, now)
        event_rows = []
        for mo_id, (inbound, account, extno, received) in zip(mo_ids, routed):
            if account is None:
                continue  # kept unrouted for an operator to look at
            optout = self._optout(account.id).is_optout(inbound.text)
            if optout:
                # In the form accept compares (11 digits): gateways send the
                # sender as 8613800138000 or +8613800138000 as often as not.
                listed = numbers.normalise(inbound.phone) or inbound.phone.strip()
                blacklist.add(conn, account.id, [listed], reason="optout",
                              note=f"mo {mo_id}: {inbound.text}"[:500])
            payload = {"mo_id": mo_id, "from": inbound.phone, "to": inbound.dest, "extno": extno,
                       "content": inbound.text, "received_at": iso(received), "optout": optout}
            event_rows.append((account.id, "mo", mo_id, orjson.dumps(payload).decode(), now,
                               push_state_for(account, "mo", via.get((account.id, extno))), 0, now))
        insert_rows(conn, events, EVENT_COLUMNS, event_rows)
        return len(event_rows)

    @staticmethod
    def _insert_mo(conn: Connection, rows: list[tuple]) -> list[int]:
        """Insert MO rows (``MO_COLUMNS`` order) with one executemany; their ids, in order."""
        # Ids are chosen first and inserted with the rows, so one executemany does
        # it and each MO's id is known in order (INSERT ... RETURNING in row order
        # is row by row on SQLite and half as fast on PostgreSQL, measured).
        if conn.dialect.name == "sqlite":
            # The writer holds SQLite's write lock (BEGIN IMMEDIATE): nobody else
            # can take the ids after the largest until this commits.
            first = (conn.execute(select(func.max(mo.c.id))).scalar() or 0) + 1
            ids = list(range(first, first + len(rows)))
        else:
            ids = list(conn.execute(text("SELECT nextval(pg_get_serial_sequence('mo', 'id')) "
                                         "FROM generate_series(1, :n)"), {"n": len(rows)}).scalars())
        insert_rows(conn, mo, ("id", *MO_COLUMNS), [(i, *r) for i, r in zip(ids, rows)])
        return ids

    def _optout(self, account_id: int) -> OptOut:
        """The account's opt-out words (rule ``optout_words``)."""
        return self.rulebook.optout(self.rulebook.rules(account_id))

    def _mo_dialects(self, conn: Connection, keys: set[tuple[int, str]], now: int) -> dict[tuple[int, str], str]:
        """The front door each (account, request extension) last sent by, within ``REPLY_WINDOW_MS``.

        A reply goes back the way its message went out: a customer that sends
        over a CMPP or SMPP session gets the replies to that extension as
        DELIVERs on its session (``push_state_for``). One indexed query per
        pair not seen in the last ``REPLY_ROUTE_TTL_S`` seconds.
        """
        out: dict[tuple[int, str], str] = {}
        mono = time.monotonic()
        for key in keys:
            hit = self._last_dialect.get(key)
            if hit is not None and mono - hit[0] < REPLY_ROUTE_TTL_S:
                if hit[1] is not None:
                    out[key] = hit[1]
                continue
            account_id, extno = key
            dialect = conn.execute(
                select(submissions.c.dialect)
                .where(submissions.c.account_id == account_id, submissions.c.extno == extno,
                       submissions.c.created_at >= now - REPLY_WINDOW_MS)
                .order_by(submissions.c.created_at.desc()).limit(1)).scalar()
            if len(self._last_dialect) >= 10_000:
                self._last_dialect.clear()
            self._last_dialect[key] = (mono, dialect)
            if dialect is not None:
                out[key] = dialect
        return out
