"""The web console over a real server: sign-in, sessions, CSRF, customer and operator pages."""
from __future__ import annotations

import re

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, update

from hongyan.config import write_config
from hongyan.console import auth
from hongyan.core import accounts as acc
from hongyan.core.secrets import hash_password
from hongyan.domain.clock import now_ms
from hongyan.store import tables
from hongyan.store.db import make_engine, migrate
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)
from tests.helpers import until

PASSWORD = "s3cret-pass"


def set_console_password(stack, username: str, password: str) -> None:
    with stack.runtime.engine.begin() as conn:
        conn.execute(update(tables.accounts).where(tables.accounts.c.username == username)
                     .values(password_hash=hash_password(password)))
    stack.runtime.directory.invalidate()


def add_operator(stack, username: str = "ops", password: str = "ops-pass") -> None:
    with stack.runtime.engine.begin() as conn:
        auth.create_operator(conn, username, password)


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, "no CSRF token on the page"
    return m.group(1)


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    form = await client.get("/console/login")
    assert form.status_code == 200
    return await client.post("/console/login", data={"username": username, "password": password,
                                                     "csrf": csrf_of(form.text)})


def client_for(stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.base, follow_redirects=False, timeout=30)


@pytest.fixture
async def customer(stack):
    set_console_password(stack, "alice", PASSWORD)
    async with client_for(stack) as client:
        r = await login(client, "alice", PASSWORD)
        assert r.status_code == 303 and r.headers["location"] == "/console/dashboard"
        yield client


@pytest.fixture
async def operator(stack):
    add_operator(stack)
    async with client_for(stack) as client:
        r = await login(client, "ops", "ops-pass")
        assert r.status_code == 303 and r.headers["location"] == "/console/ops/"
        yield client


def balance_of(stack, username: str) -> int:
    with stack.runtime.engine.connect() as conn:
        return acc.balances_of(conn, acc.owner_of(conn, username))[0]["amount"]


async def test_login_refuses_a_wrong_password_and_accepts_the_right_one(stack):
    set_console_password(stack, "alice", PASSWORD)
    async with client_for(stack) as client:
        wrong = await login(client, "alice", "not-it")
        unknown = await login(client, "nobody", "not-it")
        for r in (wrong, unknown):
            assert r.status_code == 401
            assert "Wrong username or password." in r.text
        assert (await client.get("/console/dashboard")).status_code == 303
        right = await login(client, "alice", PASSWORD)
        assert right.status_code == 303 and right.headers["location"] == "/console/dashboard"
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=43200" in cookie
        page = await client.get("/console/dashboard")
        assert page.status_code == 200 and "alice" in page.text and "10,000" in page.text
        assert 'charset="utf-8"' in page.text and "鸿雁" in page.text
        missing = await client.get("/console/no-such-page")
        assert missing.status_code == 404 and "There is no such page." in missing.text


async def test_an_account_without_a_console_password_cannot_sign_in(stack):
    async with client_for(stack) as client:
        r = await login(client, "alice", "")
        assert r.status_code == 401


async def test_pages_require_signing_in(stack):
    async with client_for(stack) as client:
        for path in ("/console/dashboard", "/console/send", "/console/messages", "/console/replies",
                     "/console/api", "/console/submissions/1", "/console/ops/", "/console/ops/accounts",
                     "/console/ops/accounts/1", "/console/ops/channels", "/console/ops/ledger"):
            r = await client.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/console/login?next="), path
        assert (await client.get("/console/")).headers["location"] == "/console/login"
        # A cookie that was not signed by the server is no session.
        client.cookies.set(auth.COOKIE, "eyJ4Ijoxfq.forged", domain="127.0.0.1", path="/console")
        assert (await client.get("/console/dashboard")).status_code == 303


async def test_sign_in_returns_to_the_page_asked_for_and_not_elsewhere(stack):
    set_console_password(stack, "alice", PASSWORD)
    async with client_for(stack) as client:
        form = await client.get("/console/login", params={"next": "/console/messages?state=failed"})
        r = await client.post("/console/login", data={"username": "alice", "password": PASSWORD,
                                                      "csrf": csrf_of(form.text),
                                                      "next": "/console/messages?state=failed"})
        assert r.headers["location"] == "/console/messages?state=failed"
    async with client_for(stack) as client:
        form = await client.get("/console/login")
        r = await client.post("/console/login", data={"username": "alice", "password": PASSWORD,
                                                      "csrf": csrf_of(form.text), "next": "//evil.example/"})
        assert r.headers["location"] == "/console/dashboard"


