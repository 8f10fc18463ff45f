"""Notify: push reports and MO from the events outbox to customers' servers.

A notifier claims due events by pushing their ``next_at`` past a lease (so a
second notifier process skips them), posts them in batches per account and
kind, and marks them ``done`` when the customer's server says it got them. A
failed push is retried with back-off; after ``max_attempts`` it is marked
``dead`` (it can still be polled from the API).

Delivery is at least once: if the process dies after the customer answered but
before the answer was recorded, the batch is pushed again when the lease runs
out. Every item carries its event ``id`` so the receiver can drop repeats.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from urllib.parse import urlencode
from collections import defaultdict
from dataclasses import dataclass

import httpx
import orjson
from sqlalchemy import Connection, bindparam, select, update

from hongyan.aio import wait_event
from hongyan.domain.clock import now_ms
from hongyan.store.tables import events
from hongyan.store.writer import Writer

from .accounts import Account, Directory

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hongyan-Signature"
TIMESTAMP_HEADER = "X-Hongyan-Timestamp"
EVENT_HEADER = "X-Hongyan-Event"


# Front doors that hold a session open (CMPP, SMPP): their customers' reports
# and MO go back over that session as DELIVER PDUs, not by HTTP.
SESSION_DIALECTS = frozenset({"cmpp", "smpp"})


def push_state_for(account: Account | None, kind: str, dialect: str | None = None) -> str:
    """How an event starts out: ``session`` (delivered on the customer's CMPP or
    SMPP session, waiting while none is bound), ``pending`` (pushed by HTTP) or
    ``none`` (kept only for polling). A report goes back by the front door its
    message came in by; either kind goes by a session when the account's push
    dialect for it is a session one."""
    if account is None:
        return "none"
    if dialect in SESSION_DIALECTS or account.push_dialect_for(kind) in SESSION_DIALECTS:
        return "session"
    url = account.report_url if kind == "report" else (account.mo_url or account.report_url)
    return "pending" if url else "none"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``timestamp + "." + body`` with the account's API secret, hex."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff_ms(attempts: int) -> int:
    return min(1000 * 2 ** max(attempts - 1, 0), 600_000)


@dataclass(slots=True)
class PushRequest:
    """One HTTP request a push format wants sent, and the event ids it carries."""
    item_ids: list[int]
    body: bytes = b""
    content_type: str = "application/json"
    method: str = "POST"
    params: dict[str, str] | None = None   # query string, for formats that push by GET (UTF-8)
    # A query string already percent-encoded, for receivers that expect another
    # encoding than UTF-8 (GBK); appended to the URL as it is.
    query: bytes | None = None
    # Nothing to send: the customer asked not to hear of these items. They are
    # settled as "none" (still pollable) without a request.
    silent: bool = False


def target_url(url: str, req: PushRequest) -> str:
    """Where a push request goes: the customer's URL, keeping any query string it
    already has (some receivers take a key there), with the request's parameters after it."""
    query = req.query if req.query is not None else (urlencode(req.params).encode("ascii") if req.params else b"")
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query.decode('ascii')}"


