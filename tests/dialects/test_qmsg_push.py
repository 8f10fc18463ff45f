"""qmsg pushes: the document's report and MO pushes byte for byte, and a whole cycle over HTTP."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, quote

import httpx
from sqlalchemy import select

from hongyan.core import accounts as acc
from hongyan.core.accounts import Account
from hongyan.dialects import push_formats
from hongyan.dialects.qmsg import PUSH
from hongyan.store import tables
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)
from tests.helpers import until

WHEN = datetime(2007, 12, 7, 18, 23, 8).astimezone().isoformat()


def account(**kw) -> Account:
    values = dict(id=123, username="user", org_id=1, org_code="8000123", org_state="active", secret="s",
                  key_id="k", state="active", expires_at=None, ip_networks=(), pay_type="org", role="user",
                  extension="100", report_url="http://appserver/recvreport.asp", mo_url=None,
                  push_dialect="qmsg", refund_policy="failed", password_hash=None)
    return Account(**{**values, **kw})


def report(**kw) -> dict:
    item = {"id": 7, "message_id": 900, "submission_id": 55, "client_ref": "123456", "to": "13918876665",
            "status": "delivered", "carrier_status": "DELIVRD", "parts": 1, "submitted_at": WHEN,
            "done_at": WHEN, "cost": 1, "refunded": False}
    return {**item, **kw}


def query(req) -> str:
    return req.query.decode("ascii")


def params_of(req) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query(req), encoding="gb18030").items()}


def test_the_format_is_discovered():
    assert push_formats()["qmsg"] is PUSH


def test_report_push_is_the_documents_example():
    # 2.3.4's example, appid being the Hongyan account id and entid its org code.
    [req] = PUSH.requests(account(), "report", [report()])
    assert req.method == "GET" and req.body == b"" and req.item_ids == [7]
    assert query(req) == "mob=13918876665&sendid=123456&status=0&appid=123&entid=8000123"


def test_report_status_and_sendid_without_client_ref():
    reqs = PUSH.requests(account(), "report", [
        report(id=1, status="failed", carrier_status="UNDELIV", client_ref=None),
        report(id=2, status="expired", carrier_status="EXPIRED")])
    assert [r.item_ids for r in reqs] == [[1], [2]]
    assert [params_of(r)["status"] for r in reqs] == ["1", "2"]
    # No sendid chosen by the caller: the one the send answer gave, the submission id.
    assert params_of(reqs[0])["sendid"] == "55" and params_of(reqs[1])["sendid"] == "123456"


def test_mo_push_carries_the_documents_extension():
    # 2.3.3: a reply to 555589999100123, 100 being the account's sub-number and 123 the sender's.
    item = {"id": 9, "mo_id": 3, "from": "13918876665", "to": "555589999100123", "extno": "123",
            "content": "【公司】好 😀", "received_at": WHEN}
    [req] = PUSH.requests(account(), "mo", [item])
    assert req.method == "GET" and req.item_ids == [9]
    # GBK, as the document's GET interfaces (GB18030 for the emoji GBK lacks).
    assert query(req) == ("mob=13918876665&msg=" + quote("【公司】好 😀".encode("gb18030"), safe="").replace("%20", "+")
                          + "&entid=8000123&replytime=2007-12-07+18%3A23%3A08&ext=100123&appid=123")


def test_accepts_only_the_answer_0():
    assert PUSH.accepts(200, b"0") and PUSH.accepts(200, b"0\r\n") and PUSH.accepts(200, b"\xef\xbb\xbf0")
    assert not PUSH.accepts(200, b"ok") and not PUSH.accepts(200, b"") and not PUSH.accepts(500, b"0")
    assert not PUSH.accepts(200, b"-1")


def push_states(stack, kind: str) -> list[str]:
    with stack.runtime.engine.connect() as conn:
        return list(conn.execute(select(tables.events.c.push_state).where(tables.events.c.kind == kind)
                                 .order_by(tables.events.c.id)).scalars())


def pushed(stack, path: str) -> list[dict]:
    return [{k: v[0] for k, v in parse_qs(raw[2].decode(), keep_blank_values=True, encoding="gb18030").items()}
            for raw in stack.callbacks.raw if raw[1] == path and raw[0] == "GET"]


async def test_whole_cycle_send_report_mo_and_pull(stack):
    cb = stack.callbacks
    with stack.runtime.engine.connect() as conn:
        report_url = conn.execute(select(tables.accounts.c.report_url)).scalar()
    base = report_url.rsplit("/", 1)[0]  # the callback server the stack set up
    with stack.runtime.engine.begin() as conn:
        acc.update_account(conn, "alice", push_dialect="qmsg", report_url=base + "/recvreport.jsp",
                           mo_url=base + "/recvmsg.asp")
    stack.runtime.directory.invalidate()
    login = {"entid": "200001", "uid": "alice", "pwd": stack.user["secret"]}
    cb.answer = b"ok"   # not the vendor's answer: the push is retried
    async with httpx.AsyncClient(base_url=stack.base, timeout=10) as c:
        r = await c.get("/sendSms.do", params={**login, "mobs": "13918876665", "msg": "【鸿雁】您好",
                                               "sendid": "123456"})
        assert r.content == b"0\n123456\n9999"
        await until(lambda: stack.runtime.notifier.failures >= 1, what="a push the receiver refused")
        cb.answer = b"0"
        await until(lambda: push_states(stack, "report") == ["done"], timeout=15, what="the report taken")
        got = pushed(stack, "/recvreport.jsp")[-1]
        assert got == {"mob": "13918876665", "sendid": "123456", "status": "0", "appid": str(stack.user["id"]),
                       "entid": "200001"}

        # A failed message: status 1, and the sendid the answer gave (the submission id).
        stack.sim.fail_rate = 1.0
        r = await c.post("/sendSms.do", data={**login, "mobs": "13800138000", "msg": "【鸿雁】x"})
        code, sendid, _ = r.text.split("\n")
        assert code == "0"
        await until(lambda: push_states(stack, "report") == ["done", "done"], what="the failure report")
        assert pushed(stack, "/recvreport.jsp")[-1]["status"] == "1"
        assert pushed(stack, "/recvreport.jsp")[-1]["sendid"] == sendid

        # A reply to access code 1069000 + alice's 12 + the sender's 5.
        await until(lambda: stack.sim.stats["connections"] > 0, what="a bound channel")
        stack.sim.inject_mo("13800138000", "1069000125", "回复 😀")
        await until(lambda: push_states(stack, "mo") == ["done"], what="the MO taken")
        mo = pushed(stack, "/recvmsg.asp")[-1]
        assert mo["mob"] == "13800138000" and mo["msg"] == "回复 😀" and mo["ext"] == "125"
        assert mo["entid"] == "200001" and len(mo["replytime"]) == 19

        # Pushed MO are not pulled again; without a push URL, replies wait for getSms.
        with stack.runtime.engine.begin() as conn:
            acc.update_account(conn, "alice", report_url=None, mo_url=None)
        stack.runtime.directory.invalidate()
        assert (await c.get("/getSms.do", params=login)).text.count("\n") == 2
        stack.sim.inject_mo("13800138000", "1069000129", "第二条")
        await until(lambda: push_states(stack, "mo") == ["done", "none"], what="the unpushed MO")
        r = await c.get("/getSms.do", params={**login, "returnflag": "xml"})
        assert "<destId>129</destId>" in r.content.decode("gbk")
        assert "<msgContent>第二条</msgContent>" in r.content.decode("gbk")
        r = await c.get("/getSms.do", params=login)
        assert r.text.count("\n") == 2 and push_states(stack, "mo") == ["done", "pulled"]