async def test_customer_sends_from_the_form(stack, customer):
    page = await customer.get("/console/send")
    csrf = csrf_of(page.text)
    preview = await customer.post("/console/send", data={
        "csrf": csrf, "to": "13800138000\n18612345678", "content": "【鸿雁】控制台" + "长" * 70,
        "action": "preview", "token": "t-preview"})
    assert preview.status_code == 200
    assert "2 number(s) × 2 part(s) × 1 per part = cost 4" in preview.text
    with stack.runtime.engine.connect() as conn:
        assert conn.execute(select(tables.submissions)).first() is None
    sent = await customer.post("/console/send", data={
        "csrf": csrf, "to": "13800138000", "content": "【鸿雁】您的验证码是 4321", "action": "send",
        "token": "t-send"})
    assert sent.status_code == 200 and "Accepted" in sent.text
    sid = int(re.search(r"submission #(\d+)", sent.text).group(1))
    with stack.runtime.engine.connect() as conn:
        row = conn.execute(select(tables.messages).where(tables.messages.c.submission_id == sid)).one()
        sub = conn.execute(select(tables.submissions).where(tables.submissions.c.id == sid)).one()
    assert row.phone == "13800138000" and row.account_id == stack.user["id"]
    assert sub.content == "【鸿雁】您的验证码是 4321" and sub.dialect == "console"
    # The same form sent twice (a double click) sends once.
    again = await customer.post("/console/send", data={
        "csrf": csrf, "to": "13800138000", "content": "【鸿雁】您的验证码是 4321", "action": "send",
        "token": "t-send"})
    assert "already sent" in again.text
    assert balance_of(stack, "alice") == 10_000 - 1

    async def delivered():
        return "st-delivered" in (await customer.get("/console/messages", params={"phone": "13800138000"})).text
    await until(delivered, what="the message shown as delivered")
    listing = (await customer.get("/console/messages")).text
    assert "13800138000" in listing and "DELIVRD" in listing and f"/console/submissions/{sid}" in listing
    detail = await customer.get(f"/console/submissions/{sid}")
    assert detail.status_code == 200 and "您的验证码是 4321" in detail.text
    dashboard = (await customer.get("/console/dashboard")).text
    assert "DELIVRD" in dashboard and "9,999" in dashboard


async def test_a_refused_send_shows_why(stack, customer):
    csrf = csrf_of((await customer.get("/console/send")).text)
    r = await customer.post("/console/send", data={"csrf": csrf, "to": "12345", "content": "【鸿雁】x",
                                                   "action": "send"})
    assert r.status_code == 422 and "invalid mobile number: 12345" in r.text
    r = await customer.post("/console/send", data={"csrf": csrf, "to": "13800138000", "content": "  ",
                                                   "action": "send"})
    assert "the content is empty" in r.text


async def test_posts_without_the_csrf_token_are_refused(stack, customer):
    good = csrf_of((await customer.get("/console/api")).text)
    for token in (None, "", "0" * 32):
        data = {"to": "13800138000", "content": "【鸿雁】x", "action": "send"}
        if token is not None:
            data["csrf"] = token
        assert (await customer.post("/console/send", data=data)).status_code == 403
        assert (await customer.post("/console/api/rotate", data={"csrf": token or ""})).status_code == 403
        assert (await customer.post("/console/logout", data={"csrf": token or ""})).status_code == 403
    with stack.runtime.engine.connect() as conn:
        assert conn.execute(select(tables.submissions)).first() is None
        key_id = conn.execute(select(tables.accounts.c.key_id).where(tables.accounts.c.id == stack.user["id"])).scalar()
    assert stack.user["key"].startswith(f"hy_{key_id}_")
    # The token of the session before signing in is no good after it.
    async with client_for(stack) as other:
        before = csrf_of((await other.get("/console/login")).text)
        await other.post("/console/login", data={"username": "alice", "password": PASSWORD, "csrf": before})
        assert (await other.post("/console/api/rotate", data={"csrf": before})).status_code == 403
    assert (await customer.post("/console/logout", data={"csrf": good})).status_code == 303
    assert (await customer.get("/console/dashboard")).status_code == 303


