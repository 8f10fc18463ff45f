"""pycmpp (PyPI, a CMPP 2.0 SP client) against Hongyan's CMPP 2.0 gateway simulator.

pycmpp builds every CONNECT, SUBMIT and ACTIVE_TEST here and reads the
answers with its own response classes. It has no CMPP_DELIVER support, so
the status reports are read by the specification's layout (cmpp_peers).
"""
from __future__ import annotations

import asyncio
import hashlib
import struct

import pytest

from hongyan.channels.simulator import CmppSimulator
from tests.interop.cmpp_peers import (
    CMPP_ACTIVE_TEST_RESP, CMPP_CONNECT_RESP, CMPP_DELIVER, CMPP_SUBMIT_RESP, Wire, concat_parts,
    deliver_resp, read_deliver,
)
from tests.interop.conftest import until

pycmpp = pytest.importorskip("pycmpp", reason="pycmpp is not installed (pip install -e '.[test]')")
import pycmpp.request  # noqa: E402
import pycmpp.response  # noqa: E402

SP_ID, SECRET = "901234", "sim-secret"
LONG_CN = "您好，这是一条很长的中文测试短信，用来检查长短信的拆分和重组是否正确。" * 4


@pytest.fixture
async def sim():
    s = CmppSimulator(port=0, accounts={SP_ID: SECRET}, report_delay=0.05, seed=11)
    s.captured = []
    s.on_submit.append(lambda ev: s.captured.append(ev) and None)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def cmpp20(monkeypatch):
    # pycmpp 2.0.2 puts 0x21 in CONNECT's Version while it speaks the 2.0 layouts
    # (test_stock_version_is_0x21_and_refused); the CONNECT is otherwise its own.
    monkeypatch.setattr(pycmpp.request, "CMPP_VERSION", 0x20)


def login(wire: Wire, secret: str = SECRET):
    req = pycmpp.request.ConnectRequestInstance()
    wire.send(req.create(SP_ID, secret))
    _, _, pdu = wire.read()
    resp = pycmpp.response.ConnectResponseInstance()
    resp.resolve(pdu)
    return req, resp


async def test_stock_version_is_0x21_and_refused(sim):
    """A deviation of pycmpp's: its CONNECT asks for version 0x21, which no CMPP
    2.0 document defines. A 2.0-only gateway answers Status 4 (version too high)."""
    wire = Wire(sim.port)
    try:
        req = pycmpp.request.ConnectRequestInstance()
        raw = req.create(SP_ID, SECRET)
        assert len(raw) == 39 and raw[12 + 6 + 16] == 0x21
        wire.send(raw)
        command, _, pdu = await asyncio.to_thread(wire.read)
        resp = pycmpp.response.ConnectResponseInstance()
        resp.resolve(pdu)
        assert command == CMPP_CONNECT_RESP and resp.status == 4 and resp.version == 0x20
        assert await asyncio.to_thread(wire.closed_by_peer)
    finally:
        wire.close()


async def test_connect_authenticator_checks_out(sim, cmpp20):
    wire = Wire(sim.port)
    try:
        req, resp = await asyncio.to_thread(login, wire)
        assert resp.status == 0 and resp.version == 0x20
        # AuthenticatorISMG = MD5(Status + AuthenticatorSource + shared secret), Status one octet in 2.0.
        assert resp.authenticator_ISMG == hashlib.md5(b"\x00" + req.auth_source + SECRET.encode()).digest()
        other = Wire(sim.port)
        try:
            _, bad = await asyncio.to_thread(login, other, "wrong")
        finally:
            other.close()
        assert bad.status == 3 and sim.stats["auth_failures"] == 1
    finally:
        wire.close()


