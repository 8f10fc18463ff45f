"""Reports that never come: submitted messages past the report timeout end expired, refunded once."""
from __future__ import annotations

import threading

import orjson
import pytest
from sqlalchemy import select, update

from hongyan.channels.base import Report
from hongyan.core import accounts as acc
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Directory
from hongyan.core.maintenance import Maintenance
from hongyan.core.receive import Receiver
from hongyan.core.recorder import Recorder, _Batch
from hongyan.core.secrets import Cipher
from hongyan.domain.clock import now_ms
from hongyan.store import tables
from hongyan.store.db import migrate
from hongyan.store.writer import Writer
from tests.helpers import engines, seed

HOUR = 3600 * 1000
TIMEOUT = 72 * HOUR


@pytest.fixture
async def env(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    seed(engine, cipher, balance=100, report_url="http://127.0.0.1:9/hook")
    writer = Writer(engine)
    writer.start()
    directory = Directory(reader, cipher)
    receiver = Receiver(directory)
    ns = type("Env", (), {})()
    ns.engine, ns.directory, ns.receiver, ns.writer = engine, directory, receiver, writer
    ns.accept = AcceptService(directory, writer)
    ns.recorder = Recorder(writer, receiver)
    yield ns
    writer.stop()
    engine.dispose()
    reader.dispose()


async def sent(env, to: str, hours_ago: float, content: str = "x") -> list[int]:
    """Accept messages and record them submitted ``hours_ago`` (carrier ids c<id>)."""
    out = await env.accept.send(SendRequest(account=env.directory.by_username("alice"), to=to, content=content))
    assert out.ok
    ids = out.data["message_ids"]
    with env.engine.begin() as conn:
        conn.execute(update(tables.messages).where(tables.messages.c.id.in_(ids))
                     .values(state="submitting", attempts=1))
    await env.writer.run(env.recorder._record, _Batch(sent=[(mid, 1, [f"c{mid}"]) for mid in ids]))
    at = now_ms() - int(hours_ago * HOUR)
    with env.engine.begin() as conn:
        conn.execute(update(tables.messages).where(tables.messages.c.id.in_(ids))
                     .values(due_at=at, submitted_at=at))
    return ids


def message(env, mid):
    with env.engine.connect() as conn:
        return conn.execute(select(tables.messages).where(tables.messages.c.id == mid)).one()


def balance(env) -> int:
    with env.engine.connect() as conn:
        return acc.balances_of(conn, acc.owner_of(conn, "alice"))[0]["amount"]


def reports(env) -> list[dict]:
    with env.engine.connect() as conn:
        return [orjson.loads(r.payload) for r in conn.execute(
            select(tables.events.c.payload).where(tables.events.c.kind == "report").order_by(tables.events.c.id))]


def ledger_ok(env) -> bool:
    with env.engine.connect() as conn:
        return acc.ledger_mismatches(conn) == []


async def test_submitted_past_the_timeout_ends_expired_refunded_and_reported(env):
    old, = await sent(env, "13800138000", 73)
    young, = await sent(env, "13900139000", 71)
    assert balance(env) == 98
    maintenance = Maintenance(env.writer, env.receiver, 0, report_timeout_hours=72)
    assert await maintenance.expire_unreported() == 1
    m = message(env, old)
    assert (m.state, m.status, m.refunded) == ("expired", "EXPIRED", True) and m.done_at is not None
    assert message(env, young).state == "submitted"
    assert balance(env) == 99 and ledger_ok(env)
    (event,) = reports(env)
    assert event["message_id"] == old and event["status"] == "expired"
    assert event["carrier_status"] == "EXPIRED" and event["refunded"] is True
    # A second pass finds nothing more to do.
    assert await maintenance.expire_unreported() == 0 and balance(env) == 99


async def test_the_timeout_is_the_setting(env):
    mid, = await sent(env, "13800138000", 3)
    assert await Maintenance(env.writer, env.receiver, 0, report_timeout_hours=4).expire_unreported() == 0
    assert await Maintenance(env.writer, env.receiver, 0, report_timeout_hours=2).expire_unreported() == 1
    assert message(env, mid).state == "expired"


async def test_refund_policy_never_keeps_the_money(env):
    with env.engine.begin() as conn:
        acc.update_account(conn, "alice", refund_policy="never")
    env.directory.invalidate()
    mid, = await sent(env, "13800138000", 100)
    assert await Maintenance(env.writer, env.receiver, 0).expire_unreported() == 1
    m = message(env, mid)
    assert m.state == "expired" and not m.refunded and balance(env) == 99 and ledger_ok(env)


async def test_a_late_report_after_expiry_changes_nothing(env):
    mid, = await sent(env, "13800138000", 80)
    await Maintenance(env.writer, env.receiver, 0).expire_unreported()
    assert balance(env) == 100
    # The carrier's report finally arrives, a failure that would be refunded.
    late = _Batch(reports=[Report(1, f"c{mid}", "UNDELIV", False)])
    await env.writer.run(env.recorder._record, late)
    m = message(env, mid)
    assert (m.state, m.status) == ("expired", "EXPIRED")
    assert balance(env) == 100 and len(reports(env)) == 1 and ledger_ok(env)
    with env.engine.connect() as conn:
        refunds = conn.execute(select(tables.ledger).where(tables.ledger.c.kind == "refund")).all()
    assert [r.message_id for r in refunds] == [mid]


async def test_a_backlog_is_expired_in_batches(env, monkeypatch):
    import hongyan.core.maintenance as maintenance_module

    monkeypatch.setattr(maintenance_module, "EXPIRE_BATCH", 3)
    monkeypatch.setattr(maintenance_module, "EXPIRE_BATCHES_PER_PASS", 2)
    ids = await sent(env, ",".join(f"1380013{i:04d}" for i in range(8)), 90)
    maintenance = Maintenance(env.writer, env.receiver, 0)
    assert await maintenance.expire_unreported() == 6       # two batches of three this pass
    assert await maintenance.expire_unreported() == 2       # the rest on the next
    assert {message(env, m).state for m in ids} == {"expired"}
    assert balance(env) == 100 and len(reports(env)) == 8 and ledger_ok(env)


@pytest.mark.postgres
async def test_two_nodes_at_once_never_expire_a_message_twice(env):
    if env.engine.dialect.name != "postgresql":
        pytest.skip("concurrent nodes share PostgreSQL; SQLite has one writer")
    ids = await sent(env, "13800138000,13800138001,13800138002", 90)
    assert balance(env) == 97
    receiver_b = Receiver(env.directory)   # a second node's receiver, on its own connection
    with env.engine.connect() as a, env.engine.connect() as b:
        ta = a.begin()
        assert env.receiver.expire(a, TIMEOUT) == 3            # node A holds them, not committed yet
        tb = b.begin()
        assert receiver_b.expire(b, TIMEOUT) == 0              # node B skips the locked rows
        tb.commit()
        ta.commit()
        with b.begin():
            assert receiver_b.expire(b, TIMEOUT) == 0          # and later finds them final
    assert balance(env) == 100 and len(reports(env)) == 3 and ledger_ok(env)


@pytest.mark.postgres
async def test_a_report_racing_expiry_on_another_node_is_not_refunded_twice(env):
    if env.engine.dialect.name != "postgresql":
        pytest.skip("concurrent nodes share PostgreSQL; SQLite has one writer")
    mid, = await sent(env, "13800138000", 90)
    receiver_b = Receiver(env.directory)
    done = threading.Event()
    result = {}

    def report_on_node_b():
        with env.engine.begin() as b:
            # Reads the message as submitted, then waits on node A's lock.
            result["b"] = receiver_b.apply_reports(b, [Report(1, f"c{mid}", "UNDELIV", False)])
        done.set()

    with env.engine.connect() as a:
        ta = a.begin()
        assert env.receiver.expire(a, TIMEOUT) == 1
        worker = threading.Thread(target=report_on_node_b)
        worker.start()
        assert not done.wait(0.5)          # node B is blocked behind node A's lock
        ta.commit()
    worker.join(10)
    assert done.is_set() and result["b"] == (0, [])
    m = message(env, mid)
    assert (m.state, m.status) == ("expired", "EXPIRED")
    assert balance(env) == 100 and len(reports(env)) == 1 and ledger_ok(env)


def test_the_setting_and_its_check(monkeypatch, tmp_path):
    from hongyan import config

    assert config.Settings().report_timeout_hours == 72
    monkeypatch.setenv("HONGYAN_REPORT_TIMEOUT_HOURS", "1.5")
    assert config.load(str(tmp_path / "none.toml")).report_timeout_hours == 1.5
    for bad in (0, -1):
        with pytest.raises(ValueError, match="report_timeout_hours must be more than 0"):
            Maintenance(None, None, 0, report_timeout_hours=bad)


async def test_the_running_server_expires_by_its_setting(settings, monkeypatch):
    import asyncio

    import hongyan.core.maintenance as maintenance_module
    from hongyan.runtime import Runtime
    from tests.helpers import until

    monkeypatch.setattr(maintenance_module, "HEARTBEAT_S", 0.05)
    settings.roles = ["api"]
    settings.report_timeout_hours = 2
    url = settings.resolved_database_url()
    migrate(url)
    engine, _ = engines(url)
    seed(engine, Cipher(settings.secret_key), balance=10)
    runtime = Runtime(settings)
    await runtime.start()
    try:
        alice = runtime.directory.by_username("alice")
        out = await runtime.accept.send(SendRequest(account=alice, to="13800138000,13900139000", content="x"))
        old, young = out.data["message_ids"]
        with engine.begin() as conn:
            for mid, hours in ((old, 3), (young, 1)):
                at = now_ms() - hours * HOUR
                conn.execute(update(tables.messages).where(tables.messages.c.id == mid)
                             .values(state="submitted", due_at=at, submitted_at=at))

        def state(mid):
            with engine.connect() as conn:
                return conn.execute(select(tables.messages.c.state).where(tables.messages.c.id == mid)).scalar()
        await until(lambda: state(old) == "expired", timeout=10, what="the old message to expire")
        await asyncio.sleep(0.2)
        assert state(young) == "submitted"
    finally:
        await runtime.stop()
        engine.dispose()


@pytest.mark.postgres
async def test_two_maintenance_loops_on_postgresql_share_a_backlog_and_refund_each_once(env, monkeypatch):
    if env.engine.dialect.name != "postgresql":
        pytest.skip("concurrent nodes share PostgreSQL; SQLite has one writer")
    import asyncio

    import hongyan.core.maintenance as maintenance_module

    monkeypatch.setattr(maintenance_module, "EXPIRE_BATCH", 20)
    ids = await sent(env, ",".join(f"1380013{i:04d}" for i in range(90)), 90)
    assert balance(env) == 10
    other_writer = Writer(env.engine)      # node B: its own writer thread and connection
    other_writer.start()
    try:
        a = Maintenance(env.writer, env.receiver, 1)
        b = Maintenance(other_writer, Receiver(env.directory), 2)
        while True:
            done = await asyncio.gather(a.expire_unreported(), b.expire_unreported())
            if sum(done) == 0:
                break
    finally:
        other_writer.stop()
    assert a.expired + b.expired == 90
    assert {message(env, m).state for m in ids} == {"expired"}
    with env.engine.connect() as conn:
        refunds = [r.message_id for r in conn.execute(select(tables.ledger).where(tables.ledger.c.kind == "refund"))]
    assert sorted(refunds) == sorted(ids)
    assert balance(env) == 100 and len(reports(env)) == 90 and ledger_ok(env)
