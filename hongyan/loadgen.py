"""A small, fast HTTP/1.1 load client over persistent asyncio connections.

A general-purpose client (httpx) spends more CPU per request than the server
under test, so on a small machine it measures itself. This one keeps N
keep-alive connections, each sending one request and reading its answer
before the next (no pipelining), and frames answers by Content-Length or
chunked encoding with an incremental parser. A connection that the server
closes is replaced before the next request.

The parser is shared with the callback sink (``hongyan.sink``), which reads
requests with it.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Union

# (method, path, headers, body); headers as a dict or a list of pairs.
Request = tuple[str, str, Union[dict[str, str], list[tuple[str, str]]], bytes]
RequestSource = Union[Callable[[int], Request], Iterable[Request]]
# Called with (request index, status, body) for every answer.
ResponseHook = Callable[[int, int, bytes], None]

MAX_HEAD = 64 * 1024


class ParseError(ValueError):
    """Bytes that are not a well-formed HTTP/1.1 message."""


@dataclass(slots=True)
class Message:
    start_line: str
    headers: dict[str, str]     # lower-case names; a repeated header keeps its last value
    body: bytes

    @property
    def status(self) -> int:
        return int(self.start_line.split(" ", 2)[1])

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.start_line.endswith("HTTP/1.0") or self.start_line.startswith("HTTP/1.0"):
            return conn == "keep-alive"
        return conn != "close"


class MessageParser:
    """Incremental framing of HTTP/1.1 requests or responses from a byte stream.

    ``feed`` adds bytes, ``next`` returns the next complete message or None.
    A response with neither length nor chunking runs until the connection
    closes; ``eof`` returns it then.
    """

    def __init__(self, response: bool) -> None:
        self.response = response
        self.buf = bytearray()
        self.pos = 0
        self._head: tuple[str, dict[str, str]] | None = None
        self._framing = ""        # "length" | "chunked" | "close"
        self._length = 0
        self._chunk_state = "size"
        self._chunk_left = 0
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self.buf += data

    @property
    def pending_head(self) -> dict[str, str] | None:
        """Headers of a message whose head is read but whose body is not complete."""
        return self._head[1] if self._head is not None else None

    def next(self) -> Message | None:
        while self._head is None:
            if not self._read_head():
                return None
        if self._framing == "length":
            if len(self.buf) - self.pos < self._length:
                return None
            body = bytes(self.buf[self.pos:self.pos + self._length])
            self.pos += self._length
        elif self._framing == "chunked":
            if not self._read_chunks():
                return None
            body = b"".join(self._chunks)
            self._chunks = []
        else:
            return None
        return self._finish(body)

    def eof(self) -> Message | None:
        """The message that the peer ended by closing, if one was in progress."""
        if self._head is not None and self._framing == "close":
            body = bytes(self.buf[self.pos:])
            self.pos = len(self.buf)
            return self._finish(body)
        return None

    def _finish(self, body: bytes) -> Message:
        start, headers = self._head  # type: ignore[misc]
        self._head = None
        # Answers are read one at a time, so what is left after one is small.
        del self.buf[:self.pos]
        self.pos = 0
        return Message(start, headers, body)

    def _read_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n", self.pos)
        if end < 0:
            if len(self.buf) - self.pos > MAX_HEAD:
                raise ParseError("header section too large")
            return False
        lines = self.buf[self.pos:end].decode("latin-1").split("\r\n")
        self.pos = end + 4
        start = lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise ParseError(f"bad header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        parts = start.split(" ", 2)
        if len(parts) < 2:
            raise ParseError(f"bad start line {start[:80]!r}")
        status = 0
        if self.response:
            if not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise ParseError(f"bad status line {start[:80]!r}")
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                return True   # an interim answer (100 Continue): the real one follows
        elif len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise ParseError(f"bad request line {start[:80]!r}")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._framing = "chunked"
            self._chunk_state = "size"
        elif "content-length" in headers:
            value = headers["content-length"]
            if not value.isdigit():
                raise ParseError(f"bad Content-Length {value[:20]!r}")
            self._framing, self._length = "length", int(value)
        elif self.response and status not in (204, 304):
            self._framing = "close"
        else:
            self._framing, self._length = "length", 0
        self._head = (start, headers)
        return True

    def _read_chunks(self) -> bool:
        buf = self.buf
        while True:
            if self._chunk_state == "size":
                eol = buf.find(b"\r\n", self.pos)
                if eol < 0:
                    return False
                token = bytes(buf[self.pos:eol]).split(b";", 1)[0].strip()
                try:
                    size = int(token, 16)
                except ValueError:
                    raise ParseError(f"bad chunk size {token[:20]!r}") from None
                self.pos = eol + 2
                self._chunk_left = size
                self._chunk_state = "data" if size else "trailer"
            elif self._chunk_state == "data":
                n = self._chunk_left
                if len(buf) - self.pos < n + 2:
                    return False
                if buf[self.pos + n:self.pos + n + 2] != b"\r\n":
                    raise ParseError("chunk not followed by CRLF")
                self._chunks.append(bytes(buf[self.pos:self.pos + n]))
                self.pos += n + 2
                self._chunk_state = "size"
            else:
                eol = buf.find(b"\r\n", self.pos)
                if eol < 0:
                    return False
                done = eol == self.pos
                self.pos = eol + 2
                if done:
                    return True


def encode_request(host: str, method: str, path: str, headers, body: bytes) -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines.extend(f"{k}: {v}" for k, v in items if k.lower() not in ("host", "content-length"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = MessageParser(response=True)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        w = self.waiter
        if w is None or w.done():
            # Bytes nobody asked for: the stream can no longer be trusted.
            self.close()
            return
        try:
            msg = self.parser.next()
        except ParseError as exc:
            w.set_exception(exc)
            self.close()
            return
        if msg is not None:
            w.set_result(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            msg = None
            try:
                msg = self.parser.eof()
            except ParseError:
                pass
            if msg is not None:
                w.set_result(msg)
            else:
                w.set_exception(ConnectionResetError("connection closed before the answer"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(self, data: bytes, timeout: float) -> Message:
        loop = asyncio.get_running_loop()
        w = self.waiter = loop.create_future()
        # A timer on the future costs less than wait_for's wrapping per request.
        timer = loop.call_later(timeout, _expire, w)
        try:
            self.transport.write(data)  # type: ignore[union-attr]
            return await w
        finally:
            timer.cancel()
            self.waiter = None


def _expire(w: asyncio.Future) -> None:
    if not w.done():
        w.set_exception(TimeoutError("no answer in time"))


async def open_connection(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(_Connection, host, port)
    return proto


async def fetch(host: str, port: int, method: str = "GET", path: str = "/", headers=None,
                body: bytes = b"", timeout: float = 10.0) -> Message:
    """One request on its own connection: health checks, stats, setup calls."""
    conn = await asyncio.wait_for(open_connection(host, port), timeout)
    try:
        return await conn.request(encode_request(f"{host}:{port}", method, path, headers or {}, body),
                                  timeout)
    finally:
        conn.close()


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)   # seconds, one per answered request
    statuses: Counter = field(default_factory=Counter)     # HTTP status -> answers
    errors: Counter = field(default_factory=Counter)       # error kind -> requests without an answer
    elapsed: float = 0.0                                   # seconds the run took
    first_start: float = 0.0                               # wall clock (time.time()) of the first send
    last_end: float = 0.0                                  # wall clock of the last answer
    connections: int = 0                                   # connections opened

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """One load run; its counters can be read while it runs (for progress lines)."""

    def __init__(self, host: str, port: int, requests: RequestSource, *, concurrency: int, total: int,
                 timeout: float = 60.0, on_response: ResponseHook | None = None) -> None:
        self.host, self.port = host, port
        self.host_header = f"{host}:{port}"
        if callable(requests):
            self._build = requests
        else:
            iterator = iter(requests)
            self._build = lambda i: next(iterator)
        self.concurrency = max(1, concurrency)
        self.total = total
        self.timeout = timeout
        self.on_response = on_response
        self.result = LoadResult()
        self.sent = 0
        self._next = 0

    async def run(self) -> LoadResult:
        started = time.perf_counter()
        workers = min(self.concurrency, max(self.total, 1))
        await asyncio.gather(*(self._worker() for _ in range(workers)))
        self.result.elapsed = time.perf_counter() - started
        return self.result

    async def _connect(self) -> _Connection | None:
        try:
            conn = await asyncio.wait_for(open_connection(self.host, self.port), self.timeout)
        except (OSError, TimeoutError) as exc:
            self.result.errors[f"connect: {type(exc).__name__}"] += 1
            return None
        self.result.connections += 1
        return conn

    async def _worker(self) -> None:
        res = self.result
        conn: _Connection | None = None
        try:
            while self._next < self.total:
                i = self._next
                self._next += 1
                try:
                    method, path, headers, body = self._build(i)
                except StopIteration:
                    self.total = i
                    break
                data = encode_request(self.host_header, method, path, headers, body)
                if conn is None or conn.closed:
                    conn = await self._connect()
                    if conn is None:
                        # Count the request as failed and give the server a moment.
                        await asyncio.sleep(0.1)
                        continue
                if not res.first_start:
                    res.first_start = time.time()
                self.sent += 1
                t0 = time.perf_counter()
                try:
                    msg = await conn.request(data, self.timeout)
                except (OSError, TimeoutError, ParseError) as exc:
                    res.errors[type(exc).__name__] += 1
                    conn.close()
                    conn = None
                    continue
                res.latencies.append(time.perf_counter() - t0)
                res.last_end = time.time()
                status = msg.status
                res.statuses[status] += 1
                if self.on_response is not None:
                    self.on_response(i, status, msg.body)
                if not msg.keep_alive:
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()


async def run_load(host: str, port: int, requests: RequestSource, concurrency: int, total: int, *,
                   timeout: float = 60.0, on_response: ResponseHook | None = None) -> LoadResult:
    """Send ``total`` requests over ``concurrency`` keep-alive connections; see ``Load``."""
    return await Load(host, port, requests, concurrency=concurrency, total=total, timeout=timeout,
                      on_response=on_response).run()
