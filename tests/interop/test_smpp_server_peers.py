"""The PyPI and npm SMPP clients as customers of Hongyan's SMPP server, through the whole runtime.

smpplib, aiosmpplib and node-smpp bind with the account's username and the
first eight characters of its API secret, submit, and get the delivery
receipt and an MO back on their session after Hongyan has sent the message
on to the simulated carrier.
"""
from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import select

from hongyan.store.tables import submissions
from tests.interop.conftest import until
from tests.interop.node_peer import NodeScript
from tests.interop.runtime_stack import ACCESS_CODE, EXTENSION, SIGNED, USERNAME, Stack
from tests.interop.smpp_peers import SyncEsme, read_receipt, smpplib, split_concat

LONG_CN = SIGNED + "这是一条很长的中文测试短信，用来检查长短信的拆分和重组是否正确。" * 4


@pytest.fixture
async def stack(settings):
    s = await Stack(settings, mo_dialect="smpp").start()
    s.password = s.user["secret"][:8]
    yield s
    await s.stop()


def submission(engine, submission_id: str):
    with engine.connect() as conn:
        return conn.execute(select(submissions).where(submissions.c.id == int(submission_id))).one_or_none()


@pytest.fixture
async def esme(stack):
    e = SyncEsme(stack.port("smpp"))
    yield e
    await asyncio.to_thread(e.close)


# -- smpplib --------------------------------------------------------------------------

async def test_smpplib_submit_receipt_and_mo(stack, esme):
    resp = await asyncio.to_thread(esme.bind, USERNAME, stack.password)
    assert resp.status == 0 and resp.system_id == b"HONGYAN"
    text = SIGNED + "您的验证码是 1234"
    pdus = await asyncio.to_thread(esme.submit, text, "13800138000", EXTENSION + "5")
    assert len(pdus) == 1 and pdus[0].data_coding == smpplib.consts.SMPP_ENCODING_ISO10646
    await asyncio.to_thread(esme.read_until, lambda: esme.responses and esme.delivered, 10)
    (answer,) = esme.responses
    assert answer.status == 0
    sub = submission(stack.engine, answer.message_id.decode())
    assert sub.content == text and sub.extno == "5" and sub.dialect == "smpp"

    (receipt,) = esme.delivered
    assert receipt.esm_class == 0x04 and receipt.receipted_message_id == answer.message_id
    fields = read_receipt(receipt.short_message)
    assert fields["id"] == answer.message_id.decode() and fields["stat"] == "DELIVRD"

    await until(lambda: stack.sim.stats["connections"] > 0, what="carrier channel bound")
    assert stack.sim.inject_mo("13900001111", ACCESS_CODE + EXTENSION + "5", "回复 好的") == 1
    await asyncio.to_thread(esme.read_until, lambda: len(esme.delivered) == 2, 10)
    mo = esme.delivered[1]
    assert mo.esm_class == 0 and mo.data_coding == 8 and mo.short_message.decode("utf-16-be") == "回复 好的"
    assert (mo.source_addr, mo.destination_addr) == (b"13900001111", (ACCESS_CODE + EXTENSION + "5").encode())


async def test_smpplib_long_sms_by_udh_is_one_submission(stack, esme):
    await asyncio.to_thread(esme.bind, USERNAME, stack.password)
    pdus = await asyncio.to_thread(esme.submit, LONG_CN, "13800138000", EXTENSION)
    # 132 characters in UCS2: smpplib cuts 134-octet parts, two of them.
    assert len(pdus) == 2 and all(split_concat(p.short_message)[1] == 2 for p in pdus)
    await asyncio.to_thread(esme.read_until, lambda: len(esme.responses) == 2 and len(esme.delivered) == 2, 10)
    assert {r.status for r in esme.responses} == {0}
    # The part that completes the message is answered with the submission id, the
    # earlier one with an id of its own; a receipt comes back for each.
    first, last = esme.responses
    sub = submission(stack.engine, last.message_id.decode())
    assert sub.content == LONG_CN and sub.recipients == 1 and sub.parts == 2
    assert first.message_id != last.message_id
    assert [r.receipted_message_id for r in esme.delivered] == [first.message_id, last.message_id]


async def test_smpplib_wrong_password_refused(stack, esme):
    with pytest.raises(smpplib.exceptions.PDUError) as refused:
        await asyncio.to_thread(esme.bind, USERNAME, "wrong!!!")
    assert refused.value.args[1] in (smpplib.consts.SMPP_ESME_RINVPASWD, smpplib.consts.SMPP_ESME_RBINDFAIL)


# -- aiosmpplib ----------------------------------------------------------------------

