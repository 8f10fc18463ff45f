"""Traffic limits per account: concurrent requests, messages per second, per-number frequency.

Two backends with one interface. ``LocalLimits`` keeps the counters in this
process (the embedded default: one process serves everything). ``RedisLimits``
keeps them in Redis, so several API processes share one allowance per account
and the per-number counts survive a restart. The monthly quota is not here:
it is counted from the submissions table inside the accept commit, where it is
exact and durable.

Every call takes a whole request's worth (all its numbers at once): one
Redis round trip per request, never one per number.

What a request took and then did not use (it was refused for its balance or
quota, it replayed an earlier request, or its commit failed) is given back
with ``put_back`` and ``uncount``, so a refused request costs the caller none
of its allowance. When Redis cannot be reached or does not answer within
``timeout`` seconds, ``RedisLimits`` raises ``LimitsUnavailable`` and the
request is refused as busy: the limits are not waived, and nothing waits
longer than the timeout.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import uuid
from datetime import datetime, timedelta
from typing import Protocol

DAY_KEY_TTL_S = 2 * 24 * 3600
# A concurrency slot not given back within this long (its process died, or the
# answer to its leave was lost) frees itself.
SLOT_LEASE_S = 120
REDIS_TIMEOUT_S = 2.0


class LimitsUnavailable(RuntimeError):
    """The counters cannot be read or written now (Redis down or too slow)."""


# [start, end) of the day last asked about, in epoch seconds, and its name;
# replaced as one tuple so a reader never sees half of an update.
_day: tuple[float, float, str] = (0.0, -1.0, "")


def day_of(now_s: float) -> str:
    """The server's local calendar day, the unit of the per-number daily limit.

    Asked once per request: the day's bounds are kept, so only the first request
    of a day pays for the calendar arithmetic."""
    global _day
    start, end, name = _day
    if start <= now_s < end:
        return name
    at = datetime.fromtimestamp(now_s)
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    following = (midnight + timedelta(days=1)).timestamp()
    _day = (midnight.timestamp(), following, at.strftime("%Y%m%d"))
    return _day[2]


def content_key(content: str) -> str:
    return hashlib.blake2b(content.encode(), digest_size=12).hexdigest()


class Limits(Protocol):
    async def enter(self, account_id: int, limit: int) -> str | None:
        """Take one of the account's ``limit`` concurrent-request slots: its ticket, None when all are taken."""

    async def leave(self, account_id: int, ticket: str) -> None:
        """Give the slot of ``ticket`` back."""

    async def take(self, account_id: int, amount: int, mps: int) -> bool:
        """Take ``amount`` (numbers x parts) from the account's bucket of ``mps`` a second."""

    async def put_back(self, account_id: int, amount: int, mps: int) -> None:
        """Return ``amount`` taken from the bucket and not used."""

    async def frequency(self, account_id: int, phones: list[str], content: str, *,
                        per_day: int, same_minutes: int) -> set[str]:
        """Count one message to each phone; return the phones over a limit (those are not counted)."""

    async def uncount(self, account_id: int, phones: list[str], content: str, *,
                      per_day: int, same_minutes: int) -> None:
        """Undo ``frequency`` for phones it counted whose messages were not accepted after all."""

    async def close(self) -> None: ...


