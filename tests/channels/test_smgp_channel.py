"""SmgpChannel against SmgpSimulator over real loopback TCP."""
from __future__ import annotations

import asyncio
import logging

import pytest

from hongyan.channels import make_channel, make_simulator
from hongyan.channels.base import ChannelConfig, Outbound
from hongyan.channels.sim_smgp import FAIL_STATUSES, SmgpSimulator
from hongyan.channels.smgp import SmgpChannel
from hongyan.domain.segments import plan, split_udh
from hongyan.protocols.smgp import tlv as smgp_tlv
from hongyan.protocols.smgp.connection import Connection
from hongyan.protocols.smgp.constants import LoginMode, Status
from hongyan.protocols.smgp.events import Login, LoginResp
from hongyan.protocols.smgp.tlv import Tag
from hongyan.protocols.smgp.wire import authenticator_client, timestamp_now
from tests.channels.test_cmpp_channel import LONG_CN, Recorder, until

ACCOUNT = "59012345"
SECRET = "tel-secret"
ACCESS = "10659012"


async def _run(*, password=SECRET, connections=1, fail_rate=0.0, sim=None, window=32, **options):
    if sim is None:
        sim = SmgpSimulator(port=0, accounts={ACCOUNT: SECRET}, report_delay=0.05,
                            fail_rate=fail_rate, seed=5)
        await sim.start()
    rec = Recorder()
    cfg = ChannelConfig(id=9, name="telecom", protocol="smgp", port=sim.port, username=ACCOUNT,
                        password=password, access_code=ACCESS, service_id="HELP",
                        mps=50_000, window=window, connections=connections,
                        options={"reconnect_initial": 0.2, **options})
    ch = SmgpChannel(cfg, rec.events)
    await ch.start()
    return sim, rec, ch


@pytest.fixture
async def running():
    made = []

    async def run(**kwargs):
        sim, rec, ch = await _run(**kwargs)
        made.append((sim, ch))
        return sim, rec, ch

    yield run
    for sim, ch in made:
        await ch.stop()
        await sim.stop()


def _messages(n, start=1):
    bodies = ("Your code is {i}", "您的验证码是{i}，五分钟内有效", LONG_CN)
    return [Outbound(i, f"133{i:08d}", bodies[i % 3].format(i=i)) for i in range(start, start + n)]


async def test_registered_for_channel_add_and_simulator():
    sim = make_simulator("smgp", port=0, accounts={ACCOUNT: SECRET}, report_delay=0.05)
    assert isinstance(sim, SmgpSimulator)
    cfg = ChannelConfig(id=1, name="t", protocol="smgp")
    assert isinstance(make_channel(cfg, Recorder().events), SmgpChannel)


async def test_single_and_long_submit_reported_and_acked_after_commit(running, caplog):
    caplog.set_level(logging.DEBUG, logger="hongyan.channels.smgp")
    assert len(plan(LONG_CN).chunks) == 3
    sim, rec, ch = await running()
    await until(lambda: ch.connected)
    assert not any("AuthenticatorServer" in r.getMessage() for r in caplog.records)
    ch.send([Outbound(1, "13300000001", "hello"), Outbound(2, "13300000002", LONG_CN)])
    await until(lambda: len(rec.sent) == 2)
    assert len(rec.sent[1]) == 1 and len(rec.sent[2]) == 3
    assert all(len(cid) == 20 for ids in rec.sent.values() for cid in ids)

    one, *parts = sim.submitted
    assert one.msg_format == 0 and one.msg_content == b"hello" and one.tlvs == ()
    assert one.src_term_id == ACCESS and one.service_id == "HELP" and one.need_report == 1
    assert one.dest_term_ids == ("13300000001",)
    assert len(parts) == 3
    joined = ""
    for i, s in enumerate(parts, 1):
        assert s.msg_format == 8 and smgp_tlv.get(s.tlvs, Tag.TP_UDHI) == 1
        assert smgp_tlv.get(s.tlvs, Tag.PK_TOTAL) is None
        info, body = split_udh(s.msg_content)
        assert (info.total, info.seq) == (3, i)
        joined += body.decode("utf-16-be")
    assert joined == LONG_CN

    await until(lambda: len(rec.reports) == 4)
    assert {r.carrier_id for r in rec.reports} == {c for ids in rec.sent.values() for c in ids}
    assert all(r.delivered and r.status == "DELIVRD" and r.channel_id == 9 for r in rec.reports)
    assert all(r.done_at is not None and r.phone.startswith("133") for r in rec.reports)
    # Nothing is answered until the core says the reports are committed.
    await asyncio.sleep(0.2)
    assert sim.stats["acked"] == 0
    for r in rec.reports:
        r.ack()
    await until(lambda: sim.stats["acked"] == 4)
    assert ch.queued() == 0


