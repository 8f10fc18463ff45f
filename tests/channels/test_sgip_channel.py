"""SgipChannel against SgipSimulator over real loopback TCP, both directions."""
from __future__ import annotations

import asyncio

import pytest

from hongyan.channels import make_channel, make_simulator
from hongyan.channels.base import ChannelConfig, Outbound
from hongyan.channels.sgip import SgipChannel, carrier_id, international, national
from hongyan.channels.sim_sgip import FAIL_CODES, SgipSimulator
from hongyan.domain.segments import plan, split_udh
from hongyan.protocols.sgip import SequenceNumber
from tests.channels.test_cmpp_channel import LONG_CN, Recorder, until

LOGIN = "sp901"
SECRET = "pw"
NODE = 3075512345


async def _run(password=SECRET, listen_password=None, connections=1, fail_rate=0.0, **options):
    sim = SgipSimulator(port=0, accounts={LOGIN: SECRET}, report_delay=0.05, fail_rate=fail_rate, seed=3)
    await sim.start()
    rec = Recorder()
    opts = {"reconnect_initial": 0.2, "listen_host": "127.0.0.1", "listen_port": 0,
            "node_id": NODE, "corp_id": "12345", **options}
    if listen_password is not None:
        opts["listen_password"] = listen_password
    cfg = ChannelConfig(id=5, name="u", protocol="sgip", port=sim.port, username=LOGIN, password=password,
                        access_code="10655", connections=connections, options=opts)
    ch = SgipChannel(cfg, rec.events)
    await ch.start()
    await until(lambda: ch.listening)
    # The SMG logs in to our listener with the channel's login unless told another.
    sim.deliver_to("127.0.0.1", ch.listen_port, LOGIN, SECRET)
    return sim, rec, ch


async def _close(sim, ch):
    await ch.stop()
    await sim.stop()


def test_numbers_and_ids():
    assert international("13012345678") == "8613012345678"
    assert international("8613012345678") == "8613012345678"
    assert national("8613012345678") == "13012345678" and national("+8613012345678") == "13012345678"
    assert national("10655") == "10655"
    assert carrier_id(SequenceNumber(NODE, 1202132059, 7)) == "307551234512021320590000000007"


async def test_registered_for_the_cli_and_the_demo():
    from hongyan.channels import PROTOCOLS, SIMULATORS
    assert "sgip" in PROTOCOLS and "sgip" in SIMULATORS
    ch = make_channel(ChannelConfig(id=1, name="x", protocol="sgip", options={"listen_port": "9001"}),
                      Recorder().events)
    assert isinstance(ch, SgipChannel) and ch.listen_port == 9001
    assert isinstance(make_simulator("sgip", port=0), SgipSimulator)


def test_bad_options_are_refused_clearly():
    for options in ({"listen_port": "eighty"}, {"node_id": str(1 << 33)}, {"retry_results": "11,x"}):
        with pytest.raises(ValueError, match="channel 'x'"):
            SgipChannel(ChannelConfig(id=1, name="x", protocol="sgip", options=options), Recorder().events)


async def test_submit_single_and_long_reports_acked_only_after_commit():
    sim, rec, ch = await _run()
    try:
        await until(lambda: ch.connected)
        ch.send([Outbound(1, "13000000001", "hello"), Outbound(2, "13000000002", LONG_CN)])
        await until(lambda: len(rec.sent) == 2)
        parts = len(plan(LONG_CN).chunks)
        assert len(rec.sent[1]) == 1 and len(rec.sent[2]) == parts
        # What went on the wire: 86-prefixed numbers, UCS2 parts with a concat UDH.
        by_number = {}
        for s in sim.submitted:
            by_number.setdefault(s.user_numbers, []).append(s)
        single, = by_number[("8613000000001",)]
        assert single.tp_udhi == 0 and single.message_content == b"hello" and single.sp_number == "10655"
        assert single.corp_id == "12345" and single.report_flag == 1
        long_parts = by_number[("8613000000002",)]
        infos = [split_udh(s.message_content)[0] for s in long_parts]
        assert all(s.tp_udhi == 1 and s.message_coding == 8 for s in long_parts)
        assert [(i.total, i.seq) for i in infos] == [(parts, n) for n in range(1, parts + 1)]
        # Ids are the Submits' sequence numbers; the Reports quote them back.
        assert rec.sent[1] == [carrier_id(single.sequence_number)]
        assert all(s.sequence_number.node_id == NODE for s in sim.submitted)
        await until(lambda: len(rec.reports) == 1 + parts)
        assert {r.carrier_id for r in rec.reports} == {i for ids in rec.sent.values() for i in ids}
        assert all(r.delivered and r.status == "DELIVRD" for r in rec.reports)
        assert {r.phone for r in rec.reports} == {"13000000001", "13000000002"}
        await asyncio.sleep(0.2)
        assert sim.stats["acked"] == 0 and sim.queued == 1 + parts   # held until the core commits
        for r in rec.reports:
            r.ack()
        await until(lambda: sim.stats["acked"] == 1 + parts)
        assert sim.queued == 0 and sim.stats["back_connects"] == 1
    finally:
        await _close(sim, ch)


