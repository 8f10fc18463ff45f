"""kxt3 over real HTTP: sendSm → carrier → report pushed as a kxt3 form → MO pushed back."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from urllib.parse import parse_qs

import httpx
import orjson
from sqlalchemy import select

from hongyan.core.accounts import update_account
from hongyan.store import tables
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)
from tests.helpers import until


def pushes(stack, kind: str) -> list[tuple[str, dict]]:
    out = []
    for method, path, query, headers, body in stack.callbacks.raw:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        if form.get("type") == [kind]:
            assert method == "POST" and headers["content-type"] == "application/x-www-form-urlencoded; charset=UTF-8"
            out.append((path, form))
    return out


def push_states(stack, kind: str) -> list[str]:
    with stack.runtime.engine.connect() as conn:
        return list(conn.execute(select(tables.events.c.push_state).where(tables.events.c.kind == kind)).scalars())


async def test_send_report_and_reply_cycle(stack):
    cb_base = stack.runtime.directory.by_username("alice").report_url.rsplit("/", 1)[0]
    with stack.runtime.engine.begin() as conn:
        update_account(conn, "alice", push_dialect="kxt3", report_url=f"{cb_base}/receive?uid=abc&pwd=123",
                       mo_url=f"{cb_base}/mo.jsp?uid=abc&pwd=456")
    stack.runtime.directory.invalidate()
    stack.callbacks.answer = b"ok"   # not what 4.7 asks for: the push must be retried

    ts = datetime.now().strftime("%Y%m%d%H%M%S") + "0001"
    message = {"cid": "200001", "uid": "alice", "pwd": hashlib.md5((stack.user["secret"] + ts).encode()).hexdigest(),
               "timestamp": ts, "mobiles": ["13708600860", "18930612517"], "content": "【公司】周末参加不了培训了",
               "atTime": "", "dailyBeginTime": "00:00:00", "dailyEndTime": "23:59:59"}
    async with httpx.AsyncClient(base_url=stack.base) as client:
        r = await client.post("/webservice/http/service",
                              data={"op": "sendSm", "message": json.dumps(message, ensure_ascii=False)})
        answer = r.json()
        assert answer["stateCode"] == 0 and answer["fee"] == 2, r.text
        token = answer["token"]

        await until(lambda: stack.runtime.notifier.failures >= 1, what="a refused report push")
        assert "done" not in push_states(stack, "report")
        stack.callbacks.answer = b"0"
        await until(lambda: push_states(stack, "report") == ["done", "done"], timeout=15,
                    what="reports accepted with 0")
        items = {}
        for path, form in pushes(stack, "report"):
            assert path == "/receive" and form["uid"] == ["abc"] and form["pwd"] == ["123"]
            for item in orjson.loads(form["jsonData"][0]):
                assert list(item) == ["token", "mobile", "resultCode", "success"]
                items[item["mobile"]] = item
        assert items == {m: {"token": token, "mobile": m, "resultCode": "DELIVRD", "success": True}
                         for m in ("13708600860", "18930612517")}

        # The same signed request again is a replay.
        r = await client.post("/webservice/http/service",
                              data={"op": "sendSm", "message": json.dumps(message, ensure_ascii=False)})
        assert r.json()["stateCode"] == 230

    assert stack.sim.inject_mo("13708600860", "1069000125", "收到，谢谢😀") > 0
    await until(lambda: pushes(stack, "mo"), what="an MO push")
    await until(lambda: push_states(stack, "mo") == ["done"], what="the MO push accepted")
    [(path, form)] = pushes(stack, "mo")
    assert path == "/mo.jsp" and form["uid"] == ["abc"] and form["pwd"] == ["456"]
    [mo] = orjson.loads(form["jsonData"][0])
    assert list(mo) == ["mobile", "content", "smgRecvDate"]
    assert mo["mobile"] == "13708600860" and mo["content"] == "收到，谢谢😀"
    assert abs(datetime.strptime(mo["smgRecvDate"], "%Y-%m-%d %H:%M:%S") - datetime.now()).total_seconds() < 60