async def test_unacked_reports_come_again_after_reconnect(running):
    sim, rec, ch = await running()
    await until(lambda: ch.connected)
    ch.send([Outbound(1, "13300000001", "hello")])
    await until(lambda: len(rec.reports) == 1)
    first = rec.reports[0]
    # The link drops before the core committed: the gateway delivers again.
    for s in list(sim._sessions):
        s.close(abort=True)
    await until(lambda: len(rec.reports) == 2, timeout=5)
    first.ack()  # too late: the old connection is gone, nothing is written
    assert rec.reports[1].carrier_id == first.carrier_id
    rec.reports[1].ack()
    await until(lambda: sim.stats["acked"] == 1)
    assert sim.stats["reports_redelivered"] == 1


async def test_pk_tlvs_option_marks_parts(running):
    sim, rec, ch = await running(pk_tlvs="true", msg_src="SP0001", fee_type="01", priority="2")
    await until(lambda: ch.connected)
    ch.send([Outbound(1, "13300000001", LONG_CN)])
    await until(lambda: len(rec.sent) == 1)
    assert [(smgp_tlv.get(s.tlvs, Tag.PK_TOTAL), smgp_tlv.get(s.tlvs, Tag.PK_NUMBER))
            for s in sim.submitted] == [(3, 1), (3, 2), (3, 3)]
    assert all(smgp_tlv.get(s.tlvs, Tag.MSG_SRC) == "SP0001" and s.fee_type == "01"
               and s.priority == 2 for s in sim.submitted)


async def test_bad_password_never_logs_in(running):
    sim, rec, ch = await running(password="wrong", reconnect_initial=0.5)
    ch.send(_messages(1))
    await asyncio.sleep(1.5)
    assert not ch.connected
    assert 1 <= sim.stats["accepted"] <= 4
    assert sim.stats["auth_failures"] == sim.stats["accepted"]
    assert ch.queued() == 1 and not rec.outcomes
    await ch.stop()
    assert rec.failures == {1: ("STOPPED", True)}


async def test_simulator_refuses_bad_login_with_auth_status():
    sim = SmgpSimulator(port=0, accounts={ACCOUNT: SECRET})
    await sim.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        conn = Connection("client")
        ts = timestamp_now()
        writer.write(conn.send(Login(conn.next_sequence(), ACCOUNT,
                                     authenticator_client(ACCOUNT, "nope", ts),
                                     LoginMode.TRANSMIT, ts)))
        conn.receive_data(await reader.read(100))
        (resp,) = conn.events()
        assert isinstance(resp, LoginResp) and resp.status == Status.AUTH_FAILED
        assert await reader.read(100) == b""  # and the gateway hangs up
        writer.close()
    finally:
        await sim.stop()


@pytest.mark.parametrize("style", ["udh", "pk"])
async def test_long_mo_joined_before_the_core(running, style):
    sim, rec, ch = await running()
    sim.mo_style = style
    await until(lambda: ch.connected)
    assert sim.inject_mo("13300001111", ACCESS + "01", "TD") == 1
    assert sim.inject_mo("13300002222", ACCESS + "5", LONG_CN) == 3
    await until(lambda: len(rec.mos) == 2)
    got = {m.phone: m for m in rec.mos}
    assert got["13300001111"].text == "TD" and got["13300001111"].dest == ACCESS + "01"
    assert got["13300002222"].text == LONG_CN and got["13300002222"].dest == ACCESS + "5"
    # Held parts are answered at once; the completing one waits for the commit.
    await until(lambda: sim.stats["mo_acked"] == 2)
    await asyncio.sleep(0.1)
    assert sim.stats["mo_acked"] == 2
    for m in rec.mos:
        m.ack()
    await until(lambda: sim.stats["mo_acked"] == 4)
    assert sim.stats["resp_errors"] == 0


