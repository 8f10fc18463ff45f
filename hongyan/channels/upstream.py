"""HTTP upstream channel: another SMS platform, reached through one of the vendor APIs.

The generic part lives here; what a vendor's requests, answers and pushes
look like lives in one ``upstream_<dialect>`` client module each. Messages
with the same text and source number go out together, as many numbers per
request as the vendor allows, at ``config.mps`` messages per second and at
most ``config.window`` requests in flight, over one shared HTTP client.

The upstream pushes reports and replies to ``/upstream/<name>/report|mo``
(``upstream_routes``); the client parses them and the channel hands them on.

Options (``config.options``): ``url`` (the upstream's base URL, required),
the vendor's own fields (see each client), and in seconds ``timeout`` (10),
``probe_idle`` (30, how long an idle channel waits before checking the
upstream still answers), ``probe_initial`` (0.5) and ``probe_max`` (30)
for the back-off while it does not.
"""
from __future__ import annotations

import abc
import asyncio
import logging
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import httpx

from hongyan.aio import wait_event
from hongyan.channels.base import Channel, ChannelConfig, ChannelEvents, Inbound, Outbound, Report
from hongyan.channels.link import QueueIntake

log = logging.getLogger(__name__)

# A long message is one id at the upstream but several parts here: the id of
# part n > 1 is "<id>#<n>", and one report from the upstream settles them all.
# How many parts an id has is remembered for this many recent sends.
_PARTS_MEMORY = 200_000
_LOOKAHEAD = 5000


@dataclass(slots=True)
class Call:
    """One HTTP request to the upstream, relative to its base URL."""
    method: str
    path: str
    params: dict[str, str] | list[tuple[str, str]] | None = None
    data: dict[str, str] | list[tuple[str, str]] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Accepted:
    """The upstream took the request: its id for each number."""
    ids: dict[str, str]


@dataclass(slots=True)
class Refused:
    """The upstream refused the request as a whole."""
    status: str
    retryable: bool


@dataclass(slots=True)
class PushAnswer:
    """What the upstream's push receiver answers, and what it carried."""
    body: bytes
    media_type: str = "text/plain"
    status: int = 200
    reports: list[Report] = field(default_factory=list)
    inbound: list[Inbound] = field(default_factory=list)


@dataclass(slots=True)
class RawPush:
    method: str
    query: bytes
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> bytes:
        return self.headers.get("content-type", "").encode("latin-1")


class DialectClient(abc.ABC):
    """One vendor API as its customers call it."""

    max_recipients: int = 1

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.options = config.options

    def option(self, name: str, default: str = "") -> str:
        value = self.options.get(name)
        return default if value is None else str(value)

    def extno(self, source: str) -> str:
        """The part of a source number the upstream lets the request choose."""
        code = self.config.access_code
        return source[len(code):] if code and source.startswith(code) else ""

    @abc.abstractmethod
    def send_call(self, phones: list[str], text: str, extno: str) -> Call: ...

    @abc.abstractmethod
    def parse_send(self, status: int, body: bytes, phones: list[str]) -> Accepted | Refused: ...

    @abc.abstractmethod
    def balance_call(self) -> Call: ...

    def balance_ok(self, status: int, body: bytes) -> bool:
        """Whether a balance answer shows the upstream working and the login good."""
        return 200 <= status < 300

    def pulled(self, status: int, body: bytes) -> list[Inbound]:
        """Replies a balance answer handed over (vendors whose check also collects MO)."""
        return []

    @abc.abstractmethod
    def parse_push(self, kind: str, push: RawPush) -> PushAnswer:
        """A push from the upstream: its items and the answer it expects.

        An unreadable push gets the vendor's error answer and no items.
        """

    @abc.abstractmethod
    def busy_answer(self, kind: str) -> PushAnswer:
        """The answer that makes the upstream push again later (we could not record it)."""


