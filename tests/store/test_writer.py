"""The group-commit writer: batching, isolation of a failing job, rollback hooks."""
from __future__ import annotations

import asyncio
from contextlib import contextmanager

from sqlalchemy import create_engine

from hongyan.store.writer import Writer, batched


@contextmanager
def running_writer(**kw):
    """A started writer on an in-memory database, stopped however the test ends."""
    writer = Writer(create_engine("sqlite://"), **kw)
    writer.start()
    try:
        yield writer
    finally:
        writer.stop()


class Jobs:
    def __init__(self) -> None:
        self.calls: list[list] = []

    @batched
    def many(self, conn, args: list) -> list:
        self.calls.append(list(args))
        return [a * 2 for a in args]


async def test_batched_bound_method_runs_once_per_run_of_jobs():
    jobs = Jobs()
    with running_writer(window_ms=5) as writer:
        # Queue everything before the writer can take any of it.
        futs = [writer.submit(jobs.many, i) for i in range(50)]
        results = await asyncio.gather(*futs)
    assert results == [i * 2 for i in range(50)]
    assert sum(len(c) for c in jobs.calls) == 50
    assert len(jobs.calls) < 10  # grouped, not one call per job


async def test_failing_job_fails_alone_and_rollback_hooks_run():
    rolled = []

    def good(conn, x):
        return x

    def bad(conn, x):
        raise ValueError("bad")
    with running_writer() as writer:
        writer.on_rollback.append(lambda: rolled.append(1))
        out = await asyncio.gather(writer.submit(good, 1), writer.submit(bad, 2), writer.submit(good, 3),
                                   return_exceptions=True)
    assert out[0] == 1 and out[2] == 3 and isinstance(out[1], ValueError)
    assert rolled


async def test_a_burst_is_committed_once_it_stops_not_at_the_end_of_the_window():
    # A session's window of submits arrives at once and nothing follows until it is
    # answered: waiting out a long commit window for company that cannot come would
    # cap the session at one window per commit window.
    jobs = Jobs()
    with running_writer(window_ms=500) as writer:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(writer.submit(jobs.many, i) for i in range(16)))
        took = loop.time() - started
    assert results == [i * 2 for i in range(16)]
    assert took < 0.25, f"the burst waited {took:.3f} s, most of the 0.5 s window"
    assert writer.commits <= 2
