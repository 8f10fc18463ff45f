"""qmsg (快信通 Quick Messenger 1.9): sendSms.do and getSms.do over real HTTP, byte for byte."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import httpx
import orjson
import pytest
from sqlalchemy import func, insert, select

from hongyan.core import accounts as acc
from hongyan.domain import segments
from hongyan.domain.clock import now_ms
from hongyan.domain.outcomes import Code, fail
from hongyan.store import tables
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)

ORG = "200001"          # the test stack's org (the document's examples use 8000123)
TEXT = "【公司】您好，验证码 1234"
EMOJI = "【公司】收到 😀"


def q(encoding: str = "gbk", **values) -> str:
    """A query string percent-encoded in ``encoding``, as the vendor's clients build it."""
    return "&".join(f"{k}={quote(str(v).encode(encoding), safe='')}" for k, v in values.items())


def creds(stack, **more) -> dict:
    return {"entid": ORG, "uid": "alice", "pwd": stack.user["secret"], **more}


def client(stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.base, timeout=10)


def balance(stack, username: str = "alice") -> int:
    with stack.runtime.engine.connect() as conn:
        owner = acc.owner_of(conn, username)
        return next(r["amount"] for r in acc.balances_of(conn, owner) if r["product"] is None)


def set_balance(stack, amount: int, username: str = "alice") -> None:
    have = balance(stack, username)
    if amount != have:
        with stack.runtime.engine.begin() as conn:
            acc.topup(conn, acc.owner_of(conn, username), amount - have, note="test")


def count(stack, table) -> int:
    with stack.runtime.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def update(stack, username: str = "alice", **values) -> None:
    with stack.runtime.engine.begin() as conn:
        acc.update_account(conn, username, **values)
    stack.runtime.directory.invalidate()


def submission(stack) -> tuple:
    with stack.runtime.engine.connect() as conn:
        return conn.execute(select(tables.submissions).order_by(tables.submissions.c.id.desc())).first()


# -- sendSms.do: the document's answers ------------------------------------------

async def test_text_answer_is_the_documents_three_lines(stack):
    # Example: "0 / 623090994 / 198": the caller's sendid comes back, then the balance left.
    set_balance(stack, 199)
    async with client(stack) as c:
        r = await c.get("/sendSms.do?" + q(**creds(stack, mobs="13800210021", msg="Hello", sendid="623090994")))
    assert r.status_code == 200 and r.content == b"0\n623090994\n198"
    assert r.headers["content-type"] == "text/plain; charset=GBK"
    sub = submission(stack)
    assert sub.client_ref == "623090994" and sub.dialect == "qmsg" and sub.content == "Hello"


async def test_text_answer_without_sendid_gives_the_submission_id(stack):
    async with client(stack) as c:
        # returnflag empty is text, as the document says.
        r = await c.get("/sendSms.do?" + q(**creds(stack, mobs="13800210021", msg="Hello", returnflag="")))
    sub = submission(stack)
    assert r.content == f"0\n{sub.id}\n9999".encode() and sub.client_ref is None


async def test_xml_success_answer_matches_the_example(stack):
    # Example 1: an org-paid user (payType 1) with 48 left after the send.
    update(stack, pay_type="org")
    set_balance(stack, 49)
    async with client(stack) as c:
        r = await c.get("/sendSms.do?" + q(**creds(stack, mobs="13800210022", msg="Hello", extno="12345",
                                                    sendid="1297154018", returnflag="xml")))
    assert r.content == (
        '<?xml version="1.0" encoding="GBK" ?>\n<qmsg>\n  <version>1.9</version>\n  <statCode>0</statCode>\n'
        '  <statMsg>成功</statMsg>\n  <sendId>1297154018</sendId>\n  <payType>1</payType>\n'
        '  <balance>48</balance>\n</qmsg>').encode("gbk")
    assert r.headers["content-type"] == "text/xml; charset=GBK"
    assert submission(stack).extno == "12345"