class LocalLimits:
    """Counters in this process."""

    def __init__(self, clock=time.time) -> None:
        self.clock = clock
        self._inflight: dict[int, int] = {}
        self._buckets: dict[int, tuple[float, float]] = {}      # account -> (tokens, stamp)
        # account -> phone -> messages today. Keyed per account, then by the
        # phone alone, so the entries are plain strings and counts.
        self._daily: dict[int, dict[str, int]] = {}
        self._day = ""
        # (account, the text's hash) -> phone -> until when the same text may
        # not go to it again. The hash stands for the text (equal texts have
        # equal hashes; two texts to one number sharing a 64-bit hash within
        # the window is not a practical worry), so no digest is computed per
        # request and the text is not kept.
        self._same: dict[tuple[int, int], dict[str, float]] = {}
        self._same_sweep = 0.0

    async def enter(self, account_id: int, limit: int) -> str | None:
        n = self._inflight.get(account_id, 0)
        if n >= limit:
            return None
        self._inflight[account_id] = n + 1
        return "local"

    async def leave(self, account_id: int, ticket: str) -> None:
        n = self._inflight.get(account_id, 0) - 1
        if n > 0:
            self._inflight[account_id] = n
        else:
            self._inflight.pop(account_id, None)

    async def take(self, account_id: int, amount: int, mps: int) -> bool:
        # A bucket one second deep: a request may use a whole second's
        # allowance at once (the k1680 rule counts per second), not more.
        now = self.clock()
        tokens, stamp = self._buckets.get(account_id, (float(mps), now))
        tokens = min(float(mps), tokens + (now - stamp) * mps)
        if amount > tokens:
            self._buckets[account_id] = (tokens, now)
            return False
        self._buckets[account_id] = (tokens - amount, now)
        return True

    async def put_back(self, account_id: int, amount: int, mps: int) -> None:
        if account_id in self._buckets:
            tokens, stamp = self._buckets[account_id]
            self._buckets[account_id] = (min(float(mps), tokens + amount), stamp)

    async def frequency(self, account_id: int, phones: list[str], content: str, *,
                        per_day: int, same_minutes: int) -> set[str]:
        now = self.clock()
        refused: set[str] = set()
        same = None
        if same_minutes:
            if now >= self._same_sweep:
                self._sweep(now)
            key = (account_id, hash(content))
            same = self._same.get(key)
            if same is None:
                same = self._same[key] = {}
            until = now + same_minutes * 60
            for p in phones:
                if same.get(p, 0) > now:
                    refused.add(p)
                else:
                    same[p] = until
        if per_day:
            daily = self._today(account_id, now)
            for p in phones:
                if p in refused:
                    continue
                n = daily.get(p, 0)
                if n >= per_day:
                    refused.add(p)
                    if same is not None:
                        same.pop(p, None)
                else:
                    daily[p] = n + 1
        return refused

    def _today(self, account_id: int, now: float) -> dict[str, int]:
        day = day_of(now)
        if day != self._day:
            self._daily.clear()
            self._day = day
        daily = self._daily.get(account_id)
        if daily is None:
            daily = self._daily[account_id] = {}
        return daily

    def _sweep(self, now: float) -> None:
        """Forget the same-text marks that have run out (once a minute)."""
        kept = {}
        for key, marks in self._same.items():
            live = {p: t for p, t in marks.items() if t > now}
            if live:
                kept[key] = live
        self._same = kept
        self._same_sweep = now + 60

    async def uncount(self, account_id: int, phones: list[str], content: str, *,
                      per_day: int, same_minutes: int) -> None:
        if same_minutes:
            same = self._same.get((account_id, hash(content)))
            if same is not None:
                for p in phones:
                    same.pop(p, None)
        if per_day and self._day == day_of(self.clock()):
            daily = self._daily.get(account_id, {})
            for p in phones:
                n = daily.get(p, 0)
                if n > 1:
                    daily[p] = n - 1
                else:
                    daily.pop(p, None)

    async def close(self) -> None:
        pass


# The scripts read the time from Redis itself: the processes sharing a bucket
# need not agree on the time to the millisecond. (A script that writes after
# TIME is replicated by its effects, the only mode since Redis 7.)
_NOW_MS = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS[1] bucket; ARGV: rate, amount. A one-second-deep bucket.
_TAKE = _NOW_MS + """
local rate = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = tonumber(v[1]) or rate
local stamp = tonumber(v[2]) or now
tokens = math.min(rate, tokens + math.max(0, now - stamp) * rate / 1000)
local ok = 0
if amount <= tokens then tokens = tokens - amount; ok = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 's', tostring(math.max(now, stamp)))
redis.call('PEXPIRE', KEYS[1], 10000)
return ok
"""

# KEYS[1] bucket; ARGV: rate, amount. Tokens taken and not used go back, to at most a full bucket.
_PUT_BACK = """
local rate = tonumber(ARGV[1])
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
if tokens then
  redis.call('HSET', KEYS[1], 't', tostring(math.min(rate, tokens + tonumber(ARGV[2]))))
end
return 0
"""

