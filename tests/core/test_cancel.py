"""Cancelling a submission: what has not gone out is stopped, refunded in full and reported."""
from __future__ import annotations

import threading

import httpx
import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from hongyan.app import create_app
from hongyan.cli import main
from hongyan.config import write_config
from hongyan.core import accounts as acc
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import Directory
from hongyan.core.cancel import CANCEL, cancel
from hongyan.core.dispatch import Dispatcher
from hongyan.core.receive import Receiver
from hongyan.core.routing import Router
from hongyan.core.secrets import Cipher
from hongyan.domain.clock import now_ms
from hongyan.domain.outcomes import Code
from hongyan.runtime import Runtime
from hongyan.store import tables
from hongyan.store.db import migrate
from hongyan.store.writer import Writer
from tests.helpers import engines, seed

HOUR = 3600 * 1000
THREE = "13800138000,13900139000,13700137000"


@pytest.fixture
async def env(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    seed(engine, cipher, balance=100, report_url="http://127.0.0.1:9/hook")
    with engine.begin() as conn:
        acc.create_account(conn, cipher, org_code="200001", username="bob", extension="34")
        acc.topup(conn, acc.owner_of(conn, "bob"), 10, note="test")
    writer = Writer(engine)
    writer.start()
    directory = Directory(reader, cipher)
    ns = type("Env", (), {})()
    ns.engine, ns.reader, ns.directory, ns.writer = engine, reader, directory, writer
    ns.receiver = Receiver(directory)
    ns.accept = AcceptService(directory, writer)
    yield ns
    writer.stop()
    engine.dispose()
    reader.dispose()


async def scheduled(env, to: str = THREE, hours: float = 1, user: str = "alice", content: str = "x") -> dict:
    out = await env.accept.send(SendRequest(account=env.directory.by_username(user), to=to, content=content,
                                            schedule_at=now_ms() + int(hours * HOUR)))
    assert out.ok, out
    return out.data


def do_cancel(env, submission_id: int, user: str = "alice"):
    with env.engine.begin() as conn:
        return cancel(conn, env.directory.by_username(user).id, submission_id, env.receiver)


def rows(env, submission_id: int) -> list:
    with env.engine.connect() as conn:
        return conn.execute(select(tables.messages).where(tables.messages.c.submission_id == submission_id)
                            .order_by(tables.messages.c.id)).all()


def submission_state(env, submission_id: int) -> str:
    with env.engine.connect() as conn:
        return conn.execute(select(tables.submissions.c.state)
                            .where(tables.submissions.c.id == submission_id)).scalar()


def balance(env, user: str = "alice") -> int:
    with env.engine.connect() as conn:
        return acc.balances_of(conn, acc.owner_of(conn, user))[0]["amount"]


def ledger_ok(env) -> bool:
    with env.engine.connect() as conn:
        return acc.ledger_mismatches(conn) == []


def reports(env) -> list[dict]:
    with env.engine.connect() as conn:
        return [orjson.loads(r.payload) for r in conn.execute(
            select(tables.events.c.payload).where(tables.events.c.kind == "report").order_by(tables.events.c.id))]


def mark(env, message_ids: list[int], **values) -> None:
    with env.engine.begin() as conn:
        conn.execute(update(tables.messages).where(tables.messages.c.id.in_(message_ids)).values(**values))


async def test_cancel_scheduled_refunds_reports_and_is_never_dispatched(env):
    sub = await scheduled(env, content="长" * 100)          # two parts each: 6 units
    assert balance(env) == 94
    out = do_cancel(env, sub["submission_id"])
    assert out.ok and out.data == {"submission_id": sub["submission_id"], "cancelled": 3, "refunded": 6,
                                   "not_cancelled": 0, "state": "cancelled"}
    assert balance(env) == 100 and ledger_ok(env)
    assert submission_state(env, sub["submission_id"]) == "cancelled"
    ms = rows(env, sub["submission_id"])
    assert {(m.state, m.status, m.refunded) for m in ms} == {("failed", CANCEL, True)}
    assert all(m.note for m in ms)
    events = reports(env)
    assert sorted(e["message_id"] for e in events) == sub["message_ids"]
    assert {(e["status"], e["carrier_status"], e["refunded"]) for e in events} == {("failed", CANCEL, True)}
    # The scheduled time comes: no dispatcher takes them.
    mark(env, sub["message_ids"], due_at=now_ms() - 1000)
    dispatcher = Dispatcher(env.writer, env.reader, env.directory, Router(), 1,
                            postgres=env.engine.dialect.name == "postgresql")
    assert await env.writer.run(dispatcher._claim, 1000) == []
    assert {m.state for m in rows(env, sub["submission_id"])} == {"failed"}


async def test_a_partly_dispatched_submission_cancels_the_rest_and_says_how_many(env):
    sub = await scheduled(env)
    first, *rest = sub["message_ids"]
    mark(env, [first], state="submitted", submitted_at=now_ms())
    out = do_cancel(env, sub["submission_id"])
    assert out.ok and (out.data["cancelled"], out.data["not_cancelled"], out.data["refunded"]) == (2, 1, 2)
    by_id = {m.id: m for m in rows(env, sub["submission_id"])}
    assert by_id[first].state == "submitted" and not by_id[first].refunded
    assert {by_id[m].state for m in rest} == {"failed"}
    assert balance(env) == 99 and ledger_ok(env) and len(reports(env)) == 2


async def test_cancel_of_a_submission_already_sent_is_refused_and_changes_nothing(env):
    sub = await scheduled(env)
    mark(env, sub["message_ids"][:2], state="submitted", submitted_at=now_ms())
    mark(env, sub["message_ids"][2:], state="delivered", status="DELIVRD")
    out = do_cancel(env, sub["submission_id"])
    assert out.code == Code.UNSUPPORTED_OPERATION and "nothing left to cancel" in out.detail
    assert "3 message(s)" in out.detail
    assert submission_state(env, sub["submission_id"]) == "scheduled"
    assert balance(env) == 97 and reports(env) == [] and ledger_ok(env)


async def test_a_second_cancel_and_someone_elses_submission(env):
    sub = await scheduled(env)
    assert do_cancel(env, sub["submission_id"]).ok
    again = do_cancel(env, sub["submission_id"])
    assert again.code == Code.UNSUPPORTED_OPERATION and "already cancelled" in again.detail
    bobs = await scheduled(env, to="13800138000", user="bob")
    other = do_cancel(env, bobs["submission_id"], user="alice")
    assert other.code == Code.INVALID_PARAMETER and f"no submission {bobs['submission_id']}" in other.detail
    assert {m.state for m in rows(env, bobs["submission_id"])} == {"queued"}
    assert do_cancel(env, 999_999).code == Code.INVALID_PARAMETER
    assert balance(env) == 100 and balance(env, "bob") == 9 and ledger_ok(env)


async def test_refund_is_in_full_whatever_the_refund_policy(env):
    with env.engine.begin() as conn:
        acc.update_account(conn, "alice", refund_policy="never")
    env.directory.invalidate()
    sub = await scheduled(env)
    assert do_cancel(env, sub["submission_id"]).data["refunded"] == 3
    assert balance(env) == 100 and ledger_ok(env)


async def test_held_and_queued_messages_are_cancelled_too(env):
    out = await env.accept.send(SendRequest(account=env.directory.by_username("alice"), to=THREE, content="x"))
    ids = out.data["message_ids"]
    mark(env, ids[:1], state="held")                                # waiting for review
    mark(env, ids[1:2], state="submitting", claimed_by=1)          # a dispatcher has it
    res = do_cancel(env, out.data["submission_id"])
    assert (res.data["cancelled"], res.data["not_cancelled"]) == (2, 1)
    states = [m.state for m in rows(env, out.data["submission_id"])]
    assert states == ["failed", "submitting", "failed"]
    assert balance(env) == 99 and ledger_ok(env)


@pytest.mark.postgres
async def test_two_cancels_at_once_refund_once(env):
    if env.engine.dialect.name != "postgresql":
        pytest.skip("concurrent cancels share PostgreSQL; SQLite has one writer")
    sub = await scheduled(env)
    alice = env.directory.by_username("alice").id
    result = {}

    def second():
        with env.engine.begin() as conn:
            result["b"] = cancel(conn, alice, sub["submission_id"], Receiver(env.directory))

    with env.engine.connect() as a:
        ta = a.begin()
        assert cancel(a, alice, sub["submission_id"], env.receiver).data["cancelled"] == 3
        worker = threading.Thread(target=second)
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()              # waits for the first cancel's lock
        ta.commit()
    worker.join(10)
    assert result["b"].code == Code.UNSUPPORTED_OPERATION
    assert balance(env) == 100 and len(reports(env)) == 3 and ledger_ok(env)


# -- the native API and the CLI -------------------------------------------------

@pytest.fixture
async def api(settings):
    settings.roles = ["api"]
    url = settings.resolved_database_url()
    migrate(url)
    engine, _ = engines(url)
    cipher = Cipher(settings.secret_key)
    user = seed(engine, cipher, balance=100)
    with engine.begin() as conn:
        _, _, bob_key = acc.create_account(conn, cipher, org_code="200001", username="bob", extension="34")
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    await runtime.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hongyan") as client:
        yield client, {"Authorization": f"Bearer {user['key']}"}, {"Authorization": f"Bearer {bob_key}"}, engine
    await runtime.stop()
    engine.dispose()


async def test_the_native_api_cancels(api):
    client, alice, bob, engine = api
    r = await client.post("/v1/messages", headers=alice, json={
        "to": THREE, "content": "x", "schedule_at": now_ms() + HOUR})
    assert r.status_code == 200, r.text
    sid = r.json()["submission_id"]
    r = await client.post(f"/v1/submissions/{sid}/cancel", headers=bob)
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter"
    r = await client.post(f"/v1/submissions/{sid}/cancel", headers=alice)
    assert r.status_code == 200, r.text
    assert r.json() == {"code": "ok", "submission_id": sid, "cancelled": 3, "refunded": 3, "not_cancelled": 0,
                        "state": "cancelled"}
    view = (await client.get(f"/v1/submissions/{sid}", headers=alice)).json()
    assert view["state"] == "cancelled" and view["states"] == {"failed": 3}
    assert {m["carrier_status"] for m in view["messages"]} == {CANCEL}
    assert (await client.get("/v1/balance", headers=alice)).json()["balances"][0]["amount"] == 100
    pulled = (await client.get("/v1/reports", headers=alice)).json()["items"]
    assert len(pulled) == 3 and {i["carrier_status"] for i in pulled} == {CANCEL}
    r = await client.post(f"/v1/submissions/{sid}/cancel", headers=alice)
    assert r.status_code == 400 and r.json()["code"] == "unsupported_operation"
    assert "already cancelled" in r.json()["detail"]
    r = await client.post(f"/v1/submissions/{sid}/cancel")
    assert r.status_code == 401


async def test_the_cli_cancels(env, settings, tmp_path):
    config = tmp_path / "cli.toml"
    write_config(str(config), {"database_url": settings.database_url, "secret_key": settings.secret_key})
    sub = await scheduled(env)
    runner = CliRunner()
    done = runner.invoke(main, ["--config", str(config), "submission", "cancel", str(sub["submission_id"]),
                                "--account", "bob"])
    assert done.exit_code != 0 and "is not bob's" in done.output
    done = runner.invoke(main, ["--config", str(config), "submission", "cancel", str(sub["submission_id"])])
    assert done.exit_code == 0, done.output
    assert "3 message(s) stopped, 3 refunded, 0 already sent" in done.output
    assert balance(env) == 100 and ledger_ok(env)
    done = runner.invoke(main, ["--config", str(config), "submission", "cancel", str(sub["submission_id"])])
    assert done.exit_code != 0 and "already cancelled" in done.output
    done = runner.invoke(main, ["--config", str(config), "submission", "cancel", "424242"])
    assert done.exit_code != 0 and "no submission 424242" in done.output
    with env.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.events)).scalar() == 3
