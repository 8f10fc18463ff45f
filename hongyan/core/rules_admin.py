"""Managing rules, words and blacklists: what the CLI and the admin API share.

Where each rule value comes from, removing settings, and the checks numbers
and words pass before they are stored. Kept apart from both front ends so
that each refuses bad input the same way.
"""
from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection

from hongyan.domain import numbers
from hongyan.domain.clock import now_ms
from hongyan.store.tables import account_rules

from . import rules as rulesmod
from .blacklist import count_change
from .accounts import AdminError
from .rules import RuleSettings, get_rules

MAX_WORD = 64           # the words table's column


def rule_sources(conn: Connection, account_id: int) -> list[tuple[str, Any, str]]:
    """(key, effective value, source) for every rule key; source is default, platform or account.

    ``account_id`` 0 is the platform itself: its values come from the platform row or the defaults.
    """
    effective = get_rules(conn, account_id).to_dict()
    platform = rulesmod._row(conn, 0)
    own = rulesmod._row(conn, account_id) if account_id else {}
    return [(k, effective[k], "account" if k in own else "platform" if k in platform else "default")
            for k in RuleSettings.keys()]


def stored_problems(conn: Connection, account_id: int) -> list[str]:
    """What in the stored rows under this account the rules leave out (``RuleSettings.from_stored``).

    Accept and receive ignore such settings and go on; an operator sees them
    here, to repair with ``unset_rules`` or ``set_rules``.
    """
    out = []
    for row_id in dict.fromkeys((0, account_id)):
        where = "the platform's rules" if row_id == 0 else f"account {row_id}'s rules"
        try:
            row = rulesmod._row(conn, row_id)
        except orjson.JSONDecodeError:
            out.append(f"{where} are not JSON and are ignored; set them again")
            continue
        for key, value in (row.items() if isinstance(row, dict) else ()):
            if key not in RuleSettings.keys():
                out.append(f"{where}: unknown rule setting {key} is ignored; remove it with unset")
                continue
            try:
                RuleSettings.from_dict({key: value})
            except AdminError as exc:
                out.append(f"{where}: {exc} -- the stored value is ignored (bad list items are dropped)")
    return out


def unset_rules(conn: Connection, account_id: int, keys: list[str]) -> list[str]:
    """Remove keys from the account's (or, for 0, the platform's) row; returns those that were set.

    A stored key no longer known to ``RuleSettings`` can be removed too: that is
    how a row left behind by a renamed setting is repaired.
    """
    current = rulesmod._row(conn, account_id)
    unknown = [k for k in keys if k not in current and k not in RuleSettings.keys()]
    if unknown:
        raise AdminError(f"unknown rule setting {', '.join(unknown)} (known: {', '.join(RuleSettings.keys())})")
    removed = [k for k in dict.fromkeys(keys) if k in current]
    if removed:
        for k in removed:
            del current[k]
        conn.execute(account_rules.update().where(account_rules.c.account_id == account_id)
                     .values(settings=orjson.dumps(current).decode(), updated_at=now_ms()))
        count_change(conn, rulesmod.RULE_CHANGES)
    return removed


def normalise_phones(raw: str | list[str], limit: int | None = None) -> list[str]:
    """Numbers as accept compares them (11-digit national form); any invalid one refuses them all."""
    try:
        parsed = numbers.parse_recipients(raw, limit=limit)
    except numbers.TooManyRecipients:
        raise AdminError(f"at most {limit} numbers at once") from None
    if parsed.invalid:
        raise BadNumbers(parsed.invalid)
    return parsed.valid


class BadNumbers(AdminError):
    def __init__(self, invalid: list[str]) -> None:
        self.shown = ", ".join(invalid[:10]) + (" …" if len(invalid) > 10 else "")
        super().__init__(f"not a mobile number: {self.shown}")


def check_words(items: list[str]) -> list[str]:
    out = [w.strip() for w in items if w and w.strip()]
    long = [w for w in out if len(w) > MAX_WORD]
    if long:
        raise AdminError(f"words are at most {MAX_WORD} characters: {long[0][:20]}…")
    return out
