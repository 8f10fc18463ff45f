"""Opt-out replies (退订): the sender goes on the account's blacklist with the MO, and the event says so."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest
from sqlalchemy import select

from hongyan.channels.base import Inbound
from hongyan.core import accounts as acc
from hongyan.core import blacklist
from hongyan.core.accept import AcceptService, SendRequest
from hongyan.core.accounts import AdminError, Directory
from hongyan.core.blacklist import Blacklist
from hongyan.core.receive import Receiver
from hongyan.core.rules import get_rules, set_rules
from hongyan.core.secrets import Cipher
from hongyan.domain.optout import DEFAULT_KEYWORDS
from hongyan.store import tables
from hongyan.store.db import migrate
from hongyan.store.writer import Writer
from tests.helpers import engines, seed

WHEN = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
ACCESS = "1069000"


@pytest.fixture
def env(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    with engine.begin() as conn:
        acc.create_org(conn, "200001")
        alice = acc.create_account(conn, cipher, org_code="200001", username="alice", extension="12")[0]
        bob = acc.create_account(conn, cipher, org_code="200001", username="bob", extension="34")[0]
    directory = Directory(reader, cipher)
    yield engine, Receiver(directory), {"alice": alice, "bob": bob}
    engine.dispose()
    reader.dispose()


def reply(phone: str, text: str, ext: str = "12") -> tuple[Inbound, str]:
    return Inbound(1, phone, ACCESS + ext, text, WHEN), ACCESS


def listed(engine, account_id: int) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r["phone"]: r for r in blacklist.list_(conn, account_id)}


def mo_payloads(engine) -> list[dict]:
    with engine.connect() as conn:
        return [orjson.loads(r.payload) for r in conn.execute(
            select(tables.events.c.payload).where(tables.events.c.kind == "mo").order_by(tables.events.c.id))]


@pytest.mark.parametrize("text", ["TD", "退订", "T", "td。", "【退订】", "Ｔ Ｄ", "STOP"])
def test_an_optout_reply_blacklists_the_sender_for_that_account(env, text):
    engine, receiver, ids = env
    with engine.begin() as conn:
        assert receiver.apply_mo(conn, [reply("13800138000", text)]) == 1
    entries = listed(engine, ids["alice"])
    assert list(entries) == ["13800138000"]
    with engine.connect() as conn:
        (mo_row,) = conn.execute(select(tables.mo)).all()
    assert entries["13800138000"]["reason"] == "optout"
    assert entries["13800138000"]["note"] == f"mo {mo_row.id}: {text}"
    (payload,) = mo_payloads(engine)
    assert payload["optout"] is True and payload["mo_id"] == mo_row.id and payload["content"] == text
    # Only the account that was answered: bob still may send to the number.
    assert listed(engine, ids["bob"]) == {} and listed(engine, blacklist.GLOBAL) == {}


@pytest.mark.parametrize("text", ["Thanks, got it", "T.T", "好的", "退订怎么操作？", "回复 TD【公司】", "TDD"])
def test_an_ordinary_reply_does_not(env, text):
    engine, receiver, ids = env
    with engine.begin() as conn:
        receiver.apply_mo(conn, [reply("13800138000", text)])
    assert listed(engine, ids["alice"]) == {}
    (payload,) = mo_payloads(engine)
    assert payload["optout"] is False


def test_a_batch_with_optouts_and_repeats(env):
    engine, receiver, ids = env
    with engine.begin() as conn:
        receiver.apply_mo(conn, [reply("13800138000", "TD"), reply("13900139000", "你好"),
                                 reply("13800138000", "退订"), reply("13700137000", "T", ext="34")])
    assert list(listed(engine, ids["alice"])) == ["13800138000"]   # once, though asked twice
    assert list(listed(engine, ids["bob"])) == ["13700137000"]
    assert [p["optout"] for p in mo_payloads(engine)] == [True, False, True, True]


def test_blacklisting_shares_the_mos_transaction(env):
    engine, receiver, ids = env
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            receiver.apply_mo(conn, [reply("13800138000", "TD")])
            raise RuntimeError("the batch fails after the MO was written")
    assert listed(engine, ids["alice"]) == {}
    with engine.connect() as conn:
        assert conn.execute(select(tables.mo)).all() == []


def test_an_unrouted_optout_blacklists_nobody(env):
    engine, receiver, _ = env
    with engine.begin() as conn:
        assert receiver.apply_mo(conn, [reply("13800138000", "TD", ext="99")]) == 0
    with engine.connect() as conn:
        assert blacklist.list_(conn) == []


def test_the_words_are_the_accounts_rule(env):
    engine, receiver, ids = env
    with engine.begin() as conn:
        set_rules(conn, ids["alice"], optout_words="QX, 取消")
        set_rules(conn, ids["bob"], optout_words="")       # bob's replies never unsubscribe
    with engine.begin() as conn:
        receiver.apply_mo(conn, [reply("13800138000", "TD"), reply("13900139000", "qx!"),
                                 reply("13700137000", "TD", ext="34")])
    assert list(listed(engine, ids["alice"])) == ["13900139000"]
    assert listed(engine, ids["bob"]) == {}
    assert [p["optout"] for p in mo_payloads(engine)] == [False, True, False]


def test_the_platform_words_apply_under_the_accounts(env):
    engine, receiver, ids = env
    with engine.begin() as conn:
        set_rules(conn, 0, optout_words=["解除"])
        assert get_rules(conn, ids["bob"]).optout_words == ("解除",)
    with engine.begin() as conn:
        receiver.apply_mo(conn, [reply("13700137000", "解除", ext="34"), reply("13700137001", "TD", ext="34")])
    assert list(listed(engine, ids["bob"])) == ["13700137000"]


def test_a_word_without_a_letter_or_digit_is_refused(env):
    engine, _, ids = env
    with engine.begin() as conn:
        with pytest.raises(AdminError, match="optout_words"):
            set_rules(conn, ids["alice"], optout_words=["TD", "!!"])
        assert get_rules(conn, ids["alice"]).optout_words == DEFAULT_KEYWORDS


async def test_send_then_td_then_the_next_send_to_that_number_ends_mbblack(settings):
    """The whole loop through accept: a number that answered TD gets no more of that account's messages."""
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    seed(engine, cipher, balance=10)                       # alice, extension 12
    writer = Writer(engine)
    writer.start()
    try:
        directory = Directory(reader, cipher)
        receiver = Receiver(directory)
        numbers = Blacklist(reader)
        accept = AcceptService(directory, writer, blacklist=numbers, receiver=receiver)
        alice = directory.by_username("alice")
        first = await accept.send(SendRequest(account=alice, to="13800138000,13900139000", content="【店】上新了"))
        assert first.ok and first.data["cost"] == 2
        await writer.run(lambda conn, _: receiver.apply_mo(conn, [reply("13800138000", "TD")]))
        numbers.invalidate()  # a running server sees the new entry within its poll (1 s)
        second = await accept.send(SendRequest(account=alice, to="13800138000,13900139000", content="【店】又上新了"))
        assert second.ok
        with engine.connect() as conn:
            msgs = {r.phone: r for r in conn.execute(select(tables.messages).where(
                tables.messages.c.submission_id == second.data["submission_id"])).all()}
            assert acc.ledger_mismatches(conn) == []
            bal = acc.balances_of(conn, acc.owner_of(conn, "alice"))[0]["amount"]
        assert (msgs["13800138000"].state, msgs["13800138000"].status) == ("failed", "MBBLACK")
        assert msgs["13900139000"].state == "queued"
        assert bal == 10 - 2 - 1                            # the barred number is not billed
    finally:
        writer.stop()
        engine.dispose()
        reader.dispose()


def test_a_bad_stored_optout_word_does_not_stop_replies(env):
    engine, receiver, users = env
    with engine.begin() as conn:
        # As a row stored before the words were checked: "!!" would match nothing sensible.
        conn.execute(tables.account_rules.insert().values(
            account_id=users["alice"], settings=orjson.dumps({"optout_words": ["!!", "TD"]}).decode(),
            updated_at=0))
        assert receiver.apply_mo(conn, [reply("13800138000", "TD"), reply("13900139000", "你好")]) == 2
    assert set(listed(engine, users["alice"])) == {"13800138000"}
    assert [p["optout"] for p in mo_payloads(engine)] == [True, False]


@pytest.mark.parametrize("sender", ["8613800138000", "+8613800138000", "+86 138 0013 8000"])
async def test_an_optout_from_a_sender_in_international_form_bars_the_national_number(env, sender):
    engine, receiver, users = env
    with engine.begin() as conn:
        receiver.apply_mo(conn, [reply(sender, "TD")])
    # Accept compares numbers in their 11-digit form: the listed one must be that.
    assert set(listed(engine, users["alice"])) == {"13800138000"}
    cache = Blacklist(engine)
    cache.refresh()
    assert cache.blocked(users["alice"], "13800138000")