async def test_xml_refusal_answer_matches_the_example_and_bills_nothing(stack):
    # Example 2: statCode 9, personal account (payType 0) with nothing left.
    set_balance(stack, 0)
    async with client(stack) as c:
        r = await c.post("/sendSms.do", data=creds(stack, mobs="13800210021", msg="Hello", returnflag="XML"))
    assert r.content == (
        '<?xml version="1.0" encoding="GBK" ?>\n<qmsg>\n  <version>1.9</version>\n  <statCode>9</statCode>\n'
        '  <statMsg>用户余额不足,请联系管理员</statMsg>\n  <payType>0</payType>\n  <balance>0</balance>\n'
        '</qmsg>').encode("gbk")
    assert count(stack, tables.messages) == 0 and balance(stack) == 0


async def test_failed_login_answers_pay_type_and_balance_zero(stack):
    async with client(stack) as c:
        r = await c.get("/sendSms.do?" + q(entid=ORG, uid="alice", pwd="wrong", mobs="13800210021",
                                           msg="x", returnflag="xml"))
    assert r.content == (
        '<?xml version="1.0" encoding="GBK" ?>\n<qmsg>\n  <version>1.9</version>\n  <statCode>5</statCode>\n'
        '  <statMsg>用户名和密码不匹配</statMsg>\n  <payType>0</payType>\n  <balance>0</balance>\n'
        '</qmsg>').encode("gbk")


# -- sendSms.do: every status code ------------------------------------------------

async def send_code(stack, method: str = "GET", **values) -> str:
    """The status line of a text-mode send."""
    async with client(stack) as c:
        if method == "GET":
            r = await c.get("/sendSms.do?" + q(**values))
        else:
            r = await c.post("/sendSms.do", data=values)
    assert r.status_code == 200
    return r.text.split("\n")[0]


async def test_parameter_errors_are_status_1_and_bill_nothing(stack):
    base = creds(stack)
    cases = {
        "no mobs": dict(base, msg="x"),
        "no msg": dict(base, mobs="13800210021"),
        "blank msg": dict(base, mobs="13800210021", msg="   "),
        "no entid": {k: v for k, v in dict(base, mobs="13800210021", msg="x").items() if k != "entid"},
        "no pwd": {k: v for k, v in dict(base, mobs="13800210021", msg="x").items() if k != "pwd"},
        "junk number": dict(base, mobs="13800210021,abc", msg="x"),
        "short number": dict(base, mobs="1380021", msg="x"),
        "only commas": dict(base, mobs=",,,", msg="x"),
        "extno letters": dict(base, mobs="13800210021", msg="x", extno="12a"),
        "returnflag json": dict(base, mobs="13800210021", msg="x", returnflag="json"),
        "sendid too long": dict(base, mobs="13800210021", msg="x", sendid="9" * 65),
    }
    for what, values in cases.items():
        assert await send_code(stack, **values) == "1", what
    assert count(stack, tables.messages) == 0 and balance(stack) == 10_000


async def test_limits_follow_the_method(stack):
    many = lambda n: ",".join(f"138{i:08d}" for i in range(n))  # noqa: E731
    base = creds(stack)
    # GET: 50 numbers and 300 GBK bytes (150 Chinese characters).
    assert await send_code(stack, **dict(base, mobs=many(51), msg="x")) == "1"
    assert await send_code(stack, **dict(base, mobs="13800210021", msg="汉" * 151)) == "1"
    assert await send_code(stack, **dict(base, mobs="13800210021", msg="a" * 301)) == "1"
    assert await send_code(stack, **dict(base, mobs=many(50), msg="汉" * 150)) == "0"
    assert await send_code(stack, **dict(base, mobs="13800210021", msg="a" * 300)) == "0"
    # POST: 300 numbers and 1000 bytes (500 Chinese characters).
    assert await send_code(stack, "POST", **dict(base, mobs=many(301), msg="x")) == "1"
    assert await send_code(stack, "POST", **dict(base, mobs="13800210021", msg="汉" * 501)) == "1"
    assert await send_code(stack, "POST", **dict(base, mobs=many(300), msg="汉" * 500)) == "0"
    parts = segments.count_parts
    assert balance(stack) == 10_000 - 50 * parts("汉" * 150) - parts("a" * 300) - 300 * parts("汉" * 500)
    assert count(stack, tables.messages) == 50 + 1 + 300