async def test_failed_reports_carry_the_error_code():
    sim, rec, ch = await _run(fail_rate=1.0)
    try:
        await until(lambda: ch.connected)
        ch.send([Outbound(i, "13000000000", "x") for i in range(1, 6)])
        await until(lambda: len(rec.reports) == 5)
        assert not any(r.delivered for r in rec.reports)
        assert {r.status for r in rec.reports} <= {f"SGIP:{int(c)}" for c in FAIL_CODES}
    finally:
        await _close(sim, ch)


async def test_unacked_report_is_delivered_again_after_the_link_back_drops():
    sim, rec, ch = await _run()
    try:
        await until(lambda: ch.connected)
        ch.send([Outbound(1, "13000000001", "once")])
        await until(lambda: len(rec.reports) == 1)
        first = rec.reports[0]
        sim.close_back()            # the core never committed it: the SMG must send it again
        await until(lambda: len(rec.reports) == 2)
        assert sim.stats["redelivered"] == 1 and rec.reports[1].carrier_id == first.carrier_id
        first.ack()                 # an ack for a connection that is gone is dropped
        await asyncio.sleep(0.1)
        assert sim.stats["acked"] == 0
        rec.reports[1].ack()
        await until(lambda: sim.stats["acked"] == 1)
    finally:
        await _close(sim, ch)


async def test_mo_short_and_long_joined():
    sim, rec, ch = await _run()
    try:
        assert sim.inject_mo("13100000000", "1065512", "hi there") == 1
        await until(lambda: len(rec.mos) == 1)
        assert (rec.mos[0].phone, rec.mos[0].dest, rec.mos[0].text) == ("13100000000", "1065512", "hi there")
        parts = sim.inject_mo("13100000000", "1065513", LONG_CN)
        assert parts > 1
        await until(lambda: len(rec.mos) == 2)
        assert rec.mos[1].text == LONG_CN and rec.mos[1].dest == "1065513"
        # Held parts were answered at once; only the one that completed the MO waits.
        await until(lambda: sim.stats["acked"] == parts - 1)
        assert sim.queued == 2
        for m in rec.mos:
            m.ack()
        await until(lambda: sim.stats["acked"] == parts + 1)
    finally:
        await _close(sim, ch)


async def test_smg_with_a_wrong_password_is_refused_and_delivers_nothing():
    sim, rec, ch = await _run(listen_password="other")
    try:
        sim.inject_mo("13100000000", "10655", "hi")
        await until(lambda: sim.stats["back_refused"] >= 1)
        await asyncio.sleep(0.1)
        assert rec.mos == [] and sim.queued == 1
    finally:
        await _close(sim, ch)


async def test_bad_password_not_connected():
    sim, rec, ch = await _run(password="no")
    try:
        await asyncio.sleep(0.5)
        assert not ch.connected and sim.stats["auth_failures"] >= 1
        ch.send([Outbound(1, "13000000000", "waits")])
        await asyncio.sleep(0.1)
        assert rec.resolved() == 0 and ch.queued() == 1
    finally:
        await _close(sim, ch)
    assert rec.failures[1] == ("STOPPED", True)


async def test_node_busy_fails_retryable_and_slows_down():
    sim, rec, ch = await _run()
    try:
        await until(lambda: ch.connected)
        sim.flow_control_every(4)
        ch.send([Outbound(i, "13000000000", "x") for i in range(1, 21)])
        await until(lambda: rec.resolved() == 20)
        assert len(rec.failures) == 5
        assert all(f == ("SGIP:11", True) for f in rec.failures.values())
        assert ch._bucket.rate < ch._bucket.base
    finally:
        await _close(sim, ch)


async def test_other_results_fail_final_and_retry_results_add_busy_codes():
    sim, rec, ch = await _run(retry_results="6")
    try:
        await until(lambda: ch.connected)
        assert 6 in ch._busy and 11 in ch._busy
    finally:
        await _close(sim, ch)
    sim, rec, ch = await _run()
    try:
        await until(lambda: ch.connected)
        # A number the SMG cannot take (too long for the field) fails alone, final.
        ch.send([Outbound(1, "1" * 30, "x"), Outbound(2, "13000000000", "ok")])
        await until(lambda: rec.resolved() == 2)
        assert rec.failures[1] == ("ENCODE", False) and 2 in rec.sent
    finally:
        await _close(sim, ch)


async def test_link_cut_mid_window_gives_every_message_one_outcome():
    sim, rec, ch = await _run(connections=2)
    try:
        await until(lambda: sim.stats["connections"] == 2)
        sim.drop_after(10)
        ch.send([Outbound(i, "13000000000", "y") for i in range(1, 61)])
        await until(lambda: rec.resolved() == 60, timeout=10)
        assert max(rec.outcomes.values()) == 1
        assert rec.failures and all(f == ("LINK", True) for f in rec.failures.values())
        assert len(rec.sent) + len(rec.failures) == 60
        # Two links share one sequence generator: no two submits share an id.
        seqs = [s.sequence_number for s in sim.submitted]
        assert len(set(seqs)) == len(seqs)
    finally:
        await _close(sim, ch)