class PushFormat:
    """How one dialect's customers receive pushes. The native JSON format is this base.

    ``requests`` turns a batch of items (native payloads, each with its event
    ``id``) into the HTTP requests that dialect's receivers expect; ``accepts``
    says whether the receiver's answer means "got it".
    """
    name = "native"

    def requests(self, account: Account, kind: str, items: list[dict]) -> list[PushRequest]:
        return [PushRequest([i["id"] for i in items], orjson.dumps({"type": kind, "items": items}))]

    def accepts(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300


class Notifier:
    def __init__(self, writer: Writer, directory: Directory, *, batch: int = 500, timeout: float = 10.0,
                 max_attempts: int = 20, concurrency: int = 8, lease_ms: int | None = None) -> None:
        self.writer = writer
        self.directory = directory
        self.batch = batch
        self.max_attempts = max_attempts
        self.lease_ms = lease_ms or int((timeout + 20) * 1000)
        self.client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=64))
        self.formats: dict[str, PushFormat] = {"native": PushFormat()}
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self.pushed = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        await self.client.aclose()

    async def run(self) -> None:
        # Pushes run as tasks: a customer's slow server holds up only its own
        # batches, while the loop keeps claiming for everybody else.
        inflight: set[asyncio.Task] = set()
        while True:
            if len(inflight) >= self.concurrency * 2:
                await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                rows = await self.writer.run(self._claim, self.batch * 4)
            except Exception:  # noqa: BLE001
                log.exception("claiming events failed")
                rows = []
                await asyncio.sleep(1.0)
            if not rows:
                self._wake.clear()
                await wait_event(self._wake, 0.5)
                continue
            groups: dict[tuple[int, str], list] = defaultdict(list)
            for r in rows:
                groups[(r.account_id, r.kind)].append(r)
            for (aid, kind), items in groups.items():
                for i in range(0, len(items), self.batch):
                    task = asyncio.create_task(self._push(aid, kind, items[i:i + self.batch]))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)

    def _claim(self, conn: Connection, limit: int) -> list:
        now = now_ms()
        q = (select(events.c.id, events.c.account_id, events.c.kind, events.c.payload, events.c.attempts)
             .where(events.c.push_state == "pending", events.c.next_at <= now)
             .order_by(events.c.next_at, events.c.id).limit(limit))
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = conn.execute(q).all()
        if rows:
            conn.execute(update(events).where(events.c.id.in_([r.id for r in rows]))
                         .values(next_at=now + self.lease_ms))
        return rows

    async def _push(self, account_id: int, kind: str, rows: list) -> None:
        async with self._sem:
            account = self.directory.by_id(account_id)
            url = None
            if account is not None:
                url = account.report_url if kind == "report" else (account.mo_url or account.report_url)
            if not url:
                await self.writer.run(_settle, ([r.id for r in rows], "none", None, None))
                return
            items = [{"id": r.id, **orjson.loads(r.payload)} for r in rows]
            fmt = self.formats.get(account.push_dialect_for(kind)) or self.formats["native"]
            done: list[int] = []
            silent: list[int] = []
            error = None
            try:
                requests = fmt.requests(account, kind, items)
            except Exception as exc:  # noqa: BLE001 - a push we cannot build waits like a failed one
                log.exception("building a %s push failed", fmt.name)
                requests, error = [], f"format: {exc}"
            silent = [i for req in requests if req.silent for i in req.item_ids]
            if silent:
                await self.writer.run(_settle, (silent, "none", None, None))
            for req in requests:
                if req.silent:
                    continue
                ts = str(int(time.time()))
                headers = {"Content-Type": req.content_type, TIMESTAMP_HEADER: ts, EVENT_HEADER: kind,
                           SIGNATURE_HEADER: sign(account.secret, ts, req.body)}
                try:
                    resp = await self.client.request(req.method, target_url(url, req), content=req.body or None,
                                                     headers=headers)
                    if fmt.accepts(resp.status_code, resp.content):
                        done.extend(req.item_ids)
                        continue
                    error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                break  # the receiver is not taking pushes now: keep the rest for the retry
            if done:
                self.pushed += len(done)
                await self.writer.run(_settle, (done, "done", None, None))
            settled = set(done) | set(silent)
            left = [r for r in rows if r.id not in settled]
            if not left:
                return
            self.failures += 1
            log.info("push of %d %s to %s failed: %s", len(left), kind, url, error)
            now = now_ms()
            retry = [{"eid": r.id, "at": now + backoff_ms(r.attempts + 1), "n": r.attempts + 1}
                     for r in left if r.attempts + 1 < self.max_attempts]
            dead = [r.id for r in left if r.attempts + 1 >= self.max_attempts]
            await self.writer.run(_settle, (dead, "dead", retry, error))


def _settle(conn: Connection, arg: tuple) -> None:
    ids, state, retry, error = arg
    if ids:
        conn.execute(update(events).where(events.c.id.in_(ids))
                     .values(push_state=state, attempts=events.c.attempts + (1 if state == "dead" else 0),
                             last_error=error))
    if retry:
        conn.execute(update(events).where(events.c.id == bindparam("eid"))
                     .values(next_at=bindparam("at"), attempts=bindparam("n"), last_error=error), retry)


def poll(conn: Connection, account_id: int, kind: str, after: int, limit: int) -> list[dict]:
    """Events of one kind for an account after an event id, oldest first (the pull API)."""
    rows = conn.execute(select(events.c.id, events.c.payload)
                        .where(events.c.account_id == account_id, events.c.kind == kind,
                               events.c.id > after)
                        .order_by(events.c.id).limit(limit)).all()
    return [{"id": r.id, **orjson.loads(r.payload)} for r in rows]