async def test_login_form_needs_its_token(stack):
    set_console_password(stack, "alice", PASSWORD)
    async with client_for(stack) as client:
        r = await client.post("/console/login", data={"username": "alice", "password": PASSWORD})
        assert r.status_code == 403 and "expired" in r.text


async def test_api_page_reveals_and_rotates_the_key_and_saves_callbacks(stack, customer):
    page = await customer.get("/console/api")
    assert stack.user["key"] not in page.text and stack.user["secret"] not in page.text
    csrf = csrf_of(page.text)
    shown = await customer.post("/console/api/reveal", data={"csrf": csrf})
    assert stack.user["key"] in shown.text and stack.user["secret"] in shown.text
    rotated = await customer.post("/console/api/rotate", data={"csrf": csrf})
    new_key = re.search(r'<code class="secret">(hy_[^<]+)</code>', rotated.text).group(1)
    assert new_key != stack.user["key"]
    async with httpx.AsyncClient(base_url=stack.base) as api:
        old = await api.get("/v1/account", headers={"Authorization": f"Bearer {stack.user['key']}"})
        new = await api.get("/v1/account", headers={"Authorization": f"Bearer {new_key}"})
    assert old.status_code == 401 and new.status_code == 200
    saved = await customer.post("/console/api/callbacks", data={
        "csrf": csrf, "report_url": "https://example.com/r?a=1&b=2", "mo_url": ""})
    assert saved.status_code == 303 and saved.headers["location"] == "/console/api?saved=callbacks"
    page = (await customer.get(saved.headers["location"])).text
    assert "Callback URLs saved." in page and "https://example.com/r?a=1&amp;b=2" in page
    with stack.runtime.engine.connect() as conn:
        row = conn.execute(select(tables.accounts).where(tables.accounts.c.id == stack.user["id"])).one()
    assert row.report_url == "https://example.com/r?a=1&b=2" and row.mo_url is None
    bad = await customer.post("/console/api/callbacks", data={"csrf": csrf, "report_url": "javascript:alert(1)"})
    assert bad.status_code == 422 and "not an http(s) URL" in bad.text


async def test_replies_page_lists_the_accounts_mo(stack, customer):
    with stack.runtime.engine.begin() as conn:
        conn.execute(insert(tables.mo).values(account_id=stack.user["id"], channel_id=1, phone="13800138000",
                                              dest="106900012", extno="", content="退订 <b>T</b>",
                                              received_at=now_ms()))
        conn.execute(insert(tables.mo).values(account_id=None, channel_id=1, phone="13900000000",
                                              dest="1069000", extno="", content="not yours",
                                              received_at=now_ms()))
    page = (await customer.get("/console/replies")).text
    assert "退订 &lt;b&gt;T&lt;/b&gt;" in page and "not yours" not in page


async def test_message_content_is_escaped(stack, customer):
    csrf = csrf_of((await customer.get("/console/send")).text)
    evil = "【鸿雁】<script>alert('x')</script>"
    r = await customer.post("/console/send", data={"csrf": csrf, "to": "13800138000", "content": evil,
                                                   "action": "send", "token": "t-evil"})
    assert "Accepted" in r.text
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text
    sid = int(re.search(r"submission #(\d+)", r.text).group(1))
    for path in ("/console/messages", f"/console/submissions/{sid}"):
        page = await customer.get(path)
        assert "<script>" not in page.text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page.text
        assert "script-src" not in page.headers["content-security-policy"]  # no script is allowed at all
        assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_operator_tops_up_an_account(stack, operator):
    aid = stack.user["id"]
    page = await operator.get(f"/console/ops/accounts/{aid}")
    assert page.status_code == 200 and "alice" in page.text
    csrf = csrf_of(page.text)
    r = await operator.post(f"/console/ops/accounts/{aid}/topup", data={"csrf": csrf, "amount": "500",
                                                                        "note": "合同 2026-031"})
    assert r.status_code == 303 and r.headers["location"] == f"/console/ops/accounts/{aid}?done=topup"
    assert balance_of(stack, "alice") == 10_500
    with stack.runtime.engine.connect() as conn:
        row = conn.execute(select(tables.ledger).order_by(tables.ledger.c.id.desc())).first()
        assert acc.ledger_mismatches(conn) == []
    assert row.kind == "topup" and row.amount == 500 and row.note == "合同 2026-031 [operator ops]"
    page = (await operator.get(r.headers["location"])).text
    assert "Balance changed" in page and "10,500" in page and "合同 2026-031" in page
    # Taking back more than there is is refused, and nothing changes.
    r = await operator.post(f"/console/ops/accounts/{aid}/topup", data={"csrf": csrf, "amount": "-99999",
                                                                        "note": "oops"})
    assert r.status_code == 422 and "negative" in r.text
    r = await operator.post(f"/console/ops/accounts/{aid}/topup", data={"csrf": csrf, "amount": "5", "note": ""})
    assert r.status_code == 422
    assert balance_of(stack, "alice") == 10_500
    ledger = (await operator.get("/console/ops/ledger")).text
    assert "Every balance equals the sum of its ledger." in ledger


