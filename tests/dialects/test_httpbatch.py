"""The HttpBatchSendSM dialect's endpoints over real HTTP: the document's examples
byte for byte, every error code it lists, encodings and bad input."""
from __future__ import annotations

import hashlib
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from hongyan.core import accounts as acc
from hongyan.dialects import httpbatch
from hongyan.domain.clock import now_ms
from hongyan.domain.outcomes import Code
from hongyan.store import tables
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)

SEND = "/msg/HttpBatchSendSM"
BALANCE = "/msg/QueryBalance"
STAMP = "20110725160412"
TEXT = "【公司】您好，验证码 1234"


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch):
    # The document's examples carry fixed answer times.
    monkeypatch.setattr(httpbatch, "now_text", lambda: STAMP)


def client(stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.base, timeout=30)


def login(stack, **extra) -> dict:
    return {"account": "alice", "pswd": stack.user["secret"], **extra}


def ledger_state(stack) -> tuple[int, int, int]:
    """(alice's balance, messages, submissions): what a refused request must not change."""
    with stack.runtime.engine.connect() as conn:
        amount = conn.execute(select(func.sum(tables.balances.c.amount)).where(
            tables.balances.c.owner_type == "account", tables.balances.c.owner_id == stack.user["id"])).scalar()
        n_msg = conn.execute(select(func.count()).select_from(tables.messages)).scalar()
        n_sub = conn.execute(select(func.count()).select_from(tables.submissions)).scalar()
    return int(amount), n_msg, n_sub


def last_submission(stack):
    with stack.runtime.engine.connect() as conn:
        return conn.execute(select(tables.submissions).order_by(tables.submissions.c.id.desc())).first()


def change(stack, username: str = "alice", **values) -> None:
    with stack.runtime.engine.begin() as conn:
        acc.update_account(conn, username, **values)
    stack.runtime.directory.invalidate()


def ok_answer(submission_id: int) -> bytes:
    return f"{STAMP},0\n{submission_id}".encode()


# -- the document's examples -------------------------------------------------

async def test_document_send_example_is_answered_byte_for_byte(stack):
    # §1.4, with the account, password and product it names. §1.3.2's answer
    # lines are garbled by OCR; reconstructed from §1.3.1 and the table under
    # §4.5 ("resptime,respstatus" then "msgid"): "20110725160412,0\n<msgid>",
    # with no line break after the last line. The msgid is Hongyan's submission id.
    with stack.runtime.engine.begin() as conn:
        acc.create_account(conn, stack.runtime.cipher, org_code="200001", username="test01", secret="123456")
        acc.create_product(conn, "274463133", "行业短信")
        acc.subscribe(conn, "test01", "274463133")
        acc.topup(conn, acc.owner_of(conn, "test01"), 100, "274463133")
    async with client(stack) as c:
        r = await c.get("/msg/HttpBatchSendSM?account=test01&pswd=123456&mobile=18900000000,13800138000"
                        "&msg=【朗宇信息】您好&needstatus=true&product=274463133")
    sub = last_submission(stack)
    assert r.status_code == 200 and r.content == ok_answer(sub.id)
    assert r.headers["content-type"].startswith("text/plain")
    assert sub.content == "【朗宇信息】您好" and sub.recipients == 2 and sub.dialect == "httpbatch"
    with stack.runtime.engine.connect() as conn:
        rows = {r["product"]: r["amount"] for r in acc.balances_of(conn, acc.owner_of(conn, "test01"))}
    assert rows["274463133"] == 98


async def test_document_failure_example(stack):
    # §1.3.2 "提交失败": only the first line, code 101, no msgid.
    async with client(stack) as c:
        r = await c.get(SEND, params={"account": "nobody", "pswd": "123456", "mobile": "13800138000",
                                      "msg": TEXT, "needstatus": "true"})
    assert r.status_code == 200 and r.content == f"{STAMP},101".encode()