async def test_flow_control_fails_retryable_and_backs_off(running):
    sim, rec, ch = await running()
    await until(lambda: ch.connected)
    sim.flow_control_every(5)
    ch.send([Outbound(i, "13300000000", "ping") for i in range(1, 51)])
    await until(lambda: rec.resolved() == 50)
    assert set(rec.failures.values()) == {("SMGP:1", True)}
    assert len(rec.failures) == 10 and len(rec.sent) == 40
    assert ch._bucket.rate < ch._bucket.base


async def test_configured_retry_status_is_retryable_others_final(running):
    sim, rec, ch = await running(retry_statuses="75")
    await until(lambda: ch.connected)
    answers = iter([75, 47])
    sim.on_submit.append(lambda ev: next(answers, None))
    ch.send([Outbound(1, "13300000000", "a"), Outbound(2, "13300000000", "b"),
             Outbound(3, "13300000000", "c")])
    await until(lambda: rec.resolved() == 3)
    assert rec.failures == {1: ("SMGP:75", True), 2: ("SMGP:47", False)}
    assert list(rec.sent) == [3]


async def test_link_cut_mid_window_every_message_one_outcome(running):
    sim, rec, ch = await running(connections=2)
    await until(lambda: sim.stats["connections"] == 2)
    sim.drop_after(40)
    batch = _messages(300)
    ch.send(batch)
    await until(lambda: rec.resolved() == 300, timeout=10)
    assert set(rec.outcomes) == {m.message_id for m in batch}
    assert max(rec.outcomes.values()) == 1
    assert not set(rec.sent) & set(rec.failures)
    assert rec.failures and all(f == ("LINK", True) for f in rec.failures.values())
    assert ch.queued() == 0
    wanted = {c for ids in rec.sent.values() for c in ids}
    await until(lambda: wanted <= {r.carrier_id for r in rec.reports}, timeout=10)


async def test_window_is_respected():
    sim = SmgpSimulator(port=0, accounts={ACCOUNT: SECRET}, report_delay=0.02, resp_delay=0.03)
    await sim.start()
    _, rec, ch = await _run(sim=sim, connections=2, window=8)
    try:
        ch.send([Outbound(i, "13300000000", "window") for i in range(200)])
        await until(lambda: rec.resolved() == 200)
        assert len(rec.sent) == 200
        assert 4 <= sim.stats["max_inflight"] <= 8
    finally:
        await ch.stop()
        await sim.stop()


async def test_failure_reports_one_fate_per_message(running):
    sim, rec, ch = await running(fail_rate=1.0)
    ch.send(_messages(30))
    await until(lambda: rec.resolved() == 30)
    total = sum(len(ids) for ids in rec.sent.values())
    await until(lambda: len(rec.reports) == total)
    assert all(not r.delivered and r.status in FAIL_STATUSES for r in rec.reports)
    status = {r.carrier_id: r.status for r in rec.reports}
    for ids in rec.sent.values():
        assert len({status[c] for c in ids}) == 1


async def test_reconnects_after_simulator_restart():
    sim, rec, ch = await _run(connections=2)
    port = sim.port
    try:
        await until(lambda: ch.connected)
        await sim.stop()
        await until(lambda: not ch.connected)
        sim = SmgpSimulator(port=port, accounts={ACCOUNT: SECRET}, report_delay=0.05)
        await sim.start()
        await until(lambda: sim.stats["connections"] == 2, timeout=5)
        ch.send(_messages(20))
        await until(lambda: len(rec.sent) == 20)
        assert not rec.failures
    finally:
        await ch.stop()
        await sim.stop()