async def test_login_and_account_errors(stack):
    base = dict(creds(stack), mobs="13800210021", msg="x")
    assert await send_code(stack, **dict(base, pwd="wrong")) == "5"
    assert await send_code(stack, **dict(base, uid="nobody")) == "5"
    # The user must belong to the org it names.
    assert await send_code(stack, **dict(base, entid="8000123")) == "5"
    update(stack, ip_allowlist="10.9.9.0/24")
    assert await send_code(stack, **base) == "5"
    update(stack, ip_allowlist="", state="locked")
    assert await send_code(stack, **base) == "8"
    update(stack, state="disabled")
    assert await send_code(stack, **base) == "8"
    update(stack, state="active", expires_at=now_ms() - 1000)
    assert await send_code(stack, **base) == "10"
    update(stack, expires_at=None)
    set_balance(stack, 0)
    assert await send_code(stack, **base) == "9"
    assert count(stack, tables.messages) == 0


async def test_blocked_content_and_database_error(stack, monkeypatch):
    base = dict(creds(stack), mobs="13800210021", msg="x")

    # The core has no sensitive-word rule yet: its outcome is what the dialect maps to 11.
    async def blocked(req):
        return fail(Code.CONTENT_BLOCKED, "x")
    monkeypatch.setattr(stack.runtime.accept, "send", blocked)
    assert await send_code(stack, **base) == "11"

    async def broken(req):
        raise RuntimeError("database went away")
    monkeypatch.setattr(stack.runtime.accept, "send", broken)
    async with client(stack) as c:
        r = await c.get("/sendSms.do?" + q(**base))
        assert r.status_code == 200 and r.content == b"2"
        r = await c.get("/sendSms.do?" + q(**dict(base, returnflag="xml")))
        assert b"<statCode>2</statCode>" in r.content and "数据库错误".encode("gbk") in r.content


async def test_password_as_md5_in_either_case(stack):
    import hashlib
    digest = hashlib.md5(stack.user["secret"].encode()).hexdigest()
    for pwd in (digest, digest.upper()):
        assert await send_code(stack, **dict(creds(stack), pwd=pwd, mobs="13800210021", msg="x")) == "0"


# -- encodings and odd shapes --------------------------------------------------------

