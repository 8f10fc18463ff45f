"""A callback sink: receives report and MO pushes the way a customer's server would.

It checks the ``X-Hongyan-Signature`` HMAC when it knows the account secret,
counts items by type and status, drops repeats by event id (pushes are at
least once) and notes when the first and the last new item came. Every
accepted push gets ``200 ok``; a bad signature gets 401, a body that is not
a push gets 400. ``GET /`` answers the counts as JSON.

The server is a bare asyncio protocol with keep-alive, so a few hundred
500-item pushes a second cost little next to the platform being measured.
``hongyan sink`` runs it for integrators who want to see pushes arrive.
"""
from __future__ import annotations

import asyncio
import hmac
import time
from collections import Counter
from typing import Callable

import click
import orjson

from hongyan.core.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from hongyan.loadgen import Message, MessageParser, ParseError

# Called after every accepted push with (type, items, new items).
PushHook = Callable[[str, list, int], None]
# Called with the reason when a push is refused.
RejectHook = Callable[[str], None]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}


class Sink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, secret: str | None = None,
                 on_push: PushHook | None = None, on_reject: RejectHook | None = None) -> None:
        self.host = host
        self._port = port
        self.secret = secret
        self.on_push = on_push
        self.on_reject = on_reject
        self.counts: dict[str, Counter] = {}       # type -> status -> unique items
        self.items: Counter = Counter()            # type -> unique items
        self.duplicates = 0                        # items whose (type, id) was seen before
        self.pushes = 0                            # accepted POSTs
        self.rejected = 0                          # 401: missing or wrong signature
        self.bad = 0                               # 400: not a push
        self.first_at = 0.0                        # wall clock of the first new item
        self.last_at = 0.0                         # wall clock of the latest new item
        self._seen: set[tuple[str, object]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._changed: asyncio.Event | None = None
        self._connections: set[_SinkConnection] = set()

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._server = await loop.create_server(lambda: _SinkConnection(self), self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Keep-alive connections from the platform outlive the listening socket.
            for conn in list(self._connections):
                conn.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except TimeoutError:
                pass
            self._server = None

    def total(self, kind: str = "report") -> int:
        return self.items[kind]

    async def wait_for(self, n: int, timeout: float, kind: str = "report") -> bool:
        """Wait until ``n`` distinct items of ``kind`` came; False if the time ran out first."""
        deadline = time.monotonic() + timeout
        while self.items[kind] < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except TimeoutError:
                pass
        return True

    def snapshot(self) -> dict:
        return {"items": dict(self.items), "counts": {k: dict(v) for k, v in self.counts.items()},
                "duplicates": self.duplicates, "pushes": self.pushes, "rejected": self.rejected,
                "bad": self.bad, "first_at": self.first_at, "last_at": self.last_at}

    # -- one request -----------------------------------------------------
    def handle(self, msg: Message) -> tuple[int, bytes, str]:
        method, _, rest = msg.start_line.partition(" ")
        if method == "GET":
            return 200, orjson.dumps(self.snapshot()), "application/json"
        if method != "POST":
            return 405, b"POST a push, or GET the counts", "text/plain"
        if self.secret is not None and not self._signed(msg):
            self.rejected += 1
            if self.on_reject is not None:
                self.on_reject(f"bad or missing {SIGNATURE_HEADER}")
            return 401, b"bad signature", "text/plain"
        try:
            doc = orjson.loads(msg.body)
            kind = doc["type"]
            items = doc["items"]
            if not isinstance(kind, str) or not isinstance(items, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.bad += 1
            if self.on_reject is not None:
                self.on_reject(f"not a push: {msg.body[:80]!r}")
            return 400, b"expected {\"type\": ..., \"items\": [...]}", "text/plain"
        self.pushes += 1
        new = self._count(kind, items)
        if self.on_push is not None:
            self.on_push(kind, items, new)
        return 200, b"ok", "text/plain"

    def _signed(self, msg: Message) -> bool:
        ts = msg.headers.get(TIMESTAMP_HEADER.lower())
        given = msg.headers.get(SIGNATURE_HEADER.lower())
        if not ts or not given:
            return False
        return hmac.compare_digest(given.encode(), sign(self.secret, ts, msg.body).encode())

    def _count(self, kind: str, items: list) -> int:
        seen = self._seen
        by_status = self.counts.get(kind)
        if by_status is None:
            by_status = self.counts[kind] = Counter()
        new = 0
        for item in items:
            if not isinstance(item, dict):
                continue
            eid = item.get("id")
            if isinstance(eid, (int, str)):
                key = (kind, eid)
                if key in seen:
                    self.duplicates += 1
                    continue
                seen.add(key)
            by_status[item.get("status") or "-"] += 1
            new += 1
        if new:
            now = time.time()
            if not self.first_at:
                self.first_at = now
            self.last_at = now
            self.items[kind] += new
            self._changed.set()
        return new


class _SinkConnection(asyncio.Protocol):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.parser = MessageParser(response=False)
        self.transport: asyncio.Transport | None = None
        self._continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sink._connections.add(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        while self.transport is not None:
            try:
                msg = self.parser.next()
            except ParseError:
                self._answer(400, b"bad request", "text/plain", keep=False)
                return
            if msg is None:
                head = self.parser.pending_head
                # curl asks before sending a body over 1 KB; say yes once per request.
                if head is not None and not self._continued and \
                        head.get("expect", "").lower() == "100-continue":
                    self._continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            self._continued = False
            status, body, ctype = self.sink.handle(msg)
            self._answer(status, body, ctype, keep=msg.keep_alive)

    def _answer(self, status: int, body: bytes, ctype: str, keep: bool) -> None:
        close = "" if keep else "Connection: close\r\n"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n{close}\r\n")
        self.transport.write(head.encode() + body)  # type: ignore[union-attr]
        if not keep:
            self.transport.close()  # type: ignore[union-attr]
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.sink._connections.discard(self)


def _print_push(kind: str, items: list, new: int) -> None:
    first = orjson.dumps(items[0]).decode() if items else "-"
    if len(first) > 160:
        first = first[:157] + "..."
    dup = len(items) - new
    click.echo(f"{time.strftime('%H:%M:%S')} {kind} {len(items)} item(s)"
               f"{f' ({dup} repeated)' if dup else ''} first={first}")


def _print_reject(reason: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} refused: {reason}")


@click.command("sink")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9000, show_default=True, help="Port to listen on.")
@click.option("--secret", default=None, help="The account's API secret: check each push's signature.")
@click.option("--quiet", is_flag=True, help="Print only the totals when stopping, not every push.")
@click.option("--until", "until", type=int, default=0,
              help="Stop after this many distinct report items (0: run until Ctrl-C).")
def sink_command(host: str, port: int, secret: str | None, quiet: bool, until: int) -> None:
    """Receive report and MO pushes and print them (set the account's report_url to this address)."""
    sink = Sink(host, port, secret=secret, on_push=None if quiet else _print_push,
                on_reject=None if quiet else _print_reject)

    async def main() -> None:
        await sink.start()
        click.echo(f"listening on {sink.url}"
                   f"{' (checking signatures)' if secret else ' (signatures not checked: no --secret)'}")
        try:
            if until > 0:
                await sink.wait_for(until, float("inf"))
            else:
                await asyncio.Event().wait()
        finally:
            await sink.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        snap = sink.snapshot()
        click.echo(f"items {snap['items']} by status {snap['counts']} repeated {snap['duplicates']} "
                   f"rejected {snap['rejected']}")
