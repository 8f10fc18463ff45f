"""A request's daily send window holds at dispatch too: a message accepted inside it but
reached by the dispatcher after it closed waits for the next opening."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from hongyan.core import dispatch
from hongyan.core.accept import SendRequest
from hongyan.domain import windows
from hongyan.domain.clock import to_ms
from hongyan.store import tables
from tests.helpers import until


def seconds(t: datetime) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


async def test_a_message_reached_after_its_window_closed_waits_for_the_next_opening(stack, monkeypatch):
    rt = stack.runtime
    now = datetime.now().replace(microsecond=0)
    window = (seconds(now - timedelta(hours=1)), seconds(now + timedelta(hours=1)))
    later = now + timedelta(hours=2)            # the dispatcher's "now": the window has closed

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return later
    monkeypatch.setattr(dispatch, "datetime", Later)

    out = await rt.accept.send(SendRequest(account=rt.directory.by_username("alice"), to="13800138000",
                                           content="【鸿雁】窗口内受理", daily_window=window))
    assert out.ok and out.data["scheduled_at"] is None     # inside the window at accept
    [mid] = out.data["message_ids"]

    def row():
        with rt.reader.connect() as conn:
            return conn.execute(select(tables.messages).where(tables.messages.c.id == mid)).one()
    await until(lambda: row().note == "outside the request's daily send window", what="the message put back")
    m = row()
    assert m.state == "queued" and m.attempts == 0
    assert m.due_at == to_ms(windows.next_open(window, later))
    assert stack.sim.stats["submits"] == 0


async def test_a_message_inside_its_window_goes_at_once(stack):
    rt = stack.runtime
    now = datetime.now()
    window = (seconds(now - timedelta(hours=1)), seconds(now + timedelta(hours=1)))
    out = await rt.accept.send(SendRequest(account=rt.directory.by_username("alice"), to="13800138000",
                                           content="【鸿雁】窗口内发送", daily_window=window))
    assert out.ok
    await until(lambda: len(stack.callbacks.reports()) == 1, what="the report")
