"""k1680 over real HTTP against the carrier simulator: send, report push, MO push, balance."""
from __future__ import annotations

from urllib.parse import parse_qs, quote

import httpx

from hongyan.core import accounts as acc
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)
from tests.helpers import until


def gets(stack, path: str) -> list[tuple[bytes, dict]]:
    return [(q, {k: v[0] for k, v in parse_qs(q.decode(), keep_blank_values=True).items()})
            for method, p, q, _h, _b in stack.callbacks.raw if method == "GET" and p == path]


async def test_send_report_mo_and_balance(stack):
    # The seeded report URL points at the recording customer server; the paths are 4.5's.
    server = stack.runtime.directory.by_username("alice").report_url.rsplit("/", 1)[0]
    with stack.runtime.engine.begin() as conn:
        acc.update_account(conn, "alice", push_dialect="k1680", report_url=server + "/1603/mr",
                           mo_url=server + "/1603/mo")
        acc.create_product(conn, "61341", "行业短信")
        acc.subscribe(conn, "alice", "61341")
        acc.topup(conn, acc.owner_of(conn, "alice"), 50, product_code="61341")
    stack.runtime.directory.invalidate()
    secret = stack.user["secret"]
    async with httpx.AsyncClient(base_url=stack.base) as client:
        r = await client.get(f"/sendXSms.do?username=alice&password={secret}&mobile=13911000000,13800138000"
                             f"&content={quote('【公司】您好 😀')}&dstime=&productid=61341&xh=5")
        code, _, msgid = r.text.partition(",")
        assert code == "1" and msgid.isdigit()
        reports = await until(lambda: len(gets(stack, "/1603/mr")) == 2 and gets(stack, "/1603/mr"),
                              what="two k1680 report pushes")
        assert sorted(q for q, _ in reports) == sorted(
            f"msgid={msgid}&mobile={m}&status=0".encode() for m in ("13911000000", "13800138000"))
        r = await client.post("/sendPackSms.do", data={"username": "alice", "password": secret, "productid": "61341",
                                                       "content": "13911000000|甲$13800138000|乙"})
        code, _, pack_id = r.text.partition(",")
        assert code == "1"
        await until(lambda: len(gets(stack, "/1603/mr")) == 4, what="the pack's reports")
        assert {f["msgid"] for _, f in gets(stack, "/1603/mr")[2:]} == {pack_id}
        # Any 2xx was taken: nothing is pushed twice.
        await until(lambda: stack.runtime.notifier.pushed >= 4, what="pushes marked done")
        assert len(gets(stack, "/1603/mr")) == 4

        stack.sim.inject_mo("13911000000", "1069000125", "回复 TD【公司】")
        (query, fields), = await until(lambda: gets(stack, "/1603/mo"), what="the MO push")
        assert fields == {"mobile": "13911000000", "content": "回复 TD【公司】", "xh": "5"}
        assert query == b"mobile=13911000000&content=" + quote("回复 TD【公司】", safe="").replace(
            "%20", "+").encode() + b"&xh=5"

        r = await client.get(f"/balance.do?username=alice&password={secret}&productid=61341")
        assert r.content == b"46"

