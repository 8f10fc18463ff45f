"""What the console's pages read, each a function of a connection.

Messages are found through their submission (indexed by account and time), so
an account's pages stay quick however many messages other accounts send.
"""
from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import Connection, func, select

from hongyan.core.accounts import balances_of
from hongyan.domain.clock import now_ms
from hongyan.store.tables import (accounts, balances, channels, events, ledger, messages, mo, orgs,
                                  products, submissions)

from .views import MESSAGE_STATES

PAGE = 100


def start_of_today_ms() -> int:
    """Local midnight, as the console shows server local time."""
    midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


def counts_since(conn: Connection, account_id: int, since_ms: int) -> dict[str, int]:
    rows = conn.execute(
        select(messages.c.state, func.count())
        .select_from(submissions.join(messages, messages.c.submission_id == submissions.c.id))
        .where(submissions.c.account_id == account_id, submissions.c.created_at >= since_ms)
        .group_by(messages.c.state)).all()
    return {state: n for state, n in rows}


def recent_reports(conn: Connection, account_id: int, limit: int = 10) -> list[dict]:
    rows = conn.execute(select(events.c.id, events.c.payload, events.c.push_state, events.c.created_at)
                        .where(events.c.account_id == account_id, events.c.kind == "report")
                        .order_by(events.c.id.desc()).limit(limit)).all()
    return [{**orjson.loads(r.payload), "event_id": r.id, "push_state": r.push_state,
             "created_at": r.created_at} for r in rows]


def message_rows(conn: Connection, account_id: int, *, phone: str = "", state: str = "",
                 limit: int = PAGE, offset: int = 0) -> list:
    q = (select(messages, submissions.c.content, submissions.c.created_at)
         .select_from(submissions.join(messages, messages.c.submission_id == submissions.c.id))
         .where(submissions.c.account_id == account_id, messages.c.account_id == account_id))
    if phone:
        q = q.where(messages.c.phone == phone)
    if state:
        q = q.where(messages.c.state == state)
    return conn.execute(q.order_by(submissions.c.created_at.desc(), messages.c.id.desc())
                        .limit(limit).offset(offset)).all()


def submission(conn: Connection, account_id: int, submission_id: int, limit: int = 1000):
    """(submission, counts by state, its first messages), or (None, {}, [])."""
    sub = conn.execute(select(submissions).where(submissions.c.id == submission_id,
                                                 submissions.c.account_id == account_id)).first()
    if sub is None:
        return None, {}, []
    counts = dict(conn.execute(select(messages.c.state, func.count())
                               .where(messages.c.submission_id == submission_id)
                               .group_by(messages.c.state)).all())
    rows = conn.execute(select(messages).where(messages.c.submission_id == submission_id)
                        .order_by(messages.c.id).limit(limit)).all()
    return sub, counts, rows


def replies(conn: Connection, account_id: int, *, phone: str = "", limit: int = PAGE, offset: int = 0) -> list:
    q = select(mo).where(mo.c.account_id == account_id)
    if phone:
        q = q.where(mo.c.phone == phone)
    return conn.execute(q.order_by(mo.c.id.desc()).limit(limit).offset(offset)).all()


# -- operators -----------------------------------------------------------------------

def platform_counts(conn: Connection, since_ms: int) -> dict[str, int]:
    """Messages due since ``since_ms`` by state: one range of the (state, due_at) index per state."""
    out = {}
    for state in MESSAGE_STATES:
        n = conn.execute(select(func.count()).select_from(messages)
                         .where(messages.c.state == state, messages.c.due_at >= since_ms)).scalar()
        if n:
            out[state] = n
    return out


def totals(conn: Connection) -> dict[str, int]:
    return {"orgs": conn.execute(select(func.count()).select_from(orgs)).scalar(),
            "accounts": conn.execute(select(func.count()).select_from(accounts)).scalar()}


def orgs_overview(conn: Connection) -> list[dict]:
    n_accounts = dict(conn.execute(select(accounts.c.org_id, func.count()).group_by(accounts.c.org_id)).all())
    return [{**r._asdict(), "accounts": n_accounts.get(r.id, 0), "balances": balances_of(conn, ("org", r.id))}
            for r in conn.execute(select(orgs).order_by(orgs.c.id)).all()]


def account_row(conn: Connection, account_id: int):
    return conn.execute(select(accounts, orgs.c.code.label("org_code"), orgs.c.name.label("org_name"),
                               orgs.c.state.label("org_state"))
                        .join(orgs, orgs.c.id == accounts.c.org_id).where(accounts.c.id == account_id)).first()


def owner_of_row(row) -> tuple[str, int]:
    return ("org", row.org_id) if row.pay_type == "org" else ("account", row.id)


def ledger_rows(conn: Connection, balance_ids: list[int], limit: int = 50) -> list:
    if not balance_ids:
        return []
    return conn.execute(select(ledger, products.c.code.label("product"))
                        .join(balances, balances.c.id == ledger.c.balance_id)
                        .outerjoin(products, products.c.id == balances.c.product_id)
                        .where(ledger.c.balance_id.in_(balance_ids))
                        .order_by(ledger.c.id.desc()).limit(limit)).all()


def product_codes(conn: Connection) -> list[str]:
    return list(conn.execute(select(products.c.code).order_by(products.c.code)).scalars())


def channel_rows(conn: Connection) -> list:
    return conn.execute(select(channels).order_by(channels.c.id)).all()


def balance_owners(conn: Connection, balance_ids: list[int]) -> dict[int, str]:
    """A readable owner for each balance: the account's username or the org's code."""
    if not balance_ids:
        return {}
    rows = conn.execute(select(balances.c.id, balances.c.owner_type, balances.c.owner_id,
                               products.c.code.label("product"))
                        .outerjoin(products, products.c.id == balances.c.product_id)
                        .where(balances.c.id.in_(balance_ids))).all()
    names = dict(conn.execute(select(accounts.c.id, accounts.c.username)).all())
    codes = dict(conn.execute(select(orgs.c.id, orgs.c.code)).all())
    out = {}
    for r in rows:
        who = f"account {names.get(r.owner_id, r.owner_id)}" if r.owner_type == "account" \
            else f"org {codes.get(r.owner_id, r.owner_id)}"
        out[r.id] = f"{who}, {r.product or 'general'}"
    return out


def hour_ago_ms() -> int:
    return now_ms() - 3600 * 1000
