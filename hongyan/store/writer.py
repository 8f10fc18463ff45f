"""Group commit: many callers' work in one transaction, on one writer thread.

Every write on the hot path (accepting requests, recording submits, applying
reports, marking pushes) is a *job*: a function ``fn(conn, arg) -> result`` that
runs inside a transaction. The writer takes every job queued since its last
commit, runs them all in one transaction, commits once, and only then resolves
each caller's future. So a caller is answered only after its rows are durable,
and a thousand callers cost one commit instead of a thousand.

A job function marked with :func:`batched` is called once per run of
consecutive jobs of its kind, with the list of their args, and returns the list
of their results: that is how a thousand accepted requests become one
multi-row INSERT instead of a thousand.

A job must not raise for business reasons (it returns an outcome instead). If
one raises anyway, the batch is rolled back and each job is run again in its own
transaction, so one bad job fails alone.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Any, Callable

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

Job = Callable[[Connection, Any], Any]
_STOP = object()
IDLE_GAP_S = 0.0005


def batched(fn: Callable[[Connection, list], list]) -> Callable:
    """Mark a job function that takes a list of args and returns a list of results."""
    fn.__batched__ = True
    return fn


def _run_jobs(conn: Connection, items: list) -> list:
    """Run items (fn, arg, fut, loop) in order, grouping runs of a batched fn."""
    results: list = []
    i = 0
    while i < len(items):
        fn = items[i][0]
        if getattr(fn, "__batched__", False):
            j = i
            # == not "is": each access to a bound method makes a new object.
            while j < len(items) and items[j][0] == fn:
                j += 1
            out = fn(conn, [it[1] for it in items[i:j]])
            results.extend((True, r) for r in out)
            i = j
        else:
            results.append((True, fn(conn, items[i][1])))
            i += 1
    return results


class Writer:
    def __init__(self, engine: Engine, *, max_batch: int = 512, window_ms: float = 2.0) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.window = window_ms / 1000.0
        # The longest pause between two jobs that still counts as one burst.
        self.idle_gap = min(self.window, IDLE_GAP_S)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.jobs = 0
        # Called (on the writer thread) after a rollback: in-memory state that was
        # derived from the rolled-back transaction, such as id blocks, must be dropped.
        self.on_rollback: list[Callable[[], None]] = []

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hongyan-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, fn: Job, arg: Any = None) -> asyncio.Future:
        """Queue a job from the event loop; await the returned future for its result."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((fn, arg, fut, loop))
        return fut

    async def run(self, fn: Job, arg: Any = None) -> Any:
        return await self.submit(fn, arg)

    # -- the writer thread -------------------------------------------------

    def _take_batch(self) -> tuple[list, bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.window
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                # Wait a moment for company only while requests are arriving
                # together: a lone request is committed at once, and so is a
                # burst once it has stopped (a session's window of submits
                # comes all at once; nothing follows until they are answered).
                left = min(deadline - time.monotonic(), self.idle_gap)
                if len(batch) == 1 or left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        conn = self.engine.connect()
        try:
            while True:
                batch, stop = self._take_batch()
                if batch:
                    conn = self._execute(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _execute(self, conn: Connection, batch: list) -> Connection:
        try:
            with conn.begin():
                results = _run_jobs(conn, batch)
            self.commits += 1
            self.jobs += len(batch)
        except Exception as exc:  # noqa: BLE001 - isolate the failing job below
            log.warning("batch of %d rolled back (%s); retrying jobs one by one", len(batch), exc)
            self._rolled_back()
            conn = self._fresh(conn)
            results = []
            for item in batch:
                try:
                    with conn.begin():
                        results.extend(_run_jobs(conn, [item]))
                    self.commits += 1
                    self.jobs += 1
                except Exception as one:  # noqa: BLE001
                    log.exception("job %s failed", getattr(item[0], "__name__", item[0]))
                    results.append((False, one))
                    self._rolled_back()
                    conn = self._fresh(conn)
        self._resolve(batch, results)
        return conn

    def _rolled_back(self) -> None:
        for hook in self.on_rollback:
            hook()

    def _fresh(self, conn: Connection) -> Connection:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
        return self.engine.connect()

    @staticmethod
    def _resolve(batch: list, results: list) -> None:
        by_loop: dict[Any, list] = {}
        for (_fn, _arg, fut, loop), result in zip(batch, results):
            by_loop.setdefault(loop, []).append((fut, result))
        for loop, items in by_loop.items():
            # One wake-up of the event loop per batch, not one per job.
            try:
                loop.call_soon_threadsafe(_set_results, items)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more


def _set_results(items: list) -> None:
    for fut, (ok, value) in items:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
