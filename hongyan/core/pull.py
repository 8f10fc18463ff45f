"""Pull: replies (MO) handed out once to interfaces that fetch them instead of receiving pushes.

A pulled MO is marked ``push_state = "pulled"`` in the events table, so the
next pull (in this process or another, before or after a restart) does not
return it again, and the notifier stops pushing it. An MO already pushed
(``done``) is not returned: the customer has it. Pending and dead pushes are
returned, so a customer whose push receiver is down still gets them by pulling.
"""
from __future__ import annotations

import orjson
from sqlalchemy import Connection, select, update

from hongyan.store.tables import accounts, events

PULLABLE = ("none", "pending", "dead")
PULLED = "pulled"


def pull_mo(conn: Connection, account_id: int, org_id: int | None = None, limit: int = 500) -> list[dict]:
    """MO not yet pulled for one account, or with ``org_id`` for every account of that org.

    Returns the native payloads, oldest first, each with its event ``id`` and
    ``account_id``; they are marked pulled in the same transaction.
    """
    if org_id is None:
        whose = events.c.account_id == account_id
    else:
        whose = events.c.account_id.in_(select(accounts.c.id).where(accounts.c.org_id == org_id))
    q = (select(events.c.id, events.c.account_id, events.c.payload)
         .where(whose, events.c.kind == "mo", events.c.push_state.in_(PULLABLE))
         .order_by(events.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        # Two pulls at once each take different rows rather than the same ones.
        q = q.with_for_update(skip_locked=True)
    rows = conn.execute(q).all()
    if rows:
        conn.execute(update(events).where(events.c.id.in_([r.id for r in rows])).values(push_state=PULLED))
    return [{"id": r.id, "account_id": r.account_id, **orjson.loads(r.payload)} for r in rows]
