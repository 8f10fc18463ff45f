"""smpplib (PyPI, a blocking ESME client) against Hongyan's SMPP simulator.

The simulator plays the SMSC in the test's event loop; smpplib runs in a
worker thread, so every byte either way crosses a real loopback socket.
"""
from __future__ import annotations

import asyncio

import pytest

from hongyan.channels.sim_smpp import SmppSimulator
from tests.interop.conftest import until
from tests.interop.smpp_peers import SyncEsme, read_receipt, smpplib, split_concat

LONG_CN = "您好，这是一条很长的中文测试短信，用来检查长短信的拆分和重组是否正确。" * 4
LONG_GSM = "Hongyan interop: a plain GSM 7-bit text that is long enough to need three parts. " * 4


@pytest.fixture
async def sim():
    s = SmppSimulator(port=0, accounts={"esme": "secret"}, report_delay=0.05, seed=3)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def esme(sim):
    e = SyncEsme(sim.port)
    yield e
    await asyncio.to_thread(e.close)


async def test_bind_submit_receipt_answered(sim, esme):
    resp = await asyncio.to_thread(esme.bind, "esme", "secret")
    assert resp.command == "bind_transceiver_resp" and resp.status == 0
    assert resp.system_id == b"HYSIM"

    await asyncio.to_thread(esme.submit, "hello from smpplib", "13800138000")
    await asyncio.to_thread(esme.read_until, lambda: esme.responses and esme.delivered)

    (answer,) = esme.responses
    assert answer.status == 0 and answer.message_id
    (got,) = sim.submitted
    assert (got.destination_addr, got.source_addr) == ("13800138000", "1069")
    assert got.short_message == b"hello from smpplib" and got.registered_delivery == 1

    (receipt,) = esme.delivered
    assert receipt.esm_class == 0x04                        # SMSC delivery receipt
    assert receipt.receipted_message_id == answer.message_id
    fields = read_receipt(receipt.short_message)
    assert fields["id"] == answer.message_id.decode() and fields["stat"] == "DELIVRD"
    # smpplib answered the receipt with deliver_sm_resp; the simulator counted it.
    await until(lambda: sim.stats["acked"] == 1, what="deliver_sm_resp at the simulator")


@pytest.mark.parametrize("text,coding", [(LONG_CN, 8), (LONG_GSM, 0)], ids=["ucs2", "gsm7"])
async def test_long_sms_by_udh(sim, esme, text, coding):
    await asyncio.to_thread(esme.bind, "esme", "secret")
    pdus = await asyncio.to_thread(esme.submit, text, "13800138000")
    assert len(pdus) == 3
    await asyncio.to_thread(esme.read_until, lambda: len(esme.responses) == 3 and len(esme.delivered) == 3)

    assert len(sim.submitted) == 3
    parts = [split_concat(s.short_message) for s in sim.submitted]
    assert all(s.esm_class & 0x40 and s.data_coding == coding for s in sim.submitted)
    assert {p[0] for p in parts} == {parts[0][0]} and [p[1:3] for p in parts] == [(3, 1), (3, 2), (3, 3)]
    joined = b"".join(p[3] for p in parts)
    # smpplib's GSM alphabet is unpacked septets, one a byte; plain ASCII text maps 1:1.
    assert joined.decode("utf-16-be" if coding == 8 else "ascii") == text

    ids = {r.message_id for r in esme.responses}
    assert len(ids) == 3 and {r.receipted_message_id for r in esme.delivered} == ids
    await until(lambda: sim.stats["acked"] == 3, what="three deliver_sm_resp")


async def test_mo_long_by_udh_reaches_smpplib(sim, esme):
    await asyncio.to_thread(esme.bind, "esme", "secret")
    await until(lambda: sim._live() is not None, what="bound session")  # noqa: SLF001
    assert sim.inject_mo("13900001111", "106901", LONG_CN) == 3
    await asyncio.to_thread(esme.read_until, lambda: len(esme.delivered) == 3)

    assert all(d.esm_class == 0x40 and d.data_coding == 8 for d in esme.delivered)
    assert {(d.source_addr, d.destination_addr) for d in esme.delivered} == {(b"13900001111", b"106901")}
    parts = sorted(split_concat(d.short_message) for d in esme.delivered)
    assert b"".join(p[3] for p in parts).decode("utf-16-be") == LONG_CN
    await until(lambda: sim.stats["acked"] == 3, what="MO answered")


async def test_enquire_link_and_unbind(sim, esme):
    await asyncio.to_thread(esme.bind, "esme", "secret")

    def ping():
        esme.client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=esme.client))
        return esme.client.read_pdu()

    pong = await asyncio.to_thread(ping)
    assert pong.command == "enquire_link_resp" and pong.status == 0
    bye = await asyncio.to_thread(esme.client.unbind)
    assert bye.command == "unbind_resp" and bye.status == 0


async def test_wrong_password_refused(sim, esme):
    with pytest.raises(smpplib.exceptions.PDUError) as refused:
        await asyncio.to_thread(esme.bind, "esme", "wrong")
    assert refused.value.args[1] == smpplib.consts.SMPP_ESME_RINVPASWD
    assert sim.stats["auth_failures"] == 1 and sim.stats["connections"] == 0
