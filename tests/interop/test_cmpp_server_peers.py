"""The PyPI CMPP clients as customers of Hongyan's CMPP server, through the whole runtime.

pycmpp (CMPP 2.0) and cmppy (CMPP 3.0) log in with the account's username
and API secret, submit, and (pycmpp) get the status report and an MO back on
their session, after Hongyan has sent the message on to the simulated carrier.
"""
from __future__ import annotations

import asyncio
import hashlib
import struct

import pytest
from sqlalchemy import select

from hongyan.servers.cmpp import read_client_ref
from hongyan.store.tables import submissions
from tests.interop.cmpp_peers import (
    CMPP_CONNECT_RESP, CMPP_DELIVER, CMPP_SUBMIT_RESP, Wire, deliver_resp, read_deliver,
)
from tests.interop.conftest import until
from tests.interop.runtime_stack import ACCESS_CODE, EXTENSION, SIGNED, USERNAME, Stack

pycmpp = pytest.importorskip("pycmpp", reason="pycmpp is not installed (pip install -e '.[test]')")
import pycmpp.request  # noqa: E402
import pycmpp.response  # noqa: E402

LONG_CN = SIGNED + "这是一条很长的中文测试短信，用来检查长短信的拆分和重组是否正确。" * 4


@pytest.fixture
async def stack(settings):
    s = await Stack(settings).start()
    yield s
    await s.stop()


def submission(engine, msg_id: int):
    """The submission a SUBMIT_RESP's Msg_Id belongs to (its client reference holds it,
    with ``;rd=0`` when no report was asked for)."""
    with engine.connect() as conn:
        rows = conn.execute(select(submissions)).all()
    return next((r for r in rows if msg_id in (read_client_ref(r.client_ref) or ([],))[0]), None)


def login(wire: Wire, secret: str):
    req = pycmpp.request.ConnectRequestInstance()
    wire.send(req.create(USERNAME, secret))
    _, _, pdu = wire.read()
    resp = pycmpp.response.ConnectResponseInstance()
    resp.resolve(pdu)
    return req, resp


async def test_pycmpp_logs_in_with_its_0x21_and_gets_2_0(stack):
    """pycmpp asks for version 0x21; the server serves the 2.0 layouts it speaks."""
    wire = Wire(stack.port("cmpp"))
    try:
        req, resp = await asyncio.to_thread(login, wire, stack.user["secret"])
        assert resp.status == 0 and resp.version == 0x20
        assert resp.authenticator_ISMG == hashlib.md5(b"\x00" + req.auth_source
                                                      + stack.user["secret"].encode()).digest()
        other = Wire(stack.port("cmpp"))
        try:
            _, bad = await asyncio.to_thread(login, other, "not-the-secret")
        finally:
            other.close()
        assert bad.status == 3
    finally:
        wire.close()


async def test_pycmpp_submit_report_and_mo(stack):
    wire = Wire(stack.port("cmpp"))
    try:
        await asyncio.to_thread(login, wire, stack.user["secret"])
        submit = pycmpp.request.SubmitRequestInstance()
        text = SIGNED + "您的验证码是 1234"
        wire.send(submit.create(msg_src=USERNAME, msg_content=text, dest_terminal_id=["13800138000"],
                                src_id=EXTENSION + "7", registered_delivery=1))
        answer = pycmpp.response.SubmitResponseInstance()
        answer.resolve(await asyncio.to_thread(wire.read_until, CMPP_SUBMIT_RESP))
        assert answer.seq_id == submit.seq_id and answer.status == 0 and answer.msg_id
        sub = submission(stack.engine, answer.msg_id)
        assert sub.content == text and sub.extno == "7" and sub.dialect == "cmpp"

        # The message went to the simulated carrier; its report comes back as DELIVER.
        report = read_deliver(await asyncio.to_thread(wire.read_until, CMPP_DELIVER))
        assert report.registered_delivery == 1 and report.report_msg_id == answer.msg_id
        assert report.stat == "DELIVRD" and report.dest_terminal_id == "13800138000"
        wire.send(deliver_resp(report))

        await until(lambda: stack.sim.stats["connections"] > 0, what="carrier channel bound")
        assert stack.sim.inject_mo("13800138000", ACCESS_CODE + EXTENSION + "7", "回复 好的") == 1
        mo = read_deliver(await asyncio.to_thread(wire.read_until, CMPP_DELIVER))
        assert mo.registered_delivery == 0 and mo.src_terminal_id == "13800138000"
        assert mo.dest_id == ACCESS_CODE + EXTENSION + "7"
        assert mo.msg_fmt == 8 and mo.content.decode("utf-16-be") == "回复 好的"
        wire.send(deliver_resp(mo))
    finally:
        wire.close()


