"""An ESME built on the npm package ``smpp`` against Hongyan's SMPP simulator.

tests/interop/node/esme.js runs under node; node-smpp encodes the submits
(its own text encoding and UDH handling) and decodes the receipts and MO
Hongyan's simulator sends.
"""
from __future__ import annotations

import pytest

from hongyan.channels.sim_smpp import SmppSimulator
from tests.interop.conftest import until
from tests.interop.node_peer import NodeScript
from tests.interop.smpp_peers import read_receipt

LONG_CN = "您好，这是一条很长的中文测试短信，用来检查长短信的拆分和重组是否正确。" * 4


@pytest.fixture
async def sim():
    s = SmppSimulator(port=0, accounts={"node": "secret"}, report_delay=0.05, seed=9)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def esme(sim, node_modules):
    script = NodeScript(node_modules, "esme.js", str(sim.port), "node", "secret")
    bound = await script.start("bound")
    assert bound["status"] == 0 and bound["system_id"] == "HYSIM"
    yield script
    await script.stop()


async def test_submit_and_receipt(sim, esme):
    esme.send(cmd="submit", ref=1, dest="13800138000", source="1069", text="hello from node")
    await until(lambda: esme.of("submit_sm_resp") and esme.of("deliver_sm"), what="answer and receipt")
    (resp,) = esme.of("submit_sm_resp")
    assert resp["status"] == 0 and resp["message_id"]
    (got,) = sim.submitted
    # node-smpp labels GSM-alphabet text data_coding 1 (IA5); plain ASCII is the same bytes.
    assert got.data_coding == 1 and got.short_message == b"hello from node"
    (receipt,) = esme.of("deliver_sm")
    pdu = receipt["pdu"]
    assert pdu["esm_class"] == 0x04 and pdu["receipted_message_id"] == resp["message_id"]
    fields = read_receipt(pdu["short_message"]["message"].encode("ascii"))
    assert fields["id"] == resp["message_id"] and fields["stat"] == "DELIVRD"
    await until(lambda: sim.stats["acked"] == 1, what="deliver_sm_resp at the simulator")


async def test_long_sms_with_node_udh(sim, esme):
    parts = [LONG_CN[i:i + 67] for i in range(0, len(LONG_CN), 67)]
    for seq, part in enumerate(parts, 1):
        esme.send(cmd="submit", ref=seq, dest="13800138000", source="1069", text=part,
                  udh=f"050003A5{len(parts):02X}{seq:02X}")
    await until(lambda: len(esme.of("deliver_sm")) == len(parts), what="a receipt per part")
    assert [s.esm_class & 0x40 for s in sim.submitted] == [0x40] * len(parts)
    assert all(s.data_coding == 8 for s in sim.submitted)
    joined = b"".join(s.short_message[6:] for s in sim.submitted).decode("utf-16-be")
    assert joined == LONG_CN and {s.short_message[:6].hex()[:8] for s in sim.submitted} == {"050003a5"}
    ids = {r["message_id"] for r in esme.of("submit_sm_resp")}
    assert {d["pdu"]["receipted_message_id"] for d in esme.of("deliver_sm")} == ids


async def test_mo_decoded_by_node(sim, esme):
    await until(lambda: sim._live() is not None, what="bound session")  # noqa: SLF001
    assert sim.inject_mo("13900001111", "106901", LONG_CN) == 3
    await until(lambda: len(esme.of("deliver_sm")) == 3, what="three MO parts")
    mos = [d["pdu"] for d in esme.of("deliver_sm")]
    assert {(m["source_addr"], m["destination_addr"], m["esm_class"], m["data_coding"]) for m in mos} == {
        ("13900001111", "106901", 0x40, 8)}
    # node-smpp splits off the UDH as a list of information elements: 00 03 ref total seq.
    order = sorted((m["short_message"]["udh"][0][-2:], m["short_message"]["message"]) for m in mos)
    assert "".join(text for _, text in order) == LONG_CN
    await until(lambda: sim.stats["acked"] == 3, what="MO answered")


async def test_enquire_link_and_unbind(sim, esme):
    esme.send(cmd="enquire_link")
    await until(lambda: esme.of("enquire_link_resp"), what="enquire_link_resp")
    esme.send(cmd="unbind")
    await until(lambda: esme.of("unbind_resp") and esme.of("closed"), what="unbind_resp and close")
    assert esme.of("enquire_link_resp")[0]["status"] == 0 and esme.of("unbind_resp")[0]["status"] == 0
