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
