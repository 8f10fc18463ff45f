"""Traffic limits per account: concurrent requests, messages per second, per-number frequency.

Two backends with one interface. ``LocalLimits`` keeps the counters in this
process (the embedded default: one process serves everything). ``RedisLimits``
keeps them in Redis, so several API processes share one allowance per account
and the per-number counts survive a restart. The monthly quota is not here:
it is counted from the submissions table inside the accept commit, where it is
exact and durable.

Every call takes a whole request's worth (all its numbers at once): one
Redis round trip per request, never one per number.
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Protocol

DAY_KEY_TTL_S = 2 * 24 * 3600


def day_of(now_s: float) -> str:
    """The server's local calendar day, the unit of the per-number daily limit."""
    return datetime.fromtimestamp(now_s).strftime("%Y%m%d")


def content_key(content: str) -> str:
    return hashlib.blake2b(content.encode(), digest_size=12).hexdigest()


class Limits(Protocol):
    async def enter(self, account_id: int, limit: int) -> bool:
        """Take one of the account's ``limit`` concurrent-request slots; False when all are taken."""

    async def leave(self, account_id: int) -> None:
        """Give the slot back."""

    async def take(self, account_id: int, amount: int, mps: int) -> bool:
        """Take ``amount`` (numbers x parts) from the account's bucket of ``mps`` a second."""

    async def frequency(self, account_id: int, phones: list[str], content: str, *,
                        per_day: int, same_minutes: int) -> set[str]:
        """Count one message to each phone; return the phones over a limit (those are not counted)."""

    async def close(self) -> None: ...


class LocalLimits:
    """Counters in this process."""

    def __init__(self, clock=time.time) -> None:
        self.clock = clock
        self._inflight: dict[int, int] = {}
        self._buckets: dict[int, tuple[float, float]] = {}      # account -> (tokens, stamp)
        self._daily: dict[tuple[int, str], int] = {}
        self._day = ""
        self._same: dict[tuple[int, str, str], float] = {}      # -> expires at
        self._same_sweep = 0.0

    async def enter(self, account_id: int, limit: int) -> bool:
        n = self._inflight.get(account_id, 0)
        if n >= limit:
            return False
        self._inflight[account_id] = n + 1
        return True

    async def leave(self, account_id: int) -> None:
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

    async def frequency(self, account_id: int, phones: list[str], content: str, *,
                        per_day: int, same_minutes: int) -> set[str]:
        now = self.clock()
        refused: set[str] = set()
        if same_minutes:
            if now >= self._same_sweep:
                self._same = {k: t for k, t in self._same.items() if t > now}
                self._same_sweep = now + 60
            ck = content_key(content)
            until = now + same_minutes * 60
            for p in phones:
                key = (account_id, ck, p)
                if self._same.get(key, 0) > now:
                    refused.add(p)
                else:
                    self._same[key] = until
        if per_day:
            day = day_of(now)
            if day != self._day:
                self._daily.clear()
                self._day = day
            for p in phones:
                if p in refused:
                    continue
                key = (account_id, p)
                n = self._daily.get(key, 0)
                if n >= per_day:
                    refused.add(p)
                    if same_minutes:
                        self._same.pop((account_id, content_key(content), p), None)
                else:
                    self._daily[key] = n + 1
        return refused

    async def close(self) -> None:
        pass


# KEYS[1] bucket; ARGV: rate, amount, now (ms). A one-second-deep bucket.
_TAKE = """
local rate = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = tonumber(v[1]) or rate
local stamp = tonumber(v[2]) or now
tokens = math.min(rate, tokens + (now - stamp) * rate / 1000)
local ok = 0
if amount <= tokens then tokens = tokens - amount; ok = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 's', tostring(now))
redis.call('PEXPIRE', KEYS[1], 10000)
return ok
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


class RedisLimits:
    """Counters in Redis, shared by every process that uses the same server."""

    # Redis runs a script atomically, so a long one blocks it: big requests go in slices.
    SLICE = 5000

    def __init__(self, url: str, prefix: str = "hongyan:") -> None:
        import redis.asyncio as aioredis  # optional dependency: only when Redis is configured

        self.redis = aioredis.from_url(url)
        self.prefix = prefix
        self._take = self.redis.register_script(_TAKE)
        self._frequency = self.redis.register_script(_FREQUENCY)

    async def enter(self, account_id: int, limit: int) -> bool:
        key = f"{self.prefix}inflight:{account_id}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)  # a crashed process's slots free themselves
        n, _ = await pipe.execute()
        if n > limit:
            await self.redis.decr(key)
            return False
        return True

    async def leave(self, account_id: int) -> None:
        await self.redis.decr(f"{self.prefix}inflight:{account_id}")

    async def take(self, account_id: int, amount: int, mps: int) -> bool:
        ok = await self._take(keys=[f"{self.prefix}rate:{account_id}"],
                              args=[mps, amount, int(time.time() * 1000)])
        return bool(ok)

    async def frequency(self, account_id: int, phones: list[str], content: str, *,
                        per_day: int, same_minutes: int) -> set[str]:
        ck = content_key(content)
        day = day_of(time.time())
        refused: set[str] = set()
        for start in range(0, len(phones), self.SLICE):
            chunk = phones[start:start + self.SLICE]
            keys = [f"{self.prefix}same:{account_id}:{ck}:{p}" for p in chunk]
            keys += [f"{self.prefix}day:{account_id}:{day}:{p}" for p in chunk]
            out = await self._frequency(keys=keys, args=[same_minutes * 60_000, per_day, len(chunk)])
            refused.update(chunk[int(i) - 1] for i in out)
        return refused

    async def close(self) -> None:
        await self.redis.aclose()


def make_limits(redis_url: str) -> Limits:
    return RedisLimits(redis_url) if redis_url else LocalLimits()
