"""One Hongyan routed through another: A's HTTP upstream channel speaks a vendor dialect to B.

B is the usual stack (CMPP simulator channel, account alice) with alice's
pushes in the dialect going to A's ``/upstream/up/report|mo``. A has one
channel, protocol ``http-<dialect>``, logged in to B as alice, and its own
customer carol with a callback server.
"""
from __future__ import annotations

import contextlib

import httpx
import orjson
import pytest
from sqlalchemy import insert, select

from hongyan.app import create_app
from hongyan.config import Settings
from hongyan.core import accounts as acc
from hongyan.core.secrets import Cipher
from hongyan.dialects import push_formats
from hongyan.runtime import Runtime
from hongyan.store import tables
from hongyan.store.db import make_engine, migrate
from tests.conftest import SECRET_KEY
from tests.e2e.conftest import Callbacks, carrier_and_customer, serve_asgi, stop_asgi
from tests.helpers import free_port, until

DIALECTS = ["httpbatch", "qxt", "k1680", "qmsg", "kxt3"]
# How B refuses alice for good, per dialect: its answer for "no balance" where
# that answer is final; qxt's is its retryable system error, so a locked account.
FINAL_REFUSAL = {"httpbatch": "balance", "qxt": "locked", "k1680": "balance", "qmsg": "balance", "kxt3": "balance"}
# Dialects whose sends name a product: B's alice subscribes to it, and it pays.
PRODUCTS = {"k1680": ("productid", "61341")}
# B's channel access code + alice's extension: the number B sends alice's messages from.
ALICE_SOURCE = "106900012"


class Relay:
    async def start_b(self) -> None:
        self.b = Runtime(self.b_settings)
        self.b_server = await serve_asgi(create_app(self.b_settings, self.b), self.b_settings.http_port)

    async def stop_b(self) -> None:
        await stop_asgi(self.b_server)

    def up(self):
        return self.a.router.channels()[0]


def _seed_a(settings: Settings, *, b_base: str, dialect: str, alice_secret: str, report_url: str,
            options: dict) -> dict:
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    cipher = Cipher(settings.secret_key)
    with engine.begin() as conn:
        acc.create_org(conn, "300001", "Customer of A")
        aid, secret, key = acc.create_account(conn, cipher, org_code="300001", username="carol",
                                              report_url=report_url)
        acc.topup(conn, acc.owner_of(conn, "carol"), 1000, note="test")
        conn.execute(insert(tables.channels).values(
            name="up", protocol=f"http-{dialect}", host="", port=0, username="alice",
            secret_enc=cipher.encrypt(alice_secret), access_code=ALICE_SOURCE, service_id="",
            mps=1000, window=8, connections=1, enabled=True, is_default=True,
            options=orjson.dumps({"url": b_base, "probe_initial": 0.1, "probe_max": 0.3, **options}).decode()))
    engine.dispose()
    return {"key": key}


@contextlib.asynccontextmanager
async def relay(settings, tmp_path, dialect: str, *, b_balance: int = 10_000, a_options: dict | None = None):
    r = Relay()
    a_port = free_port()
    a_base = f"http://127.0.0.1:{a_port}"
    r.sim, r.b_callbacks, b_cb_server, alice = await carrier_and_customer(settings, report_delay=0.05,
                                                                          balance=b_balance)
    engine = make_engine(settings.resolved_database_url())
    a_options = dict(a_options or {})
    if dialect == "qmsg":
        # qmsg logs in with the org code, and a reply's ext starts with the account's extension.
        a_options.update(entid="200001", account_ext="12")
    if dialect == "kxt3":
        a_options["cid"] = "200001"
    with engine.begin() as conn:
        if dialect in PRODUCTS:
            option, code = PRODUCTS[dialect]
            pid = acc.create_product(conn, code, "行业短信")
            acc.subscribe(conn, "alice", code)
            acc.ensure_balance(conn, acc.owner_of(conn, "alice"), pid)
            if b_balance:
                acc.topup(conn, acc.owner_of(conn, "alice"), b_balance, product_code=code, note="test")
            a_options[option] = code
        acc.update_account(conn, "alice", push_dialect=dialect, report_url=f"{a_base}/upstream/up/report",
                           mo_url=f"{a_base}/upstream/up/mo")
    engine.dispose()
    settings.http_port = free_port()
    r.b_settings = settings
    r.b_base = f"http://127.0.0.1:{settings.http_port}"
    await r.start_b()

    r.callbacks = Callbacks()
    cb_port = free_port()
    a_cb_server = await serve_asgi(r.callbacks, cb_port)
    a_settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", secret_key=SECRET_KEY,
                          config_path=str(tmp_path / "a.toml"), commit_window_ms=1.0, http_port=a_port,
                          cmpp_server_port=0, smpp_server_port=0)
    carol = _seed_a(a_settings, b_base=r.b_base, dialect=dialect, alice_secret=alice["secret"],
                    report_url=f"http://127.0.0.1:{cb_port}/reports", options=a_options)
    r.a = Runtime(a_settings)
    a_server = await serve_asgi(create_app(a_settings, r.a), a_port)
    r.a_base, r.headers = a_base, {"Authorization": f"Bearer {carol['key']}"}
    try:
        await until(lambda: r.up().connected, what="A's upstream channel up")
        yield r
    finally:
        await stop_asgi(a_server)
        await stop_asgi(a_cb_server)
        with contextlib.suppress(Exception):
            await r.stop_b()
        await stop_asgi(b_cb_server)
        await r.sim.stop()


