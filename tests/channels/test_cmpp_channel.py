"""CmppChannel against CmppSimulator over real loopback TCP."""
from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from hongyan.channels.base import ChannelConfig, Outbound
from hongyan.channels.cmpp import CmppChannel
from hongyan.channels.simulator import FAIL_STATUSES, CmppSimulator, SimulatorControl
from hongyan.domain.segments import plan

SP_ID = "901234"
SECRET = "secret"
ACCESS = "106901234"
LONG_CN = "您好，这是一条很长的中文测试短信，用来检查长短信的拆分和重组是否正确。" * 4


class Recorder:
    """Collects channel callbacks and notices anything reported twice."""

    def __init__(self) -> None:
        self.sent: dict[int, list[str]] = {}
        self.failures: dict[int, tuple[str, bool]] = {}
        self.outcomes: Counter[int] = Counter()
        self.reports = []
        self.mos = []

    def sent_cb(self, message_id, carrier_ids):
        self.outcomes[message_id] += 1
        self.sent[message_id] = carrier_ids

    def failed_cb(self, message_id, status, retryable):
        self.outcomes[message_id] += 1
        self.failures[message_id] = (status, retryable)

    def resolved(self) -> int:
        return len(self.outcomes)

    @property
    def events(self):
        rec = self

        class Events:
            def sent(self, message_id, carrier_ids):
                rec.sent_cb(message_id, carrier_ids)

            def failed(self, message_id, status, retryable):
                rec.failed_cb(message_id, status, retryable)

            def report(self, report):
                rec.reports.append(report)

            def mo(self, inbound):
                rec.mos.append(inbound)

        return Events()


async def until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def sim():
    s = CmppSimulator(port=0, accounts={SP_ID: SECRET}, report_delay=0.05, seed=7)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def make_channel():
    channels = []

    async def make(sim, rec, *, password=SECRET, mps=50_000, window=64, connections=2, **options):
        cfg = ChannelConfig(id=7, name="test", protocol="cmpp2", host="127.0.0.1", port=sim.port,
                            username=SP_ID, password=password, access_code=ACCESS,
                            service_id="HELP", mps=mps, window=window, connections=connections,
                            options={"reconnect_initial": 0.2, **options})
        ch = CmppChannel(cfg, rec.events)
        channels.append(ch)
        await ch.start()
        return ch

    yield make
    for ch in channels:
        await ch.stop()


def messages(n, start=1, text=None):
    out = []
    for i in range(start, start + n):
        body = text or (f"Your code is {i}", f"您的验证码是{i}，五分钟内有效", LONG_CN)[i % 3]
        out.append(Outbound(message_id=i, phone=f"138{i:08d}", text=body))
    return out


async def test_messages_are_sent_and_reported(sim, make_channel):
    assert len(plan(LONG_CN).chunks) == 3
    submits = []
    sim.on_submit.append(submits.append)
    rec = Recorder()
    ch = await make_channel(sim, rec)
    await until(lambda: ch.connected)
    batch = messages(200)
    ch.send(batch)
    await until(lambda: rec.resolved() == 200)
    assert not rec.failures
    parts = {m.message_id: len(plan(m.text).chunks) for m in batch}
    for m in batch:
        assert len(rec.sent[m.message_id]) == parts[m.message_id]
    carrier_ids = {cid for ids in rec.sent.values() for cid in ids}
    assert len(carrier_ids) == sum(parts.values())

    await until(lambda: len(rec.reports) == len(carrier_ids))
    assert {r.carrier_id for r in rec.reports} == carrier_ids
    assert all(r.delivered and r.status == "DELIVRD" and r.channel_id == 7 for r in rec.reports)
    assert all(r.done_at is not None for r in rec.reports)
    assert ch.queued() == 0

    long_parts = [s for s in submits if s.pk_total == 3]
    assert long_parts and all(s.tp_udhi == 1 and s.msg_fmt == 8 for s in long_parts)
    assert {s.pk_number for s in long_parts} == {1, 2, 3}
    ascii_parts = [s for s in submits if s.msg_fmt == 0]
    assert ascii_parts and all(s.tp_udhi == 0 and s.pk_total == 1 for s in ascii_parts)
    assert all(s.msg_src == SP_ID and s.src_id == ACCESS and s.service_id == "HELP" for s in submits)
    assert all(s.registered_delivery == 1 for s in submits)