async def test_pycmpp_long_sms_is_one_submission(stack):
    client = pycmpp.Cmpp(host="127.0.0.1", port=stack.port("cmpp"), sp_id=USERNAME,
                         sp_secret=stack.user["secret"], src_id="", delivery=1, client_heartbeat=False)
    await asyncio.to_thread(client.connect)
    wire = Wire(0, sock=client.so)
    try:
        await asyncio.to_thread(client.auth)
        command, _, pdu = await asyncio.to_thread(wire.read)
        assert command == CMPP_CONNECT_RESP and pdu[12] == 0
        await asyncio.to_thread(client.submit, LONG_CN, ["13800138000"])
        resps = [await asyncio.to_thread(wire.read_until, CMPP_SUBMIT_RESP) for _ in range(3)]
        ids = sorted(struct.unpack(">Q", r[12:20])[0] for r in resps)
        # Every part has its own Msg_Id, as a gateway answers every SUBMIT; they follow one another.
        assert [r[20] for r in resps] == [0, 0, 0] and ids == list(range(ids[0], ids[0] + 3))
        with stack.engine.connect() as conn:
            sub = conn.execute(select(submissions).where(submissions.c.client_ref == f"{ids[0]}/3")).one()
        # pycmpp cuts at 64 characters; Hongyan joins the parts and sends (and bills)
        # the text cut its own way, 67 UCS2 characters a part: 132 characters, two parts.
        assert sub.content == LONG_CN and sub.recipients == 1 and sub.parts == 2
        await until(lambda: stack.sim.stats["submits"] == 2, what="two parts at the carrier")
        # The report goes out once per part pycmpp submitted, each naming that part's Msg_Id.
        reports = [read_deliver(await asyncio.to_thread(wire.read_until, CMPP_DELIVER)) for _ in range(3)]
        assert sorted(r.report_msg_id for r in reports) == ids and {r.stat for r in reports} == {"DELIVRD"}
        for report in reports:
            wire.send(deliver_resp(report))
    finally:
        client.close()


async def test_cmppy_3_0_connect_submit_terminate(stack, capsys):
    """cmppy opens a 3.0 session, submits once and terminates, all in request()."""
    cmppy = pytest.importorskip("cmppy", reason="cmppy is not installed (pip install -e '.[test]')")
    client = cmppy.Cmppy("127.0.0.1", stack.port("cmpp"), USERNAME, stack.user["secret"])
    req = cmppy.SubmitReq(msg_src=USERNAME, msg_content=SIGNED + "cmppy 你好", src_id=EXTENSION + "8",
                          dest_terminal_id=["13800138001"], service_id="HELP", feecode="000000")
    res = await asyncio.to_thread(client.request, req)
    assert res is not None, "cmppy did not get a Status 0 CONNECT_RESP"
    assert res.result == 0 and res.msg_id
    sub = submission(stack.engine, res.msg_id)
    assert sub.content == SIGNED + "cmppy 你好" and sub.extno == "8"
    # cmppy prints each PDU it writes and reads: CONNECT asked for 3.0 (Version 0x30).
    written = [line[len("Write:b'"):-1] for line in capsys.readouterr().out.splitlines()
               if line.startswith("Write:")]
    assert bytes.fromhex(written[0])[12 + 6 + 16] == 0x30