def _ledgers_balance(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        assert acc.ledger_mismatches(conn) == []


async def _send(r: Relay, to, content: str, **extra) -> dict:
    async with httpx.AsyncClient(base_url=r.a_base, headers=r.headers) as client:
        resp = await client.post("/v1/messages", json={"to": to, "content": content, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _balance(r: Relay) -> int:
    async with httpx.AsyncClient(base_url=r.a_base, headers=r.headers) as client:
        return (await client.get("/v1/balance")).json()["balances"][0]["amount"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_send_through_an_upstream_is_delivered_and_reported(settings, tmp_path, dialect):
    async with relay(settings, tmp_path, dialect) as r:
        body = await _send(r, ["13800138000", "18612345678"], "【鸿雁】经上游发送 1234")
        ids = {m["id"] for m in body["messages"]}
        await until(lambda: len(r.callbacks.reports()) == 2, what="two reports at A's customer")
        reports = r.callbacks.reports()
        assert {x["message_id"] for x in reports} == ids
        assert all(x["status"] == "delivered" and x["carrier_status"] == "DELIVRD" for x in reports)
        assert r.sim.stats["submits"] == 2
        # Both numbers went in one request to B, and A matched B's reports by their ids.
        with r.b.engine.connect() as conn:
            b_msgs = conn.execute(select(tables.messages.c.submission_id, tables.messages.c.phone,
                                         tables.messages.c.state)).all()
        assert len({m.submission_id for m in b_msgs}) == 1 and {m.state for m in b_msgs} == {"delivered"}
        with r.a.engine.connect() as conn:
            cids = conn.execute(select(tables.carrier_ids.c.carrier_id, tables.carrier_ids.c.status)).all()
            orphans = conn.execute(select(tables.orphan_reports)).all()
        assert len(cids) == 2 and orphans == []
        assert await _balance(r) == 1000 - 2

        # A long message: one id at the upstream, one report for both parts here.
        body = await _send(r, "13700137000", "【鸿雁】" + "长" * 80)
        assert body["parts"] == 2
        long_id = body["messages"][0]["id"]
        await until(lambda: any(x["message_id"] == long_id for x in r.callbacks.reports()),
                    what="the long message's report")
        rep = next(x for x in r.callbacks.reports() if x["message_id"] == long_id)
        assert rep["status"] == "delivered" and rep["parts"] == 2
        _ledgers_balance(r.a)
        _ledgers_balance(r.b)

        # A reply at B's carrier, to alice's number + extension 5, reaches A's customer.
        r.sim.inject_mo("13800138000", "1069000125", "上游回复 TD")
        await until(lambda: any("mo_id" in i for i in r.callbacks.items.values()), what="an MO at A's customer")
        mo = next(i for i in r.callbacks.items.values() if "mo_id" in i)
        assert mo["from"] == "13800138000" and mo["content"] == "上游回复 TD"
        # kxt3 replies name no destination, so the sender's extension cannot come back.
        assert mo["extno"] == ("" if dialect == "kxt3" else "5")

        # Pushes for no upstream channel, and pushes that cannot be read, record nothing.
        async with httpx.AsyncClient(base_url=r.a_base) as client:
            assert (await client.get("/upstream/nope/report")).status_code == 404
            assert (await client.get("/upstream/up/other")).status_code == 404
            bad = await client.post("/upstream/up/report", content=b"\x00garbage",
                                    headers={"Content-Type": "application/octet-stream"})
        # The upstream's push sender must not take that answer as "received".
        assert not push_formats()[dialect].accepts(bad.status_code, bad.content)
        with r.a.engine.connect() as conn:
            assert conn.execute(select(tables.orphan_reports)).all() == []


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_upstream_refusal_fails_and_refunds(settings, tmp_path, dialect):
    how = FINAL_REFUSAL[dialect]
    async with relay(settings, tmp_path, dialect, b_balance=0 if how == "balance" else 10_000) as r:
        if how == "locked":
            with r.b.engine.begin() as conn:
                acc.update_account(conn, "alice", state="locked")
            r.b.directory.invalidate()
        body = await _send(r, "13800138000", "【鸿雁】余额不足")
        await until(lambda: len(r.callbacks.reports()) == 1, what="a failure report")
        rep = r.callbacks.reports()[0]
        assert rep["message_id"] == body["messages"][0]["id"]
        assert rep["status"] == "failed" and rep["refunded"] is True
        with r.a.engine.connect() as conn:
            m = conn.execute(select(tables.messages.c.attempts)).one()
        assert m.attempts == 1  # a final refusal is not tried again
        assert await _balance(r) == 1000
        assert r.sim.stats["submits"] == 0
        _ledgers_balance(r.a)
        _ledgers_balance(r.b)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_upstream_down_holds_messages_until_it_is_back(settings, tmp_path, dialect):
    async with relay(settings, tmp_path, dialect) as r:
        await r.stop_b()
        first = await _send(r, "13800138000", "【鸿雁】上游停了")
        await until(lambda: not r.up().connected, what="A's channel down")
        second = await _send(r, "13900139000", "【鸿雁】上游停了")
        ids = {first["messages"][0]["id"], second["messages"][0]["id"]}
        with r.a.engine.connect() as conn:
            states = {s for (s,) in conn.execute(select(tables.messages.c.state))}
        assert states <= {"queued", "submitting"}
        assert r.callbacks.reports() == []
        await r.start_b()
        await until(lambda: {x["message_id"] for x in r.callbacks.reports()} == ids, timeout=15,
                    what="both messages delivered once B is back")
        assert all(x["status"] == "delivered" for x in r.callbacks.reports())
        _ledgers_balance(r.a)
        _ledgers_balance(r.b)


def test_channel_add_takes_an_upstream_url_and_options(settings, tmp_path):
    from click.testing import CliRunner

    from hongyan.cli import main
    from hongyan.config import write_config

    config = tmp_path / "hongyan.toml"
    write_config(str(config), {"database_url": settings.database_url, "secret_key": settings.secret_key})
    runner = CliRunner()
    base = ["--config", str(config), "channel", "add"]
    done = runner.invoke(main, base + ["up", "--protocol", "http-httpbatch", "--url", "http://10.0.0.5:8080",
                                       "--username", "alice", "--password", "s3cret", "--access-code", "106900012",
                                       "--option", "product=274463133", "--option", "timeout=5"])
    assert done.exit_code == 0, done.output
    no_url = runner.invoke(main, base + ["up2", "--protocol", "http-qxt", "--username", "a", "--password", "b"])
    assert no_url.exit_code != 0 and "--url" in no_url.output
    bad = runner.invoke(main, base + ["up3", "--protocol", "http-qxt", "--url", "http://x", "--username", "a",
                                      "--password", "b", "--option", "novalue"])
    assert bad.exit_code != 0 and "KEY=VALUE" in bad.output
    engine = make_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            row = conn.execute(select(tables.channels).where(tables.channels.c.name == "up")).one()
    finally:
        engine.dispose()
    assert row.protocol == "http-httpbatch" and row.access_code == "106900012"
    assert orjson.loads(row.options) == {"product": "274463133", "timeout": "5", "url": "http://10.0.0.5:8080"}