async def test_reconnects_after_smg_restart():
    sim, rec, ch = await _run()
    port = sim.port
    try:
        await until(lambda: ch.connected)
        await sim.stop()
        await until(lambda: not ch.connected)
        sim = SgipSimulator(port=port, accounts={LOGIN: SECRET}, report_delay=0.05)
        sim.deliver_to("127.0.0.1", ch.listen_port, LOGIN, SECRET)
        await sim.start()
        await until(lambda: ch.connected, timeout=5)
        ch.send([Outbound(1, "13000000000", "again")])
        await until(lambda: len(rec.sent) == 1 and len(rec.reports) == 1)
    finally:
        await _close(sim, ch)


async def test_smg_unbind_waits_for_held_answers():
    sim, rec, ch = await _run()
    try:
        await until(lambda: ch.connected)
        ch.send([Outbound(1, "13000000001", "a")])
        await until(lambda: len(rec.reports) == 1)
        back = sim._back
        from hongyan.protocols.sgip import Unbind
        back.transport.write(back.conn.send(Unbind(next(sim._sequences))))
        await asyncio.sleep(0.1)
        assert back.transport is not None          # not closed while the report waits
        rec.reports[0].ack()
        await until(lambda: sim.stats["acked"] == 1)
        await until(lambda: back.transport is None)  # Unbind_Resp after the answer, then closed
    finally:
        await _close(sim, ch)


def test_channel_add_sgip_from_the_cli(settings, tmp_path):
    import orjson
    from click.testing import CliRunner
    from sqlalchemy import select

    from hongyan.cli import main
    from hongyan.config import write_config
    from hongyan.store import tables
    from hongyan.store.db import make_engine

    config = tmp_path / "hongyan.toml"
    write_config(str(config), {"database_url": settings.database_url, "secret_key": settings.secret_key})
    done = CliRunner().invoke(main, ["--config", str(config), "channel", "add", "unicom", "--protocol", "sgip",
                                     "--host", "10.1.2.3", "--port", "8801", "--username", LOGIN,
                                     "--password", SECRET, "--access-code", "10655",
                                     "--option", "listen_port=9100", "--option", f"node_id={NODE}",
                                     "--option", "corp_id=12345"])
    assert done.exit_code == 0, done.output
    engine = make_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            row = conn.execute(select(tables.channels).where(tables.channels.c.name == "unicom")).one()
    finally:
        engine.dispose()
    assert row.protocol == "sgip"
    # Options arrive as text, as the runtime reads them back.
    cfg = ChannelConfig(id=row.id, name=row.name, protocol=row.protocol, host=row.host, port=row.port,
                        username=row.username, password=SECRET, options=orjson.loads(row.options))
    ch = make_channel(cfg, Recorder().events)
    assert isinstance(ch, SgipChannel) and ch.listen_port == 9100 and ch._node_id == NODE


async def test_listener_refuses_a_wrong_login_type_and_answers_userrpt():
    from hongyan.protocols.sgip import (
        Bind, BindResp, Connection, LoginType, Result, UserRpt, UserRptResp, decode, encode,
    )
    sim, rec, ch = await _run()
    try:
        # A Bind with Login Type 1 on the SP's listener: refused with Result 4, connection closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", ch.listen_port)
        writer.write(encode(Bind(SequenceNumber(1, 2, 3), LoginType.SP_TO_SMG, LOGIN, SECRET)))
        answer = decode(await reader.readexactly(29))
        assert answer == BindResp(SequenceNumber(1, 2, 3), Result.BAD_LOGIN_TYPE)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        # A proper SMG login; a UserRpt is answered at once and reaches no core event.
        conn = Connection("smg", node_id=9)
        reader, writer = await asyncio.open_connection("127.0.0.1", ch.listen_port)
        writer.write(conn.send(Bind(conn.next_sequence(), LoginType.SMG_TO_SP, LOGIN, SECRET)))
        conn.receive_data(await reader.readexactly(29))
        assert conn.events()[0].result == Result.OK
        seq = conn.next_sequence()
        writer.write(conn.send(UserRpt(seq, "10655", "8613000000000", 0)))
        conn.receive_data(await reader.readexactly(29))
        assert conn.events() == [UserRptResp(seq, Result.OK)]
        assert rec.reports == [] and rec.mos == []
        writer.close()
    finally:
        await _close(sim, ch)


async def test_listener_drops_a_connection_that_never_logs_in():
    sim, rec, ch = await _run(connect_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", ch.listen_port)
        assert await asyncio.wait_for(reader.read(), 3) == b""   # closed by the listener
        writer.close()
        sim.inject_mo("13100000000", "10655", "still served")   # a real SMG still gets in
        await until(lambda: len(rec.mos) == 1)
    finally:
        await _close(sim, ch)
