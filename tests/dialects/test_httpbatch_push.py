"""HttpBatchSendSM pushes: the document's push examples byte for byte, and a whole
send → report → reply cycle over real HTTP against the simulator."""
from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from hongyan.core import accounts as acc
from hongyan.core.accounts import Account
from hongyan.core.notify import target_url
from hongyan.dialects import httpbatch
from hongyan.store import tables
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)
from tests.helpers import until


def account(report_url: str | None = "http://pushUrl?receiver=admin&pswd=12345",
            mo_url: str | None = None) -> Account:
    return Account(id=1, username="alice", org_id=1, org_code="200001", org_state="active", secret="s",
                   key_id="k", state="active", expires_at=None, ip_networks=(), pay_type="account",
                   role="user", extension="12", report_url=report_url, mo_url=mo_url,
                   push_dialect="httpbatch", refund_policy="failed", password_hash=None)


def pushed_url(acct: Account, kind: str, req) -> str:
    """The URL the notifier sends a push request to."""
    url = acct.report_url if kind == "report" else (acct.mo_url or acct.report_url)
    return target_url(url, req)


def report(**over) -> dict:
    item = {"id": 7, "message_id": 900001, "submission_id": 12345, "client_ref": None, "to": "13900210021",
            "status": "delivered", "carrier_status": "DELIVRD", "parts": 1,
            "submitted_at": "2010-12-24T10:01:50.000+08:00", "done_at": "2010-12-24T10:02:33.120+08:00",
            "cost": 1, "refunded": False}
    return {**item, **over}


def mo(**over) -> dict:
    item = {"id": 8, "mo_id": 3, "from": "13800210021", "to": "1065751600001", "extno": "01",
            "content": "hello", "received_at": "2012-08-21T22:05:09.000+08:00"}
    return {**item, **over}


def test_document_report_push_example():
    # §2.3, with pushUrl standing for the customer's address and receiver/pswd
    # configured in its query string.
    a = account()
    [req] = httpbatch.PUSH.requests(a, "report", [report()])
    assert req.method == "GET" and req.body == b"" and req.item_ids == [7]
    assert pushed_url(a, "report", req) == ("http://pushUrl?receiver=admin&pswd=12345&msgid=12345"
                                            "&reportTime=1012241002&mobile=13900210021&status=DELIVRD")


def test_document_mo_push_example():
    # §3.2 "普通短信". Its "EMS短信" example (isems=1&emshead=255,5,5) is never
    # produced: long replies reach the dialect already joined and go out whole.
    a = account(report_url="http://other/reports", mo_url="http://pushMoUrl?receiver=admin&pswd=12345")
    [req] = httpbatch.PUSH.requests(a, "mo", [mo()])
    assert pushed_url(a, "mo", req) == ("http://pushMoUrl?receiver=admin&pswd=12345&moTime=1208212205"
                                        "&destcode=1065751600001&mobile=13800210021&msg=hello")


def test_push_parameters_without_receiver_keep_the_urls_own_query():
    a = account(report_url="http://h/cb?token=abc")
    [req] = httpbatch.PUSH.requests(a, "mo", [mo(content="【公司】回复 好的😀")])
    assert pushed_url(a, "mo", req) == (
        "http://h/cb?token=abc&receiver=&pswd=&moTime=1208212205&destcode=1065751600001&mobile=13800210021"
        "&msg=%E3%80%90%E5%85%AC%E5%8F%B8%E3%80%91%E5%9B%9E%E5%A4%8D+%E5%A5%BD%E7%9A%84%F0%9F%98%80")


def test_gateway_statuses_pass_through_and_missing_ones_are_named():
    a = account()
    reqs = httpbatch.PUSH.requests(a, "report", [
        report(id=1, status="failed", carrier_status="MBBLACK"),
        report(id=2, status="failed", carrier_status="UNDELIV"),
        report(id=3, status="expired", carrier_status=None),
        report(id=4, status="failed", carrier_status=""),
    ])
    assert [r.params["status"] for r in reqs] == ["MBBLACK", "UNDELIV", "EXPIRED", "UNDELIV"]


def test_reports_of_needstatus_false_are_not_pushed():
    a = account()
    silent = [report(id=i, client_ref=httpbatch.NO_STATUS) for i in (1, 2)]
    (only,) = httpbatch.PUSH.requests(a, "report", silent)
    assert only.silent and only.item_ids == [1, 2]
    # beside a push that goes out, they are settled without a request of their own
    reqs = httpbatch.PUSH.requests(a, "report", [*silent, report(id=3)])
    assert [(r.silent, r.item_ids) for r in reqs] == [(False, [3]), (True, [1, 2])]


