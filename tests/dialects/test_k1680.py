"""口信 1680 (k1680): the document's examples as byte-exact tests, every return code, encodings, bad input.

These run in process (ASGI transport, no carrier); the whole cycle over real
HTTP with the simulator is in test_k1680_cycle.py.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from hongyan.app import create_app
from hongyan.core import accounts as acc
from hongyan.core.accept import AcceptService
from hongyan.dialects import k1680
from hongyan.domain.outcomes import Code, fail
from hongyan.runtime import Runtime
from hongyan.store import tables
from hongyan.store.db import make_engine, migrate
from hongyan.core.secrets import Cipher
from tests.helpers import seed

PRODUCT = "61341"        # the productid of the 2.1 example
TEXT = "【公司】您好，验证码 1234 😀"
BEIJING = timezone(timedelta(hours=8))


class Env:
    def __init__(self, runtime, client, user):
        self.runtime, self.client, self.user = runtime, client, user
        self.secret = user["secret"]

    def auth(self, **extra) -> dict:
        return {"username": "alice", "password": self.secret, "productid": PRODUCT, **extra}

    def balance(self, product: str | None = PRODUCT) -> int:
        with self.runtime.engine.connect() as conn:
            rows = acc.balances_of(conn, acc.owner_of(conn, "alice"))
        return next(r["amount"] for r in rows if r["product"] == product)

    def count(self, table) -> int:
        with self.runtime.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar()

    def contents(self) -> list[str]:
        with self.runtime.engine.connect() as conn:
            return list(conn.execute(select(tables.submissions.c.content).order_by(tables.submissions.c.id)).scalars())

    def set(self, **values) -> None:
        with self.runtime.engine.begin() as conn:
            acc.update_account(conn, "alice", **values)
        self.runtime.directory.invalidate()

    def nothing_billed(self) -> None:
        assert self.balance() == 100
        assert self.count(tables.messages) == 0 and self.count(tables.submissions) == 0


@pytest.fixture
async def env(settings):
    settings.roles = ["api"]   # accept only: no carrier, no pushes
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    user = seed(engine, Cipher(settings.secret_key), balance=0)
    with engine.begin() as conn:
        acc.create_product(conn, PRODUCT, "行业短信", price=1)
        acc.create_product(conn, "520411", "其他产品", price=1)
        acc.subscribe(conn, "alice", PRODUCT)
        acc.topup(conn, acc.owner_of(conn, "alice"), 100, product_code=PRODUCT)
        acc.topup(conn, acc.owner_of(conn, "alice"), 7)
    engine.dispose()
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    await runtime.start()
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.1680.me") as client:
        yield Env(runtime, client, user)
    await runtime.stop()


def ok_id(body: bytes) -> int:
    code, _, sid = body.decode().partition(",")
    assert code == "1" and sid.isdigit(), body
    return int(sid)


# -- 2.1 sendXSms.do ----------------------------------------------------------

async def test_send_example_get(env):
    # The 2.1 example as written, with its GET query; content 中国 percent-encoded in UTF-8
    # as its note (URLEncoder.encode(content, "UTF-8")) says. The password is the API secret.
    r = await env.client.get(f"/sendXSms.do?username=alice&password={env.secret}&mobile=13911000000"
                             f"&content={quote('中国')}&dstime=&productid=61341&xh=12345")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain;charset=UTF-8"
    sid = ok_id(r.content)
    assert r.content == f"1,{sid}".encode()   # one line, no newline
    with env.runtime.engine.connect() as conn:
        sub = conn.execute(select(tables.submissions).where(tables.submissions.c.id == sid)).one()
    assert sub.content == "中国" and sub.extno == "12345" and sub.dialect == "k1680"
    assert env.balance() == 99


async def test_send_java_demo_post_two_numbers(env):
    # The JAVA demo: parameters in the URL, method POST, no body; two numbers.
    url = (f"/sendXSms.do?username=alice&password={env.secret}&productid={PRODUCT}"
           f"&mobile=13911111111,13811111111&content={quote('短信提交 JAVA 示例代码', safe='')}&dstime=&xh=11")
    r = await env.client.post(url)
    ok_id(r.content)
    assert env.count(tables.messages) == 2 and env.balance() == 98


async def test_send_objective_c_demo_text_plain_body(env):
    # The Objective-C demo posts the form as Content-Type: text/plain, unencoded.
    body = f"username=alice&password={env.secret}&productid={PRODUCT}&mobile=13900000000&content=zhiling"
    r = await env.client.post("/sendXSms.do", content=body.encode(), headers={"Content-Type": "text/plain"})
    ok_id(r.content)
    assert env.contents() == ["zhiling"]


@pytest.mark.parametrize("case", ["lower", "upper"])
async def test_md5_password_either_case(env, case):
    digest = hashlib.md5(env.secret.encode()).hexdigest()
    digest = digest.upper() if case == "upper" else digest
    r = await env.client.post("/sendXSms.do", data=env.auth(password=digest, mobile="13800138000", content="x"))
    ok_id(r.content)


async def test_md5_table_of_the_appendix(env):
    # Appendix: [明文][123456] ↔ [MD5][e10adc3949ba59abbe56e057f20f883e]
    with env.runtime.engine.begin() as conn:
        acc.create_account(conn, env.runtime.cipher, org_code="200001", username="demo", secret="123456")
    for password in ("123456", "e10adc3949ba59abbe56e057f20f883e", "E10ADC3949BA59ABBE56E057F20F883E"):
        r = await env.client.get("/balance.do", params={"username": "demo", "password": password})
        assert r.content == b"0"
    r = await env.client.get("/balance.do", params={"username": "demo", "password": "e10adc3949ba59abbe56e057f20f883f"})
    assert r.content == b"-1"


async def test_dstime_schedules_in_beijing_time(env):
    when = (datetime.now(BEIJING) + timedelta(hours=2)).replace(microsecond=0)
    r = await env.client.post("/sendXSms.do", data=env.auth(mobile="13800138000", content="x",
                                                            dstime=when.strftime("%Y-%m-%d %H:%M:%S")))
    sid = ok_id(r.content)
    with env.runtime.engine.connect() as conn:
        sub = conn.execute(select(tables.submissions).where(tables.submissions.c.id == sid)).one()
    assert sub.state == "scheduled" and sub.scheduled_at == int(when.timestamp() * 1000)


# Every code of table 2.1 the core can produce, through the endpoint; nothing is billed or queued.
@pytest.mark.parametrize("params, answer", [
    ({"password": "wrong"}, b"-1"),
    ({"username": "nobody"}, b"-1"),
    ({"mobile": ""}, b"6"),
    ({"mobile": "123,abc,1380013800"}, b"6"),
    ({"content": "   "}, b"7"),
    ({"mobile": ",".join(str(13800000000 + i) for i in range(1001))}, b"10"),
    ({"productid": "99999"}, b"11"),
    ({"productid": "520411"}, b"11"),   # exists, but alice has not subscribed to it
    ({"productid": ""}, b"12"),
    ({"username": ""}, b"12"),
    ({"xh": "12a"}, b"12"),
    ({"xh": "123456789"}, b"12"),
    ({"dstime": "2025/01/01 10:00"}, b"12"),
    ({"dstime": "2010-12-30 17:48:21"}, b"12"),   # the 2.2 example's time: in the past
    ({"content": "长" * 1001}, b"12"),
])
async def test_send_error_codes(env, params, answer):
    r = await env.client.post("/sendXSms.do", data=env.auth(**{"mobile": "13800138000", "content": "x", **params}))
    assert r.status_code == 200 and r.content == answer
    env.nothing_billed()


async def test_send_balance_too_low(env):
    many = ",".join(str(13800000000 + i) for i in range(101))
    r = await env.client.post("/sendXSms.do", data=env.auth(mobile=many, content="x"))
    assert r.content == b"2"
    env.nothing_billed()


async def test_send_product_balance_missing(env):
    with env.runtime.engine.begin() as conn:
        pid = acc.create_product(conn, "777", "无余额产品")
        conn.execute(tables.account_products.insert().values(account_id=env.user["id"], product_id=pid))
    env.runtime.directory.invalidate()
    r = await env.client.post("/sendXSms.do", data=env.auth(productid="777", mobile="13800138000", content="x"))
    assert r.content == b"13"
    env.nothing_billed()


@pytest.mark.parametrize("state, answer", [("locked", b"-11"), ("expired", b"-11"), ("disabled", b"-11")])
async def test_send_account_state(env, state, answer):
    env.set(state=state)
    r = await env.client.post("/sendXSms.do", data=env.auth(mobile="13800138000", content="x"))
    assert r.content == answer
    env.nothing_billed()


async def test_send_ip_not_allowed(env):
    env.set(ip_allowlist="198.51.100.0/24")
    r = await env.client.post("/sendXSms.do", data=env.auth(mobile="13800138000", content="x"))
    assert r.content == b"-14"
    env.set(ip_allowlist="203.0.113.0/24")
    ok_id((await env.client.post("/sendXSms.do", data=env.auth(mobile="13800138000", content="x"))).content)


# Codes of rules and faults, whatever produced them: the endpoint says them as table 2.1 does.
@pytest.mark.parametrize("outcome, answer", [
    (fail(Code.CONTENT_BLOCKED, "法轮"), "8,法轮".encode()),
    (fail(Code.CONTENT_HELD), b"3"),
    (fail(Code.RATE_LIMITED), b"5"),
    (fail(Code.TOO_MANY_CONCURRENT), b"5"),
    (fail(Code.PERMISSION_DENIED), b"9"),
    (fail(Code.SIGNATURE_MISSING), b"-15"),
    (fail(Code.SYSTEM_ERROR), b"4"),
    (fail(Code.SYSTEM_BUSY), b"4"),
    (fail(Code.OUTSIDE_SEND_WINDOW), b"0"),
])
async def test_send_codes_the_core_may_answer(env, monkeypatch, outcome, answer):
    async def refuse(self, req):
        return outcome
    monkeypatch.setattr(AcceptService, "send", refuse)
    r = await env.client.post("/sendXSms.do", data=env.auth(mobile="13800138000", content="x"))
    assert r.content == answer


async def test_an_exception_is_code_4_not_a_500(env, monkeypatch):
    async def boom(self, req):
        raise RuntimeError("database went away")
    monkeypatch.setattr(AcceptService, "send", boom)
    r = await env.client.post("/sendXSms.do", data=env.auth(mobile="13800138000", content="x"))
    assert r.status_code == 200 and r.content == b"4"


def test_every_outcome_has_an_answer_in_every_table():
    for code in Code:
        v = k1680.vendor_code(code)
        assert v.send and v.dynamic and (v.balance or code is Code.OK)


# -- encodings ------------------------------------------------------------------

async def test_utf8_post_with_signature_and_emoji(env):
    r = await env.client.post("/sendXSms.do", data=env.auth(mobile="13800138000", content=TEXT))
    ok_id(r.content)
    assert env.contents() == [TEXT]


async def test_gbk_get_percent_encoded(env):
    text = "【公司】您好，验证码 1234"
    r = await env.client.get(f"/sendXSms.do?username=alice&password={env.secret}&productid={PRODUCT}"
                             f"&mobile=13800138000&content={quote(text.encode('gbk'))}")
    ok_id(r.content)
    assert env.contents() == [text]


async def test_gbk_post_with_charset_and_split_parameters(env):
    text = "【公司】您好"
    body = f"content={quote(text.encode('gbk'))}&mobile=13800138000".encode()
    r = await env.client.post(f"/sendXSms.do?username=alice&password={env.secret}&productid={PRODUCT}",
                              content=body, headers={"Content-Type": "application/x-www-form-urlencoded; charset=GBK"})
    ok_id(r.content)
    assert env.contents() == [text]


async def test_unencoded_utf8_form_body(env):
    body = f"username=alice&password={env.secret}&productid={PRODUCT}&mobile=13800138000&content={TEXT}"
    r = await env.client.post("/sendXSms.do", content=body.encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    ok_id(r.content)
    assert env.contents() == [TEXT]


async def test_shell_demo_raw_hex_escapes(env):
    # The SHELL demo percent-encodes every byte of the UTF-8 text with xxd.
    hexed = "".join(f"%{b:02x}" for b in "发送指令".encode())
    r = await env.client.get(f"/sendXSms.do?username=alice&password={env.secret}&productid={PRODUCT}"
                             f"&mobile=13900000000&content={hexed}")
    ok_id(r.content)
    assert env.contents() == ["发送指令"]


# -- bad input --------------------------------------------------------------------

async def test_repeated_parameter_with_different_values(env):
    r = await env.client.post("/sendXSms.do?mobile=13900000000", data=env.auth(mobile="13800138000", content="x"))
    assert r.content == b"12"
    env.nothing_billed()


async def test_undecodable_bytes(env):
    r = await env.client.post("/sendXSms.do", content=b"username=alice&password=" + env.secret.encode()
                              + f"&productid={PRODUCT}&mobile=13800138000&content=%ff%fe%ff".encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
    assert r.content == b"12"
    env.nothing_billed()


async def test_oversize_body(env):
    r = await env.client.post("/sendXSms.do", content=b"content=" + b"x" * (4 * 1024 * 1024 + 1),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.content == b"12"
    r = await env.client.post("/sendDIYSms.do", content=b"params=" + b"x" * (4 * 1024 * 1024 + 1))
    assert r.content == b"-4"
    env.nothing_billed()


async def test_junk_in_the_number_list_is_dropped(env):
    r = await env.client.post("/sendXSms.do", data=env.auth(mobile="13800138000,abc,,13900139000；12345", content="x"))
    ok_id(r.content)
    with env.runtime.engine.connect() as conn:
        phones = set(conn.execute(select(tables.messages.c.phone)).scalars())
    assert phones == {"13800138000", "13900139000"} and env.balance() == 98


async def test_json_body_is_not_a_form(env):
    r = await env.client.post("/sendXSms.do", content=b'{"username": "alice"', headers={"Content-Type": "application/json"})
    assert r.content == b"12"
    env.nothing_billed()


# -- 2.2 sendDIYSms.do --------------------------------------------------------------

DIY_PARAMS = ("13800210000, 李先生, 100110198809030019, 北京市, 100010, 2013-01-01;"
              "13500210000, 王先生, 100110198809030019, 北京市, 100010, 2013-01-15")
DIY_TEMPLATE = "{A}, 你好!, 您的身份证号是 {B}, 位于 {C}, 邮编 {D} 请你于 {E} 日参加活动, 手机号是 {PHONE}。"


async def test_diy_example(env):
    # The 2.2 example, repaired: "¶ms" is "&params" eaten by OCR (&para → ¶); its dstime
    # 2010-12-30 17:48:21 is in the past, so a time two hours ahead stands in; productid
    # 520411 is replaced by the product alice has. Sent as the unencoded form it shows.
    when = (datetime.now(BEIJING) + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    body = (f"username=alice&password={env.secret}&params={DIY_PARAMS}&content={DIY_TEMPLATE}"
            f"&dstime={when}&productid={PRODUCT}")
    r = await env.client.post("/sendDIYSms.do", content=body.encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    sid = ok_id(r.content)
    assert env.contents() == [
        "李先生, 你好!, 您的身份证号是 100110198809030019, 位于 北京市, 邮编 100010 请你于 2013-01-01 日参加活动, 手机号是 13800210000。",
        "王先生, 你好!, 您的身份证号是 100110198809030019, 位于 北京市, 邮编 100010 请你于 2013-01-15 日参加活动, 手机号是 13500210000。"]
    with env.runtime.engine.connect() as conn:
        subs = conn.execute(select(tables.submissions).order_by(tables.submissions.c.id)).all()
    # One id for the request: the first submission's; the others carry it for their reports.
    assert subs[0].id == sid and subs[0].client_ref is None and subs[1].client_ref == str(sid)
    assert all(s.state == "scheduled" for s in subs)
    # Each text is 95 characters: two parts each.
    assert env.balance() == 96 and env.count(tables.messages) == 2


async def test_diy_same_text_is_one_submission(env):
    r = await env.client.post("/sendDIYSms.do", data=env.auth(
        params="13800138000,张三;13900139000,张三;13700137000,李四", content="{A}您好"))
    ok_id(r.content)
    assert env.contents() == ["张三您好", "李四您好"] and env.count(tables.messages) == 3


async def test_diy_malformed_groups_are_dropped(env):
    # Invalid number, seven fields, and a group lacking {B}: dropped (2.2 注: 格式不符的参数，系统自动过滤掉).
    groups = "12345,甲,乙;13800138000,a,b,c,d,e,f;13900139000,只有A;13700137000,好,坏"
    r = await env.client.post("/sendDIYSms.do", data=env.auth(params=groups, content="{A}与{B}"))
    ok_id(r.content)
    assert env.contents() == ["好与坏"]


async def test_diy_get_gbk(env):
    q = "&".join(f"{k}={quote(v.encode('gbk'))}" for k, v in env.auth(params="13800138000,王先生", content="{A}您好【公司】").items())
    r = await env.client.get(f"/sendDIYSms.do?{q}")
    ok_id(r.content)
    assert env.contents() == ["王先生您好【公司】"]


async def test_diy_is_all_or_nothing_on_balance(env):
    # 101 distinct texts, 100 units: nothing is sent rather than the first hundred.
    groups = ";".join(f"{13800000000 + i},{i}" for i in range(101))
    r = await env.client.post("/sendDIYSms.do", data=env.auth(params=groups, content="验证码{A}"))
    assert r.content == b"-2"
    env.nothing_billed()
    groups = ";".join(f"{13800000000 + i},{i}" for i in range(100))
    r = await env.client.post("/sendDIYSms.do", data=env.auth(params=groups, content="验证码{A}"))
    ok_id(r.content)
    assert env.balance() == 0 and env.count(tables.submissions) == 100
    with env.runtime.engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []


@pytest.mark.parametrize("params, answer", [
    ({"password": "x"}, b"-1"),
    ({"params": ""}, b"-12"),
    ({"content": ""}, b"-7"),
    ({"params": "123,a;456,b"}, b"-6"),
    ({"params": "13800138000"}, b"-4"),           # the template needs {A}; no group has it
    ({"params": ";".join(f"{13800000000 + i},a" for i in range(1001))}, b"-10"),
    ({"productid": "99999"}, b"-11"),
    ({"xh": "x"}, b"-12"),
    ({"dstime": "tomorrow"}, b"-12"),
])
async def test_diy_error_codes(env, params, answer):
    r = await env.client.post("/sendDIYSms.do", data=env.auth(**{"params": "13800138000,a", "content": "{A}", **params}))
    assert r.content == answer
    env.nothing_billed()


async def test_diy_ip_and_state(env):
    env.set(ip_allowlist="198.51.100.0/24")
    assert (await env.client.post("/sendDIYSms.do", data=env.auth(params="13800138000,a", content="{A}"))).content == b"-14"
    env.set(ip_allowlist="", state="locked")
    assert (await env.client.post("/sendDIYSms.do", data=env.auth(params="13800138000,a", content="{A}"))).content == b"0"
    env.nothing_billed()


# -- 2.3 sendPackSms.do ----------------------------------------------------------------

async def test_pack_example(env):
    # The 2.3 example, repaired: OCR spaced out "发送内容" and broke lines inside the
    # items, and markdown escaped "$" as "\$"; its past dstime is dropped (immediate send).
    content = "13011001111|发送内容1$13011001112|发送内容2$13011001113|发送内容3$13011001114|发送内容4"
    body = f"username=alice&password={env.secret}&content={content}&dstime=&productid={PRODUCT}"
    r = await env.client.post("/sendPackSms.do", content=body.encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    ok_id(r.content)
    assert env.contents() == ["发送内容1", "发送内容2", "发送内容3", "发送内容4"] and env.balance() == 96


async def test_pack_drops_items_without_a_valid_number(env):
    r = await env.client.post("/sendPackSms.do", data=env.auth(content="123|a$13800138000 | 你好 😀$no bar$13900139000|你好 😀"))
    ok_id(r.content)
    assert env.contents() == ["你好 😀"] and env.count(tables.messages) == 2


@pytest.mark.parametrize("params, answer", [
    ({"username": "nobody"}, b"-1"),
    ({"content": ""}, b"-7"),
    ({"content": "123|a$abc|b"}, b"-6"),
    ({"content": "13800138000|"}, b"-7"),
    ({"content": "$".join(f"{13800000000 + i}|a" for i in range(1001))}, b"-10"),
    ({"content": "$".join(f"{13800000000 + i}|{i}" for i in range(101))}, b"-2"),
    ({"productid": "520411"}, b"-11"),
])
async def test_pack_error_codes(env, params, answer):
    r = await env.client.post("/sendPackSms.do", data=env.auth(**{"content": "13800138000|x", **params}))
    assert r.content == answer
    env.nothing_billed()


# -- 2.4 balance.do -----------------------------------------------------------------------

async def test_balance_example(env):
    # The 2.4 example: GET with username, password, productid; the answer is the count alone.
    r = await env.client.get(f"/balance.do?username=alice&password={env.secret}&productid={PRODUCT}")
    assert r.content == b"100"
    r = await env.client.get(f"/balance.do?username=alice&password={env.secret}")
    assert r.content == b"7"   # without productid: the balance not tied to a product


async def test_balance_counts_messages_at_the_product_price(env):
    with env.runtime.engine.begin() as conn:
        acc.create_product(conn, "888", "贵", price=3)
        acc.subscribe(conn, "alice", "888")
        acc.topup(conn, acc.owner_of(conn, "alice"), 10, product_code="888")
    env.runtime.directory.invalidate()
    r = await env.client.post("/balance.do", data={"username": "alice", "password": env.secret, "productid": "888"})
    assert r.content == b"3"


@pytest.mark.parametrize("params, answer", [
    ({"password": "x"}, b"-1"),
    ({"username": "nobody"}, b"-1"),
    ({"productid": "520411"}, b"-2"),
    ({"productid": "nope"}, b"-2"),
])
async def test_balance_errors(env, params, answer):
    r = await env.client.get("/balance.do", params=env.auth(**params))
    assert r.content == answer


async def test_balance_ip(env):
    env.set(ip_allowlist="198.51.100.0/24")
    assert (await env.client.get("/balance.do", params=env.auth())).content == b"-14"


# -- pushes (2.5, 2.6, 4.5) ----------------------------------------------------------

REPORT = {"id": 41, "message_id": 9001, "submission_id": 1234, "client_ref": None, "to": "13911000000",
          "status": "delivered", "carrier_status": "DELIVRD", "parts": 1,
          "submitted_at": "2026-01-01T10:00:00.000+08:00", "done_at": "2026-01-01T10:00:05.000+08:00",
          "cost": 1, "refunded": False}


def pushed_url(req, base="http://220.194.54.161:9010/index.aspx") -> bytes:
    return str(httpx.Request(req.method, base, params=req.params).url).encode()


def test_report_push_format():
    (req,) = k1680.PUSH.requests(None, "report", [REPORT])
    assert req.method == "GET" and req.item_ids == [41] and req.body == b""
    # 2.5: msgid=xxxxxx&mobile=xxxxxxx&status=xxxxxxx, pushed to the URL the customer gave.
    assert pushed_url(req) == b"http://220.194.54.161:9010/index.aspx?msgid=1234&mobile=13911000000&status=0"


@pytest.mark.parametrize("status, carrier, expected", [
    ("delivered", "DELIVRD", "0"),
    ("failed", "UNDELIV", "UNDELIV"),
    ("expired", "EXPIRED", "EXPIRED"),
    ("failed", "MK:0001", "MK:0001"),
    ("failed", "CMPP:3", "KX:1000"),     # 4.5: KX:1000 代表下行提交失败
    ("failed", "ENCODE", "KX:1000"),
    ("failed", None, "KX:1000"),
])
def test_report_statuses(status, carrier, expected):
    assert k1680.report_status({**REPORT, "status": status, "carrier_status": carrier}) == expected


def test_reports_of_a_dynamic_request_carry_its_id_and_go_one_per_request():
    items = [REPORT, {**REPORT, "id": 42, "submission_id": 1235, "client_ref": "1234", "to": "13800138000",
                      "status": "failed", "carrier_status": "UNDELIV"}]
    reqs = k1680.PUSH.requests(None, "report", items)
    assert [pushed_url(r, "http://h/mr") for r in reqs] == [
        b"http://h/mr?msgid=1234&mobile=13911000000&status=0",
        b"http://h/mr?msgid=1234&mobile=13800138000&status=UNDELIV"]


def test_mo_push_format():
    mo = {"id": 7, "mo_id": 3, "from": "13911000000", "to": "1069000125", "extno": "5",
          "content": "回复 TD【公司】 😀", "received_at": "2026-01-01T10:00:00.000+08:00"}
    (req,) = k1680.PUSH.requests(None, "mo", [mo])
    # 2.6: mobile=xxxx&content=xxxxx&xh=xxxxx (the trailing ";" of the document is punctuation);
    # content URL-encoded in UTF-8, as URLDecoder.decode(content, "utf-8") expects.
    assert pushed_url(req) == (b"http://220.194.54.161:9010/index.aspx?mobile=13911000000&content="
                               + quote("回复 TD【公司】 😀", safe="").replace("%20", "+").encode() + b"&xh=5")


def test_push_accepts_any_2xx():
    assert k1680.PUSH.accepts(200, b"") and k1680.PUSH.accepts(200, b"anything")
    assert not k1680.PUSH.accepts(500, b"0") and not k1680.PUSH.accepts(404, b"")


# Table 2.2/2.3 codes whose rule the core does not enforce yet, through both dynamic endpoints.
@pytest.mark.parametrize("path, data", [
    ("/sendDIYSms.do", {"params": "13800138000,a", "content": "{A}"}),
    ("/sendPackSms.do", {"content": "13800138000|a"}),
])
@pytest.mark.parametrize("outcome, answer", [
    (fail(Code.CONTENT_HELD), b"-3"),
    (fail(Code.RATE_LIMITED), b"-5"),
    (fail(Code.CONTENT_BLOCKED, "法轮"), b"-8"),
    (fail(Code.PERMISSION_DENIED), b"-9"),
    (fail(Code.SIGNATURE_MISSING), b"-15"),
    (fail(Code.SYSTEM_ERROR), b"0"),
])
async def test_dynamic_codes_the_core_may_answer(env, monkeypatch, path, data, outcome, answer):
    async def refuse(self, req):
        return outcome
    monkeypatch.setattr(AcceptService, "send", refuse)
    r = await env.client.post(path, data=env.auth(**data))
    assert r.content == answer


@pytest.mark.parametrize("code, answer", [(Code.RATE_LIMITED, b"-5"), (Code.PERMISSION_DENIED, b"-9"),
                                          (Code.ACCOUNT_LOCKED, b"-2")])
async def test_balance_codes_the_core_may_answer(env, monkeypatch, code, answer):
    monkeypatch.setattr(acc.Account, "refusal", lambda self, ip=None, now=None: code)
    r = await env.client.get("/balance.do", params=env.auth())
    assert r.content == answer


async def test_dynamic_request_with_many_texts_is_one_commit_and_reports_one_id(env):
    items = "$".join(f"{13800000000 + i}|验证码 {i}" for i in range(5))
    r = await env.client.post("/sendPackSms.do", data=env.auth(content=items))
    sid = ok_id(r.content)
    with env.runtime.engine.connect() as conn:
        subs = conn.execute(select(tables.submissions.c.id, tables.submissions.c.client_ref)
                            .order_by(tables.submissions.c.id)).all()
        debits = conn.execute(select(func.count()).select_from(tables.ledger)
                              .where(tables.ledger.c.kind == "debit")).scalar()
    assert subs[0] == (sid, None) and all(ref == str(sid) for _, ref in subs[1:]) and len(subs) == 5
    assert debits == 5 and env.balance() == 95