async def test_document_balance_example(stack, monkeypatch):
    # §4.5: "20130303180000,0" then a "product,amount" line per product.
    with stack.runtime.engine.begin() as conn:
        acc.create_account(conn, stack.runtime.cipher, org_code="200001", username="111111", secret="123456")
        for code, amount in (("1234567", 1000), ("1234531", 2000)):
            acc.create_product(conn, code, code)
            acc.subscribe(conn, "111111", code)
            acc.topup(conn, acc.owner_of(conn, "111111"), amount, code)
    monkeypatch.setattr(httpbatch, "now_text", lambda: "20130303180000")
    async with client(stack) as c:
        r = await c.get("/msg/QueryBalance?account=111111&pswd=123456")
    assert r.content == b"20130303180000,0\n1234567,1000\n1234531,2000"


# -- send ------------------------------------------------------------------------

async def test_needstatus_true_spellings_get_the_msgid_line(stack):
    async with client(stack) as c:
        for value in ("true", "True", "TRUE", "1"):
            r = await c.get(SEND, params=login(stack, mobile="13800138000", msg=TEXT, needstatus=value))
            assert r.content == ok_answer(last_submission(stack).id), value
            assert last_submission(stack).client_ref is None


async def test_needstatus_not_true_answers_one_line_and_is_remembered(stack):
    # §1.3.1: "如果提交时needstatus不等于true也没有第二行数据" — anything but true,
    # absent included, is false: one line, and no reports pushed later.
    async with client(stack) as c:
        for n, value in enumerate(("false", "False", "0", None), 1):
            extra = {} if value is None else {"needstatus": value}
            r = await c.post(SEND, data=login(stack, mobile="13800138000", msg=TEXT, **extra))
            assert r.content == f"{STAMP},0".encode(), value
            assert last_submission(stack).client_ref == httpbatch.NO_STATUS
            assert ledger_state(stack)[:2] == (10_000 - n, n)


async def test_extno_and_700_characters_are_accepted(stack):
    text = "【公司】" + "字" * 696
    async with client(stack) as c:
        r = await c.post(SEND, data=login(stack, mobile="13800138000", msg=text, needstatus="true",
                                          extno="5678"))
    sub = last_submission(stack)
    assert r.content == ok_answer(sub.id) and sub.extno == "5678" and len(sub.content) == 700
    assert sub.parts == 11 and ledger_state(stack)[0] == 10_000 - 11


async def test_bad_numbers_are_left_out_and_not_billed(stack):
    # The answer has no room for a list of bad numbers: the valid ones go.
    async with client(stack) as c:
        r = await c.get(SEND, params=login(stack, mobile="13800138000,12345,abc,,18612345678",
                                           msg=TEXT, needstatus="true"))
    sub = last_submission(stack)
    assert r.content == ok_answer(sub.id) and sub.recipients == 2
    assert ledger_state(stack)[:2] == (10_000 - 2, 2)


# -- every error code the document lists ------------------------------------------

async def expect(stack, c: httpx.AsyncClient, code: str, path: str = SEND, **fields) -> None:
    before = ledger_state(stack)
    data = {**login(stack, mobile="13800138000", msg=TEXT, needstatus="true"), **fields}
    data = {k: v for k, v in data.items() if v is not None}
    for r in (await c.get(path, params=data), await c.post(path, data=data)):
        assert r.status_code == 200 and r.content == f"{STAMP},{code}".encode(), (fields, r.content)
    assert ledger_state(stack) == before, "a refused request changed balances or queued messages"