def test_any_2xx_answer_is_taken():
    assert httpbatch.PUSH.accepts(200, b"") and httpbatch.PUSH.accepts(200, b"0")
    assert httpbatch.PUSH.accepts(204, b"")
    assert not httpbatch.PUSH.accepts(500, b"0") and not httpbatch.PUSH.accepts(404, b"")


# -- the whole cycle -----------------------------------------------------------------

def event_states(stack, kind: str) -> list[str]:
    with stack.runtime.engine.connect() as conn:
        return list(conn.execute(select(tables.events.c.push_state).where(tables.events.c.kind == kind)
                                 .order_by(tables.events.c.id)).scalars())


async def test_send_report_and_reply_cycle(stack):
    base = stack.runtime.directory.by_username("alice").report_url.rsplit("/", 1)[0]
    with stack.runtime.engine.begin() as conn:
        acc.update_account(conn, "alice", push_dialect="httpbatch",
                           report_url=f"{base}/reports?receiver=admin&pswd=12345", mo_url=f"{base}/mo")
    stack.runtime.directory.invalidate()
    cb = stack.callbacks
    cb.answer = b"0"
    login = {"account": "alice", "pswd": stack.user["secret"]}
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as client:
        # needstatus=false first: its report must never reach the customer
        r = await client.post("/msg/HttpBatchSendSM", data={**login, "mobile": "18612345678",
                                                            "msg": "【鸿雁】不要报告", "needstatus": "false"})
        assert re.fullmatch(rb"\d{14},0", r.content)
        r = await client.get("/msg/HttpBatchSendSM", params={**login, "mobile": "13800138000,13900210021",
                                                             "msg": "【鸿雁】您的验证码是 1234",
                                                             "needstatus": "True"})
        m = re.fullmatch(rb"\d{14},0\n(\d+)", r.content)
        assert m, r.content
        msgid = m.group(1).decode()

        def reports():
            return [q for method, path, q, _, _ in cb.raw if path == "/reports"]
        await until(lambda: len(reports()) == 2, what="two report pushes")
        for q in reports():
            assert re.fullmatch(rf"receiver=admin&pswd=12345&msgid={msgid}&reportTime=\d{{10}}"
                                r"&mobile=(13800138000|13900210021)&status=DELIVRD", q.decode()), q
        assert {method for method, *_ in cb.raw} == {"GET"}
        # the customer's "0" was taken: every report event is settled, none is retried
        await until(lambda: len(event_states(stack, "report")) == 3, what="three report events")
        with stack.runtime.engine.connect() as conn:
            states = {r.phone: r.state for r in conn.execute(select(tables.messages))}
        assert states == {"18612345678": "delivered", "13800138000": "delivered", "13900210021": "delivered"}
        assert all(q.decode().find("18612345678") < 0 for q in reports())
        # the report nobody asked for is settled without a request, not retried
        await until(lambda: sorted(event_states(stack, "report")) == ["done", "done", "none"],
                    what="two reports pushed and one settled silently")

        # a reply to access code + extension 12 + extno 5, long enough to come in three parts
        await until(lambda: stack.sim.stats["connections"] > 0, what="a bound channel")
        text = "【客户】收到，谢谢😀" + "好" * 140
        assert stack.sim.inject_mo("13800138000", "1069000125", text) == 3
        await until(lambda: any(path == "/mo" for _, path, *_ in cb.raw), what="the MO push")
        [(method, _, q, _, _)] = [x for x in cb.raw if x[1] == "/mo"]
        pushed = httpx.QueryParams(q.decode())
        assert method == "GET" and list(pushed.keys()) == ["receiver", "pswd", "moTime", "destcode",
                                                            "mobile", "msg"]
        assert pushed["destcode"] == "1069000125" and pushed["mobile"] == "13800138000"
        assert pushed["msg"] == text and re.fullmatch(r"\d{10}", pushed["moTime"])
        assert "isems" not in pushed
        await until(lambda: event_states(stack, "mo") == ["done"], what="the MO settled")
        r = await client.get("/msg/QueryBalance", params=login)
        assert re.fullmatch(rb"\d{14},0\n0,9997", r.content)