async def test_encodings_round_trip(stack):
    async with client(stack) as c:
        # GET, GBK percent-encoded, as the document asks.
        r = await c.get("/sendSms.do?" + q("gbk", **creds(stack, mobs="13800210021", msg=TEXT)))
        assert r.text.startswith("0\n") and submission(stack).content == TEXT
        # GET with UTF-8 (detected), emoji included; the answer follows the request's encoding.
        r = await c.get("/sendSms.do?" + q("utf-8", **creds(stack, mobs="13800210021", msg=EMOJI)))
        assert r.headers["content-type"] == "text/plain; charset=UTF-8" and submission(stack).content == EMOJI
        # GB18030 carries emoji too.
        r = await c.get("/sendSms.do?" + q("gb18030", **creds(stack, mobs="13800210021", msg=EMOJI)))
        assert r.text.startswith("0\n") and submission(stack).content == EMOJI
        # POST, UTF-8 form.
        r = await c.post("/sendSms.do", data=creds(stack, mobs="13800210021", msg=EMOJI))
        assert r.text.startswith("0\n") and submission(stack).content == EMOJI
        # POST declaring GBK.
        r = await c.post("/sendSms.do", content=q("gbk", **creds(stack, mobs="13800210021", msg=TEXT)),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=GBK"})
        assert r.headers["content-type"] == "text/plain; charset=GBK" and submission(stack).content == TEXT
        # An unencoded UTF-8 body, and parameters split between query and body.
        body = f"mobs=13800210021&msg={TEXT}".encode()
        r = await c.post("/sendSms.do?" + q(**creds(stack)), content=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.text.startswith("0\n") and submission(stack).content == TEXT
        # XML answers are GBK whatever the request was; emoji become character references.
        r = await c.post("/sendSms.do", data=creds(stack, mobs="13800210021", msg=EMOJI, returnflag="xml"))
        assert r.content.decode("gbk").count("<statCode>0</statCode>") == 1


async def test_bad_input_gets_status_1_never_a_500(stack):
    base = creds(stack, mobs="13800210021", msg=TEXT)
    async with client(stack) as c:
        # The same parameter twice with different values.
        r = await c.get("/sendSms.do?" + q(**base) + "&mobs=13800210022")
        assert r.content == b"1"
        # GBK bytes declared as UTF-8.
        r = await c.post("/sendSms.do", content=q("gbk", **base),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
        assert r.content == b"1"
        # A body past the limit.
        r = await c.post("/sendSms.do", content=b"msg=" + b"a" * 70_000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and r.content == b"1"
        # JSON is not this interface's shape: its parameters are simply missing.
        r = await c.post("/sendSms.do", content=b'{"uid": "alice"', headers={"Content-Type": "application/json"})
        assert r.content == b"1"
        r = await c.post("/sendSms.do", data={**base, "returnflag": "xml"},
                         params={"returnflag": "text"})
        assert r.content.startswith(b"1")
    assert count(stack, tables.messages) == 0 and balance(stack) == 10_000


# -- getSms.do ----------------------------------------------------------------------

def add_mo(stack, username: str, phone: str, extno: str, content: str, at: datetime, pushed: str = "none") -> None:
    with stack.runtime.engine.begin() as conn:
        aid = acc.account_id(conn, username)
        received = int(at.timestamp() * 1000)
        payload = {"mo_id": 1, "from": phone, "to": "1069000" + extno, "extno": extno, "content": content,
                   "received_at": at.astimezone().isoformat()}
        conn.execute(insert(tables.events).values(
            account_id=aid, kind="mo", ref_id=1, payload=orjson.dumps(payload).decode(), created_at=received,
            push_state=pushed, attempts=0, next_at=received))


def vendor_org(stack) -> dict:
    """The document's org 8000123: an admin "user" (sub-number 000) and a colleague (789)."""
    with stack.runtime.engine.begin() as conn:
        acc.create_org(conn, "8000123", "Example")
        _, secret, _ = acc.create_account(conn, stack.runtime.cipher, org_code="8000123", username="user",
                                          pay_type="org", role="admin", extension="000")
        acc.create_account(conn, stack.runtime.cipher, org_code="8000123", username="colleague",
                           pay_type="org", extension="789")
        acc.topup(conn, ("org", acc.org_id(conn, "8000123")), 198)
    return {"entid": "8000123", "uid": "user", "pwd": secret}


WHEN = datetime(2007, 12, 7, 18, 23, 8)


async def test_get_sms_text_matches_the_example_and_hands_each_mo_out_once(stack):
    login = vendor_org(stack)
    # "00016": the account's sub-number 000 and the sender's 16.
    add_mo(stack, "user", "13916610888", "16", "d44444444444", WHEN)
    async with client(stack) as c:
        r = await c.get("/getSms.do?" + q(**login))
        assert r.content == ("0\n# 机构账户余额是(The organization's balance is):198\n"
                             "# extno,mobile,replytime,msg\n"
                             "00016,13916610888,2007-12-07 18:23:08,d44444444444").encode("gbk")
        r = await c.get("/getSms.do?" + q(**login))
        assert r.content == ("0\n# 机构账户余额是(The organization's balance is):198\n"
                             "# extno,mobile,replytime,msg").encode("gbk")


async def test_get_sms_xml_getall_matches_the_example(stack):
    login = vendor_org(stack)
    add_mo(stack, "user", "13916610888", "", "你好", WHEN)
    add_mo(stack, "colleague", "13916610888", "88", "d44444444444", WHEN)
    add_mo(stack, "alice", "13916610888", "", "another org's", WHEN)
    empty = ('<?xml version="1.0" encoding="GBK" ?>\n<qmsg>\n  <version>1.9</version>\n'
             '  <statCode>0</statCode>\n  <statMsg />\n  <remark />\n  <payType>1</payType>\n'
             '  <balance>198</balance>\n')
    async with client(stack) as c:
        r = await c.get("/getSms.do?" + q(**login, returnflag="xml", getall="yes"))
        assert r.content == (empty + (
            "  <MO>\n    <entId>8000123</entId>\n    <srcId>13916610888</srcId>\n    <destId>000</destId>\n"
            "    <msgContent>你好</msgContent>\n    <replyTime>2007-12-07 18:23:08</replyTime>\n  </MO>\n"
            "  <MO>\n    <entId>8000123</entId>\n    <srcId>13916610888</srcId>\n    <destId>78988</destId>\n"
            "    <msgContent>d44444444444</msgContent>\n    <replyTime>2007-12-07 18:23:08</replyTime>\n"
            "  </MO>\n</qmsg>")).encode("gbk")
        # The example without new MO.
        for flag in ("TRUE", "True", "true", "1", "YES"):
            r = await c.get("/getSms.do?" + q(**login, returnflag="xml", getall=flag))
            assert r.content == (empty + "</qmsg>").encode("gbk"), flag
        # alice's MO was left for alice.
        r = await c.get("/getSms.do?" + q(**creds(stack), getall="no"))
        assert r.text.endswith("\n12,13916610888,2007-12-07 18:23:08,another org's")


async def test_get_sms_text_is_safe_for_odd_content(stack):
    add_mo(stack, "alice", "13800138000", "5", "第一行\n第二行 & <b> 😀", WHEN)
    add_mo(stack, "alice", "13800138000", "5", "a & <b> 😀", WHEN)
    async with client(stack) as c:
        r = await c.get("/getSms.do?" + q(**creds(stack), returnflag="text"))
        assert r.content.decode("gb18030").split("\n")[2:] == [
            "# extno,mobile,replytime,msg", "125,13800138000,2007-12-07 18:23:08,第一行 第二行 & <b> 😀",
            "125,13800138000,2007-12-07 18:23:08,a & <b> 😀"]
        assert r.content.decode("gb18030").split("\n")[1] == "# 个人账户余额是(The personal balance is):10000"
        add_mo(stack, "alice", "13800138000", "5", "a & <b> 😀", WHEN)
        r = await c.get("/getSms.do?" + q(**creds(stack), returnflag="xml"))
        assert "<msgContent>a &amp; &lt;b&gt; &#128512;</msgContent>" in r.content.decode("gbk")


async def test_get_sms_errors(stack):
    async with client(stack) as c:
        async def code(**values) -> bytes:
            return (await c.get("/getSms.do?" + q(**values))).content
        assert await code(entid=ORG, uid="alice") == b"1"
        assert await code(**creds(stack, getall="maybe")) == b"1"
        # getall=yes is for org admins.
        assert await code(**creds(stack, getall="yes")) == b"1"
        assert await code(**creds(stack, pwd="wrong")) == b"5"
        assert await code(**creds(stack, uid="nobody")) == b"5"
        assert await code(**creds(stack, entid="8000123")) == b"5"
        update(stack, state="locked")
        assert await code(**creds(stack)) == b"8"
        update(stack, state="expired")
        assert await code(**creds(stack)) == b"10"
        r = await c.get("/getSms.do?" + q(**creds(stack, returnflag="xml")))
        assert r.content == (
            '<?xml version="1.0" encoding="GBK" ?>\n<qmsg>\n  <version>1.9</version>\n'
            '  <statCode>10</statCode>\n  <statMsg>账号已过期</statMsg>\n  <remark />\n'
            '  <payType>0</payType>\n  <balance>10000</balance>\n</qmsg>').encode("gbk")


async def test_get_sms_database_error(stack, monkeypatch):
    async def broken(fn, arg=None):
        raise RuntimeError("database went away")
    monkeypatch.setattr(stack.runtime.writer, "run", broken)
    async with client(stack) as c:
        r = await c.post("/getSms.do", data=creds(stack))
    assert r.content == b"2"


@pytest.mark.parametrize("pushed, returned", [("none", True), ("pending", True), ("dead", True),
                                              ("done", False)])
async def test_pull_takes_what_no_push_delivered(stack, pushed, returned):
    add_mo(stack, "alice", "13800138000", "5", "hi", WHEN, pushed=pushed)
    async with client(stack) as c:
        r = await c.get("/getSms.do?" + q(**creds(stack)))
    assert r.text.endswith(",hi") is returned
    with stack.runtime.engine.connect() as conn:
        state = conn.execute(select(tables.events.c.push_state)).scalar()
    assert state == ("pulled" if returned else "done")
