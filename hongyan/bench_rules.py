"""The rule load for ``hongyan bench --rules``: every accept rule switched on, none of them hit.

The point is to measure what the rules cost on the hot path, so the traffic
must stay the same with them on: the words never occur in the bench text,
the blacklisted numbers are never among the bench's numbers, and the limits
are far above the load.
"""
from __future__ import annotations

import random

from hongyan.core import blacklist
from hongyan.core.rules import add_words, set_rules
from hongyan.store.tables import accounts

WORDS = 10_000
REVIEW_SHARE = 0.1
BLACKLISTED = 10_000
# The bench's numbers start 138/139/186/189 (bench.PREFIXES); these never do.
BLACKLIST_PREFIX = "170"


def random_words(n: int, rng: random.Random, avoid: str) -> list[str]:
    """``n`` distinct two-to-six character CJK words with none of ``avoid``'s characters."""
    banned = set(avoid)
    alphabet = [chr(c) for c in range(0x4E00, 0x9FA6) if chr(c) not in banned]
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choices(alphabet, k=rng.randint(2, 6))))
    return sorted(out)


def template_of(content: str) -> str:
    """The bench text as an approved template: its first run of digits is the variable."""
    head, digits, tail = "", "", ""
    for i, ch in enumerate(content):
        if ch.isdigit():
            j = i
            while j < len(content) and content[j].isdigit():
                j += 1
            head, digits, tail = content[:i], content[i:j], content[j:]
            break
    return f"{head}{{code}}{tail}" if digits else content


def apply(engine, username: str, content: str, *, rules_on: bool, concurrency: int) -> dict:
    """Set the bench account's rules; returns what was loaded, for the report."""
    with engine.begin() as conn:
        account_id = conn.execute(accounts.select().where(accounts.c.username == username)).one().id
        if not rules_on:
            # The default of 5 requests at once would refuse the load itself.
            set_rules(conn, account_id, concurrency=0)
            return {"rules": "off"}
        rng = random.Random(1680)
        words = random_words(WORDS, rng, content)
        review = int(WORDS * REVIEW_SHARE)
        add_words(conn, "review", words[:review])
        add_words(conn, "block", words[review:])
        numbers = [f"{BLACKLIST_PREFIX}{i:08d}" for i in range(BLACKLISTED)]
        blacklist.add(conn, 0, numbers[: BLACKLISTED // 2], reason="import")
        blacklist.add(conn, account_id, numbers[BLACKLISTED // 2:], reason="import")
        set_rules(conn, account_id, signature_required=True, signatures=["鸿雁"],
                  templates_only=True, templates=[template_of(content)],
                  mps=1_000_000, concurrency=max(concurrency, 1), monthly_quota=1_000_000_000,
                  per_number_daily=1000, same_content_minutes=10, allowed_hours="00:00-24:00")
    return {"rules": "on", "words": WORDS, "blacklisted": BLACKLISTED}
