"""The session outbox: reports and MO for customers bound over CMPP or SMPP.

They wait while no session of the account is bound, go to a bound session no
faster than its window allows, are done only once the customer answered, and
come back to be offered again when a session closes with them unanswered.
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
from sqlalchemy import insert, select

from hongyan.core.notify import push_state_for
from hongyan.servers.outbox import Outbox
from hongyan.store.db import make_engine, migrate
from hongyan.store.tables import events
from hongyan.store.writer import Writer


class FakeSession:
    def __init__(self, window: int) -> None:
        self.window = window
        self.offered: list[dict] = []
        self.unanswered: list[int] = []

    def room(self) -> int:
        return self.window - len(self.unanswered)

    def offer(self, items: list[dict]) -> None:
        self.offered.extend(items)
        self.unanswered.extend(i["id"] for i in items)


def _events(conn, account_id: int, n: int) -> None:
    conn.execute(insert(events), [
        {"account_id": account_id, "kind": "report", "ref_id": i,
         "payload": orjson.dumps({"message_id": i, "carrier_status": "DELIVRD"}).decode(),
         "created_at": 0, "push_state": "session", "attempts": 0, "next_at": 0} for i in range(n)])


def _states(engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(events.c.push_state).order_by(events.c.id))]


async def _until(pred, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_events_wait_for_a_session_and_respect_its_window(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    writer = Writer(engine)
    writer.start()
    outbox = Outbox(writer, poll=0.02)
    task = asyncio.create_task(outbox.run())
    try:
        await writer.run(lambda conn, _: _events(conn, 7, 5))
        await asyncio.sleep(0.1)
        assert _states(engine) == ["session"] * 5     # nobody bound: they wait

        session = FakeSession(window=2)
        outbox.bind(7, session)
        await _until(lambda: len(session.offered) == 2)
        await asyncio.sleep(0.1)
        assert len(session.offered) == 2               # the window is full: no more offered

        done = session.unanswered[:]
        session.unanswered.clear()
        await outbox.done(done)
        outbox.wake()
        await _until(lambda: len(session.offered) == 4)
        assert _states(engine)[:2] == ["done", "done"]

        # The session closes with two unanswered: they go back and reach the next session.
        outbox.unbind(7, session)
        await outbox.release(session.unanswered)
        other = FakeSession(window=16)
        outbox.bind(7, other)
        await _until(lambda: len(other.offered) == 3)
        assert sorted(i["message_id"] for i in other.offered) == [2, 3, 4]
        assert all(i["kind"] == "report" and i["carrier_status"] == "DELIVRD" for i in other.offered)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        writer.stop()
        engine.dispose()


def test_push_state_follows_the_front_door_and_the_account():
    http = SimpleNamespace(report_url="http://x/r", mo_url=None,
                           push_dialect_for=lambda kind: "native")
    quiet = SimpleNamespace(report_url=None, mo_url=None, push_dialect_for=lambda kind: "native")
    session = SimpleNamespace(report_url="http://x/r", mo_url=None, push_dialect_for=lambda kind: "cmpp")
    assert push_state_for(http, "report", "cmpp") == "session"    # came in over CMPP: goes back over it
    assert push_state_for(http, "report", "smpp") == "session"
    assert push_state_for(http, "report", "qmsg") == "pending"
    assert push_state_for(quiet, "report", "native") == "none"
    assert push_state_for(session, "mo") == "session"
    assert push_state_for(http, "mo") == "pending"                 # MO falls back to the report URL
    assert push_state_for(None, "report", "cmpp") == "none"