class _Throttle:
    """Messages per second with up to a second's allowance saved, so whole batches fit."""

    def __init__(self, rate: int) -> None:
        self.rate = float(max(rate, 1))
        self.tokens = self.rate
        self.stamp = time.monotonic()

    def available(self) -> int:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return int(self.tokens)

    def take(self, n: int) -> None:
        self.tokens -= n

    def wait_time(self) -> float:
        return max(0.001, (1.0 - self.tokens) / self.rate)


class UpstreamChannel(QueueIntake, Channel):
    def __init__(self, config: ChannelConfig, events: ChannelEvents, client: DialectClient) -> None:
        super().__init__(config, events)
        opt = config.options
        self.client = client
        self.base_url = str(opt.get("url") or "").rstrip("/")
        if not self.base_url:
            raise ValueError(f"channel {config.name!r}: option url (the upstream's base URL) is required")
        self._timeout = float(opt.get("timeout", 10))
        self._probe_idle = float(opt.get("probe_idle", 30))
        self._probe_initial = float(opt.get("probe_initial", 0.5))
        self._probe_max = float(opt.get("probe_max", 30))
        self._queue: deque[Outbound] = deque()
        self._inflight = 0        # messages in requests not yet answered
        self._requests = 0        # requests not yet answered
        self._up = False
        self._last_answer = 0.0
        self._running = False
        self._taking = True
        self._wake = asyncio.Event()
        self._probe_wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._calls: set[asyncio.Task] = set()
        self._parts: OrderedDict[str, int] = OrderedDict()
        self._http: httpx.AsyncClient | None = None
        self._rng = random.Random()

    # -- Channel interface ----------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._taking = True
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self._timeout,
                                       limits=httpx.Limits(max_connections=max(1, self.config.window)))
        self._tasks = [asyncio.create_task(self._pump(), name=f"upstream {self.config.name} pump"),
                       asyncio.create_task(self._probe(), name=f"upstream {self.config.name} probe")]

    async def stop(self) -> None:
        if not self._running:
            return
        self._taking = False
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._calls:
            # Requests on their way get a moment to be answered; the rest fail retryable.
            await asyncio.wait(list(self._calls), timeout=min(3.0, self._timeout))
            for task in list(self._calls):
                task.cancel()
            await asyncio.gather(*self._calls, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._up = False
        self._fail_queued()

    def _wake_senders(self) -> None:
        self._wake.set()

    def queued(self) -> int:
        return len(self._queue) + self._inflight

    @property
    def connected(self) -> bool:
        return self._up

    # -- inbound ----------------------------------------------------------
    def push(self, kind: str, raw: RawPush) -> tuple[PushAnswer, list]:
        """Parse a push; return the answer and the items, ready for the events."""
        answer = self.client.parse_push(kind, raw)
        items: list = []
        for r in answer.reports:
            items.append(r)
            # Kept, not popped: an upstream that pushes a report again (our answer
            # was lost) must settle the same parts again.
            for n in range(2, self._parts.get(r.carrier_id, 1) + 1):
                items.append(Report(r.channel_id, f"{r.carrier_id}#{n}", r.status, r.delivered,
                                    r.phone, r.done_at))
        items.extend(answer.inbound)
        return answer, items

    # -- sending ----------------------------------------------------------
    def _take_group(self, limit: int) -> list[Outbound]:
        """The oldest message and up to ``limit - 1`` others with the same text and source.

        Only the next few thousand queued messages are looked at, so a queue of
        all-different texts costs little per request.
        """
        queue = self._queue
        first = queue.popleft()
        group = [first]
        if limit <= 1 or not queue:
            return group
        key = (first.text, first.source)
        phones = {first.phone}
        skipped: list[Outbound] = []
        looked = 0
        while queue and len(group) < limit and looked < _LOOKAHEAD:
            m = queue.popleft()
            looked += 1
            # One number twice in a request would get one id for two messages.
            if (m.text, m.source) == key and m.phone not in phones:
                group.append(m)
                phones.add(m.phone)
            else:
                skipped.append(m)
        queue.extendleft(reversed(skipped))
        return group

    async def _pump(self) -> None:
        throttle = _Throttle(self.config.mps)
        window = max(1, self.config.window)
        while True:
            if not self._queue or not self._up or self._requests >= window:
                self._wake.clear()
                await self._wake.wait()
                continue
            n = throttle.available()
            if n < 1:
                await asyncio.sleep(throttle.wait_time())
                continue
            group = self._take_group(min(n, self.client.max_recipients))
            throttle.take(len(group))
            self._inflight += len(group)
            self._requests += 1
            task = asyncio.create_task(self._submit(group))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            await asyncio.sleep(0)

    async def _submit(self, group: list[Outbound]) -> None:
        resolved = False
        try:
            phones = [m.phone for m in group]
            first = group[0]
            try:
                call = self.client.send_call(phones, first.text, self.client.extno(first.source))
            except ValueError as e:
                log.error("upstream %s: cannot build a request: %s", self.config.name, e)
                self._resolve(group, Refused("ENCODE", False))
                resolved = True
                return
            try:
                resp = await self._call(call)
            except httpx.HTTPError as e:
                log.warning("upstream %s: send failed: %s", self.config.name, e or type(e).__name__)
                self._down()
                self._resolve(group, Refused("LINK", True))
                resolved = True
                return
            self._answered()
            if resp.status_code >= 500:
                self._resolve(group, Refused(f"HTTP:{resp.status_code}", True))
            else:
                self._resolve(group, self.client.parse_send(resp.status_code, resp.content, phones))
            resolved = True
        finally:
            if not resolved:
                # Cancelled at stop before an answer: the dispatcher sends them again.
                self._resolve(group, Refused("STOPPED", True))
            self._inflight -= len(group)
            self._requests -= 1
            self._wake.set()

    def _resolve(self, group: list[Outbound], result: Accepted | Refused) -> None:
        if isinstance(result, Refused):
            for m in group:
                self.events.failed(m.message_id, result.status, result.retryable)
            return
        for m in group:
            cid = result.ids.get(m.phone)
            if cid is None:
                # The upstream took the request but not this number.
                self.events.failed(m.message_id, "REJECTED", False)
                continue
            ids = [cid]
            if m.parts > 1:
                ids += [f"{cid}#{n}" for n in range(2, m.parts + 1)]
                self._parts[cid] = m.parts
                if len(self._parts) > _PARTS_MEMORY:
                    self._parts.popitem(last=False)
            self.events.sent(m.message_id, ids)

    async def _call(self, call: Call) -> httpx.Response:
        if self._http is None:
            raise httpx.NetworkError("channel stopped")
        return await self._http.request(call.method, call.path, params=call.params, data=call.data,
                                        content=call.content, headers=call.headers or None)

    # -- liveness ---------------------------------------------------------
    def _answered(self) -> None:
        self._last_answer = time.monotonic()
        if not self._up:
            log.info("upstream %s answers", self.config.name)
            self._up = True
            self._wake.set()

    def _down(self) -> None:
        if self._up:
            log.warning("upstream %s does not answer; holding messages until it does", self.config.name)
        self._up = False
        self._probe_wake.set()

    async def _probe(self) -> None:
        delay = self._probe_initial
        while True:
            idle = time.monotonic() - self._last_answer
            if self._up and idle < self._probe_idle:
                self._probe_wake.clear()
                await wait_event(self._probe_wake, self._probe_idle - idle)
                continue
            try:
                resp = await self._call(self.client.balance_call())
                ok = self.client.balance_ok(resp.status_code, resp.content)
                if not ok:
                    log.warning("upstream %s: balance check answered %d %r", self.config.name,
                                resp.status_code, resp.content[:200])
            except httpx.HTTPError as e:
                log.warning("upstream %s: balance check failed: %s", self.config.name, e or type(e).__name__)
                ok = False
            if ok:
                delay = self._probe_initial
                self._answered()
                # The upstream counts these as collected: they are ours to record now.
                for inbound in self.client.pulled(resp.status_code, resp.content):
                    self.events.mo(inbound)
                continue
            self._down()
            await asyncio.sleep(delay * self._rng.uniform(0.75, 1.25))
            delay = min(self._probe_max, delay * 2)
