"""The operator's rules as accept applies them: content, numbers, limits, time.

Each test sets a rule the way an operator does (``set_rules``, the blacklist
and word tables) and sends through AcceptService, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta

import orjson
import pytest
from sqlalchemy import func, select

from hongyan.core import accounts as acc
from hongyan.core import blacklist
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Directory
from hongyan.core.rules import add_words, remove_words, set_rules
from hongyan.core.secrets import Cipher
from hongyan.domain.clock import to_ms
from hongyan.domain.outcomes import Code
from hongyan.store import tables
from hongyan.store.db import migrate
from hongyan.store.writer import Writer
from tests.helpers import engines, seed


@pytest.fixture
async def env(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    user = seed(engine, cipher, balance=1000)
    writer = Writer(engine, window_ms=1.0)
    writer.start()
    directory = Directory(reader, cipher)
    events: list[int] = []
    service = AcceptService(directory, writer, on_events=lambda: events.append(1))
    env = type("Env", (), {})()
    env.engine, env.directory, env.service, env.user, env.events = engine, directory, service, user, events
    yield env
    writer.stop()
    engine.dispose()
    reader.dispose()


def rules(env, account: bool = True, **values) -> None:
    with env.engine.begin() as conn:
        set_rules(conn, env.user["id"] if account else 0, **values)
    env.service.rulebook.invalidate()


def words(env, kind: str, *items: str) -> None:
    with env.engine.begin() as conn:
        add_words(conn, kind, list(items))
    env.service.rulebook.invalidate()


def bar(env, phones: list[str], platform: bool = False) -> None:
    with env.engine.begin() as conn:
        blacklist.add(conn, 0 if platform else env.user["id"], phones)
    env.service.blacklist.invalidate()


async def send(env, **kw):
    kw.setdefault("to", "13800138000")
    kw.setdefault("content", "【测试】您好")
    return await env.service.send(SendRequest(account=env.directory.by_username(env.user["username"]), **kw))


def balance(env) -> int:
    with env.engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []
        return acc.balances_of(conn, acc.owner_of(conn, env.user["username"]))[0]["amount"]


def messages(env) -> list:
    with env.engine.connect() as conn:
        return conn.execute(select(tables.messages).order_by(tables.messages.c.id)).all()


def reports(env) -> list[dict]:
    with env.engine.connect() as conn:
        rows = conn.execute(select(tables.events.c.payload).where(tables.events.c.kind == "report")
                            .order_by(tables.events.c.id)).scalars().all()
    return [orjson.loads(r) for r in rows]


# -- signatures -------------------------------------------------------------------

async def test_a_required_signature_must_be_there_and_approved(env):
    rules(env, signature_required=True, signatures=["测试"])
    missing = await send(env, content="您好")
    assert missing.code is Code.SIGNATURE_MISSING
    other = await send(env, content="【别家】您好")
    assert other.code is Code.SIGNATURE_INVALID and other.detail == "signature not approved: 【别家】"
    two = await send(env, content="【测试】您好【测试】")
    assert two.code is Code.SIGNATURE_INVALID and two.detail == "more than one signature"
    assert (await send(env, content="您好【测试】")).code is Code.OK
    assert len(messages(env)) == 1 and balance(env) == 999


async def test_the_default_signature_is_added_and_parts_follow_the_signed_text(env):
    rules(env, default_signature="鸿雁")
    out = await send(env, content="长" * 70)   # 70 characters: one part alone, two once signed
    assert out.code is Code.OK and out.data["parts"] == 2 and out.data["cost"] == 2
    with env.engine.connect() as conn:
        content = conn.execute(select(tables.submissions.c.content)).scalar()
    assert content == "【鸿雁】" + "长" * 70
    # A text with its own signature keeps it; with no approved list any signature may go.
    assert (await send(env, content="【别家】好")).code is Code.OK


# -- sensitive words ------------------------------------------------------------

async def test_a_block_word_refuses_naming_the_word_even_hidden(env):
    words(env, "block", "发票")
    out = await send(env, content="【测试】代开 发＊票 联系")
    assert out.code is Code.CONTENT_BLOCKED and out.detail == "发票"
    assert messages(env) == [] and balance(env) == 1000


async def test_a_review_word_accepts_and_holds(env):
    words(env, "review", "贷款")
    out = await send(env, to="13800138000,13900139000", content="【测试】低息贷款")
    assert out.code is Code.CONTENT_HELD and out.ok and out.detail == "贷款"
    assert {m.state for m in messages(env)} == {"held"}
    with env.engine.connect() as conn:
        assert conn.execute(select(tables.submissions.c.state)).scalar() == "held"
    assert balance(env) == 998      # billed on accept like any other; refunded if rejected


async def test_words_added_to_the_table_apply_without_restart(env):
    assert (await send(env, content="【测试】博彩")).code is Code.OK
    words(env, "block", "博彩")
    assert (await send(env, content="【测试】博 彩")).code is Code.CONTENT_BLOCKED


# -- templates --------------------------------------------------------------------

async def test_an_account_limited_to_templates_sends_only_those(env):
    rules(env, templates_only=True, templates=["【测试】您的验证码是{code}，5分钟内有效"])
    assert (await send(env, content="【测试】您的验证码是123456，5分钟内有效")).code is Code.OK
    out = await send(env, content="【测试】来玩")
    assert out.code is Code.NOT_WHITELISTED
    assert len(messages(env)) == 1


# -- blacklists ---------------------------------------------------------------------

async def test_blacklisted_numbers_end_mbblack_unsent_and_unbilled(env):
    bar(env, ["13900139000"])
    bar(env, ["13700137000"], platform=True)
    out = await send(env, to="13800138000,13900139000,13700137000")
    assert out.code is Code.OK and out.data["cost"] == 1
    assert out.data["phones"] == ["13800138000", "13900139000", "13700137000"]
    by_phone = {m.phone: m for m in messages(env)}
    assert by_phone["13800138000"].state == "queued"
    for phone in ("13900139000", "13700137000"):
        assert by_phone[phone].state == "failed" and by_phone[phone].status == "MBBLACK"
        assert by_phone[phone].cost == 0
    assert sorted(r["to"] for r in reports(env)) == ["13700137000", "13900139000"]
    assert {r["carrier_status"] for r in reports(env)} == {"MBBLACK"}
    assert balance(env) == 999 and env.events   # the notifier was woken for the reports


async def test_another_accounts_blacklist_does_not_apply(env):
    with env.engine.begin() as conn:
        blacklist.add(conn, env.user["id"] + 1, ["13800138000"])
    env.service.blacklist.invalidate()
    await send(env)
    assert messages(env)[0].state == "queued"


# -- frequency ------------------------------------------------------------------------

async def test_per_number_daily_limit_reports_disturb(env):
    rules(env, per_number_daily=2)
    for _ in range(3):
        assert (await send(env, to="13800138000,13900139000" if _ == 2 else "13800138000")).ok
    rows = messages(env)
    assert [m.state for m in rows if m.phone == "13800138000"] == ["queued", "queued", "failed"]
    assert rows[-2].status == "DISTURB" and rows[-2].cost == 0
    assert rows[-1].phone == "13900139000" and rows[-1].state == "queued"
    assert balance(env) == 997


async def test_same_content_to_one_number_within_the_window_reports_disturb(env):
    rules(env, same_content_minutes=10)
    await send(env, content="【测试】同一句话")
    await send(env, content="【测试】另一句话")
    await send(env, content="【测试】同一句话")
    assert [m.status for m in messages(env)] == [None, None, "DISTURB"]


# -- limits ---------------------------------------------------------------------------

async def test_messages_a_second_count_numbers_times_parts(env):
    rules(env, mps=4)
    too_big = await send(env, to="13800138000,13900139000,13700137000", content="【测试】" + "长" * 70)
    assert too_big.code is Code.RATE_LIMITED          # 3 numbers x 2 parts = 6 > 4
    assert (await send(env, to="13800138000,13900139000", content="【测试】" + "长" * 70)).ok
    out = await send(env)
    assert out.code is Code.RATE_LIMITED and "4 messages a second" in out.detail
    await asyncio.sleep(0.3)                          # refilled 4/s x 0.3 s = 1.2
    assert (await send(env)).ok


async def test_concurrent_requests_of_an_account_are_capped(env):
    rules(env, concurrency=2)
    outs = await asyncio.gather(*(send(env) for _ in range(5)))
    assert [o.code for o in outs].count(Code.OK) == 2
    assert all(o.code is Code.TOO_MANY_CONCURRENT for o in outs if not o.ok)
    # The slots are given back: the next request goes.
    assert (await send(env)).ok
    # A session front door is bounded by its window instead.
    outs = await asyncio.gather(*(send(env, dialect="cmpp") for _ in range(5)))
    assert all(o.ok for o in outs)


async def test_monthly_quota(env):
    rules(env, monthly_quota=3)
    assert (await send(env, to="13800138000,13900139000")).ok
    out = await send(env, to="13800138000,13900139000")
    assert out.code is Code.QUOTA_EXCEEDED and "2 of 3" in out.detail
    assert (await send(env)).ok
    assert (await send(env)).code is Code.QUOTA_EXCEEDED


async def test_platform_rules_apply_under_the_accounts_own(env):
    rules(env, account=False, mps=1)
    assert (await send(env, to="13800138000,13900139000")).code is Code.RATE_LIMITED
    rules(env, mps=0)
    assert (await send(env, to="13800138000,13900139000")).ok


# -- time -------------------------------------------------------------------------

def _hours_around(now: datetime, open_now: bool) -> str:
    """An allowed-hours window that contains ``now`` or one that does not."""
    if open_now:
        start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    else:
        start, end = now + timedelta(hours=2), now + timedelta(hours=4)
    return f"{start:%H:%M}-{end:%H:%M}"


async def test_allowed_hours_refuse_outside_and_check_the_scheduled_time(env):
    now = datetime.now()
    rules(env, allowed_hours=_hours_around(now, open_now=False))
    out = await send(env)
    assert out.code is Code.OUTSIDE_SEND_WINDOW
    later = now + timedelta(hours=3)
    assert (await send(env, schedule_at=to_ms(later))).ok
    rules(env, allowed_hours=_hours_around(now, open_now=True))
    assert (await send(env)).ok


async def test_a_daily_window_makes_messages_wait_for_the_next_opening(env):
    now = datetime.now().replace(microsecond=0)
    start = (now + timedelta(hours=2)).replace(second=0)
    window = (start.hour * 3600 + start.minute * 60, ((start.hour + 1) % 24) * 3600 + start.minute * 60)
    out = await send(env, daily_window=window)
    assert out.ok and out.data["scheduled_at"] is not None
    due = messages(env)[0].due_at
    assert due == to_ms(start)
    with env.engine.connect() as conn:
        assert conn.execute(select(tables.submissions.c.state)).scalar() == "scheduled"
    # Inside the window: now.
    inside = (now.hour * 3600, ((now.hour + 2) % 24) * 3600)
    out = await send(env, daily_window=inside)
    assert out.data["scheduled_at"] is None


async def test_rules_off_cost_one_cached_lookup(env):
    # With no rules set, nothing is read per request beyond the cache.
    await send(env)
    calls = []
    real = env.service.rulebook.reader.connect
    env.service.rulebook.reader.connect = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        for _ in range(20):
            await send(env)
    finally:
        env.service.rulebook.reader.connect = real
    assert len(calls) <= 2
    with env.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.messages)).scalar() == 21


# -- the limits when things go wrong ------------------------------------------------

async def test_a_request_refused_at_commit_gives_back_its_rate_and_frequency(env):
    rules(env, monthly_quota=1, mps=2, per_number_daily=1, same_content_minutes=10)
    refused = await send(env, to="13800138000,13900139000")
    assert refused.code is Code.QUOTA_EXCEEDED
    # Within the same second, to the same number, with the same text: had the
    # refused request kept what it took, this would be rate limited or DISTURB.
    out = await send(env, to="13800138000")
    assert out.code is Code.OK
    assert [(m.phone, m.state) for m in messages(env)] == [("13800138000", "queued")]


async def test_a_replay_takes_no_frequency_count(env):
    rules(env, per_number_daily=2)
    first = await send(env, idempotency_key="k-1")
    again = await send(env, idempotency_key="k-1")
    assert again.data["replayed"] and again.data["submission_id"] == first.data["submission_id"]
    # The replay sent nothing, so the number still has its second message today.
    await send(env)
    assert [m.status for m in messages(env)] == [None, None]


async def test_unreachable_redis_refuses_system_busy_and_writes_nothing(env):
    import socket

    from hongyan.core.limits import RedisLimits

    with socket.socket() as s:                   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env.service.limits = RedisLimits(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        out = await send(env)                    # the default concurrency rule needs the counters
        assert out.code is Code.SYSTEM_BUSY and out.http_status == 503
        assert messages(env) == [] and balance(env) == 1000
        rules(env, concurrency=0)                # no limit that needs them: Redis is not asked
        assert (await send(env)).ok
    finally:
        await env.service.limits.close()


class _LeaveFails:
    """Counters that take slots but cannot give them back (Redis went away meanwhile)."""

    def __init__(self) -> None:
        from hongyan.core.limits import LocalLimits
        self.inner = LocalLimits()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def leave(self, account_id, ticket):
        from hongyan.core.limits import LimitsUnavailable
        raise LimitsUnavailable("redis leave: ConnectionError")


async def test_a_slot_that_cannot_be_given_back_does_not_fail_a_committed_request(env):
    env.service.limits = _LeaveFails()
    out = await send(env)
    # Committed, so answered ok: an error here would make the client send it again.
    assert out.code is Code.OK and len(messages(env)) == 1


async def test_a_request_cancelled_while_it_commits_gives_its_slot_back(env):
    rules(env, concurrency=1)
    real = env.service.writer.run
    started = asyncio.Event()

    async def slow_run(fn, arg=None):
        started.set()
        await asyncio.sleep(0.2)
        return await real(fn, arg)

    env.service.writer.run = slow_run
    task = asyncio.create_task(send(env))
    await started.wait()
    task.cancel()                                # the client went away mid-request
    with pytest.raises(asyncio.CancelledError):
        await task
    env.service.writer.run = real
    assert (await send(env)).ok


# -- rules stored before today's checks ------------------------------------------------

def store_raw(env, account_id: int, settings: dict | str) -> None:
    """Write a rule row as an older release (or a hand-edit) left it, unchecked."""
    text = settings if isinstance(settings, str) else orjson.dumps(settings).decode()
    with env.engine.begin() as conn:
        conn.execute(tables.account_rules.delete().where(tables.account_rules.c.account_id == account_id))
        conn.execute(tables.account_rules.insert().values(account_id=account_id, settings=text, updated_at=0))
    env.service.rulebook.invalidate()


async def test_a_bad_stored_template_is_dropped_and_the_good_ones_still_apply(env):
    store_raw(env, env.user["id"], {"templates_only": True,
                                    "templates": ["【测试】{a}{b}", "【测试】验证码{code}，5分钟有效"]})
    assert (await send(env, content="【测试】验证码1234，5分钟有效")).code is Code.OK
    # Still limited to the templates that are good: the bad one lets nothing through.
    assert (await send(env, content="【测试】来玩")).code is Code.NOT_WHITELISTED


async def test_unknown_or_bad_stored_settings_leave_the_rules_under_them(env):
    store_raw(env, 0, {"mps": 3, "retired_setting": 1})
    store_raw(env, env.user["id"], {"mps": "lots", "allowed_hours": "8h-21h", "per_number_daily": 1})
    assert env.service.rulebook.rules(env.user["id"]).mps == 3     # the platform's, not "lots"
    assert (await send(env)).code is Code.OK
    assert (await send(env)).data["cost"] == 0                     # the good setting applies: DISTURB
    store_raw(env, env.user["id"], "{not json")
    assert (await send(env, to="13900139000")).code is Code.OK


def test_numbers_too_big_to_mean_anything_are_refused_when_set(env):
    with env.engine.begin() as conn:
        for key, value in (("mps", 10 ** 30), ("same_content_minutes", 10 ** 15), ("monthly_quota", 2 ** 63)):
            with pytest.raises(acc.AdminError, match="at most"):
                set_rules(conn, env.user["id"], **{key: value})
        assert set_rules(conn, env.user["id"], same_content_minutes=366 * 24 * 60).same_content_minutes == 527040


# -- several texts in one request, and replays -------------------------------------------

def together(env, *pairs: tuple[str, str]):
    account = env.directory.by_username(env.user["username"])
    return env.service.send_together([SendRequest(account=account, to=to, content=text) for to, text in pairs])


async def test_texts_that_together_pass_the_monthly_quota_are_refused_whole(env):
    rules(env, monthly_quota=3)
    out = await together(env, ("13800138000,13900139000", "【测试】一"), ("13700137000,13600136000", "【测试】二"))
    assert out.code is Code.QUOTA_EXCEEDED and "needs 4" in out.detail
    assert messages(env) == [] and balance(env) == 1000
    assert (await together(env, ("13800138000", "【测试】一"), ("13700137000,13600136000", "【测试】二"))).ok
    assert (await send(env)).code is Code.QUOTA_EXCEEDED          # 3 of 3 used


async def test_texts_together_with_barred_numbers_and_a_held_text(env):
    bar(env, ["13900139000"])
    words(env, "review", "贷款")
    out = await together(env, ("13800138000,13900139000", "【测试】一"), ("13700137000", "【测试】低息贷款"))
    assert out.code is Code.CONTENT_HELD and out.ok and out.data["cost"] == 2
    by_phone = {m.phone: m for m in messages(env)}
    assert (by_phone["13800138000"].state, by_phone["13900139000"].status) == ("queued", "MBBLACK")
    assert by_phone["13700137000"].state == "held"
    assert balance(env) == 998 and [r["to"] for r in reports(env)] == ["13900139000"]


async def test_a_replay_of_a_held_submission_still_says_held(env):
    words(env, "review", "贷款")
    first = await send(env, content="【测试】低息贷款", idempotency_key="h-1", to="13800138000,12345",
                       skip_invalid=True)
    again = await send(env, content="【测试】低息贷款", idempotency_key="h-1", to="13800138000,12345",
                       skip_invalid=True)
    assert first.code is again.code is Code.CONTENT_HELD and again.detail == "贷款"
    assert again.data["replayed"] and again.data["submission_id"] == first.data["submission_id"]
    assert again.data["invalid"] == first.data["invalid"] == ["12345"]
    assert len(messages(env)) == 1 and balance(env) == 999


# -- the caches see every change --------------------------------------------------------

async def test_a_number_listed_as_another_is_removed_is_barred_at_once(env):
    # On SQLite the new row takes the removed newest row's id: count and max(id) stay the same.
    bar(env, ["13800138000", "13900139000"])
    await send(env, to="13700137000")                         # the cache has read the list
    with env.engine.begin() as conn:
        blacklist.remove(conn, env.user["id"], ["13900139000"])
        blacklist.add(conn, env.user["id"], ["13600136000"])
    env.service.blacklist._checked = 0.0                     # as when the poll interval has passed
    await reread(env)
    await send(env, to="13600136000,13900139000")
    by_phone = {m.phone: m.status for m in messages(env)}
    assert by_phone["13600136000"] == "MBBLACK" and by_phone["13900139000"] is None


async def reread(env) -> None:
    """Check the blacklist now and let a whole-table read (after a removal) finish on its thread."""
    cache = env.service.blacklist
    cache._checked = 0.0
    cache.refresh()
    for _ in range(500):
        if cache._loading is None or cache._loaded is not None:
            break
        await asyncio.sleep(0.01)
    cache.refresh()                                           # installs what the thread read


async def test_a_removal_reads_the_whole_list_off_the_event_loop(env):
    bar(env, ["13800138000", "13900139000"])
    await send(env, to="13700137000")
    loop = asyncio.get_running_loop()
    started, release = asyncio.Event(), threading.Event()
    real = env.service.blacklist._load_all

    def slow_load(conn):
        loop.call_soon_threadsafe(started.set)
        release.wait(5)
        return real(conn)

    env.service.blacklist._load_all = slow_load
    with env.engine.begin() as conn:
        blacklist.remove(conn, env.user["id"], ["13800138000"])
        blacklist.add(conn, env.user["id"], ["13500135000"])
    env.service.blacklist.invalidate()
    # The read waits on its thread; requests go on meanwhile with the lists as
    # they were (the removed number still barred a moment) plus what was added.
    out = await asyncio.wait_for(send(env, to="13800138000,13500135000,13600136000"), 2)
    await asyncio.wait_for(started.wait(), 2)
    assert out.ok and out.data["cost"] == 1
    release.set()
    await reread(env)
    await send(env, to="13800138000")
    assert messages(env)[-1].status is None


async def test_numbers_added_to_a_big_list_are_read_alone(env):
    bar(env, [f"1380013{i:04d}" for i in range(2000)])
    await send(env, to="13700137000")
    reloads = env.service.blacklist.reloads
    for phone in ("13600136000", "13500135000"):              # as opt-out replies add them
        with env.engine.begin() as conn:
            blacklist.add(conn, env.user["id"], [phone], reason="optout")
        env.service.blacklist._checked = 0.0
        await send(env, to=phone)
    assert [m.status for m in messages(env)][-2:] == ["MBBLACK", "MBBLACK"]
    assert env.service.blacklist.reloads == reloads           # no whole-table read for an add


async def test_a_block_word_listed_as_another_is_removed_applies_after_the_next_check(env):
    words(env, "block", "博彩", "赌场")
    assert (await send(env, content="【测试】赌场")).code is Code.CONTENT_BLOCKED
    with env.engine.begin() as conn:         # as another process would change them
        remove_words(conn, "block", ["赌场"])
        add_words(conn, "block", ["六合彩"])
    env.service.rulebook._checked = float("-inf")   # the check interval has passed
    assert (await send(env, content="【测试】六合彩")).code is Code.CONTENT_BLOCKED
    assert (await send(env, content="【测试】赌场")).code is Code.OK


def test_the_rule_cache_reads_accounts_again_only_after_a_change(env):
    from hongyan.core.rules import RuleBook

    class Clock:
        t = 0.0

        def __call__(self):
            return self.t

    clock = Clock()
    book = RuleBook(env.engine, ttl=2.0, max_age=60.0, clock=clock)
    reads = []
    real = env.engine.connect
    env.engine.connect = lambda *a, **k: reads.append(1) or real(*a, **k)
    try:
        for account in range(1, 51):
            book.rules(account)
        first = len(reads)
        assert first == 51                                    # the change count, then each account once
        for _ in range(5):                                    # 10 s, nothing changed
            clock.t += 2.0
            for account in range(1, 51):
                book.rules(account)
        assert len(reads) - first == 5                        # one small read per interval
        with real() as conn, conn.begin():
            set_rules(conn, 7, mps=9)
        clock.t += 2.0
        assert book.rules(7).mps == 9
        clock.t += 60.0                                       # the backstop for rows edited by hand
        before = len(reads)
        book.rules(8)
        assert len(reads) - before == 2
    finally:
        env.engine.connect = real


def _seconds(at: datetime) -> int:
    return at.hour * 3600 + at.minute * 60


async def test_allowed_hours_are_checked_when_a_daily_window_makes_the_messages_due(env):
    now = datetime.now().replace(second=0, microsecond=0)
    # Open now, but the request's daily window opens only after the account's hours end.
    rules(env, allowed_hours=_hours_around(now, open_now=True))
    late = (now + timedelta(hours=3), now + timedelta(hours=4))
    out = await send(env, daily_window=(_seconds(late[0]), _seconds(late[1])))
    assert out.code is Code.OUTSIDE_SEND_WINDOW and messages(env) == []
    # Closed now, but the daily window waits until the account's hours are open.
    rules(env, allowed_hours=_hours_around(now, open_now=False))
    inside = (now + timedelta(hours=2, minutes=30), now + timedelta(hours=3))
    out = await send(env, daily_window=(_seconds(inside[0]), _seconds(inside[1])))
    assert out.code is Code.OK and messages(env)[0].due_at == to_ms(inside[0])


async def test_the_monthly_count_started_from_the_table_counts_as_accept_does(env):
    from hongyan.core.cancel import cancel

    bar(env, ["13900139000"])
    assert (await send(env, to="13800138000,13900139000,13700137000")).data["cost"] == 2
    later = await send(env, to="13600136000,13500135000", schedule_at=to_ms(datetime.now() + timedelta(hours=1)))
    with env.engine.begin() as conn:
        assert cancel(conn, env.user["id"], later.data["submission_id"], env.service.receiver).ok
    # The quota is set now: the month so far is counted from the table. The
    # barred number was never billed; the cancelled message keeps its share.
    rules(env, monthly_quota=100)
    assert (await send(env)).ok
    with env.engine.connect() as conn:
        assert conn.execute(select(tables.account_usage.c.used)).scalar() == 2 + 2 + 1


async def test_a_change_made_in_this_process_is_seen_without_reading_the_whole_list(env):
    bar(env, [f"1380013{i:04d}" for i in range(100)])
    await send(env, to="13700137000")
    reloads = env.service.blacklist.reloads
    bar(env, ["13600136000"])                                 # as the admin API does: add, then invalidate
    await send(env, to="13600136000")
    assert messages(env)[-1].status == "MBBLACK" and env.service.blacklist.reloads == reloads
    with env.engine.begin() as conn:
        blacklist.remove(conn, env.user["id"], ["13600136000"])
    await reread(env)
    await send(env, to="13600136000")
    assert messages(env)[-1].status is None and env.service.blacklist.reloads == reloads + 1


async def test_a_number_committed_after_a_newer_one_was_read_is_found_by_the_audit(env):
    if env.engine.dialect.name != "postgresql":
        pytest.skip("on SQLite rows commit in id order (one writer)")
    cache = env.service.blacklist
    bar(env, ["13800138000"])
    await send(env, to="13700137000")
    with env.engine.connect() as slow:
        tx = slow.begin()
        blacklist.add(slow, env.user["id"], ["13600136000"])      # the lower id, committed last
        bar(env, ["13500135000"])
        await reread(env)                                         # reads past the uncommitted id
        tx.commit()
    await reread(env)
    assert not cache.blocked(env.user["id"], "13600136000")       # ids above the last seen: missed
    cache.audit_s, cache._audited = 0.0, float("-inf")
    await reread(env)                                             # the audit counts, then reads it all
    await reread(env)
    assert cache.blocked(env.user["id"], "13600136000") and cache.blocked(env.user["id"], "13500135000")


async def test_a_retry_gets_the_first_answer_even_if_a_rule_would_refuse_it_now(env):
    first = await send(env, content="【测试】周末特惠", idempotency_key="r-1")
    assert first.code is Code.OK
    words(env, "block", "特惠")                                   # listed since
    now = datetime.now()
    rules(env, allowed_hours=_hours_around(now, open_now=False))  # and the hours closed
    again = await send(env, content="【测试】周末特惠", idempotency_key="r-1")
    assert again.code is Code.OK and again.data["replayed"]
    assert again.data["submission_id"] == first.data["submission_id"]
    # The same key with another body, and a new request, are refused as usual.
    assert (await send(env, content="【测试】周末特惠!", idempotency_key="r-1")).code is Code.DUPLICATE_REQUEST
    assert (await send(env, content="【测试】周末特惠", idempotency_key="r-2")).code is Code.CONTENT_BLOCKED
    assert len(messages(env)) == 1 and balance(env) == 999


async def test_a_retry_over_the_rate_gets_the_first_answer(env):
    rules(env, mps=1)
    first = await send(env, idempotency_key="m-1")
    again = await send(env, idempotency_key="m-1")              # within the same second
    assert again.code is Code.OK and again.data["replayed"]
    assert again.data["submission_id"] == first.data["submission_id"]


async def test_a_retry_from_an_address_the_account_may_not_send_from_is_told_nothing(env):
    await send(env, idempotency_key="ip-1", client_ip="10.0.0.5")
    with env.engine.begin() as conn:
        acc.update_account(conn, env.user["username"], ip_allowlist="192.168.1.0/24")
    env.directory.invalidate()
    again = await send(env, idempotency_key="ip-1", client_ip="10.0.0.5")
    assert again.code is Code.IP_DENIED and again.data == {}
