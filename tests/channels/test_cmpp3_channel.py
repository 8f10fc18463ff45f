"""CmppChannel in CMPP 3.0 mode against CmppSimulator over real loopback TCP."""
from __future__ import annotations

import asyncio
import logging

import pytest

from hongyan.channels import make_channel, make_simulator
from hongyan.channels.base import ChannelConfig, Outbound
from hongyan.channels.cmpp import CmppChannel
from hongyan.channels.simulator import CmppSimulator
from hongyan.domain.segments import plan, split_udh
from hongyan.protocols.cmpp import auth
from hongyan.protocols.cmpp.connection import Connection
from hongyan.protocols.cmpp.events import Connect, ConnectResp
from tests.channels.test_cmpp_channel import ACCESS, LONG_CN, SECRET, SP_ID, Recorder, until

V20, V30 = 0x20, 0x30


@pytest.fixture
async def sim():
    s = CmppSimulator(port=0, accounts={SP_ID: SECRET}, report_delay=0.05, seed=11)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def channel():
    made = []

    async def make(sim, rec, *, protocol="cmpp3", password=SECRET, connections=1, **options):
        cfg = ChannelConfig(id=4, name="mobile3", protocol=protocol, port=sim.port, username=SP_ID,
                            password=password, access_code=ACCESS, service_id="HELP", mps=50_000,
                            window=32, connections=connections,
                            options={"reconnect_initial": 0.2, **options})
        ch = CmppChannel(cfg, rec.events)
        made.append(ch)
        await ch.start()
        return ch

    yield make
    for ch in made:
        await ch.stop()


def _awaiting(sim) -> int:
    return sum(len(s.awaiting) for s in sim._sessions)


async def test_logs_in_as_30_sends_and_reports_with_30_layouts(sim, channel):
    submits = []
    sim.on_submit.append(submits.append)
    rec = Recorder()
    # Options typed on the command line arrive as text.
    ch = await channel(sim, rec, fee_terminal_type="1", fee_user_type="3")
    await until(lambda: ch.connected)
    assert sim.login_versions == {V30: 1}
    ch.send([Outbound(1, "13800000001", "hello"), Outbound(2, "13800000002", LONG_CN)])
    await until(lambda: len(rec.sent) == 2)
    assert len(rec.sent[1]) == 1 and len(rec.sent[2]) == len(plan(LONG_CN).chunks) == 3

    single, *parts = submits
    assert single.msg_fmt == 0 and single.tp_udhi == 0 and single.msg_content == b"hello"
    assert single.dest_terminal_ids == ("13800000001",) and single.link_id == ""
    assert all(s.fee_terminal_type == 1 and s.fee_user_type == 3 and s.dest_terminal_type == 0
               and s.msg_src == SP_ID and s.src_id == ACCESS for s in submits)
    joined = ""
    for i, s in enumerate(parts, 1):
        assert s.tp_udhi == 1 and s.pk_total == 3 and s.pk_number == i and s.msg_fmt == 8
        info, body = split_udh(s.msg_content)
        assert (info.total, info.seq) == (3, i)
        joined += body.decode("utf-16-be")
    assert joined == LONG_CN

    await until(lambda: len(rec.reports) == 4)
    assert {r.carrier_id for r in rec.reports} == {c for ids in rec.sent.values() for c in ids}
    assert all(r.delivered and r.status == "DELIVRD" and r.done_at is not None for r in rec.reports)
    assert {r.phone for r in rec.reports} == {"13800000001", "13800000002"}
    # Reports stay unanswered until the core has committed them.
    await asyncio.sleep(0.2)
    assert _awaiting(sim) == 4
    for r in rec.reports:
        r.ack()
    await until(lambda: _awaiting(sim) == 0)
    assert sim.stats["resp_errors"] == 0


async def test_version_option_on_a_cmpp2_channel(sim, channel, caplog):
    caplog.set_level(logging.DEBUG, logger="hongyan.channels.cmpp")
    rec = Recorder()
    ch = await channel(sim, rec, protocol="cmpp2", version="3.0")
    await until(lambda: ch.connected)
    assert sim.login_versions == {V30: 1}
    # The gateway's AuthenticatorISMG checks out with the 3.0 (four-octet Status) rule.
    assert not any("AuthenticatorISMG" in r.getMessage() for r in caplog.records)
    ch.send([Outbound(1, "13800000001", "hi")])
    await until(lambda: len(rec.reports) == 1)


async def test_cmpp2_stays_20(sim, channel):
    rec = Recorder()
    ch = await channel(sim, rec, protocol="cmpp2")
    await until(lambda: ch.connected)
    assert sim.login_versions == {V20: 1}


@pytest.mark.parametrize("protocol, options, match", [
    ("cmpp3", {"version": "2.0"}, "version"),
    ("cmpp2", {"version": "4.0"}, "version"),
    ("cmpp2", {"fee_terminal_type": "1"}, "CMPP 3.0 field"),
    ("cmpp3", {"msg_level": "high"}, "msg_level must be a whole number"),
])
def test_bad_version_or_options_refused(protocol, options, match):
    cfg = ChannelConfig(id=1, name="x", protocol=protocol, options=options)
    with pytest.raises(ValueError, match=match):
        CmppChannel(cfg, Recorder().events)