async def test_active_test_keeps_idle_link_and_exit_on_stop(running):
    sim, rec, ch = await running(active_test_interval=0.1)
    await until(lambda: ch.connected)
    await asyncio.sleep(0.6)
    assert ch.connected and sim.stats["accepted"] == 1
    # A gateway that stops answering is left after three Active_Tests, and logged in to again.
    sim.answer_active_test = False
    await until(lambda: sim.stats["accepted"] >= 2, timeout=3)
    sim.answer_active_test = True
    await until(lambda: ch.connected)
    await ch.stop()
    await until(lambda: sim.stats["connections"] == 0)
    assert not ch.connected


async def test_unencodable_message_fails_alone(running):
    sim, rec, ch = await running()
    await until(lambda: ch.connected)
    ch.send([Outbound(1, "13300000000", ""), Outbound(2, "1" * 30, "number too long"),
             Outbound(3, "13300000000", "fine")])
    await until(lambda: rec.resolved() == 3)
    assert rec.failures == {1: ("ENCODE", False), 2: ("ENCODE", False)}
    assert list(rec.sent) == [3]
    assert ch.connected and sim.stats["accepted"] == 1


@pytest.mark.parametrize("options, match", [
    ({"retry_statuses": "busy"}, "retry_statuses"),
    ({"priority": "7"}, "priority must be 0..3"),
    ({"msg_src": "SP-CODE-TOO-LONG"}, "MsgSrc|0x0010"),
    ({"fee_type": "001"}, "FeeType"),
    ({"receive_connections": "many"}, "receive_connections"),
    ({"pk_tlvs": "sometimes"}, "pk_tlvs must be true or false"),
])
def test_bad_options_are_refused_when_the_channel_is_made(options, match):
    with pytest.raises(ValueError, match=match):
        SmgpChannel(ChannelConfig(id=1, name="t", protocol="smgp", options=options),
                    Recorder().events)


async def test_separate_receive_connection(running):
    sim, rec, ch = await running(connections=2, receive_connections=1)
    await until(lambda: sim.stats["connections"] == 3)
    modes = sorted(s.login_mode for s in sim._sessions)
    assert modes == [LoginMode.SEND, LoginMode.SEND, LoginMode.RECEIVE]
    ch.send(_messages(30))
    await until(lambda: rec.resolved() == 30)
    assert not rec.failures and sim.stats["refused"] == 0
    total = sum(len(ids) for ids in rec.sent.values())
    await until(lambda: len(rec.reports) == total)
    # Reports came on the receive-only connection, and are answered on it.
    (receiver,) = [s for s in sim._sessions if s.login_mode == LoginMode.RECEIVE]
    assert len(receiver.awaiting) == total
    for r in rec.reports:
        r.ack()
    await until(lambda: sim.stats["acked"] == total)
    assert sim.inject_mo("13300001111", ACCESS, "TD") == 1
    await until(lambda: len(rec.mos) == 1)


async def test_whole_path_over_smgp_send_report_and_mo(settings):
    """HTTP accept -> queue -> SMGP -> report committed -> Deliver_Resp; MO routed to the account."""
    import httpx
    from sqlalchemy import insert, select

    from hongyan.app import create_app
    from hongyan.core.secrets import Cipher
    from hongyan.runtime import Runtime
    from hongyan.store import tables
    from hongyan.store.db import make_engine, migrate
    from tests.e2e.conftest import Callbacks, serve_asgi, stop_asgi
    from tests.helpers import free_port, seed

    sim = SmgpSimulator(port=0, accounts={ACCOUNT: SECRET}, report_delay=0.05)
    await sim.start()
    cb = Callbacks()
    cb_port = free_port()
    cb_server = await serve_asgi(cb, cb_port)
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    cipher = Cipher(settings.secret_key)
    user = seed(engine, cipher, balance=1000, report_url=f"http://127.0.0.1:{cb_port}/r")
    with engine.begin() as conn:
        conn.execute(insert(tables.channels).values(
            name="telecom", protocol="smgp", host="127.0.0.1", port=sim.port, username=ACCOUNT,
            secret_enc=cipher.encrypt(SECRET), access_code=ACCESS, service_id="HELP", mps=1000,
            window=16, connections=2, enabled=True, is_default=True, options="{}"))
    engine.dispose()
    settings.http_port = free_port()
    runtime = Runtime(settings)
    server = await serve_asgi(create_app(settings, runtime), settings.http_port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}",
                                     headers={"Authorization": f"Bearer {user['key']}"}) as client:
            r = await client.post("/v1/messages", json={
                "to": ["13300138000", "18912345678"], "content": "【鸿雁】您的验证码是 1234，" + "长" * 60})
            assert r.status_code == 200, r.text
            ids = {m["id"] for m in r.json()["messages"]}
            await until(lambda: ids <= {i["message_id"] for i in cb.reports()}, timeout=15)
            assert all(i["status"] == "delivered" and i["carrier_status"] == "DELIVRD"
                       for i in cb.reports())
            # Every report part was answered, after it was committed.
            await until(lambda: sim.stats["acked"] == 4)
            assert sim.stats["submits"] == 4
            with runtime.engine.connect() as conn:
                states = {row.state for row in conn.execute(select(tables.messages.c.state))}
            assert states == {"delivered"}

            # channel access code + account extension 12 + request extno 7
            assert sim.inject_mo("13300138000", ACCESS + "127", LONG_CN) == 3
            await until(lambda: any("mo_id" in i for i in cb.items.values()), timeout=15)
            mo = next(i for i in cb.items.values() if "mo_id" in i)
            assert mo["from"] == "13300138000" and mo["extno"] == "7" and mo["content"] == LONG_CN
            await until(lambda: sim.stats["mo_acked"] == 3)
    finally:
        await stop_asgi(server)
        await stop_asgi(cb_server)
        await sim.stop()


