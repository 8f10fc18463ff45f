"""Accept: rules, money and group commit, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from hongyan.core import accounts as acc
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Directory
from hongyan.core.rules import set_rules
from hongyan.core.secrets import Cipher
from hongyan.domain.clock import now_ms
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
    user = seed(engine, cipher, balance=100)
    with engine.begin() as conn:
        # These tests fire many requests at once to see them share commits.
        set_rules(conn, 0, concurrency=0)
    writer = Writer(engine, window_ms=1.0)
    writer.start()
    directory = Directory(reader, cipher)
    service = AcceptService(directory, writer)
    yield engine, directory, service, user
    writer.stop()
    engine.dispose()
    reader.dispose()


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def balance(engine, username="alice") -> int:
    with engine.connect() as conn:
        return acc.balances_of(conn, acc.owner_of(conn, username))[0]["amount"]


def no_mismatch(engine) -> None:
    with engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []


def admin(env, fn):
    """Change accounts as an operator would; the directory forgets what it cached."""
    with env[0].begin() as conn:
        fn(conn)
    env[1].invalidate()


async def send(env, **kw):
    engine, directory, service, user = env
    kw.setdefault("to", "13800138000")
    kw.setdefault("content", "【测试】hello")
    return await service.send(SendRequest(account=directory.by_username(user["username"]), **kw))


async def test_accept_commits_messages_and_debit(env):
    engine = env[0]
    out = await send(env, to="13800138000,+86 139 0013 9000", content="【测试】" + "长" * 70)
    assert out.code is Code.OK
    assert out.data["parts"] == 2 and out.data["cost"] == 4 and out.data["balance"] == 96
    assert out.data["phones"] == ["13800138000", "13900139000"]
    with engine.connect() as conn:
        rows = conn.execute(select(tables.messages).order_by(tables.messages.c.id)).all()
        debit = conn.execute(select(tables.ledger).where(tables.ledger.c.kind == "debit")).one()
    assert [r.id for r in rows] == out.data["message_ids"]
    assert {r.state for r in rows} == {"queued"} and {r.carrier for r in rows} == {"cmcc"}
    assert debit.amount == -4 and debit.submission_id == out.data["submission_id"]
    assert balance(engine) == 96
    no_mismatch(engine)


async def test_insufficient_balance_changes_nothing(env):
    engine = env[0]
    many = ",".join(f"1380013{i:04d}" for i in range(101))
    out = await send(env, to=many)
    assert out.code is Code.INSUFFICIENT_BALANCE
    assert count(engine, tables.messages) == 0 and count(engine, tables.submissions) == 0
    assert balance(engine) == 100
    no_mismatch(engine)


async def test_concurrent_requests_share_commits_and_never_overdraw(env):
    engine, _, service, _ = env
    commits_before = service.writer.commits
    outs = await asyncio.gather(*(send(env, to=f"1380013{i:04d}") for i in range(150)))
    oks = [o for o in outs if o.ok]
    assert len(oks) == 100  # the balance covers exactly 100
    assert all(o.code is Code.INSUFFICIENT_BALANCE for o in outs if not o.ok)
    assert service.writer.commits - commits_before < 150 / 3  # grouped
    assert balance(engine) == 0 and count(engine, tables.messages) == 100
    no_mismatch(engine)


async def test_idempotency_key_is_never_accepted_twice(env):
    engine = env[0]
    first = await send(env, idempotency_key="k1")
    again = await send(env, idempotency_key="k1")
    assert again.ok and again.data["replayed"] and again.data["submission_id"] == first.data["submission_id"]
    assert again.data["message_ids"] == first.data["message_ids"]
    burst = await asyncio.gather(*(send(env, idempotency_key="k2") for _ in range(10)))
    assert len({o.data["submission_id"] for o in burst}) == 1
    other = await send(env, idempotency_key="k1", content="【测试】different")
    assert other.code is Code.DUPLICATE_REQUEST
    assert count(engine, tables.submissions) == 2 and balance(engine) == 98


@pytest.mark.parametrize("kw, code", [
    ({"content": "  "}, Code.CONTENT_EMPTY),
    ({"content": "x" * 1001}, Code.CONTENT_TOO_LONG),
    ({"extno": "12a"}, Code.INVALID_EXTNO),
    ({"extno": "123456789"}, Code.INVALID_EXTNO),
    ({"to": ""}, Code.RECIPIENTS_EMPTY),
    ({"to": "13800138000,12345"}, Code.INVALID_NUMBER),
    ({"to": ",".join(f"1380013{i:04d}" for i in range(11)), "max_recipients": 10}, Code.RECIPIENTS_TOO_MANY),
    ({"to": "13800138000", "min_recipients": 2}, Code.RECIPIENTS_TOO_FEW),
    ({"schedule_at": 1}, Code.INVALID_SCHEDULE),
    ({"product": "nope"}, Code.PRODUCT_UNAVAILABLE),
])
async def test_bad_requests_get_their_outcome_and_change_nothing(env, kw, code):
    out = await send(env, **kw)
    assert out.code is code, out
    assert count(env[0], tables.messages) == 0 and balance(env[0]) == 100


async def test_skip_invalid_sends_to_the_rest(env):
    out = await send(env, to="13800138000, 123, 13800138000", skip_invalid=True)
    assert out.ok and out.data["phones"] == ["13800138000"] and out.data["invalid"] == ["123"]


@pytest.mark.parametrize("change, code", [
    ({"state": "locked"}, Code.ACCOUNT_LOCKED),
    ({"state": "disabled"}, Code.ACCOUNT_DISABLED),
    ({"state": "expired"}, Code.ACCOUNT_EXPIRED),
    ({"expires_at": 1}, Code.ACCOUNT_EXPIRED),
    ({"ip_allowlist": "10.0.0.0/8"}, Code.IP_DENIED),
])
async def test_account_state_refusals(env, change, code):
    admin(env, lambda conn: acc.update_account(conn, "alice", **change))
    out = await send(env, client_ip="127.0.0.1")
    assert out.code is code


async def test_ip_allowlist_admits_listed_address(env):
    admin(env, lambda conn: acc.update_account(conn, "alice", ip_allowlist="127.0.0.0/8, ::1"))
    assert (await send(env, client_ip="127.0.0.1")).ok


async def test_org_disabled(env):
    admin(env, lambda conn: acc.set_org_state(conn, "200001", "disabled"))
    assert (await send(env)).code is Code.ORG_DISABLED


async def test_org_pays_when_pay_type_is_org(env):
    engine = env[0]
    def change(conn):
        acc.update_account(conn, "alice", pay_type="org")
        acc.topup(conn, ("org", acc.org_id(conn, "200001")), 50)
    admin(env, change)
    out = await send(env)
    assert out.ok and out.data["balance"] == 49
    assert balance(engine) == 49  # the org's balance now pays for alice
    with engine.connect() as conn:
        assert acc.balances_of(conn, ("account", acc.account_id(conn, "alice")))[0]["amount"] == 100
    no_mismatch(engine)


async def test_products_price_and_own_balance(env):
    engine = env[0]
    admin(env, lambda conn: acc.create_product(conn, "274463133", "行业短信", price=3))
    assert (await send(env, product="274463133")).code is Code.PRODUCT_UNAVAILABLE
    admin(env, lambda conn: acc.subscribe(conn, "alice", "274463133"))
    assert (await send(env, product="274463133")).code is Code.INSUFFICIENT_BALANCE
    admin(env, lambda conn: acc.topup(conn, acc.owner_of(conn, "alice"), 10, "274463133"))
    out = await send(env, product="274463133")
    assert out.ok and out.data["cost"] == 3 and out.data["balance"] == 7
    assert balance(engine) == 100  # the general balance is untouched
    no_mismatch(engine)


async def test_scheduled_send_waits(env):
    later = now_ms() + 3600_000
    out = await send(env, schedule_at=later)
    assert out.ok and out.data["scheduled_at"] == later
    with env[0].connect() as conn:
        row = conn.execute(select(tables.messages)).one()
        sub = conn.execute(select(tables.submissions)).one()
    assert row.due_at == later and sub.state == "scheduled"


async def test_a_failing_job_does_not_sink_its_batch(env):
    engine, _, service, _ = env

    def boom(conn, _):
        raise RuntimeError("boom")
    results = await asyncio.gather(send(env), service.writer.run(boom), send(env),
                                   return_exceptions=True)
    assert results[0].ok and results[2].ok and isinstance(results[1], RuntimeError)
    assert count(engine, tables.messages) == 2
    no_mismatch(engine)


async def test_send_together_is_all_or_none(env):
    engine, directory, service, _ = env
    acc_ = directory.by_username("alice")
    reqs = [SendRequest(account=acc_, to=f"1380013{i:04d}", content=f"【测试】{i}") for i in range(3)]
    out = await service.send_together(reqs)
    assert out.ok and len(out.data["submission_ids"]) == 3 and out.data["cost"] == 3
    with engine.connect() as conn:
        refs = conn.execute(select(tables.submissions.c.client_ref).order_by(tables.submissions.c.id)).scalars().all()
    assert refs == [None, str(out.data["submission_id"]), str(out.data["submission_id"])]
    big = [SendRequest(account=acc_, to=",".join(f"1390013{i:04d}" for i in range(60)), content="【测试】a"),
           SendRequest(account=acc_, to=",".join(f"1390014{i:04d}" for i in range(60)), content="【测试】b")]
    refused = await service.send_together(big)  # 120 > the 97 left: neither is sent
    assert refused.code is Code.INSUFFICIENT_BALANCE
    assert count(engine, tables.submissions) == 3 and balance(engine) == 97
    no_mismatch(engine)