def test_cmpp3_is_registered():
    ch = make_channel(ChannelConfig(id=1, name="x", protocol="cmpp3"), Recorder().events)
    assert isinstance(ch, CmppChannel) and ch.version == V30
    assert isinstance(make_simulator("cmpp3", port=0), CmppSimulator)


async def test_gateway_that_speaks_only_20_refuses_30(channel, caplog):
    sim = CmppSimulator(port=0, accounts={SP_ID: SECRET}, max_version=V20)
    await sim.start()
    try:
        rec = Recorder()
        ch = await channel(sim, rec, reconnect_initial=0.5)
        await until(lambda: sim.stats["auth_failures"] >= 1)
        await asyncio.sleep(0.3)
        assert not ch.connected and sim.stats["connections"] == 0
        # Its refusal comes in the 2.0 layout; the log says what to change.
        assert any("not in the CMPP 3.0 layout" in r.getMessage() for r in caplog.records)
    finally:
        await sim.stop()


async def test_simulator_answers_30_connect_in_30_layout(sim):
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        conn = Connection("client", version=V30)
        ts = auth.timestamp_now()
        source = auth.authenticator_source(SP_ID, SECRET, ts)
        writer.write(conn.send(Connect(conn.next_sequence(), SP_ID, source, V30, ts)))
        data = await reader.read(100)
        assert len(data) == 12 + 4 + 16 + 1  # 3.0 CONNECT_RESP: four-octet Status
        conn.receive_data(data)
        (resp,) = conn.events()
        assert isinstance(resp, ConnectResp) and resp.status == 0 and resp.version == V30
        # AuthenticatorISMG hashes the Status as four octets in 3.0 (one in 2.0).
        assert resp.authenticator == auth.authenticator_ismg(0, source, SECRET, V30)
        assert resp.authenticator != auth.authenticator_ismg(0, source, SECRET, V20)
    finally:
        writer.close()


async def test_long_mo_over_30_joined(sim, channel):
    rec = Recorder()
    ch = await channel(sim, rec)
    await until(lambda: ch.connected)
    assert sim.inject_mo("13900139000", ACCESS + "7", LONG_CN) == 3
    assert sim.inject_mo("13700137000", ACCESS, "TD") == 1
    await until(lambda: len(rec.mos) == 2)
    got = {m.phone: m for m in rec.mos}
    assert got["13900139000"].text == LONG_CN and got["13900139000"].dest == ACCESS + "7"
    assert got["13700137000"].text == "TD"


async def test_flow_control_and_link_cut_over_30(sim, channel):
    rec = Recorder()
    ch = await channel(sim, rec, connections=2)
    await until(lambda: sim.stats["connections"] == 2)
    sim.flow_control_every(5)
    ch.send([Outbound(i, "13800000000", "ping") for i in range(1, 21)])
    await until(lambda: rec.resolved() == 20)
    assert len(rec.failures) == 4 and set(rec.failures.values()) == {("CMPP:8", True)}
    sim.flow_control_every(0)
    sim.drop_after(10)
    ch.send([Outbound(i, "13800000000", "y") for i in range(100, 200)])
    await until(lambda: rec.resolved() == 120, timeout=10)
    assert max(rec.outcomes.values()) == 1
    assert all(rec.failures[i] == ("LINK", True) for i in range(100, 200) if i in rec.failures)


async def test_reconnects_as_30_after_gateway_restart(channel):
    sim = CmppSimulator(port=0, report_delay=0.02)
    await sim.start()
    port = sim.port
    rec = Recorder()
    ch = await channel(sim, rec)
    await until(lambda: ch.connected)
    await sim.stop()
    await until(lambda: not ch.connected)
    sim = CmppSimulator(port=port, report_delay=0.02)
    await sim.start()
    try:
        await until(lambda: ch.connected, timeout=5)
        assert sim.login_versions == {V30: 1}
        ch.send([Outbound(1, "13800000000", "again")])
        await until(lambda: len(rec.sent) == 1)
    finally:
        await sim.stop()


@pytest.mark.parametrize("args", [("--protocol", "cmpp3"), ("--protocol", "cmpp2", "--option", "version=3.0")])
def test_channel_add_cmpp3_from_the_cli(settings, tmp_path, args):
    from tests.channels.test_smgp_channel import _add_channel_from_cli
    cfg = _add_channel_from_cli(settings, tmp_path, "mobile3", *args, "--username", SP_ID,
                                "--password", SECRET, "--option", "fee_terminal_type=1")
    ch = make_channel(cfg, Recorder().events)
    assert isinstance(ch, CmppChannel) and ch.version == V30
    assert ch._submit_extra["fee_terminal_type"] == 1
