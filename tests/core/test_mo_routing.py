"""Replies (MO): routed to accounts by their extension, stored in batches, sent back the way the customer sends."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest
from sqlalchemy import event, insert, select

from hongyan.channels.base import Inbound
from hongyan.core import accounts as acc
from hongyan.core.accounts import Directory
from hongyan.core.receive import Receiver
from hongyan.core.secrets import Cipher
from hongyan.dialects.qmsg import ext_of
from hongyan.domain.clock import now_ms
from hongyan.store import tables
from hongyan.store.db import migrate
from tests.helpers import engines

WHEN = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def env(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    ids = {}
    with engine.begin() as conn:
        acc.create_org(conn, "8000123")
        # Extensions as in the qmsg document's examples ("100" is the enterprise's
        # sub-number) and its pull example ("789" in destId 78988), plus one that
        # another extension starts with, to show the longest one wins.
        for name, ext in (("ent100", "100"), ("ent789", "789"), ("ent000", "000"),
                          ("ent1006", "1006"), ("plain", "")):
            ids[name] = acc.create_account(conn, cipher, org_code="8000123", username=name, extension=ext)[0]
    directory = Directory(reader, cipher)
    yield engine, directory, Receiver(directory), ids
    engine.dispose()
    reader.dispose()


def mo_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(tables.mo).order_by(tables.mo.c.id)).all()


def mo_events(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(tables.events).where(tables.events.c.kind == "mo")
                            .order_by(tables.events.c.id)).all()


def test_the_qmsg_documents_examples(env):
    _, directory, _, ids = env
    # "用户回复到号码1065710908999910012，其中 10657109089999 是主号码，100 是企业的子号码，
    #  12 是用户的子号码，则此处 extno=10012"
    account, extno = directory.route_mo("1065710908999910012", "10657109089999")
    assert account.id == ids["ent100"] and extno == "12"
    assert ext_of(account, {"extno": extno}) == "10012"
    # "如果用户回复到号码 555589999100123, 其中 555589999 是主号码, 100 是企业的子号码,
    #  123 是企业再次扩展的子号码, 则此处 ext=100123"
    account, extno = directory.route_mo("555589999100123", "555589999")
    assert account.id == ids["ent100"] and extno == "123"
    assert ext_of(account, {"extno": extno}) == "100123"
    # getSms's destId: "前 3 位固定为机构编号, 剩余为用户编号" (78988 and 000), the number
    # after the main one, as a channel without an access code delivers it.
    account, extno = directory.route_mo("78988", "")
    assert account.id == ids["ent789"] and extno == "88"
    account, extno = directory.route_mo("000", "")
    assert account.id == ids["ent000"] and extno == ""


def test_longest_extension_wins_and_the_account_without_one_takes_the_rest(env):
    _, directory, _, ids = env
    assert directory.route_mo("106900010065", "1069000")[0].id == ids["ent1006"]
    account, extno = directory.route_mo("10690001005", "1069000")
    assert account.id == ids["ent100"] and extno == "5"
    # No extension matches: the one account without an extension has it, whole.
    account, extno = directory.route_mo("10690004242", "1069000")
    assert account.id == ids["plain"] and extno == "4242"


def test_a_destination_without_the_channels_access_code_is_nobodys(env):
    _, directory, _, _ = env
    assert directory.route_mo("1065999100123", "1069000") == (None, "1065999100123")


def test_unknown_destination_is_kept_unrouted_without_an_event(env):
    engine, directory, receiver, ids = env
    with engine.begin() as conn:
        acc.update_account(conn, "plain", extension="55")  # now no account catches the rest
    directory.invalidate()
    with engine.begin() as conn:
        n = receiver.apply_mo(conn, [(Inbound(3, "13916610888", "10690009999", "hello?", WHEN), "1069000"),
                                     (Inbound(3, "13916610888", "2000100", "elsewhere", WHEN), "1069000")])
    assert n == 0
    rows = mo_rows(engine)
    assert [(r.account_id, r.dest, r.extno, r.content) for r in rows] == [
        (None, "10690009999", "9999", "hello?"), (None, "2000100", "2000100", "elsewhere")]
    assert rows[0].received_at == int(WHEN.timestamp() * 1000) and rows[0].channel_id == 3
    assert mo_events(engine) == []


def test_a_batch_of_mo_is_one_insert_and_keeps_its_order(env):
    engine, directory, receiver, ids = env
    directory.extensions()  # warm the cache: the statements counted are the batch's own
    directory.by_id(ids["ent100"]), directory.by_id(ids["ent789"])
    items = [(Inbound(1, f"1391661{i:04d}", "10690001000" + str(i % 10), f"回复 {i}", WHEN), "1069000")
             for i in range(1500)]
    items.insert(700, (Inbound(1, "13916610888", "999", "unrouted", WHEN), "1069000"))
    inserts = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO MO"):
            inserts.append(executemany)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            assert receiver.apply_mo(conn, items) == 1500
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # PostgreSQL pages a many-row insert by 1000: two statements for 1501 rows.
    assert 1 <= len(inserts) <= 2
    rows = mo_rows(engine)
    assert [r.content for r in rows] == [i[0].text for i in items]
    events = mo_events(engine)
    by_mo = {r.id: r for r in rows}
    assert len(events) == 1500
    for e in events:
        payload = orjson.loads(e.payload)
        row = by_mo[e.ref_id]
        # Each event names its own MO row: ids were matched to rows in order.
        assert payload["mo_id"] == row.id and payload["content"] == row.content and payload["from"] == row.phone
        assert e.account_id == row.account_id == ids["ent100"] and payload["extno"] == row.extno
        assert payload["optout"] is False
    # The ids were taken the table's own way: a row inserted after them gets a fresh one.
    with engine.begin() as conn:
        later = conn.execute(insert(tables.mo).values(channel_id=1, phone="1", dest="1", extno="", content="x",
                                                      received_at=0)).inserted_primary_key[0]
    assert later > max(by_mo)


def _submission(conn, account_id: int, extno: str, dialect: str, created_at: int, sid: int) -> None:
    conn.execute(insert(tables.submissions).values(
        id=sid, account_id=account_id, dialect=dialect, content="x", extno=extno, recipients=1, parts=1,
        cost=1, state="accepted", created_at=created_at))


def test_replies_go_back_over_the_session_the_extension_last_sent_by(env):
    engine, directory, receiver, ids = env
    with engine.begin() as conn:
        acc.update_account(conn, "ent100", mo_url="http://127.0.0.1:9/mo")
    directory.invalidate()
    now = now_ms()
    with engine.begin() as conn:
        _submission(conn, ids["ent100"], "7", "native", now - 60_000, 1)
        _submission(conn, ids["ent100"], "7", "cmpp", now - 1_000, 2)     # the latest by extension 7
        _submission(conn, ids["ent100"], "8", "cmpp", now - 60_000, 3)
        _submission(conn, ids["ent100"], "8", "native", now - 1_000, 4)   # the latest by extension 8
        _submission(conn, ids["ent100"], "9", "smpp", now - 8 * 24 * 3600_000, 5)  # too long ago
    with engine.begin() as conn:
        receiver.apply_mo(conn, [(Inbound(1, "13916610888", dest, "hi", WHEN), "1069000")
                                 for dest in ("10690001007", "10690001008", "10690001009", "1069000100")], now)
    states = {orjson.loads(e.payload)["extno"]: e.push_state for e in mo_events(engine)}
    assert states == {"7": "session", "8": "pending", "9": "pending", "": "pending"}


def test_the_mo_push_dialect_setting_sends_every_reply_by_session(env):
    engine, directory, receiver, ids = env
    with engine.begin() as conn:
        acc.update_account(conn, "ent789", mo_push_dialect="smpp")
    directory.invalidate()
    with engine.begin() as conn:
        receiver.apply_mo(conn, [(Inbound(1, "13916610888", "106900078988", "hi", WHEN), "1069000")])
    (e,) = mo_events(engine)
    assert e.account_id == ids["ent789"] and e.push_state == "session"