def _add_channel_from_cli(settings, tmp_path, *args):
    """``hongyan channel add`` as an operator types it; the channel as the runtime reads it back."""
    import orjson
    from click.testing import CliRunner
    from sqlalchemy import select

    from hongyan.cli import main
    from hongyan.config import write_config
    from hongyan.store import tables
    from hongyan.store.db import make_engine

    config = tmp_path / "hongyan.toml"
    write_config(str(config), {"database_url": settings.database_url, "secret_key": settings.secret_key})
    done = CliRunner().invoke(main, ["--config", str(config), "channel", "add", *args])
    assert done.exit_code == 0, done.output
    engine = make_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            row = conn.execute(select(tables.channels).where(tables.channels.c.name == args[0])).one()
    finally:
        engine.dispose()
    return ChannelConfig(id=row.id, name=row.name, protocol=row.protocol, host=row.host, port=row.port,
                         username=row.username, password="x", access_code=row.access_code,
                         connections=row.connections,
                         options=orjson.loads(row.options))


def test_channel_add_smgp_from_the_cli(settings, tmp_path):
    cfg = _add_channel_from_cli(settings, tmp_path, "telecom", "--protocol", "smgp", "--host", "10.1.2.3",
                                "--port", "8890", "--username", ACCOUNT, "--password", SECRET,
                                "--access-code", ACCESS, "--connections", "2",
                                "--option", "receive_connections=1", "--option", "pk_tlvs=true",
                                "--option", "retry_statuses=75,76", "--option", "priority=1")
    assert cfg.protocol == "smgp"
    ch = make_channel(cfg, Recorder().events)
    assert isinstance(ch, SmgpChannel) and ch._pk_tlvs
    assert [link.mode for link in ch._links] == [LoginMode.SEND, LoginMode.SEND, LoginMode.RECEIVE]
    assert ch._retry_statuses == {Status.SYSTEM_BUSY, 75, 76}


async def test_unreadable_report_is_refused_and_the_link_stays(running):
    from hongyan.protocols.smgp.events import Deliver
    sim, rec, ch = await running()
    await until(lambda: ch.connected)
    (session,) = list(sim._sessions)
    pdu = bytearray(session.conn.send(Deliver(session.conn.next_sequence(), bytes(10), "13300000000",
                                              ACCESS, msg_content=b"this is no status report")))
    pdu[12 + 10] = 1  # IsReport: 1, but the content is not a report
    session.write(bytes(pdu))
    await until(lambda: sim.stats["resp_errors"] == 1)
    assert not rec.reports and not rec.mos and ch.connected
    ch.send([Outbound(1, "13300000000", "still fine")])
    await until(lambda: len(rec.reports) == 1)
    assert sim.stats["accepted"] == 1