async def test_wrong_password_never_binds_and_does_not_spin(sim, make_channel):
    rec = Recorder()
    ch = await make_channel(sim, rec, password="wrong", connections=1, reconnect_initial=0.5)
    ch.send(messages(1))
    await asyncio.sleep(2.0)
    assert not ch.connected
    assert 1 <= sim.stats["accepted"] <= 4
    assert sim.stats["auth_failures"] == sim.stats["accepted"]
    assert sim.stats["connections"] == 0
    assert ch.queued() == 1 and not rec.outcomes
    await ch.stop()
    assert rec.failures == {1: ("STOPPED", True)}


async def test_failure_reports_carry_carrier_statuses(make_channel):
    sim = CmppSimulator(port=0, accounts=None, report_delay=0.02, fail_rate=1.0, seed=3)
    await sim.start()
    try:
        rec = Recorder()
        ch = await make_channel(sim, rec)
        ch.send(messages(30))
        await until(lambda: rec.resolved() == 30)
        total = sum(len(ids) for ids in rec.sent.values())
        await until(lambda: len(rec.reports) == total)
        assert all(not r.delivered and r.status in FAIL_STATUSES for r in rec.reports)
        # A long message fails as a whole: every part carries the same status.
        status = {r.carrier_id: r.status for r in rec.reports}
        for ids in rec.sent.values():
            assert len({status[c] for c in ids}) == 1
    finally:
        await sim.stop()


async def test_flow_control_fails_retryable(sim, make_channel):
    sim.flow_control_every(5)
    rec = Recorder()
    ch = await make_channel(sim, rec, connections=1)
    ch.send(messages(50, text="ping"))
    await until(lambda: rec.resolved() == 50)
    assert len(rec.failures) == 10
    assert set(rec.failures.values()) == {("CMPP:8", True)}
    assert len(rec.sent) == 40
    assert max(rec.outcomes.values()) == 1


async def test_link_dropped_mid_window_resolves_each_message_once(sim, make_channel):
    rec = Recorder()
    ch = await make_channel(sim, rec, window=64, connections=2)
    await until(lambda: ch.connected)
    sim.drop_after(40)
    batch = messages(300)
    ch.send(batch)
    await until(lambda: rec.resolved() == 300, timeout=10)
    assert set(rec.outcomes) == {m.message_id for m in batch}
    assert max(rec.outcomes.values()) == 1
    assert not set(rec.sent) & set(rec.failures)
    assert rec.failures and all(f == ("LINK", True) for f in rec.failures.values())
    assert ch.queued() == 0
    # Reports for every accepted part arrive, whichever link is left to carry them.
    wanted = {c for ids in rec.sent.values() for c in ids}
    await until(lambda: wanted <= {r.carrier_id for r in rec.reports})


async def test_mo_short_and_long_arrive_joined(sim, make_channel):
    rec = Recorder()
    ch = await make_channel(sim, rec, connections=1)
    await until(lambda: ch.connected)
    long_text = "收到，谢谢！请问明天上午的会议改到几点？我这边十点以后都可以，地点还是三楼会议室吗？" * 2
    assert len(plan(long_text).chunks) == 2
    assert sim.inject_mo("13800138000", ACCESS + "01", "TD") == 1
    assert sim.inject_mo("13900139000", ACCESS, "好的") == 1
    assert sim.inject_mo("13700137000", ACCESS + "5", long_text) == 2
    await until(lambda: len(rec.mos) == 3)
    got = {m.phone: m for m in rec.mos}
    assert got["13800138000"].text == "TD" and got["13800138000"].dest == ACCESS + "01"
    assert got["13900139000"].text == "好的"
    assert got["13700137000"].text == long_text
    assert all(m.channel_id == 7 for m in rec.mos)
    assert sim.stats["resp_errors"] == 0


