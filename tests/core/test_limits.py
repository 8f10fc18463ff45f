"""The traffic-limit counters: in this process, and in Redis shared by several processes."""
from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import pytest

from hongyan.core.limits import LimitsUnavailable, LocalLimits, RedisLimits

REDIS_URL = os.environ.get("HONGYAN_TEST_REDIS_URL", "")


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["local", "redis"])
async def pair(request):
    """Two limit holders that stand for two processes: the same object for local
    (one process has one set of counters), two clients of one server for Redis."""
    if request.param == "local":
        one = LocalLimits()
        yield one, one
        return
    if not REDIS_URL:
        pytest.skip("Redis tests need HONGYAN_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    prefix = f"hongyan-test:{uuid.uuid4().hex}:"
    one, two = RedisLimits(REDIS_URL, prefix=prefix), RedisLimits(REDIS_URL, prefix=prefix)
    yield one, two
    keys = [k async for k in one.redis.scan_iter(match=prefix + "*")]
    if keys:
        await one.redis.delete(*keys)
    await one.close()
    await two.close()


async def test_concurrent_slots_are_shared_and_given_back(pair):
    one, two = pair
    first, second = await one.enter(7, 2), await two.enter(7, 2)
    assert first and second
    assert await one.enter(7, 2) is None
    assert await one.enter(8, 2)                 # another account has its own
    await two.leave(7, second)
    assert await one.enter(7, 2)


async def test_the_rate_bucket_is_one_second_deep_and_shared(pair):
    one, two = pair
    assert await one.take(7, 6, 10)
    assert await two.take(7, 4, 10)
    assert not await one.take(7, 1, 10)          # 10 used within the second


async def test_per_number_daily_counts_across_processes(pair):
    one, two = pair
    phones = ["13800138000", "13900139000"]
    assert await one.frequency(7, phones, "a", per_day=2, same_minutes=0) == set()
    assert await two.frequency(7, phones[:1], "b", per_day=2, same_minutes=0) == set()
    assert await one.frequency(7, phones, "c", per_day=2, same_minutes=0) == {"13800138000"}
    # A refused number was not counted: the other one still has room for nothing more.
    assert await two.frequency(7, phones[1:], "d", per_day=2, same_minutes=0) == {"13900139000"}
    assert await one.frequency(8, phones, "a", per_day=2, same_minutes=0) == set()


async def test_same_content_within_minutes(pair):
    one, two = pair
    assert await one.frequency(7, ["13800138000"], "hello", per_day=0, same_minutes=5) == set()
    assert await two.frequency(7, ["13800138000", "13900139000"], "hello", per_day=0,
                               same_minutes=5) == {"13800138000"}
    assert await one.frequency(7, ["13800138000"], "other", per_day=0, same_minutes=5) == set()


async def test_a_number_refused_by_the_daily_limit_does_not_start_a_same_content_window(pair):
    one, two = pair
    await one.frequency(7, ["13800138000"], "x", per_day=1, same_minutes=0)
    assert await two.frequency(7, ["13800138000"], "y", per_day=1, same_minutes=5) == {"13800138000"}
    # Had "y" been remembered, "y" would now be refused as the same content.
    assert await one.frequency(7, ["13800138000"], "y", per_day=0, same_minutes=5) == set()


async def test_local_windows_expire_with_time():
    clock = Clock()
    limits = LocalLimits(clock=clock)
    assert await limits.frequency(1, ["13800138000"], "x", per_day=0, same_minutes=1) == set()
    assert await limits.frequency(1, ["13800138000"], "x", per_day=0, same_minutes=1) == {"13800138000"}
    clock.t += 61
    assert await limits.frequency(1, ["13800138000"], "x", per_day=0, same_minutes=1) == set()
    assert await limits.take(1, 5, 5)
    assert not await limits.take(1, 1, 5)
    clock.t += 0.5
    assert await limits.take(1, 2, 5) and not await limits.take(1, 1, 5)
    clock.t += 24 * 3600
    assert await limits.frequency(1, ["13800138000"], "z", per_day=1, same_minutes=0) == set()


async def test_redis_slices_big_requests():
    if not REDIS_URL:
        pytest.skip("Redis tests need HONGYAN_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    limits = RedisLimits(REDIS_URL, prefix=f"hongyan-test:{uuid.uuid4().hex}:")
    limits.SLICE = 3
    phones = [f"1380013{i:04d}" for i in range(8)]
    try:
        assert await limits.frequency(1, phones, "x", per_day=1, same_minutes=0) == set()
        assert await limits.frequency(1, phones, "y", per_day=1, same_minutes=0) == set(phones)
    finally:
        keys = [k async for k in limits.redis.scan_iter(match=limits.prefix + "*")]
        await limits.redis.delete(*keys)
        await limits.close()


async def test_what_was_taken_can_be_given_back(pair):
    one, two = pair
    assert await one.take(7, 10, 10)
    await two.put_back(7, 4, 10)
    assert await one.take(7, 4, 10) and not await one.take(7, 1, 10)
    await one.put_back(7, 100, 10)               # never more than a full bucket
    assert not await two.take(7, 11, 10)
    phones = ["13800138000", "13900139000"]
    assert await one.frequency(7, phones, "a", per_day=1, same_minutes=5) == set()
    await two.uncount(7, phones, "a", per_day=1, same_minutes=5)
    # Forgotten: neither the daily count nor the same-content window remains.
    assert await one.frequency(7, phones, "a", per_day=1, same_minutes=5) == set()
    assert await two.frequency(7, phones, "a", per_day=1, same_minutes=5) == set(phones)
    # Giving back more than was counted never leaves a credit.
    await one.uncount(7, phones, "b", per_day=1, same_minutes=0)
    await one.uncount(7, phones, "b", per_day=1, same_minutes=0)
    assert await two.frequency(7, phones, "b", per_day=1, same_minutes=0) == set()
    assert await one.frequency(7, phones, "c", per_day=1, same_minutes=0) == set(phones)


def redis_only():
    if not REDIS_URL:
        pytest.skip("Redis tests need HONGYAN_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")


async def test_a_redis_slot_never_given_back_frees_itself_after_its_lease():
    """A process that dies (or loses the answer to its leave) must not keep the
    slot for as long as others keep sending: each slot has its own lease."""
    redis_only()
    prefix = f"hongyan-test:{uuid.uuid4().hex}:"
    one = RedisLimits(REDIS_URL, prefix=prefix, lease_s=0.3)
    try:
        assert await one.enter(7, 1)             # never given back
        for _ in range(3):                       # others keep trying meanwhile
            assert await one.enter(7, 1) is None
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert await one.enter(7, 1)
    finally:
        await one.redis.delete(*[k async for k in one.redis.scan_iter(match=prefix + "*")])
        await one.close()


async def test_redis_down_fails_fast_with_limits_unavailable():
    redis_only()
    with socket.socket() as s:                   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limits = RedisLimits(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    try:
        for call in (limits.enter(7, 2), limits.take(7, 1, 10), limits.leave(7, "x"),
                     limits.frequency(7, ["13800138000"], "a", per_day=1, same_minutes=0)):
            with pytest.raises(LimitsUnavailable):
                await call
    finally:
        await limits.close()


async def test_a_redis_that_does_not_answer_fails_within_the_timeout():
    redis_only()
    accepted = []

    async def silent(reader, writer):            # takes the connection, never answers
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = RedisLimits(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(LimitsUnavailable):
            await limits.enter(7, 2)
        assert time.monotonic() - started < 2.0
        assert accepted
    finally:
        await limits.close()
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()


async def test_local_same_text_marks_are_forgotten_once_run_out():
    # A busy day sends to millions of numbers: what has run out must not stay in memory.
    clock = Clock()
    limits = LocalLimits(clock=clock)
    for i in range(100):
        await limits.frequency(1, [f"138{i:08d}"], f"text {i}", per_day=0, same_minutes=1)
    assert sum(map(len, limits._same.values())) == 100
    clock.t += 61
    await limits.frequency(1, ["13900000000"], "later", per_day=0, same_minutes=1)
    assert list(limits._same.values()) == [{"13900000000": clock.t + 60}]