# KEYS[1] the account's slots (a sorted set of tickets by the time taken; not
# the counter key "inflight:" of earlier versions, so that both can run during
# a rolling upgrade);
# ARGV: limit, ticket, lease (ms). Tickets older than the lease are dropped
# first, so a slot whose leave never came is not lost for good.
_ENTER = _NOW_MS + """
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""

# KEYS: same-content keys then daily keys (one each per phone, "" skipped by n);
# ARGV: same_ms, per_day, n. Returns the 1-based indexes refused.
_FREQUENCY = """
local same_ms = tonumber(ARGV[1])
local per_day = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local refused = {}
for i = 1, n do
  local ok = true
  if same_ms > 0 then
    ok = redis.call('SET', KEYS[i], '1', 'NX', 'PX', same_ms) and true or false
  end
  if ok and per_day > 0 then
    local c = redis.call('INCR', KEYS[n + i])
    if c == 1 then redis.call('EXPIRE', KEYS[n + i], %d) end
    if c > per_day then
      redis.call('DECR', KEYS[n + i])
      if same_ms > 0 then redis.call('DEL', KEYS[i]) end
      ok = false
    end
  end
  if not ok then refused[#refused + 1] = i end
end
return refused
""" % DAY_KEY_TTL_S

# The same keys and ARGV as _FREQUENCY, for phones it counted: forget them.
_UNCOUNT = """
local same_ms = tonumber(ARGV[1])
local per_day = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
for i = 1, n do
  if same_ms > 0 then redis.call('DEL', KEYS[i]) end
  if per_day > 0 and (tonumber(redis.call('GET', KEYS[n + i])) or 0) > 0 then
    redis.call('DECR', KEYS[n + i])
  end
end
return 0
"""


class RedisLimits:
    """Counters in Redis, shared by every process that uses the same server."""

    # Redis runs a script atomically, so a long one blocks it: big requests go in slices.
    SLICE = 5000

    def __init__(self, url: str, prefix: str = "hongyan:", *, timeout: float = REDIS_TIMEOUT_S,
                 lease_s: float = SLOT_LEASE_S) -> None:
        import redis.asyncio as aioredis  # optional dependency: only when Redis is configured
        import redis.exceptions

        # Without timeouts a Redis that stops answering would hold every request forever.
        self.redis = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.prefix = prefix
        self.timeout = timeout
        self.lease_ms = int(lease_s * 1000)
        self._errors = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)
        self._tickets = itertools.count(1)
        self._node = uuid.uuid4().hex[:12]
        self._take = self.redis.register_script(_TAKE)
        self._put_back = self.redis.register_script(_PUT_BACK)
        self._enter = self.redis.register_script(_ENTER)
        self._frequency = self.redis.register_script(_FREQUENCY)
        self._uncount = self.redis.register_script(_UNCOUNT)

    async def _call(self, what: str, awaitable):
        # The socket timeout bounds each read; wait_for also bounds a reconnect
        # that keeps failing slowly, so no caller waits much past the timeout.
        try:
            return await asyncio.wait_for(awaitable, self.timeout * 2)
        except self._errors as exc:
            raise LimitsUnavailable(f"redis {what}: {exc.__class__.__name__}: {exc}") from exc

    async def enter(self, account_id: int, limit: int) -> str | None:
        ticket = f"{self._node}:{next(self._tickets)}"
        ok = await self._call("enter", self._enter(keys=[f"{self.prefix}slots:{account_id}"],
                                                   args=[limit, ticket, self.lease_ms]))
        return ticket if ok else None

    async def leave(self, account_id: int, ticket: str) -> None:
        await self._call("leave", self.redis.zrem(f"{self.prefix}slots:{account_id}", ticket))

    async def take(self, account_id: int, amount: int, mps: int) -> bool:
        ok = await self._call("take", self._take(keys=[f"{self.prefix}rate:{account_id}"], args=[mps, amount]))
        return bool(ok)

    async def put_back(self, account_id: int, amount: int, mps: int) -> None:
        await self._call("put_back", self._put_back(keys=[f"{self.prefix}rate:{account_id}"], args=[mps, amount]))

    def _slices(self, account_id: int, phones: list[str], content: str):
        ck = content_key(content)
        day = day_of(time.time())
        for start in range(0, len(phones), self.SLICE):
            chunk = phones[start:start + self.SLICE]
            keys = [f"{self.prefix}same:{account_id}:{ck}:{p}" for p in chunk]
            keys += [f"{self.prefix}day:{account_id}:{day}:{p}" for p in chunk]
            yield chunk, keys

    async def frequency(self, account_id: int, phones: list[str], content: str, *,
                        per_day: int, same_minutes: int) -> set[str]:
        refused: set[str] = set()
        for chunk, keys in self._slices(account_id, phones, content):
            out = await self._call("frequency", self._frequency(
                keys=keys, args=[same_minutes * 60_000, per_day, len(chunk)]))
            refused.update(chunk[int(i) - 1] for i in out)
        return refused

    async def uncount(self, account_id: int, phones: list[str], content: str, *,
                      per_day: int, same_minutes: int) -> None:
        for chunk, keys in self._slices(account_id, phones, content):
            await self._call("uncount", self._uncount(keys=keys, args=[same_minutes * 60_000, per_day, len(chunk)]))

    async def close(self) -> None:
        await self.redis.aclose()


def make_limits(redis_url: str) -> Limits:
    return RedisLimits(redis_url) if redis_url else LocalLimits()