@pytest.fixture
async def aio_esme(stack):
    aiosmpplib = pytest.importorskip("aiosmpplib", reason="aiosmpplib is not installed (pip install -e '.[test]')")
    from tests.interop.test_aiosmpplib_simulator import Hook

    hook = Hook()
    e = aiosmpplib.ESME(smsc_host="127.0.0.1", smsc_port=stack.port("smpp"), system_id=USERNAME,
                        password=stack.password, hook=hook, log_level="WARNING", socket_timeout=5.0,
                        enquire_link_interval=30.0)
    e.hook_, e.lib = hook, aiosmpplib
    task = asyncio.create_task(e.start())
    await until(lambda: e.session_state == aiosmpplib.SmppSessionState.BOUND_TRX, what="aiosmpplib bound")
    yield e
    if not task.done():
        await asyncio.wait_for(e.stop(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def aio_submit(e, log_id: str, **kw):
    lib = e.lib
    return e.broker.enqueue(lib.SubmitSm(short_message=LONG_CN, source=lib.PhoneNumber(EXTENSION),
                                         destination=lib.PhoneNumber("13800138000"), log_id=log_id, **kw))


async def test_aiosmpplib_payload_receipt_correlated(stack, aio_esme):
    lib, hook = aio_esme.lib, aio_esme.hook_
    await aio_submit(aio_esme, "a-1")                 # long text as message_payload, aiosmpplib's default
    await until(lambda: hook.of(lib.DeliverSm), timeout=10, what="receipt")
    (resp,) = hook.of(lib.SubmitSmResp)
    assert resp.command_status == lib.SmppCommandStatus.ESME_ROK
    assert submission(stack.engine, resp.message_id).content == LONG_CN
    (receipt,) = hook.of(lib.DeliverSm)
    assert receipt.is_receipt() and receipt.log_id == "a-1"
    assert receipt.parse_receipt()["stat"] == "DELIVRD"


async def test_aiosmpplib_udh_receipt_correlated(stack, aio_esme):
    """aiosmpplib holds a long message's receipt until every part has its own: the
    server sends one per submit_sm, each with that part's message_id."""
    lib, hook = aio_esme.lib, aio_esme.hook_
    await aio_submit(aio_esme, "a-2", esm_class=0x40, auto_message_payload=False)
    await until(lambda: hook.of(lib.DeliverSm), timeout=10, what="receipt at the application")
    # On the wire: two submit_sm_resp and two receipts, one for each id.
    ids = [p[16:].split(b"\0", 1)[0].decode() for p in hook.pdus if p[4:8] == b"\x80\x00\x00\x04"]
    assert len(ids) == 2 and submission(stack.engine, ids[-1]).content == LONG_CN
    receipts = [p for p in hook.pdus if p[4:8] == b"\x00\x00\x00\x05"]
    assert [f"id:{i} ".encode() in r for i, r in zip(ids, receipts)] == [True, True]
    assert [r.log_id for r in hook.of(lib.DeliverSm)] == ["a-2"]


# -- node-smpp -----------------------------------------------------------------------

@pytest.fixture
async def node_esme(stack, node_modules):
    script = NodeScript(node_modules, "esme.js", str(stack.port("smpp")), USERNAME, stack.password)
    bound = await script.start("bound")
    assert bound["status"] == 0 and bound["system_id"] == "HONGYAN"
    yield script
    await script.stop()


async def test_node_submit_receipt_and_mo(stack, node_esme):
    text = SIGNED + "来自 node 的短信"
    node_esme.send(cmd="submit", ref=1, dest="13800138000", source=EXTENSION + "6", text=text)
    await until(lambda: node_esme.of("submit_sm_resp") and node_esme.of("deliver_sm"), timeout=10,
                what="answer and receipt")
    (resp,) = node_esme.of("submit_sm_resp")
    assert resp["status"] == 0
    sub = submission(stack.engine, resp["message_id"])
    assert sub.content == text and sub.extno == "6"
    (receipt,) = node_esme.of("deliver_sm")
    assert receipt["pdu"]["esm_class"] == 0x04 and receipt["pdu"]["receipted_message_id"] == resp["message_id"]
    assert read_receipt(receipt["pdu"]["short_message"]["message"].encode("ascii"))["stat"] == "DELIVRD"

    await until(lambda: stack.sim.stats["connections"] > 0, what="carrier channel bound")
    reply = "回复：" + "好" * 80                      # long: two UDH parts from the carrier
    assert stack.sim.inject_mo("13900002222", ACCESS_CODE + EXTENSION + "6", reply) == 2
    await until(lambda: len(node_esme.of("deliver_sm")) == 3, timeout=10, what="both MO parts at node")
    mos = [d["pdu"] for d in node_esme.of("deliver_sm")[1:]]
    assert {(m["source_addr"], m["destination_addr"], m["esm_class"], m["data_coding"]) for m in mos} == {
        ("13900002222", ACCESS_CODE + EXTENSION + "6", 0x40, 8)}
    # node-smpp splits off the UDH as information elements: 00 03 ref total seq.
    parts = sorted((m["short_message"]["udh"][0][-2:], m["short_message"]["message"]) for m in mos)
    assert [p[0] for p in parts] == ["01", "02"] and "".join(t for _, t in parts) == reply


async def test_node_gsm_text_labelled_ia5(stack, node_esme):
    """node-smpp encodes GSM-alphabet text with the GSM table but labels it data_coding 1
    (IA5/ASCII), so '@' and '_' leave as 0x00 and 0x11. Those controls mean nothing in
    IA5 text, so Hongyan reads such a message as GSM septets; with data_coding 0 it is
    GSM anyway."""
    text = "mail me@home_now"
    node_esme.send(cmd="submit", ref=1, dest="13800138000", text=text)
    node_esme.send(cmd="submit", ref=2, dest="13800138000", text=text, data_coding=0)
    await until(lambda: len(node_esme.of("submit_sm_resp")) == 2 and len(node_esme.of("submit_sm_sent")) == 2,
                what="both answered")
    sent = {e["ref"]: e for e in node_esme.of("submit_sm_sent")}
    gsm = "6d61696c206d6500686f6d65116e6f77"                  # GSM 03.38 septets, one an octet
    assert sent[1]["data_coding"] == 1 and gsm in sent[1]["bytes"]
    assert sent[2]["data_coding"] == 0 and gsm in sent[2]["bytes"]
    resp = {e["ref"]: e for e in node_esme.of("submit_sm_resp")}
    assert resp[1]["status"] == resp[2]["status"] == 0
    assert submission(stack.engine, resp[1]["message_id"]).content == text
    assert submission(stack.engine, resp[2]["message_id"]).content == text
