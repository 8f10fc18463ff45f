"""The qxt dialect over real HTTP: /qxt/smssenderv2, /qxt/surplus, its pushes, a whole cycle."""
from __future__ import annotations

import hashlib
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from hongyan.core import accounts as acc
from hongyan.core.accounts import update_account
from hongyan.dialects import qxt
from hongyan.domain.clock import now_ms
from hongyan.domain.outcomes import Code, fail
from hongyan.store import tables
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)
from tests.helpers import until

SEND = "/qxt/smssenderv2"
SURPLUS = "/qxt/surplus"
TEXT = "【公司】您好，验证码 1234"
GBK_FORM = "application/x-www-form-urlencoded; charset=GBK"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def enc(text: str, charset: str = "gbk") -> str:
    return quote(text.encode(charset), safe="")


def query(pairs: dict, charset: str = "gbk") -> str:
    return "&".join(f"{k}={enc(str(v), charset)}" for k, v in pairs.items())


def login(stack) -> dict:
    return {"user": "alice", "password": md5(stack.user["secret"])}


def client_for(stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.base, timeout=30)


def balance(stack) -> int:
    with stack.runtime.engine.connect() as conn:
        return acc.balances_of(conn, acc.owner_of(conn, "alice"))[0]["amount"]


def counts(stack) -> tuple[int, int]:
    with stack.runtime.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(tables.submissions)).scalar(),
                conn.execute(select(func.count()).select_from(tables.messages)).scalar())


def last_submission(stack):
    with stack.runtime.engine.connect() as conn:
        return conn.execute(select(tables.submissions).order_by(tables.submissions.c.id.desc())).first()


def change_alice(stack, **values) -> None:
    with stack.runtime.engine.begin() as conn:
        update_account(conn, "alice", **values)
    stack.runtime.directory.invalidate()


async def get(client, path: str, pairs: dict, charset: str = "gbk") -> httpx.Response:
    return await client.get(f"{path}?{query(pairs, charset)}")


# --- sending ------------------------------------------------------------------

async def test_document_example_url_and_the_answer_bytes(stack):
    # The document's example, made concrete: "tele=mobile" becomes a number and
    # "password=password" the MD5 of alice's secret.
    async with client_for(stack) as client:
        r = await client.get(f"{SEND}?user=alice&password={md5(stack.user['secret'])}"
                             f"&tele=13800138000&msg=test&extno=1")
        sub = last_submission(stack)
        assert r.status_code == 200 and r.content == f"ok:{sub.id}:13800138000".encode()
        assert r.headers["content-type"] == "text/plain; charset=GBK"
        assert sub.content == "test" and sub.extno == "1" and sub.dialect == "qxt"
        # Several numbers: "ok:mid:tele,tele", one mid for the request.
        r = await get(client, SEND, {**login(stack), "tele": "13800138000,18612345678", "msg": TEXT})
        sub = last_submission(stack)
        assert r.content == f"ok:{sub.id}:13800138000,18612345678".encode()
        assert sub.recipients == 2 and sub.content == TEXT
    assert balance(stack) == 10_000 - 3


async def test_invalid_numbers_are_left_out_and_named_in_the_answer_by_omission(stack):
    # The answer lists the numbers taken; junk among them is skipped and not billed.
    async with client_for(stack) as client:
        r = await get(client, SEND, {**login(stack), "tele": "13800138000, abc,12345,13800138000",
                                     "msg": TEXT})
        sub = last_submission(stack)
        assert r.content == f"ok:{sub.id}:13800138000".encode()
    assert balance(stack) == 10_000 - 1


async def test_addseqno_sends_one_long_message_billed_per_part(stack):
    text = "【公司】" + "长" * 100           # 104 characters: two concatenated parts
    async with client_for(stack) as client:
        for flag in ("1", "0", "true"):
            r = await client.post(SEND, content=query({**login(stack), "tele": "13800138000", "msg": text,
                                                       "addseqno": flag}).encode(),
                                  headers={"Content-Type": GBK_FORM})
            sub = last_submission(stack)
            assert r.content == f"ok:{sub.id}:13800138000".encode()
            assert sub.content == text and sub.parts == 2 and sub.cost == 2
    assert balance(stack) == 10_000 - 6