async def test_operator_locks_an_account_and_sending_is_refused(stack, operator):
    aid = stack.user["id"]
    csrf = csrf_of((await operator.get(f"/console/ops/accounts/{aid}")).text)
    r = await operator.post(f"/console/ops/accounts/{aid}/state", data={"csrf": csrf, "state": "locked"})
    assert r.status_code == 303
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as api:
        sent = await api.post("/v1/messages", json={"to": "13800138000", "content": "【鸿雁】x"})
    assert sent.status_code == 403 and sent.json()["code"] == "account_locked"
    bad = await operator.post(f"/console/ops/accounts/{aid}/state", data={"csrf": csrf, "state": "gone"})
    assert bad.status_code == 422


async def test_operator_pages_show_the_platform(stack, operator):
    overview = await operator.get("/console/ops/")
    assert overview.status_code == 200
    assert "Writer commits" in overview.text and "sim" in overview.text
    accounts = (await operator.get("/console/ops/accounts")).text
    assert "alice" in accounts and "200001" in accounts and "general 10,000" in accounts
    channels = (await operator.get("/console/ops/channels")).text
    assert "127.0.0.1" in channels and "st-connected" in channels and "sim-secret" not in channels


async def test_customers_and_operators_keep_to_their_pages(stack, customer, operator):
    aid = stack.user["id"]
    for path in ("/console/ops/", "/console/ops/accounts", f"/console/ops/accounts/{aid}", "/console/ops/ledger"):
        assert (await customer.get(path)).status_code == 403, path
    csrf = csrf_of((await customer.get("/console/dashboard")).text)
    r = await customer.post(f"/console/ops/accounts/{aid}/topup", data={"csrf": csrf, "amount": "1000",
                                                                        "note": "free money"})
    assert r.status_code == 403
    assert balance_of(stack, "alice") == 10_000
    assert (await operator.get("/console/dashboard")).status_code == 403
    assert (await operator.get("/console/")).headers["location"] == "/console/ops/"


async def test_a_changed_password_ends_open_sessions(stack, customer):
    assert (await customer.get("/console/dashboard")).status_code == 200
    set_console_password(stack, "alice", "another-one")
    assert (await customer.get("/console/dashboard")).status_code == 303


def test_demo_operator_is_made_once(db_url):
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            assert auth.ensure_demo_operator(conn) is True
            assert auth.ensure_demo_operator(conn) is False
        who = auth.check_login(engine, "admin", "admin")
        assert who is not None and who[0] == auth.OPERATOR
        assert auth.check_login(engine, "admin", "wrong") is None
    finally:
        engine.dispose()


def test_operator_commands(settings, tmp_path):
    from hongyan.cli import main

    config = tmp_path / "hongyan.toml"
    write_config(str(config), {"database_url": settings.database_url, "secret_key": settings.secret_key})
    runner = CliRunner()
    made = runner.invoke(main, ["--config", str(config), "operator", "create", "carol"])
    assert made.exit_code == 0, made.output
    password = re.search(r"password: (\S+)", made.output).group(1)
    again = runner.invoke(main, ["--config", str(config), "operator", "create", "carol", "--password", "x"])
    assert again.exit_code != 0 and "already exists" in again.output
    changed = runner.invoke(main, ["--config", str(config), "operator", "set-password", "carol"],
                            input="new-password\nnew-password\n")
    assert changed.exit_code == 0, changed.output
    missing = runner.invoke(main, ["--config", str(config), "operator", "set-password", "dave",
                                   "--password", "x"])
    assert missing.exit_code != 0 and "no operator" in missing.output
    engine = make_engine(settings.resolved_database_url())
    try:
        assert auth.check_login(engine, "carol", password) is None
        assert auth.check_login(engine, "carol", "new-password")[0] == auth.OPERATOR
    finally:
        engine.dispose()
