"""SmppChannel against SmppSimulator over real loopback TCP."""
from __future__ import annotations

import asyncio

import pytest

from hongyan.channels.base import ChannelConfig, Outbound
from hongyan.channels.sim_smpp import SmppSimulator
from hongyan.channels.smpp import SmppChannel
from tests.channels.test_cmpp_channel import LONG_CN, Recorder, until


async def _run(long_sms="udh", password="pw"):
    sim = SmppSimulator(port=0, accounts={"esme": "pw"}, report_delay=0.05, seed=1)
    await sim.start()
    rec = Recorder()
    cfg = ChannelConfig(id=3, name="t", protocol="smpp", port=sim.port, username="esme",
                        password=password, access_code="1069", connections=1,
                        options={"reconnect_initial": 0.2, "long_sms": long_sms})
    ch = SmppChannel(cfg, rec.events)
    await ch.start()
    return sim, rec, ch


@pytest.mark.parametrize("long_sms", ["udh", "sar"])
async def test_send_long_and_reports(long_sms):
    sim, rec, ch = await _run(long_sms)
    try:
        await until(lambda: ch.connected)
        ch.send([Outbound(1, "13800000001", "hi"), Outbound(2, "13800000002", LONG_CN)])
        await until(lambda: len(rec.sent) == 2)
        assert len(rec.sent[2]) == 3
        await until(lambda: len(rec.reports) == 4)
        assert all(r.delivered for r in rec.reports)
        assert sim.stats["acked"] == 0
        for r in rec.reports:
            r.ack()
        await until(lambda: sim.stats["acked"] == 4)
    finally:
        await ch.stop()
        await sim.stop()


async def test_bad_password_not_connected():
    sim, rec, ch = await _run(password="no")
    try:
        await asyncio.sleep(0.5)
        assert not ch.connected and sim.stats["auth_failures"] >= 1
    finally:
        await ch.stop()
        await sim.stop()


@pytest.mark.parametrize("style", ["udh", "sar"])
async def test_long_mo_reassembled(style):
    sim, rec, ch = await _run()
    sim.mo_style = style
    try:
        await until(lambda: ch.connected)
        assert sim.inject_mo("13900000000", "106901", LONG_CN) == 3
        await until(lambda: len(rec.mos) == 1)
        assert rec.mos[0].text == LONG_CN and rec.mos[0].phone == "13900000000"
    finally:
        await ch.stop()
        await sim.stop()


async def test_throttled_fail_retryable_and_drop_loses_nothing():
    sim, rec, ch = await _run()
    try:
        await until(lambda: ch.connected)
        sim.flow_control_every(5)
        ch.send([Outbound(i, "13800000000", "x") for i in range(1, 21)])
        await until(lambda: rec.resolved() == 20)
        assert len(rec.failures) == 4 and all(f[1] for f in rec.failures.values())
        sim.flow_control_every(0)
        sim.drop_after(10)
        ch.send([Outbound(i, "13800000000", "y") for i in range(100, 160)])
        await until(lambda: rec.resolved() == 80, timeout=10)
        assert max(rec.outcomes.values()) == 1
        assert all(rec.failures[i][1] for i in range(100, 160) if i in rec.failures)
    finally:
        await ch.stop()
        await sim.stop()


async def test_reconnects_after_simulator_restart():
    sim, rec, ch = await _run()
    port = sim.port
    try:
        await until(lambda: ch.connected)
        await sim.stop()
        await until(lambda: not ch.connected)
        sim = SmppSimulator(port=port, accounts={"esme": "pw"}, report_delay=0.05)
        await sim.start()
        await until(lambda: ch.connected, timeout=5)
        ch.send([Outbound(1, "13800000000", "again")])
        await until(lambda: len(rec.sent) == 1)
    finally:
        await ch.stop()
        await sim.stop()


async def test_payload_mode_sends_one_submit():
    from hongyan.protocols.smpp.tlv import Tag, find as find_tlv
    sim, rec, ch = await _run("payload")
    try:
        await until(lambda: ch.connected)
        ch.send([Outbound(1, "13800000000", LONG_CN)])
        await until(lambda: len(rec.sent) == 1)
        assert len(rec.sent[1]) == 1 and len(sim.submitted) == 1
        assert find_tlv(sim.submitted[0].tlvs, Tag.MESSAGE_PAYLOAD) == LONG_CN.encode("utf-16-be")
    finally:
        await ch.stop()
        await sim.stop()
