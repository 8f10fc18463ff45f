"""One message's whole path: HTTP accept → queue → CMPP → report → push."""
from __future__ import annotations


import httpx
from sqlalchemy import select

from hongyan.core import accounts as acc
from tests.helpers import until


async def test_send_reaches_carrier_and_report_is_pushed(stack):
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        r = await client.post("/v1/messages", json={
            "to": ["13800138000", "18612345678"], "content": "【鸿雁】您的验证码是 1234，" + "长" * 60,
            "client_ref": "order-1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["parts"] == 2 and body["cost"] == 4 and len(body["messages"]) == 2
        ids = {m["id"] for m in body["messages"]}
        await until(lambda: len(stack.callbacks.reports()) == 2, what="two pushed reports")
        reports = stack.callbacks.reports()
        assert {r["message_id"] for r in reports} == ids
        assert all(r["status"] == "delivered" and r["carrier_status"] == "DELIVRD" for r in reports)
        assert all(r["client_ref"] == "order-1" and r["parts"] == 2 for r in reports)
        headers, doc = stack.callbacks.pushes[0]
        assert doc["type"] == "report" and stack.verify(headers)
        assert stack.sim.stats["submits"] == 4  # two parts to each of two numbers
        m = (await client.get(f"/v1/messages/{next(iter(ids))}")).json()
        assert m["state"] == "delivered" and m["carrier_status"] == "DELIVRD" and m["submitted_at"]
        polled = (await client.get("/v1/reports")).json()
        assert {i["message_id"] for i in polled["items"]} == ids
        sub = (await client.get(f"/v1/submissions/{body['submission_id']}")).json()
        assert sub["states"] == {"delivered": 2}
        bal = (await client.get("/v1/balance")).json()
        assert bal["balances"][0]["amount"] == 10_000 - 4


async def test_failed_messages_are_refunded_and_reported(stack):
    stack.sim.fail_rate = 1.0
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        r = await client.post("/v1/messages", json={"to": "13800138000", "content": "【鸿雁】x"})
        assert r.status_code == 200
        await until(lambda: len(stack.callbacks.reports()) == 1, what="a failure report")
        rep = stack.callbacks.reports()[0]
        assert rep["status"] == "failed" and rep["carrier_status"] != "DELIVRD" and rep["refunded"] is True
        bal = (await client.get("/v1/balance")).json()
        assert bal["balances"][0]["amount"] == 10_000
    with stack.runtime.engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []


async def test_pushes_wait_for_a_customer_server_that_is_down(stack):
    stack.callbacks.status = 503
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        r = await client.post("/v1/messages", json={"to": "13800138000", "content": "【鸿雁】x"})
        assert r.status_code == 200
        await until(lambda: stack.runtime.notifier.failures >= 1, what="a failed push")
        assert stack.callbacks.reports() == []
        stack.callbacks.status = 200
        await until(lambda: len(stack.callbacks.reports()) == 1, timeout=15, what="the retried push")


async def test_mo_is_routed_to_the_account_and_pushed(stack):
    await until(lambda: stack.sim.stats["connections"] > 0, what="a bound channel")
    # channel access code 1069000 + account extension 12 + request extno 7
    stack.sim.inject_mo("13800138000", "1069000127", "回复内容 TD")
    await until(lambda: any("mo_id" in i for i in stack.callbacks.items.values()), what="a pushed MO")
    mo = next(i for i in stack.callbacks.items.values() if "mo_id" in i)
    assert mo["from"] == "13800138000" and mo["extno"] == "7" and mo["content"] == "回复内容 TD"
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        polled = (await client.get("/v1/mo")).json()
    assert polled["items"][0]["content"] == "回复内容 TD"


async def test_bad_requests_get_clear_errors(stack):
    async with httpx.AsyncClient(base_url=stack.base) as client:
        r = await client.post("/v1/messages", json={"to": "13800138000", "content": "x"})
        assert r.status_code == 401 and r.json()["code"] == "auth_failed"
        r = await client.post("/v1/messages", json={"to": "13800138000", "content": "x"},
                              headers={"Authorization": "Bearer hy_nope_nope"})
        assert r.status_code == 401
        r = await client.post("/v1/messages", content=b"{not json", headers={**stack.headers,
                                                                            "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_json"
        r = await client.post("/v1/messages", json={"content": "x"}, headers=stack.headers)
        assert r.status_code == 400 and r.json()["code"] == "missing_parameter" and "to" in r.json()["detail"]
        r = await client.post("/v1/messages", json={"to": "110", "content": "x"}, headers=stack.headers)
        assert r.status_code == 422 and r.json()["code"] == "invalid_number"
    with stack.runtime.engine.connect() as conn:
        from hongyan.store.tables import messages
        assert conn.execute(select(messages)).first() is None


async def test_openapi_health_and_metrics_are_served(stack):
    async with httpx.AsyncClient(base_url=stack.base) as client:
        spec = (await client.get("/openapi.json")).json()
        assert "/v1/messages" in spec["paths"] and "post" in spec["paths"]["/v1/messages"]
        assert (await client.get("/docs")).status_code == 200
        health = (await client.get("/healthz")).json()
        assert health["status"] == "ok" and health["channels"][0]["name"] == "sim"
        await until(lambda: stack.runtime.router.channels()[0].connected, what="channel bound")
        metrics = (await client.get("/metrics")).text
        assert 'hongyan_channel_connected{channel="sim"} 1.0' in metrics
        assert "hongyan_commits_total" in metrics


async def test_carrier_link_dropped_mid_window_loses_nothing(stack):
    await until(lambda: stack.sim.stats["connections"] >= 2, what="both links bound")
    stack.sim.drop_after(150)  # cut a link with submits unanswered in its window
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        ids = set()
        for i in range(10):
            r = await client.post("/v1/messages", json={
                "to": [f"1390000{i * 40 + k:04d}" for k in range(40)], "content": f"【鸿雁】第{i}批"})
            assert r.status_code == 200
            ids |= {m["id"] for m in r.json()["messages"]}
    await until(lambda: ids <= {r["message_id"] for r in stack.callbacks.reports()}, timeout=30,
                what="a report for every message")
    assert all(r["status"] == "delivered" for r in stack.callbacks.reports())
    with stack.runtime.engine.connect() as conn:
        from hongyan.store.tables import messages
        rows = conn.execute(select(messages.c.state, messages.c.attempts, messages.c.note)).all()
    assert {r.state for r in rows} == {"delivered"}
    # The messages that were in the cut window went again, and say why.
    assert any(r.attempts > 1 for r in rows) and all(r.note for r in rows if r.attempts > 1)


async def test_oversize_body_is_refused_without_reading_it(stack):
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        r = await client.post("/v1/messages", content=b'{"to": "' + b"1" * (3 * 1024 * 1024) + b'"}',
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter" and "larger" in r.json()["detail"]


async def test_each_callback_url_has_its_own_push_format(stack):
    from hongyan.core.accounts import update_account

    with stack.runtime.engine.begin() as conn:
        update_account(conn, "alice", mo_push_dialect="qxt")
    stack.runtime.directory.invalidate()
    stack.callbacks.answer = b"ok"
    await until(lambda: stack.sim.stats["connections"] > 0, what="a bound channel")
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as client:
        r = await client.post("/v1/messages", json={"to": "13800138000", "content": "【鸿雁】x"})
        assert r.status_code == 200
    stack.sim.inject_mo("13800138000", "1069000125", "好")
    await until(lambda: len(stack.callbacks.reports()) == 1, what="the native report")
    await until(lambda: any(b"type=1" in q for _, _, q, _, _ in stack.callbacks.raw), what="the qxt-format MO")
    (mo,) = [x for x in stack.callbacks.raw if b"type=1" in x[2]]
    assert mo[0] == "GET" and b"mobile=13800138000" in mo[2]