async def test_submit_report_answered(sim, cmpp20):
    wire = Wire(sim.port)
    try:
        await asyncio.to_thread(login, wire)
        submit = pycmpp.request.SubmitRequestInstance()
        wire.send(submit.create(msg_src=SP_ID, msg_content="你好，鸿雁", dest_terminal_id=["13800138000"],
                                src_id="106901", registered_delivery=1, service_id="HELP"))
        answer = pycmpp.response.SubmitResponseInstance()
        answer.resolve(await asyncio.to_thread(wire.read_until, CMPP_SUBMIT_RESP))
        assert answer.seq_id == submit.seq_id and answer.status == 0 and answer.msg_id

        (ev,) = sim.captured
        assert ev.dest_terminal_ids == ("13800138000",) and ev.src_id == "106901"
        assert ev.msg_fmt == 8 and ev.msg_content.decode("utf-16-be") == "你好，鸿雁"
        assert ev.service_id == "HELP" and ev.fee_terminal_id == "" and ev.msg_src == SP_ID

        report = read_deliver(await asyncio.to_thread(wire.read_until, CMPP_DELIVER))
        assert report.registered_delivery == 1 and report.report_msg_id == answer.msg_id
        assert report.stat == "DELIVRD" and report.dest_terminal_id == "13800138000"
        assert report.dest_id == "106901" and len(report.done_time) == 10
        session = next(iter(sim._sessions))  # noqa: SLF001
        assert len(session.awaiting) == 1
        wire.send(deliver_resp(report))
        await until(lambda: not session.awaiting, what="report answered at the simulator")
    finally:
        wire.close()


async def test_long_sms_by_pycmpp_splitter(sim, cmpp20):
    """pycmpp's own Cmpp.submit splits a long text into 64-character UCS2 parts with UDH."""
    client = pycmpp.Cmpp(host="127.0.0.1", port=sim.port, sp_id=SP_ID, sp_secret=SECRET, src_id="106901",
                         delivery=1, client_heartbeat=False)
    await asyncio.to_thread(client.connect)
    wire = Wire(0, sock=client.so)
    try:
        await asyncio.to_thread(client.auth)
        command, _, pdu = await asyncio.to_thread(wire.read)
        assert command == CMPP_CONNECT_RESP and pdu[12] == 0
        await asyncio.to_thread(client.submit, LONG_CN, ["13800138000"])
        resps = [await asyncio.to_thread(wire.read_until, CMPP_SUBMIT_RESP) for _ in range(3)]
        assert all(struct.unpack(">QB", r[12:21])[1] == 0 for r in resps)

        assert len(sim.captured) == 3
        assert [(e.pk_total, e.pk_number, e.tp_udhi) for e in sim.captured] == [(3, 1, 1), (3, 2, 1), (3, 3, 1)]
        _, order, joined = concat_parts([e.msg_content for e in sim.captured])
        assert order == [(3, 1), (3, 2), (3, 3)] and joined.decode("utf-16-be") == LONG_CN
        # pycmpp leaves Src_Id empty in Cmpp.submit (it never passes its src_id); the gateway takes it.
        assert {e.src_id for e in sim.captured} == {""}

        reports = [read_deliver(await asyncio.to_thread(wire.read_until, CMPP_DELIVER)) for _ in range(3)]
        ids = {struct.unpack(">Q", r[12:20])[0] for r in resps}
        assert {r.report_msg_id for r in reports} == ids
        for r in reports:
            wire.send(deliver_resp(r))
    finally:
        client.close()


async def test_active_test_both_ways(sim, cmpp20):
    wire = Wire(sim.port)
    try:
        await asyncio.to_thread(login, wire)
        wire.send(pycmpp.request.ActiveTestRequestInstance().create())
        pdu = await asyncio.to_thread(wire.read_until, CMPP_ACTIVE_TEST_RESP)
        assert len(pdu) == 13 and pdu[12] == 0          # Reserved, one octet
    finally:
        wire.close()


async def test_pycmpp_active_test_resp_is_malformed(sim, cmpp20):
    """A pycmpp bug: ActiveTestResponseInstance writes Reserved as the four ASCII
    bytes '0x00' while its Total_Length says 13, so three stray bytes follow the
    PDU and the gateway reads them as the start of the next header."""
    raw = pycmpp.response.ActiveTestResponseInstance().create(7)
    assert raw == struct.pack(">III", 13, CMPP_ACTIVE_TEST_RESP, 7) + b"0x00"
    wire = Wire(sim.port)
    try:
        await asyncio.to_thread(login, wire)
        wire.send(raw)
        submit = pycmpp.request.SubmitRequestInstance().create(
            msg_src=SP_ID, msg_content="after the stray bytes", dest_terminal_id=["13800138000"])
        wire.send(submit)
        # The gateway reads 'x00' plus the SUBMIT's first byte as a Total_Length of
        # 0x78303000: out of range, so it drops the link instead of misreading the SUBMIT.
        assert await asyncio.to_thread(wire.closed_by_peer)
        assert sim.captured == []
    finally:
        wire.close()
