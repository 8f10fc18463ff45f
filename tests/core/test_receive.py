"""Recording submits and reports: long-message roll-up, refunds, repeats, orphans."""
from __future__ import annotations

import orjson
import pytest
from sqlalchemy import func, select, update

from hongyan.channels.base import Inbound, Report
from hongyan.core import accounts as acc
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Directory
from hongyan.core.maintenance import REQUEUE_NOTE, register_node, requeue_orphans
from hongyan.core.receive import Receiver
from hongyan.core.recorder import Recorder, _Batch
from hongyan.core.secrets import Cipher
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
    seed(engine, cipher, balance=100, report_url="http://127.0.0.1:9/hook")
    writer = Writer(engine)
    writer.start()
    directory = Directory(reader, cipher)
    receiver = Receiver(directory)
    recorder = Recorder(writer, receiver)
    accept = AcceptService(directory, writer)
    yield engine, directory, accept, recorder, writer
    writer.stop()
    engine.dispose()
    reader.dispose()


async def submitted(env, to: str, content: str) -> list[int]:
    """Accept a message and mark it submitting, as the dispatcher would."""
    engine, directory, accept, _, _ = env
    out = await accept.send(SendRequest(account=directory.by_username("alice"), to=to, content=content))
    assert out.ok
    with engine.begin() as conn:
        conn.execute(update(tables.messages).where(tables.messages.c.id.in_(out.data["message_ids"]))
                     .values(state="submitting", attempts=1))
    return out.data["message_ids"]


async def record(env, **parts) -> tuple[int, int]:
    batch = _Batch(**parts)
    return await env[4].run(env[3]._record, batch)


def message(engine, mid):
    with engine.connect() as conn:
        return conn.execute(select(tables.messages).where(tables.messages.c.id == mid)).one()


def report_events(engine) -> list[dict]:
    with engine.connect() as conn:
        return [orjson.loads(r.payload) for r in conn.execute(
            select(tables.events.c.payload).where(tables.events.c.kind == "report").order_by(tables.events.c.id))]


def balance(engine) -> int:
    with engine.connect() as conn:
        return acc.balances_of(conn, acc.owner_of(conn, "alice"))[0]["amount"]


async def test_long_message_rolls_up_only_when_every_part_is_reported(env):
    engine = env[0]
    (mid,) = await submitted(env, "13800138000", "长" * 150)  # 3 parts
    await record(env, sent=[(mid, 1, ["a1", "a2", "a3"])])
    assert message(engine, mid).state == "submitted"
    await record(env, reports=[Report(1, "a1", "DELIVRD", True), Report(1, "a3", "DELIVRD", True)])
    m = message(engine, mid)
    assert m.state == "submitted" and m.parts_done == 2 and report_events(engine) == []
    await record(env, reports=[Report(1, "a2", "DELIVRD", True)])
    m = message(engine, mid)
    assert m.state == "delivered" and m.status == "DELIVRD"
    (event,) = report_events(engine)
    assert event["message_id"] == mid and event["status"] == "delivered" and event["parts"] == 3


async def test_one_failed_part_fails_the_message_and_refunds_it_once(env):
    engine = env[0]
    (mid,) = await submitted(env, "13800138000", "长" * 100)  # 2 parts, cost 2
    assert balance(engine) == 98
    await record(env, sent=[(mid, 1, ["b1", "b2"])])
    await record(env, reports=[Report(1, "b1", "DELIVRD", True), Report(1, "b2", "MK:0001", False)])
    # The same report again, and a late one after the final state: no second refund.
    await record(env, reports=[Report(1, "b2", "MK:0001", False)])
    m = message(engine, mid)
    assert m.state == "failed" and m.status == "MK:0001" and m.refunded
    assert balance(engine) == 100
    with engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []
        refunds = conn.execute(select(func.count()).select_from(tables.ledger)
                               .where(tables.ledger.c.kind == "refund")).scalar()
    assert refunds == 1 and len(report_events(engine)) == 1


async def test_refund_policy_never_keeps_the_money(env):
    engine = env[0]
    with engine.begin() as conn:
        acc.update_account(conn, "alice", refund_policy="never")
    env[1].invalidate()
    (mid,) = await submitted(env, "13800138000", "x")
    await record(env, sent=[(mid, 1, ["c1"])], reports=[Report(1, "c1", "UNDELIV", False)])
    assert message(engine, mid).state == "failed" and balance(engine) == 99


async def test_report_before_its_submit_is_kept_and_matched_later(env):
    engine, _, _, recorder, writer = env
    (mid,) = await submitted(env, "13800138000", "x")
    await record(env, reports=[Report(1, "d1", "DELIVRD", True)])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.orphan_reports)).scalar() == 1
    await record(env, sent=[(mid, 1, ["d1"])])
    matched = await writer.run(lambda conn, _: recorder.receiver.retry_orphans(conn))
    assert matched == 1 and message(engine, mid).state == "delivered"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.orphan_reports)).scalar() == 0


async def test_retryable_failure_requeues_and_final_failure_refunds(env):
    engine = env[0]
    a, b = await submitted(env, "13800138000,13900139000", "x")
    await record(env, failed=[(a, "CMPP:8", True), (b, "CMPP:11", False)])
    ma, mb = message(engine, a), message(engine, b)
    assert ma.state == "queued" and ma.note == "CMPP:8" and ma.due_at > ma.claimed_at if ma.claimed_at else True
    assert mb.state == "failed" and mb.status == "CMPP:11" and mb.refunded
    assert balance(engine) == 99


async def test_mo_goes_to_the_account_by_extension(env):
    engine = env[0]
    await record(env, mo=[(Inbound(1, "13800138000", "1069000125", "你好"), "1069000"),
                          (Inbound(1, "13800138000", "106900099", "nobody"), "1069000")])
    with engine.connect() as conn:
        rows = conn.execute(select(tables.mo).order_by(tables.mo.c.id)).all()
        events = conn.execute(select(tables.events).where(tables.events.c.kind == "mo")).all()
    assert rows[0].account_id is not None and rows[0].extno == "5"
    # With one account and no extension match, nobody owns the second one... unless
    # the account has no extension; alice has "12", so it stays unassigned.
    assert rows[1].account_id is None
    assert len(events) == 1 and orjson.loads(events[0].payload)["content"] == "你好"


async def test_orphaned_submitting_messages_are_requeued_with_a_note(env):
    engine, _, _, _, writer = env
    (mid,) = await submitted(env, "13800138000", "x")
    with engine.begin() as conn:
        old = register_node(conn, ["all"])
        conn.execute(update(tables.messages).values(claimed_by=old))
        me = register_node(conn, ["all"])
    n = await writer.run(requeue_orphans, (me, True))
    assert n == 1
    m = message(engine, mid)
    assert m.state == "queued" and m.note == REQUEUE_NOTE


async def test_a_part_reported_twice_in_one_batch_counts_once(env):
    engine = env[0]
    (mid,) = await submitted(env, "13800138000", "长" * 100)  # 2 parts
    await record(env, sent=[(mid, 1, ["e1", "e2"])])
    await record(env, reports=[Report(1, "e1", "DELIVRD", True), Report(1, "e1", "DELIVRD", True)])
    m = message(engine, mid)
    assert m.state == "submitted" and m.parts_done == 1
    await record(env, reports=[Report(1, "e2", "DELIVRD", True)])
    assert message(engine, mid).state == "delivered" and len(report_events(engine)) == 1