# Every error the document lists (and the states it has no word for), through the endpoint.
ERRORS = [
    ("user empty", {"user": ""}, "error:用户名或密码错误"),
    ("user missing", {"user": None}, "error:用户名或密码错误"),
    ("password missing", {"password": None}, "error:用户名或密码错误"),
    ("bad extno", {"extno": "12a"}, "error:扩展号码错误"),
    ("extno too long", {"extno": "1" * 12}, "error:扩展号码错误"),   # 1069000 + 12 + 12 digits > 20
    ("tele empty", {"tele": ""}, "error:mobile"),
    ("tele missing", {"tele": None}, "error:mobile"),
    ("tele junk only", {"tele": "abc,123"}, "error:mobile"),
    ("msg empty", {"msg": ""}, "error:smg"),
    ("msg blank", {"msg": "  "}, "error:smg"),
    ("msg too long", {"msg": "长" * 1001}, "error:smg"),
    ("no such user", {"user": "nobody"}, "error:无此用户或者密码不对1"),
    ("wrong password", {"password": md5("wrong")}, "error:无此用户或者密码不对"),
    ("plain password", {"password": "PLAIN"}, "error:无此用户或者密码不对"),
    ("too many numbers", {"tele": ",".join(f"138{i:08d}" for i in range(1001))},
     "error:moblie is null or mobile number too many!"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
async def test_every_listed_error(stack, case):
    _, change, expected = case
    pairs = {**login(stack), "tele": "13800138000", "msg": TEXT}
    if change.get("password") == "PLAIN":
        change = {"password": stack.user["secret"]}
    for name, value in change.items():
        if value is None:
            pairs.pop(name)
        else:
            pairs[name] = value
    async with client_for(stack) as client:
        r = await client.post(SEND, content=query(pairs).encode(), headers={"Content-Type": GBK_FORM})
    assert r.status_code == 200 and r.content == expected.encode("gbk")
    assert balance(stack) == 10_000 and counts(stack) == (0, 0)


async def test_longest_extno_that_fits_twenty_digits(stack):
    async with client_for(stack) as client:
        r = await get(client, SEND, {**login(stack), "tele": "13800138000", "msg": TEXT, "extno": "1" * 11})
    assert r.content.startswith(b"ok:") and last_submission(stack).extno == "1" * 11


async def test_minimum_batch_of_ten_when_configured(stack, monkeypatch):
    # Off by default (MIN_RECIPIENTS = 1); an install that needs the vendor's
    # batch minimum sets it, and error 8 is what callers then see.
    monkeypatch.setattr(qxt, "MIN_RECIPIENTS", 10)
    async with client_for(stack) as client:
        r = await get(client, SEND, {**login(stack), "tele": "13800138000,18612345678", "msg": TEXT})
        assert r.content == "error:moblie 提交数小于10，请重新提交!".encode("gbk")
        ten = ",".join(f"1380013{i:04d}" for i in range(10))
        r = await get(client, SEND, {**login(stack), "tele": ten, "msg": TEXT})
        assert r.content.startswith(b"ok:")
    assert balance(stack) == 10_000 - 10


async def test_account_states_and_balance(stack, monkeypatch):
    pairs = {**login(stack), "tele": "13800138000, 18612345678", "msg": TEXT}
    async with client_for(stack) as client:
        for values in ({"state": "locked"}, {"state": "expired"}, {"expires_at": now_ms() - 1000},
                       {"ip_allowlist": "10.9.9.9/32"}):
            change_alice(stack, **values)
            r = await get(client, SEND, pairs)
            assert r.content == "error:无此用户或者密码不对".encode("gbk"), values
            change_alice(stack, state="active", expires_at=None, ip_allowlist="")
        with stack.runtime.engine.begin() as conn:
            acc.set_org_state(conn, "200001", "disabled")
        stack.runtime.directory.invalidate()
        assert (await get(client, SEND, pairs)).content == "error:无此用户或者密码不对".encode("gbk")
        with stack.runtime.engine.begin() as conn:
            acc.set_org_state(conn, "200001", "active")
        stack.runtime.directory.invalidate()
        # Not enough money: the numbers were not taken ("fail:999:tele,tele").
        with stack.runtime.engine.begin() as conn:
            acc.topup(conn, acc.owner_of(conn, "alice"), -9_999)
        r = await get(client, SEND, pairs)
        assert r.content == b"fail:999:13800138000,18612345678"
        assert balance(stack) == 1 and counts(stack) == (0, 0)
        # A system error is 999 as well.
        monkeypatch.setattr(stack.runtime.accept, "send", _system_error)
        r = await get(client, SEND, {**pairs, "tele": "13800138000"})
        assert r.content == b"fail:999:13800138000"


async def _system_error(req):
    return fail(Code.SYSTEM_ERROR)


def test_outcome_table_covers_every_code():
    for code in Code:
        kind, text = qxt.OUTCOMES.get(code, qxt.DEFAULT)
        assert kind in ("ok", "error", "fail") and (text or kind == "ok")
        text.encode("gbk")


# --- encodings and shapes ---------------------------------------------------------

async def test_encodings_methods_and_md5_case(stack):
    emoji = TEXT + " 😀"
    secret = stack.user["secret"]
    async with client_for(stack) as client:
        cases = [
            # GET, GBK percent-encoded (the document's way), upper-case MD5.
            ("GET", f"{SEND}?{query({'user': 'alice', 'password': md5(secret).upper(), 'tele': '13800138000', 'msg': TEXT})}",
             None, None, TEXT),
            # GET, UTF-8 percent-encoded, with an emoji.
            ("GET", f"{SEND}?{query({**login(stack), 'tele': '13800138000', 'msg': emoji}, 'utf-8')}",
             None, None, emoji),
            # POST, "内容不需要编码": raw GBK bytes in an unencoded form body.
            ("POST", SEND, f"user=alice&password={md5(secret)}&tele=13800138000&msg={TEXT}".encode("gbk"),
             "application/x-www-form-urlencoded", TEXT),
            # ... where a '+' is a plus, not a space.
            ("POST", SEND, f"user=alice&password={md5(secret)}&tele=13800138000&msg=【公司】1+1=2".encode("gbk"),
             "application/x-www-form-urlencoded", "【公司】1+1=2"),
            # POST, raw UTF-8 with an emoji, no Content-Type at all.
            ("POST", SEND, f"user=alice&password={md5(secret)}&tele=13800138000&msg={emoji}".encode(),
             None, emoji),
            # POST, percent-encoded GBK declared in the Content-Type.
            ("POST", SEND, query({**login(stack), "tele": "13800138000", "msg": TEXT}).encode(), GBK_FORM, TEXT),
            # Split: credentials in the query, the message in the body.
            ("POST", f"{SEND}?user=alice&password={md5(secret)}", f"tele=13800138000&msg={enc(TEXT)}".encode(),
             "application/x-www-form-urlencoded", TEXT),
        ]
        for method, url, body, ctype, expected in cases:
            headers = {"Content-Type": ctype} if ctype else {}
            r = await client.request(method, url, content=body, headers=headers)
            sub = last_submission(stack)
            assert r.content == f"ok:{sub.id}:13800138000".encode(), (method, url, r.content)
            assert sub.content == expected
    assert counts(stack) == (len(cases), len(cases))


async def test_bad_input_gets_the_dialect_answer_and_bills_nothing(stack):
    secret_md5 = md5(stack.user["secret"])
    base = f"user=alice&password={secret_md5}&tele=13800138000"
    async with client_for(stack) as client:
        cases = [
            (f"{base}&msg=a&msg=b".encode(), b"fail:999:13800138000"),                  # repeated msg
            (f"{base}&tele=18612345678&msg=a".encode(), b"fail:999:13800138000"),       # repeated tele
            (f"{base}&password={md5('x')}&msg=a".encode(), b"fail:999:13800138000"),    # repeated password
            (base.encode() + b"&msg=%FF%FE%FF", b"fail:999:13800138000"),                # neither GBK nor UTF-8
            (base.encode() + b"&msg=" + b"x" * (qxt.MAX_BODY + 1), b"fail:999:"),         # oversize
            (b"\x00\xff&&==&", "error:用户名或密码错误".encode("gbk")),                   # junk
        ]
        for body, expected in cases:
            r = await client.post(SEND, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 200 and r.content == expected, (body[:80], r.content)
        # The same words twice is not ambiguous.
        r = await client.post(SEND, content=f"{base}&msg=a&msg=a".encode())
        assert r.content.startswith(b"ok:")
    assert balance(stack) == 10_000 - 1 and counts(stack) == (1, 1)


# --- balance -----------------------------------------------------------------------

async def test_surplus(stack):
    async with client_for(stack) as client:
        # The document's example, with alice's name and the MD5 of her secret.
        r = await client.get(f"{SURPLUS}?user=alice&password={md5(stack.user['secret'])}")
        assert r.status_code == 200 and r.content == b"ok:sms:10000:mms:0"
        await get(client, SEND, {**login(stack), "tele": "13800138000", "msg": TEXT})
        r = await client.post(SURPLUS, content=query({"user": "alice",
                                                      "password": md5(stack.user["secret"]).upper()}).encode())
        assert r.content == b"ok:sms:9999:mms:0"
        for pairs, text in ([{"user": "nobody", "password": md5("x")}, "无此用户或者密码不对1"],
                            [{"user": "alice", "password": md5("x")}, "无此用户或者密码不对"],
                            [{"password": md5("x")}, "用户名或密码错误"]):
            r = await get(client, SURPLUS, pairs)
            assert r.content == f"失败:error:{text}".encode("gbk")
        r = await client.post(SURPLUS, content=b"user=alice&password=" + b"x" * (qxt.MAX_BODY + 1))
        assert r.content == "失败:error:999".encode("gbk")
        r = await client.get(f"{SURPLUS}?user=alice&password={md5(stack.user['secret'])}&user=bob")
        assert r.content == "失败:error:999".encode("gbk")     # ambiguous: user given twice


# --- pushes ------------------------------------------------------------------------

def test_mo_push_matches_the_document_example():
    # The document's example, with "mobile=mobile&port=port" made concrete: a
    # Chengdu number (so area/city are the example's 四川/成都) and the number
    # it was sent to. Its msg bytes B0CB B9E3 B2B7 are GBK for "八广卜".
    item = {"id": 7, "mo_id": 153405, "from": "13880000000", "to": "1069000125", "extno": "5",
            "content": "八广卜", "received_at": "2026-01-01T00:00:00+08:00"}
    [req] = qxt.PUSH.requests(None, "mo", [item])
    assert req.item_ids == [7] and req.method == "GET" and req.body == b""
    assert req.query == (b"mid=153405&type=1&msg=%B0%CB%B9%E3%B2%B7&mobile=13880000000&port=1069000125"
                        b"&area=%CB%C4%B4%A8&city=%B3%C9%B6%BC")


def test_report_push_matches_the_document_example():
    # The example "type=4&msg=DELIVRD&mobile=mobile&mid=4067381&port=port" lacks
    # the area and city its table lists; they follow port, as in the MO example.
    item = {"id": 9, "message_id": 55, "submission_id": 4067381, "client_ref": None, "to": "13880000000",
            "status": "delivered", "carrier_status": "DELIVRD", "parts": 1, "cost": 1, "refunded": False}
    failed = {**item, "id": 10, "to": "18612345678", "status": "failed", "carrier_status": "REJECT"}
    expired = {**item, "id": 11, "to": "+8613800138000", "status": "expired", "carrier_status": None}
    reqs = qxt.PUSH.requests(None, "report", [item, failed, expired])
    assert [r.item_ids for r in reqs] == [[9], [10], [11]]
    assert reqs[0].query == (b"type=4&msg=DELIVRD&mobile=13880000000&mid=4067381&port="
                            b"&area=%CB%C4%B4%A8&city=%B3%C9%B6%BC")
    assert reqs[1].query == (b"type=4&msg=REJECT&mobile=18612345678&mid=4067381&port=&area="
                            + enc("北京").encode() + b"&city=" + enc("北京").encode())
    assert reqs[2].query.startswith(b"type=4&msg=EXPIRED&mobile=%2B8613800138000&mid=4067381&port=&area=")


def test_push_accepts_ok_only():
    assert qxt.PUSH.accepts(200, b"ok") and qxt.PUSH.accepts(200, b"OK\n")
    assert not qxt.PUSH.accepts(200, b"") and not qxt.PUSH.accepts(200, b"0")
    assert not qxt.PUSH.accepts(500, b"ok")


async def test_whole_cycle_send_report_and_reply(stack):
    with stack.runtime.engine.connect() as conn:
        report_url = conn.execute(select(tables.accounts.c.report_url)
                                  .where(tables.accounts.c.username == "alice")).scalar()
    mo_url = report_url.replace("/reports", "/mo?site=7")   # the customer's own query is kept
    change_alice(stack, push_dialect="qxt", report_url=report_url, mo_url=mo_url)
    stack.callbacks.status = 200
    stack.callbacks.answer = b"nope"   # not the vendor's "ok": the push is retried
    async with client_for(stack) as client:
        r = await get(client, SEND, {**login(stack), "tele": "13880000000", "msg": TEXT, "extno": "5"})
        assert r.content.startswith(b"ok:")
        mid = r.content.split(b":")[1].decode()
        await until(lambda: stack.runtime.notifier.failures >= 1, what="a refused push")
        stack.callbacks.answer = b"ok"
        await until(lambda: any(p == "/reports" for _, p, *_ in stack.callbacks.raw) and
                    _pending(stack) == 0, timeout=15, what="the report push accepted")
        method, path, q, headers, body = [x for x in stack.callbacks.raw if x[1] == "/reports"][-1]
        assert method == "GET" and body == b""
        assert q == (f"type=4&msg=DELIVRD&mobile=13880000000&mid={mid}&port="
                        f"&area={enc('四川')}&city={enc('成都')}").encode()
        stack.sim.inject_mo("13880000000", "1069000125", "收到 😀")
        await until(lambda: any(x[1] == "/mo" for x in stack.callbacks.raw), what="the MO push")
        method, path, q, headers, body = [x for x in stack.callbacks.raw if x[1] == "/mo"][0]
        assert method == "GET" and body == b""
        with stack.runtime.engine.connect() as conn:
            mo_id = conn.execute(select(tables.mo.c.id)).scalar()
        assert q == (f"site=7&mid={mo_id}&type=1&msg={enc('收到 😀', 'gb18030')}&mobile=13880000000"
                        f"&port=1069000125&area={enc('四川')}&city={enc('成都')}").encode()
        await until(lambda: _pending(stack) == 0, what="the MO push accepted")


def _pending(stack) -> int:
    with stack.runtime.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.events)
                            .where(tables.events.c.push_state == "pending")).scalar()
