"""Hongyan's SMPP channel against an SMSC built on the npm package ``smpp``.

tests/interop/node/smsc.js runs under node as a subprocess on a free port.
node-smpp decodes what Hongyan sends (text, UDH, SAR and payload TLVs) and
prints it, so the assertions read Hongyan's bytes through a stranger's codec;
it also sends receipts and MO that Hongyan's channel must read.
"""
from __future__ import annotations

import asyncio

import pytest

from hongyan.channels.base import ChannelConfig, Outbound
from hongyan.channels.smpp import SmppChannel
from tests.channels.test_cmpp_channel import Recorder
from tests.interop.conftest import until
from tests.interop.node_peer import NodeScript

LONG_CN = "您好，这是一条很长的中文测试短信，用来检查长短信的拆分和重组是否正确。" * 4


@pytest.fixture
async def smsc(node_modules):
    script = NodeScript(node_modules, "smsc.js", "hongyan", "secret")
    ready = await script.start("listening")
    script.port = ready["port"]
    yield script
    await script.stop()


@pytest.fixture
async def channel(smsc):
    made = []

    async def make(password="secret", **options):
        rec = Recorder()
        cfg = ChannelConfig(id=9, name="node-smsc", protocol="smpp", host="127.0.0.1", port=smsc.port,
                            username="hongyan", password=password, access_code="1069", connections=1,
                            options={"reconnect_initial": 0.2, **options})
        ch = SmppChannel(cfg, rec.events)
        await ch.start()
        made.append(ch)
        return ch, rec

    yield make
    for ch in made:
        await asyncio.wait_for(ch.stop(), 10)


def submits(smsc) -> list[dict]:
    return [e["pdu"] for e in smsc.of("submit_sm")]


async def test_bind_submit_receipt_acked(smsc, channel):
    ch, rec = await channel()
    await until(lambda: ch.connected, what="bound to node SMSC")
    # node's stdout runs behind the socket: wait for its lines, not only for Hongyan's side.
    await until(lambda: smsc.of("bind_transceiver"), what="bind seen by node")
    (bind,) = smsc.of("bind_transceiver")
    assert bind["pdu"]["system_id"] == "hongyan" and bind["pdu"]["interface_version"] == 0x34

    ch.send([Outbound(1, "13800000001", "hello node", source="106912")])
    await until(lambda: rec.sent and rec.reports, what="submit_sm_resp and receipt")
    assert rec.sent[1] == ["NS5000"]
    await until(lambda: submits(smsc), what="submit_sm seen by node")
    (pdu,) = submits(smsc)
    assert (pdu["destination_addr"], pdu["source_addr"]) == ("13800000001", "106912")
    assert pdu["short_message"]["message"] == "hello node" and pdu["registered_delivery"] == 1

    (report,) = rec.reports
    assert report.carrier_id == "NS5000" and report.delivered and report.status == "DELIVRD"
    assert not smsc.of("receipt_answered")      # held until the core commits the report
    report.ack()
    await until(lambda: smsc.of("receipt_answered"), what="deliver_sm_resp at node")
    assert smsc.of("receipt_answered")[0]["status"] == 0


@pytest.mark.parametrize("mode", ["udh", "sar", "payload"])
async def test_long_sms_read_by_node(smsc, channel, mode):
    ch, rec = await channel(long_sms=mode)
    await until(lambda: ch.connected, what="bound")
    ch.send([Outbound(2, "13800000002", LONG_CN)])
    await until(lambda: rec.sent, what="long SMS accepted")
    await until(lambda: len(submits(smsc)) == (1 if mode == "payload" else 3), what="parts seen by node")
    pdus = submits(smsc)
    if mode == "payload":
        (pdu,) = pdus
        assert pdu["data_coding"] == 8 and pdu["message_payload"]["message"] == LONG_CN
        return
    assert len(pdus) == 3 and len(rec.sent[2]) == 3
    if mode == "udh":
        # node-smpp splits the UDH into information elements: 00 03 ref total seq.
        ies = [p["short_message"]["udh"] for p in pdus]
        assert all(len(ie) == 1 and ie[0][:4] == "0003" for ie in ies)
        assert [ie[0][6:] for ie in ies] == ["0301", "0302", "0303"]
        assert len({ie[0][4:6] for ie in ies}) == 1
    else:
        assert [(p["sar_total_segments"], p["sar_segment_seqnum"]) for p in pdus] == [(3, 1), (3, 2), (3, 3)]
        assert len({p["sar_msg_ref_num"] for p in pdus}) == 1
    assert "".join(p["short_message"]["message"] for p in pdus) == LONG_CN


async def test_mo_from_node(smsc, channel):
    ch, rec = await channel()
    await until(lambda: ch.connected, what="bound")
    smsc.send(cmd="mo", source="13900001111", dest="106901", text="回复：好的")
    # A long MO as node-smpp builds it from a UDH buffer and text parts.
    parts = [LONG_CN[i:i + 67] for i in range(0, len(LONG_CN), 67)]
    for seq, part in enumerate(parts, 1):
        smsc.send(cmd="mo", source="13900002222", dest="106901", text=part,
                  udh=f"0500037F{len(parts):02X}{seq:02X}")
    await until(lambda: len(rec.mos) == 2, what="two MO")
    by_phone = {m.phone: m for m in rec.mos}
    assert by_phone["13900001111"].text == "回复：好的" and by_phone["13900001111"].dest == "106901"
    assert by_phone["13900002222"].text == LONG_CN
    for m in rec.mos:
        m.ack()
    await until(lambda: len(smsc.of("mo_answered")) == 1 + len(parts), what="every MO part answered")
    assert {e["status"] for e in smsc.of("mo_answered")} == {0}


async def test_refused_bind_leaves_channel_down(smsc, channel):
    ch, rec = await channel(password="wrong")
    await until(lambda: smsc.of("bind_transceiver"), what="bind attempt")
    await asyncio.sleep(0.3)
    assert not ch.connected
    ch.send([Outbound(3, "13800000003", "queued while down")])
    await asyncio.sleep(0.2)
    assert not submits(smsc) and not rec.sent


async def test_transmitter_bind_and_enquire_link(smsc, channel):
    ch, rec = await channel(bind="transmitter", enquire_link_interval=0.2)
    await until(lambda: ch.connected, what="bound as transmitter")
    await until(lambda: smsc.of("bind_transmitter"), what="bind_transmitter seen by node")
    assert not smsc.of("bind_transceiver")
    # Hongyan keeps the link alive with enquire_link; node-smpp's answers keep it up.
    await until(lambda: len(smsc.of("enquire_link")) >= 2, what="two enquire_link at node")
    assert ch.connected
    ch.send([Outbound(4, "13800000004", "over a transmitter bind")])
    await until(lambda: rec.sent, what="submit answered")
    assert rec.sent[4] == ["NS5000"]
    await until(lambda: submits(smsc), what="submit_sm seen by node")
    assert submits(smsc)[0]["registered_delivery"] == 1 and not rec.reports   # no receipts to a transmitter
