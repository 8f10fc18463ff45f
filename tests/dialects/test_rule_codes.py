"""Every vendor code a rule produces, through that vendor's front door.

The rules live once in the core (accept); each dialect only looks the outcome
up in its table. These tests set a rule as an operator does and send through
the vendor's own URL, checking the code the vendor document gives.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from hongyan.app import create_app
from hongyan.core import accounts as acc
from hongyan.core import blacklist
from hongyan.core.rules import add_words, set_rules
from hongyan.core.secrets import Cipher
from hongyan.dialects import httpbatch, k1680
from hongyan.runtime import Runtime
from hongyan.store.db import make_engine, migrate
from tests.helpers import seed

TEXT = "【公司】您好"
PRODUCT = "61341"


class Env:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient, user: dict) -> None:
        self.runtime, self.client, self.user = runtime, client, user

    def rules(self, **values) -> None:
        with self.runtime.engine.begin() as conn:
            set_rules(conn, self.user["id"], **values)
        self.runtime.accept.rulebook.invalidate()

    def words(self, kind: str, *items: str) -> None:
        with self.runtime.engine.begin() as conn:
            add_words(conn, kind, list(items))
        self.runtime.accept.rulebook.invalidate()

    # One send per dialect, answering the vendor's status code.
    async def httpbatch(self, msg: str = TEXT, mobile: str = "13800138000") -> str:
        r = await self.client.get(f"/msg/HttpBatchSendSM?account=alice&pswd={self.user['secret']}"
                                  f"&mobile={mobile}&msg={quote(msg)}")
        return r.text.split("\n")[0].split(",")[1]

    async def k1680(self, content: str = TEXT, mobile: str = "13800138000") -> str:
        r = await self.client.post("/sendXSms.do", data={"username": "alice", "password": self.user["secret"],
                                                         "productid": PRODUCT, "mobile": mobile,
                                                         "content": content})
        return r.text

    async def qmsg(self, content: str = TEXT, mobile: str = "13800138000") -> str:
        q = "&".join(f"{k}={quote(v.encode('gbk'), safe='')}" for k, v in
                     {"entid": "200001", "uid": "alice", "pwd": self.user["secret"],
                      "mobs": mobile, "msg": content}.items())
        r = await self.client.get("/sendSms.do?" + q)
        return r.text.split("\n")[0]


@pytest.fixture
async def env(settings):
    settings.roles = ["api"]   # accept only: no carrier, no pushes
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    user = seed(engine, Cipher(settings.secret_key), balance=1000)
    with engine.begin() as conn:   # k1680 sends name a product
        acc.create_product(conn, PRODUCT, "行业短信", price=1)
        acc.subscribe(conn, "alice", PRODUCT)
        acc.topup(conn, acc.owner_of(conn, "alice"), 100, product_code=PRODUCT)
    engine.dispose()
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    await runtime.start()
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hongyan.test") as client:
        yield Env(runtime, client, user)
    await runtime.stop()


def closed_hours() -> str:
    now = datetime.now()
    return f"{now + timedelta(hours=2):%H:%M}-{now + timedelta(hours=4):%H:%M}"


# -- httpbatch (the error table under 1.3) ------------------------------------------

async def test_httpbatch_codes(env):
    env.words("block", "赌博")
    assert await env.httpbatch("【公司】网上赌博") == "105"          # 敏感短信
    env.rules(signature_required=True)
    assert await env.httpbatch("没有签名") == "116"                  # 签名不合法，未带签名
    env.rules(signature_required=False, templates_only=True, templates=["【公司】验证码{code}"])
    assert await env.httpbatch("【公司】来玩") == "120"              # 内容不在白名单中
    assert await env.httpbatch("【公司】验证码1234") == "0"
    env.rules(templates_only=False, allowed_hours=closed_hours())
    assert await env.httpbatch() == "110"                            # 不在发送时间内
    env.rules(allowed_hours="", monthly_quota=1)
    assert await env.httpbatch() == "111"                            # 超出该账户当月发送额度限制
    env.rules(monthly_quota=0, mps=1)
    assert await env.httpbatch(mobile="13800138000,13900139000") == "103"   # 提交过快


def test_httpbatch_report_statuses_are_the_platform_ones():
    # 2.2: MBBLACK 黑名单号码, REJECT 审核驳回, DISTURB 手机号码发送次数过多
    for status in ("MBBLACK", "REJECT", "DISTURB"):
        assert httpbatch._status({"status": "failed", "carrier_status": status}) == status


# -- k1680 (2.1 return values; 4.5 special statuses) ---------------------------------

async def test_k1680_codes(env):
    env.words("block", "发票")
    env.words("review", "贷款")
    assert await env.k1680("【公司】代开发 票") == "8,发票"          # 一级黑词, the word after the comma
    held = await env.k1680("【公司】低息贷款")
    assert held.startswith("3")                                      # 黑词审核中
    env.rules(signature_required=True)
    assert (await env.k1680("没有签名")).startswith("-15")
    env.rules(signature_required=False, mps=1)
    assert (await env.k1680(mobile="13800138000,13900139000")).startswith("5")   # 提交频率太快


def test_k1680_reports_a_frequency_limit_as_kx4000():
    assert k1680.report_status({"status": "failed", "carrier_status": "DISTURB"}) == "KX:4000"
    assert k1680.report_status({"status": "failed", "carrier_status": "MBBLACK"}) == "MBBLACK"


# -- the native API ----------------------------------------------------------------

async def test_native_api_tells_a_held_submission_apart(env):
    env.words("review", "贷款")
    headers = {"Authorization": f"Bearer {env.user['key']}"}
    held = await env.client.post("/v1/messages", headers=headers, json={"to": "13800138000", "content": "【公司】贷款"})
    assert held.status_code == 202 and held.json()["code"] == "content_held"
    assert held.json()["submission_id"] and held.json()["cost"] == 1
    env.words("block", "赌博")
    blocked = await env.client.post("/v1/messages", headers=headers, json={"to": "13800138000", "content": "【公司】赌博"})
    assert blocked.status_code == 422
    assert blocked.json()["code"] == "content_blocked" and "赌博" in blocked.json()["detail"]
    sent = await env.client.post("/v1/messages", headers=headers, json={"to": "13800138000", "content": TEXT})
    assert sent.status_code == 200 and sent.json()["code"] == "ok"


# -- qmsg (2.1.4 status codes) ---------------------------------------------------------

async def test_qmsg_codes(env):
    env.words("block", "赌博")
    assert await env.qmsg("【公司】赌 博") == "11"                   # 短信内容包含非法字词
    env.rules(monthly_quota=1)
    assert await env.qmsg(mobile="13800138000,13900139000") == "9"   # 本月额度已用完


async def test_a_blacklisted_number_is_accepted_and_reported_mbblack(env):
    with env.runtime.engine.begin() as conn:
        blacklist.add(conn, env.user["id"], ["13900139000"])
    env.runtime.accept.blacklist.invalidate()
    assert await env.httpbatch(mobile="13800138000,13900139000") == "0"
    with env.runtime.engine.connect() as conn:
        amount = acc.balances_of(conn, acc.owner_of(conn, "alice"))[0]["amount"]
    assert amount == 999