async def test_every_listed_error_the_core_can_produce(stack):
    with stack.runtime.engine.begin() as conn:
        acc.create_product(conn, "P1", "subscribed")
        acc.create_product(conn, "P2", "not subscribed")
        acc.subscribe(conn, "alice", "P1")   # a product balance of 0
    stack.runtime.directory.invalidate()
    async with client(stack) as c:
        await expect(stack, c, "101", account="nobody")
        await expect(stack, c, "102", pswd="wrong")
        await expect(stack, c, "102", account=None)     # no account at all: the login fails
        await expect(stack, c, "102", pswd=None)
        # pswd is the password itself: its MD5 is not a password here
        await expect(stack, c, "102", pswd=hashlib.md5(stack.user["secret"].encode()).hexdigest())
        await expect(stack, c, "106", msg="")
        await expect(stack, c, "106", msg="   ")
        await expect(stack, c, "106", msg=None)
        await expect(stack, c, "106", msg="字" * 701)
        await expect(stack, c, "108", mobile="")
        await expect(stack, c, "108", mobile=None)
        await expect(stack, c, "108", mobile="12345,abc")
        await expect(stack, c, "109", mobile="13800138000", product="P1")
        await expect(stack, c, "112", product="P2")
        await expect(stack, c, "112", product="NOSUCH")
        await expect(stack, c, "113", extno="12a")
        await expect(stack, c, "113", extno="123456789")
        # lists too long for a URL: POST only
        before = ledger_state(stack)
        for count, code in ((10_001, "109"), (50_001, "108")):   # the balance is 10,000
            many = ",".join(f"138{i:08d}" for i in range(count))
            r = await c.post(SEND, data=login(stack, mobile=many, msg=TEXT, needstatus="true"))
            assert r.content == f"{STAMP},{code}".encode()
        assert ledger_state(stack) == before
        change(stack, ip_allowlist="10.0.0.0/8")
        await expect(stack, c, "117")
        change(stack, ip_allowlist="127.0.0.1/32")
        change(stack, state="locked")
        await expect(stack, c, "118")
        change(stack, state="disabled")
        await expect(stack, c, "118")
        change(stack, state="expired")
        await expect(stack, c, "119")
        change(stack, state="active", expires_at=now_ms() - 1000)
        await expect(stack, c, "119")
        await expect(stack, c, "119", path=BALANCE)


def test_outcome_table_covers_the_document_and_every_core_code():
    # Codes the core does not produce yet (rate limits, sensitive words, send
    # windows, quotas, review, signatures, whitelists) still map to the document's.
    documented = {"0", "101", "102", "103", "104", "105", "106", "108", "109", "110", "111", "112",
                  "113", "115", "116", "117", "118", "119", "120"}
    assert {c for c, _ in httpbatch.OUTCOMES.values()} == documented
    assert all(httpbatch.vendor_code(code) in documented for code in Code)
    assert httpbatch.vendor_code(Code.RATE_LIMITED) == "103"
    assert httpbatch.vendor_code(Code.CONTENT_BLOCKED) == "105"
    assert httpbatch.vendor_code(Code.OUTSIDE_SEND_WINDOW) == "110"
    assert httpbatch.vendor_code(Code.QUOTA_EXCEEDED) == "111"
    assert httpbatch.vendor_code(Code.CONTENT_REJECTED) == "115"
    assert httpbatch.vendor_code(Code.SIGNATURE_MISSING) == "116"
    assert httpbatch.vendor_code(Code.NOT_WHITELISTED) == "120"
    assert httpbatch.vendor_code(Code.INVALID_PARAMETER) == "104"


# -- encodings -----------------------------------------------------------------

def sent_content(stack) -> str:
    return last_submission(stack).content


@pytest.mark.parametrize("text", [TEXT, "【公司】回复TD退订 😀🎉"])
async def test_utf8_get_and_post(stack, text):
    async with client(stack) as c:
        r = await c.get(SEND, params=login(stack, mobile="13800138000", msg=text, needstatus="true"))
        assert r.content == ok_answer(last_submission(stack).id) and sent_content(stack) == text
        r = await c.post(SEND, data=login(stack, mobile="13800138000", msg=text, needstatus="true"))
        assert r.content == ok_answer(last_submission(stack).id) and sent_content(stack) == text


