"""Manual review: listing held submissions, approving, rejecting (refund + REJECT report), refusals."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from hongyan.core import accounts as acc
from hongyan.core import blacklist as bl
from hongyan.core import review
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Directory
from hongyan.core.receive import Receiver
from hongyan.core.rules import add_words, remove_words, set_rules
from hongyan.core.secrets import Cipher
from hongyan.domain.clock import now_ms, to_ms
from hongyan.store import tables
from hongyan.store.db import migrate
from hongyan.store.writer import Writer
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)
from tests.helpers import engines, seed, until

TEXT = "【鸿雁】本周特价，点击领取优惠"


@pytest.fixture
async def env(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    seed(engine, cipher, balance=100, report_url="http://127.0.0.1:9/hook")
    seed(engine, cipher, balance=100, username="bob", org="200002", extension="13")
    writer = Writer(engine)
    writer.start()
    directory = Directory(reader, cipher)
    with engine.begin() as conn:
        add_words(conn, "review", ["特价", "优惠", "贷款"])

    class Env:
        pass
    e = Env()
    e.engine, e.directory, e.writer = engine, directory, writer
    e.accept = AcceptService(directory, writer)
    e.receiver = Receiver(directory)
    yield e
    writer.stop()
    engine.dispose()
    reader.dispose()


def hold(engine, submission_id: int, scheduled_at: int | None = None) -> None:
    """Put an accepted submission where accept puts one whose text hit a review word."""
    with engine.begin() as conn:
        conn.execute(update(tables.submissions).where(tables.submissions.c.id == submission_id)
                     .values(state="held", scheduled_at=scheduled_at))
        conn.execute(update(tables.messages).where(tables.messages.c.submission_id == submission_id)
                     .values(state="held", due_at=scheduled_at or now_ms()))


async def held_submission(env, to, content: str = TEXT, user: str = "alice",
                          scheduled_at: int | None = None) -> int:
    out = await env.accept.send(SendRequest(account=env.directory.by_username(user), to=to, content=content))
    assert out.ok, out
    hold(env.engine, out.data["submission_id"], scheduled_at)
    return out.data["submission_id"]


def rows(engine, table, **where):
    with engine.connect() as conn:
        q = select(table)
        for k, v in where.items():
            q = q.where(table.c[k] == v)
        return conn.execute(q.order_by(table.c[next(iter(table.primary_key.columns)).name])).all()


def balance(engine, user: str = "alice") -> int:
    with engine.connect() as conn:
        return acc.balances_of(conn, acc.owner_of(conn, user))[0]["amount"]


async def test_held_lists_content_counts_and_the_review_words(env):
    sid = await held_submission(env, ["13800138000", "13900139000"])
    other = await held_submission(env, "13700137000", "【乙】低息贷款", user="bob")
    with env.engine.connect() as conn:
        items = review.held(conn)
        mine = review.held(conn, env.directory.by_username("alice").id)
    assert [i["submission_id"] for i in items] == [sid, other]
    first = items[0]
    assert first["username"] == "alice" and first["content"] == TEXT
    assert first["recipients"] == 2 and first["held"] == 2 and first["words"] == ["特价", "优惠"]
    assert items[1]["words"] == ["贷款"]
    assert [i["submission_id"] for i in mine] == [sid]


async def test_approve_queues_now_or_at_the_scheduled_time(env):
    now = now_ms()
    later = now + 3_600_000
    plain = await held_submission(env, "13800138000")
    ahead = await held_submission(env, "13900139000", scheduled_at=later)
    passed = await held_submission(env, "13700137000", scheduled_at=now - 60_000)
    with env.engine.begin() as conn:
        done = review.approve(conn, [plain, ahead, passed], "cli:ops", now=now)
    assert [(d.submission_id, d.state, d.messages, d.due_at) for d in done] == [
        (plain, "accepted", 1, now), (ahead, "scheduled", 1, later), (passed, "accepted", 1, now)]
    assert done[0].content == TEXT and not done[0].scheduled and done[1].scheduled
    for sid, due in ((plain, now), (ahead, later), (passed, now)):
        (m,) = rows(env.engine, tables.messages, submission_id=sid)
        assert m.state == "queued" and m.due_at == due
    assert rows(env.engine, tables.submissions, id=ahead)[0].state == "scheduled"
    (audit,) = rows(env.engine, tables.reviews, submission_id=plain)
    assert audit.decision == "approved" and audit.operator == "cli:ops" and audit.created_at == now
    # Billing is untouched: the debit made on accept stands, nothing is added or refunded.
    assert balance(env.engine) == 100 - 3
    with env.engine.connect() as conn:
        assert review.held(conn) == []


async def test_approval_outside_the_allowed_hours_waits_for_them(env):
    sid = await held_submission(env, "13800138000")
    # The window closes while the text waits: it opens again two hours from now.
    now = datetime.now()
    opens = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    with env.engine.begin() as conn:
        set_rules(conn, env.directory.by_username("alice").id,
                  allowed_hours=f"{opens.hour:02d}-{(opens.hour + 1) % 24:02d}")
        (d,) = review.approve(conn, [sid], "cli:ops")
    assert d.state == "scheduled" and d.due_at == to_ms(opens)
    (m,) = rows(env.engine, tables.messages, submission_id=sid)
    assert m.state == "queued" and m.due_at == to_ms(opens)
    (sub,) = rows(env.engine, tables.submissions, id=sid)
    assert sub.state == "scheduled" and sub.scheduled_at == to_ms(opens)


async def test_reject_refunds_under_every_policy_and_reports_reject(env):
    with env.engine.begin() as conn:
        acc.update_account(conn, "alice", refund_policy="never")
    env.directory.invalidate()
    sid = await held_submission(env, ["13800138000", "13900139000"], TEXT + "长" * 70)  # 2 parts each
    assert balance(env.engine) == 100 - 4
    with env.engine.begin() as conn:
        (d,) = review.reject(conn, [sid], "api:root", "misleading offer", env.receiver)
    assert (d.decision, d.messages, d.refunded, d.state) == ("rejected", 2, 4, "rejected")
    msgs = rows(env.engine, tables.messages, submission_id=sid)
    assert {(m.state, m.status, m.refunded) for m in msgs} == {("failed", "REJECT", True)}
    assert all(m.note == "rejected by review: misleading offer" for m in msgs)
    assert rows(env.engine, tables.submissions, id=sid)[0].state == "rejected"
    events = [orjson.loads(e.payload) for e in rows(env.engine, tables.events, kind="report")]
    assert sorted(e["message_id"] for e in events) == [m.id for m in msgs]
    assert all(e["status"] == "failed" and e["carrier_status"] == "REJECT" and e["refunded"] for e in events)
    refunds = [r for r in rows(env.engine, tables.ledger, submission_id=sid) if r.kind == "refund"]
    assert sorted(r.message_id for r in refunds) == [m.id for m in msgs] and sum(r.amount for r in refunds) == 4
    assert balance(env.engine) == 100
    with env.engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []
    (audit,) = rows(env.engine, tables.reviews, submission_id=sid)
    assert (audit.decision, audit.operator, audit.reason, audit.refunded) == ("rejected", "api:root",
                                                                              "misleading offer", 4)


async def test_a_decided_submission_cannot_be_decided_again(env):
    a = await held_submission(env, "13800138000")
    b = await held_submission(env, "13900139000")
    with env.engine.begin() as conn:
        review.approve(conn, [a], "cli:ops")
    with pytest.raises(review.NotReviewable, match=f"submission {a} was already approved by cli:ops"):
        with env.engine.begin() as conn:
            review.approve(conn, [a], "cli:other")
    # A request naming one decided submission changes none of the others.
    with pytest.raises(review.ReviewError, match="nothing was changed"):
        with env.engine.begin() as conn:
            review.reject(conn, [b, a], "cli:ops", "", env.receiver)
    assert rows(env.engine, tables.submissions, id=b)[0].state == "held"
    with env.engine.begin() as conn:
        review.reject(conn, [b], "cli:ops", "", env.receiver)
    before = balance(env.engine)
    with pytest.raises(review.ReviewError, match=f"submission {b} was already rejected"):
        with env.engine.begin() as conn:
            review.reject(conn, [b], "cli:ops", "", env.receiver)
    with pytest.raises(review.ReviewError, match=f"submission {b} was already rejected"):
        with env.engine.begin() as conn:
            review.approve(conn, [b], "cli:ops")
    assert balance(env.engine) == before  # refunded once only
    assert len(rows(env.engine, tables.events, kind="report")) == 1


async def test_only_held_submissions_and_a_named_operator(env):
    out = await env.accept.send(SendRequest(account=env.directory.by_username("alice"), to="13800138000",
                                            content="【鸿雁】验证码 1234"))
    sid = out.data["submission_id"]
    with env.engine.begin() as conn:
        with pytest.raises(review.ReviewError, match=f"submission {sid} is not held for review"):
            review.approve(conn, [sid], "cli:ops")
        with pytest.raises(review.ReviewError, match="there is no submission 999999") as missing:
            review.reject(conn, [999999], "cli:ops", "", env.receiver)
        assert not isinstance(missing.value, review.NotReviewable)
        with pytest.raises(review.ReviewError, match="say who decides"):
            review.approve(conn, [sid], " ")
        with pytest.raises(review.ReviewError, match="at least one"):
            review.approve(conn, [], "cli:ops")
    assert rows(env.engine, tables.messages, submission_id=sid)[0].state == "queued"


async def test_approved_messages_are_dispatched_and_reported(stack):  # noqa: F811
    rt = stack.runtime
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        # Scheduled an hour ahead so that no dispatcher claims it before it is held; held
        # without a time, as if the text had been sent for "now" and waited for review.
        r = await client.post("/v1/messages", json={"to": ["13800138000", "18612345678"], "content": TEXT,
                                                    "schedule_at": now_ms() + 3_600_000})
        assert r.status_code == 200, r.text
        sid = r.json()["submission_id"]
        hold(rt.engine, sid)
        assert stack.sim.stats["submits"] == 0
        done = await rt.writer.run(lambda conn, _: review.approve(conn, [sid], "api:test"))
        rt.approved(done)
        await until(lambda: len(stack.callbacks.reports()) == 2, what="two pushed reports")
        assert {x["status"] for x in stack.callbacks.reports()} == {"delivered"}
        sub = (await client.get(f"/v1/submissions/{sid}")).json()
        assert sub["state"] == "accepted" and sub["states"] == {"delivered": 2}


async def test_a_text_held_by_accept_is_sent_on_approval_and_its_barred_number_stays_failed(stack):  # noqa: F811
    rt = stack.runtime
    with rt.engine.begin() as conn:
        add_words(conn, "review", ["特价"])
        bl.add(conn, 0, ["13700137000"])
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        r = await client.post("/v1/messages", json={"to": ["13800138000", "18612345678", "13700137000"],
                                                    "content": TEXT})
        assert r.status_code == 202 and r.json()["code"] == "content_held", r.text
        sid = r.json()["submission_id"]
        sub = (await client.get(f"/v1/submissions/{sid}")).json()
        assert sub["state"] == "held" and sub["states"] == {"held": 2, "failed": 1}
        with rt.reader.connect() as conn:
            (item,) = review.held(conn)
        assert item["submission_id"] == sid and item["held"] == 2 and item["words"] == ["特价"]
        await asyncio.sleep(0.5)
        assert stack.sim.stats["submits"] == 0  # nothing leaves while held
        done = await rt.writer.run(lambda conn, _: review.approve(conn, [sid], "api:test"))
        rt.approved(done)
        await until(lambda: len(stack.callbacks.reports()) == 3, what="three pushed reports")
        statuses = sorted(x["carrier_status"] for x in stack.callbacks.reports())
        assert statuses == ["DELIVRD", "DELIVRD", "MBBLACK"]
        sub = (await client.get(f"/v1/submissions/{sid}")).json()
        assert sub["state"] == "accepted" and sub["states"] == {"delivered": 2, "failed": 1}
    with rt.engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []


async def test_a_text_held_by_accept_is_refunded_on_rejection(stack):  # noqa: F811
    rt = stack.runtime
    with rt.engine.begin() as conn:
        add_words(conn, "review", ["特价"])
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        r = await client.post("/v1/messages", json={"to": ["13800138000", "18612345678"], "content": TEXT})
        sid = r.json()["submission_id"]
        assert (await client.get("/v1/balance")).json()["balances"][0]["amount"] == 10_000 - 2
        (d,) = await rt.writer.run(lambda conn, _: review.reject(conn, [sid], "api:test", "", rt.receiver))
        assert d.refunded == 2
        rt._events()
        await until(lambda: len(stack.callbacks.reports()) == 2, what="two pushed reports")
        assert {(x["carrier_status"], x["refunded"]) for x in stack.callbacks.reports()} == {("REJECT", True)}
        assert (await client.get("/v1/balance")).json()["balances"][0]["amount"] == 10_000
    assert stack.sim.stats["submits"] == 0
    with rt.engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []


async def test_the_review_words_shown_follow_the_list(env):
    sid = await held_submission(env, "13800138000", "【鸿雁】低息贷款，本周特价")
    with env.engine.connect() as conn:
        assert review.held(conn)[0]["words"] == ["贷款", "特价"]
    with env.engine.begin() as conn:
        remove_words(conn, "review", ["贷款"])
    with env.engine.connect() as conn:
        assert review.held(conn)[0]["words"] == ["特价"]
    with env.engine.begin() as conn:
        add_words(conn, "review", ["低息"])
    with env.engine.connect() as conn:
        (item,) = review.held(conn)
    assert item["submission_id"] == sid and item["words"] == ["低息", "特价"]


@pytest.mark.parametrize("second", ["reject", "cancel"])
async def test_a_decision_racing_another_on_postgresql_refunds_once(env, second):
    """Two nodes at once: an operator approves (or rejects) while another rejects or the customer cancels."""
    import threading

    from hongyan.core.cancel import cancel

    if env.engine.dialect.name != "postgresql":
        pytest.skip("concurrent decisions share PostgreSQL; SQLite has one writer")
    sid = await held_submission(env, ["13800138000", "13900139000"])
    alice = env.directory.by_username("alice").id
    result = {}

    def other():
        try:
            with env.engine.begin() as conn:
                if second == "reject":
                    result["out"] = review.reject(conn, [sid], "api:other", "", Receiver(env.directory))
                else:
                    result["out"] = cancel(conn, alice, sid, Receiver(env.directory))
        except review.ReviewError as exc:
            result["out"] = exc

    with env.engine.connect() as a:
        ta = a.begin()
        review.reject(a, [sid], "api:first", "", env.receiver)
        worker = threading.Thread(target=other)
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()              # waits for the first decision's locks
        ta.commit()
    worker.join(10)
    if second == "reject":
        assert isinstance(result["out"], review.NotReviewable)
    else:
        assert not result["out"].ok and "nothing left to cancel" in result["out"].detail
    assert balance(env.engine) == 100
    assert len(rows(env.engine, tables.events, kind="report")) == 2
    with env.engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []


async def test_approval_keeps_the_requests_own_daily_window(env):
    now = datetime.now()
    opens = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    window = (opens.hour * 3600, ((opens.hour + 1) % 24) * 3600)
    out = await env.accept.send(SendRequest(account=env.directory.by_username("alice"), to="13800138000",
                                            content=TEXT, daily_window=window, dialect="kxt3"))
    assert out.code.value == "content_held"
    with env.engine.begin() as conn:
        (d,) = review.approve(conn, [out.data["submission_id"]], "cli:ops")
    # Approved now, outside the window the request asked for: it waits for the window.
    assert d.state == "scheduled" and d.due_at == to_ms(opens) and d.window == window
    (m,) = rows(env.engine, tables.messages, submission_id=out.data["submission_id"])
    assert m.state == "queued" and m.due_at == to_ms(opens)
