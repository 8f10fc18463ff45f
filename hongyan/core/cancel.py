"""Cancelling a submission: its messages that have not gone out yet never will.

What can be cancelled is every message no dispatcher has taken: ``held`` (for
review), ``scheduled``, or ``queued`` — a scheduled time not yet come, a
daily window not yet open, a retry waiting, or simply not claimed yet. A
message already ``submitting`` or ``submitted`` is with the carrier and is
not called back; a final one is final. So a submission partly dispatched
cancels the rest, and the answer says how many went and how many stopped.

A cancelled message ends ``failed`` with status ``CANCEL`` through
``Receiver.finalize``: it is refunded in full whatever the account's refund
policy (it was never sent), the refund is a ledger row, and a report event is
written so that customers who pull or receive pushes see a final state for
every message. The submission's state becomes ``cancelled``.

Runs in one transaction. On PostgreSQL the messages are locked with ``SKIP
LOCKED``: one a dispatcher is claiming at this instant counts as sent, and a
dispatcher that comes after finds it final and leaves it.
"""
from __future__ import annotations

from sqlalchemy import Connection, func, select, update

from hongyan.domain.clock import now_ms
from hongyan.domain.outcomes import Code, Outcome, fail, ok
from hongyan.store.tables import messages, submissions

from .receive import Final, Receiver

CANCEL = "CANCEL"
CANCELLABLE = ("held", "scheduled", "queued")
NOTE = "cancelled by the customer before it was sent"


def cancel(conn: Connection, account_id: int, submission_id: int, receiver: Receiver, *,
           now: int | None = None) -> Outcome:
    """Cancel what is left of one of the account's submissions.

    The data of an ``ok`` answer: ``submission_id``, ``cancelled`` (messages
    stopped), ``refunded`` (money given back), ``not_cancelled`` (messages
    already with the carrier or finished) and ``state`` (the submission's).
    """
    now = now or now_ms()
    q = select(submissions.c.id, submissions.c.state).where(
        submissions.c.id == submission_id, submissions.c.account_id == account_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()  # two cancels of one submission take turns
    sub = conn.execute(q).first()
    if sub is None:
        return fail(Code.INVALID_PARAMETER, f"no submission {submission_id}")
    pending = (select(messages.c.id, messages.c.cost, messages.c.refunded)
               .where(messages.c.submission_id == submission_id, messages.c.state.in_(CANCELLABLE))
               .order_by(messages.c.id))
    if conn.dialect.name == "postgresql":
        pending = pending.with_for_update(skip_locked=True)
    rows = conn.execute(pending).all()
    total = conn.execute(select(func.count()).select_from(messages)
                         .where(messages.c.submission_id == submission_id)).scalar() or 0
    if not rows:
        if sub.state == "cancelled":
            return fail(Code.UNSUPPORTED_OPERATION, f"submission {submission_id} is already cancelled")
        return fail(Code.UNSUPPORTED_OPERATION,
                    f"submission {submission_id} has nothing left to cancel: "
                    f"its {total} message(s) are already with the carrier or finished")
    ids = [r.id for r in rows]
    refunded = sum(r.cost for r in rows if r.cost > 0 and not r.refunded)
    for i in range(0, len(ids), 1000):
        conn.execute(update(messages).where(messages.c.id.in_(ids[i:i + 1000])).values(note=NOTE))
    receiver.finalize(conn, [Final(mid, "failed", CANCEL, always_refund=True) for mid in ids], now)
    conn.execute(update(submissions).where(submissions.c.id == submission_id).values(state="cancelled"))
    return ok(submission_id=submission_id, cancelled=len(ids), refunded=refunded,
              not_cancelled=total - len(ids), state="cancelled")