async def test_gbk_query_body_and_declared_charset(stack):
    pw = stack.user["secret"]
    gbk = quote(TEXT.encode("gbk"))
    async with client(stack) as c:
        r = await c.get(f"{SEND}?account=alice&pswd={pw}&mobile=13800138000&msg={gbk}&needstatus=true")
        assert r.content == ok_answer(last_submission(stack).id) and sent_content(stack) == TEXT
        body = f"account=alice&pswd={pw}&mobile=13800138000&msg={gbk}&needstatus=true".encode()
        r = await c.post(SEND, content=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded;charset=GBK"})
        assert r.content == ok_answer(last_submission(stack).id) and sent_content(stack) == TEXT
        # not percent-encoded at all, in GBK and in UTF-8
        for enc in ("gbk", "utf-8"):
            body = f"account=alice&pswd={pw}&mobile=13800138000&msg={TEXT}&needstatus=true".encode(enc)
            r = await c.post(SEND, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.content == ok_answer(last_submission(stack).id) and sent_content(stack) == TEXT


async def test_parameters_split_between_query_and_body(stack):
    async with client(stack) as c:
        r = await c.post(f"{SEND}?account=alice&pswd={stack.user['secret']}&needstatus=true",
                         data={"mobile": "13800138000", "msg": TEXT})
    assert r.content == ok_answer(last_submission(stack).id) and sent_content(stack) == TEXT


# -- bad input -------------------------------------------------------------------

async def test_bad_input_gets_an_error_line_and_nothing_is_billed(stack):
    pw = stack.user["secret"]
    async with client(stack) as c:
        before = ledger_state(stack)
        # conflicting repeats: which text, which password?
        r = await c.get(f"{SEND}?account=alice&pswd={pw}&mobile=13800138000&msg=a&msg=b&needstatus=true")
        assert r.content == f"{STAMP},104".encode()
        # bytes that are neither UTF-8 nor GBK
        r = await c.get(f"{SEND}?account=alice&pswd={pw}&mobile=13800138000&msg=%FF%FE%FF&needstatus=true")
        assert r.content == f"{STAMP},104".encode()
        # a JSON body is not this API's: no account in it
        r = await c.post(SEND, json={"account": "alice", "pswd": pw, "mobile": "13800138000", "msg": "x"})
        assert r.content == f"{STAMP},102".encode()
        # far more than 50,000 numbers' worth of body
        r = await c.post(SEND, content=b"mobile=" + b"1" * (4 * 1024 * 1024 + 1),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and r.content == f"{STAMP},108".encode()
        assert ledger_state(stack) == before
        # the same value twice is not ambiguous
        r = await c.get(f"{SEND}?account=alice&pswd={pw}&mobile=13800138000&msg=a&msg=a&needstatus=true")
        assert r.content == ok_answer(last_submission(stack).id)


# -- balance -----------------------------------------------------------------------

async def test_balance_of_an_account_without_products(stack):
    async with client(stack) as c:
        for r in (await c.get(BALANCE, params=login(stack)), await c.post(BALANCE, data=login(stack))):
            assert r.content == f"{STAMP},0\n0,10000".encode()
        await c.get(SEND, params=login(stack, mobile="13800138000", msg=TEXT, needstatus="true"))
        assert (await c.get(BALANCE, params=login(stack))).content == f"{STAMP},0\n0,9999".encode()
        assert (await c.get(BALANCE, params=login(stack, pswd="x"))).content == f"{STAMP},102".encode()
        r = await c.get(BALANCE, params={"account": "nobody", "pswd": "x"})
        assert r.content == f"{STAMP},101".encode()


async def test_balance_shows_general_and_product_lines(stack):
    with stack.runtime.engine.begin() as conn:
        acc.create_product(conn, "P1", "p1")
        acc.create_product(conn, "OTHER", "someone else's")
        acc.subscribe(conn, "alice", "P1")
        acc.topup(conn, acc.owner_of(conn, "alice"), 500, "P1")
        acc.topup(conn, acc.owner_of(conn, "alice"), 7, "OTHER")   # not subscribed: not shown
    stack.runtime.directory.invalidate()
    async with client(stack) as c:
        assert (await c.get(BALANCE, params=login(stack))).content == f"{STAMP},0\n0,10000\nP1,500".encode()
        r = await c.get(SEND, params=login(stack, mobile="13800138000", msg=TEXT, needstatus="1", product="P1"))
        assert r.content == ok_answer(last_submission(stack).id)
        with stack.runtime.engine.begin() as conn:
            acc.topup(conn, acc.owner_of(conn, "alice"), -10_000)
        # an empty general balance is not listed once there are products
        assert (await c.get(BALANCE, params=login(stack))).content == f"{STAMP},0\nP1,499".encode()