async def test_reconnects_after_gateway_restart(make_channel):
    sim = CmppSimulator(port=0, report_delay=0.02)
    await sim.start()
    port = sim.port
    rec = Recorder()
    ch = await make_channel(sim, rec)
    await until(lambda: ch.connected)
    await sim.stop()
    await until(lambda: not ch.connected)
    sim = CmppSimulator(port=port, report_delay=0.02)
    await sim.start()
    try:
        await until(lambda: ch.connected, timeout=5)
        ch.send(messages(20))
        await until(lambda: len(rec.sent) == 20)
    finally:
        await sim.stop()


async def test_window_is_respected(make_channel):
    sim = CmppSimulator(port=0, report_delay=0.02, resp_delay=0.03)
    await sim.start()
    try:
        rec = Recorder()
        ch = await make_channel(sim, rec, window=8, connections=2)
        ch.send(messages(200, text="window"))
        await until(lambda: rec.resolved() == 200)
        assert len(rec.sent) == 200
        assert 4 <= sim.stats["max_inflight"] <= 8
    finally:
        await sim.stop()


async def test_throttle_spreads_submits(sim, make_channel):
    rec = Recorder()
    ch = await make_channel(sim, rec, mps=200, connections=2)
    await until(lambda: ch.connected)
    started = time.monotonic()
    ch.send(messages(400, text="rate"))
    await until(lambda: rec.resolved() == 400, timeout=6)
    elapsed = time.monotonic() - started
    assert len(rec.sent) == 400
    assert 1.5 <= elapsed <= 3.5


async def test_unencodable_message_fails_alone(sim, make_channel):
    rec = Recorder()
    ch = await make_channel(sim, rec, connections=1)
    await until(lambda: ch.connected)
    ch.send([Outbound(1, "13800138000", ""), Outbound(2, "1" * 30, "number too long"),
             Outbound(3, "13800138000", "fine")])
    await until(lambda: rec.resolved() == 3)
    assert rec.failures == {1: ("ENCODE", False), 2: ("ENCODE", False)}
    assert list(rec.sent) == [3]
    assert ch.connected and sim.stats["accepted"] == 1
    assert ch.queued() == 0


async def test_silent_gateway_is_left_after_three_active_tests(sim, make_channel):
    rec = Recorder()
    ch = await make_channel(sim, rec, connections=1, active_test_interval=0.1)
    await until(lambda: ch.connected)
    await asyncio.sleep(0.6)            # idle, but every ACTIVE_TEST is answered
    assert ch.connected and sim.stats["accepted"] == 1
    sim.answer_active_test = False
    await until(lambda: sim.stats["accepted"] >= 2, timeout=3)
    sim.answer_active_test = True
    await until(lambda: ch.connected)


async def test_control_server_stats_and_mo(sim, make_channel):
    control = SimulatorControl(sim, "127.0.0.1", 0)
    await control.start()
    try:
        rec = Recorder()
        ch = await make_channel(sim, rec, connections=1)
        await until(lambda: ch.connected)
        base = f"http://127.0.0.1:{control.port}"
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{base}/stats")).json()
            assert stats["connections"] == 1
            r = await http.post(f"{base}/mo", json={"phone": "13800138000", "dest": ACCESS, "text": "hi"})
            assert r.status_code == 200 and r.json() == {"parts": 1}
            assert (await http.post(f"{base}/mo", content=b"{")).status_code == 400
            assert (await http.get(f"{base}/nothing")).status_code == 404
        await until(lambda: len(rec.mos) == 1)
        assert rec.mos[0].text == "hi"
    finally:
        await control.stop()
