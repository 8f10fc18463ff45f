"""Routing: matching, weights, failover order; the dispatcher's use of it; CLI and admin API."""
from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import insert, select, update

from hongyan.channels.base import Channel, ChannelConfig, Outbound
from hongyan.core import accounts as acc
from hongyan.core import routing
from hongyan.core.accounts import AdminError, Directory
from hongyan.core.dispatch import Dispatcher, Pieces
from hongyan.core.recorder import Recorder
from hongyan.core.receive import Receiver
from hongyan.core.routing import Route, Router, carrier_code
from hongyan.core.secrets import Cipher
from hongyan.domain import segments
from hongyan.domain.clock import now_ms
from hongyan.store import tables
from hongyan.store.db import migrate
from hongyan.store.writer import Writer
from tests.helpers import engines, seed

UNICOM, CMCC = "unicom", "cmcc"


class FakeChannel(Channel):
    """A channel that keeps what it is handed; ``up`` says whether it is connected."""

    def __init__(self, cid: int, *, up: bool = True, access_code: str = "1069000", **options) -> None:
        super().__init__(ChannelConfig(id=cid, name=f"ch{cid}", protocol="fake", access_code=access_code,
                                       mps=100, options=options), events=None)
        self.up = up
        self.handed: list[Outbound] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def send(self, messages: list[Outbound]) -> None:
        self.handed.extend(messages)

    def queued(self) -> int:
        return 0

    @property
    def connected(self) -> bool:
        return self.up


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def router_with(*channels: FakeChannel, routes=(), default: int | None = None, **kw) -> Router:
    r = Router(**kw)
    for ch in channels:
        r.add(ch, default=ch.id == default)
    r.set_routes(routes)
    return r


def picks(router: Router, n: int, carrier=CMCC, product=None, account=None, avoid=()) -> list[int | None]:
    out = []
    for _ in range(n):
        ch = router.route(carrier, product, account, avoid)
        out.append(ch.id if ch else None)
    return out


# -- carriers -----------------------------------------------------------------------

def test_carrier_names_map_to_the_lookup_codes():
    assert carrier_code("联通") == carrier_code("中国联通") == carrier_code("UNICOM") == "unicom"
    assert carrier_code("移动") == carrier_code("cmcc") == "cmcc"
    assert carrier_code("电信") == carrier_code("telecom") == "telecom"
    assert carrier_code("广电") == "cbn"
    with pytest.raises(ValueError, match="unknown carrier"):
        carrier_code("小灵通")


# -- matching -------------------------------------------------------------------------

def test_without_routes_the_old_fallback_holds():
    a, b, c = FakeChannel(1), FakeChannel(2), FakeChannel(3)
    r = router_with(a, b, c, default=2)
    r.set_product_channels({7: 3})
    assert picks(r, 1, product=7) == [3]       # the product's channel
    assert picks(r, 1, product=8) == [2]       # else the default
    b.up = False
    assert picks(r, 1, product=8) == [1]       # else any connected
    c.up = False
    assert picks(r, 1, product=7) == [1]
    a.up = False
    assert picks(r, 1) == [None]


def test_most_specific_route_wins():
    chs = [FakeChannel(i) for i in range(1, 6)]
    r = router_with(*chs, routes=[
        Route(1, channel_id=1),                                            # catch-all
        Route(2, channel_id=2, carrier=UNICOM),
        Route(3, channel_id=3, account_id=10),
        Route(4, channel_id=4, account_id=10, carrier=UNICOM),
        Route(5, channel_id=5, product_id=7, carrier=UNICOM),
    ])
    assert picks(r, 1, CMCC) == [1]
    assert picks(r, 1, UNICOM) == [2]
    assert picks(r, 1, CMCC, account=10) == [3]
    assert picks(r, 1, UNICOM, account=10) == [4]
    assert picks(r, 1, UNICOM, product=7) == [5]
    # Two named fields beat one, whichever they are: product+carrier over account alone.
    assert picks(r, 1, UNICOM, product=7, account=11) == [5]
    assert picks(r, 1, CMCC, product=7, account=10) == [3]


def test_failover_goes_down_the_matching_routes_in_order():
    chs = {i: FakeChannel(i) for i in range(1, 5)}
    r = router_with(*chs.values(), routes=[
        Route(1, channel_id=1, carrier=UNICOM, priority=0),
        Route(2, channel_id=2, carrier=UNICOM, priority=5),
        Route(3, channel_id=3),                 # catch-all: last for a unicom number
        Route(4, channel_id=4, carrier=CMCC),
    ], default=4)
    assert picks(r, 1, UNICOM) == [1]
    chs[1].up = False
    assert picks(r, 1, UNICOM) == [2]
    chs[2].up = False
    assert picks(r, 1, UNICOM) == [3]
    chs[3].up = False
    # Routes matched: the message waits rather than leaving them for the default channel.
    assert picks(r, 1, UNICOM) == [None]
    assert picks(r, 1, CMCC) == [4]


def test_disabled_routes_and_routes_to_absent_channels_are_left_out():
    a, b = FakeChannel(1), FakeChannel(2)
    r = router_with(a, b, routes=[Route(1, channel_id=2, carrier=UNICOM, enabled=False),
                                  Route(2, channel_id=99, carrier=UNICOM)], default=1)
    assert r.routes() == ()
    assert picks(r, 1, UNICOM) == [1]   # nothing matches: the fallback


# -- weights --------------------------------------------------------------------------

def test_weights_are_smooth_and_exact():
    chs = [FakeChannel(1), FakeChannel(2), FakeChannel(3)]
    r = router_with(*chs, routes=[Route(1, channel_id=1, weight=5), Route(2, channel_id=2, weight=1),
                                  Route(3, channel_id=3, weight=1)])
    # nginx's smooth weighted round-robin for 5:1:1.
    assert picks(r, 7) == [1, 1, 2, 1, 3, 1, 1]
    counts = Counter(picks(r, 700))
    assert counts == {1: 500, 2: 100, 3: 100}


def test_weights_share_out_among_the_channels_that_are_up():
    chs = [FakeChannel(1), FakeChannel(2), FakeChannel(3)]
    r = router_with(*chs, routes=[Route(i, channel_id=i, weight=w) for i, w in ((1, 2), (2, 1), (3, 1))])
    chs[0].up = False
    assert Counter(picks(r, 100)) == {2: 50, 3: 50}


def test_same_selector_routes_to_one_channel_add_their_weights():
    chs = [FakeChannel(1), FakeChannel(2)]
    r = router_with(*chs, routes=[Route(1, channel_id=1, weight=1), Route(2, channel_id=1, weight=2),
                                  Route(3, channel_id=2, weight=1)])
    assert Counter(picks(r, 400)) == {1: 300, 2: 100}


# -- failover on failures ----------------------------------------------------------------

def test_retryable_failures_in_a_row_suspend_a_channel_for_a_while():
    clock = Clock()
    a, b = FakeChannel(1), FakeChannel(2)
    r = router_with(a, b, routes=[Route(1, channel_id=1, priority=0), Route(2, channel_id=2, priority=1)],
                    clock=clock, suspend_after=3, suspend_s=5.0)
    r.note_failed(1, retryable=True)
    r.note_failed(1, retryable=False)        # a final refusal is about the message
    r.note_failed(1, retryable=True)
    assert picks(r, 1) == [1]
    r.note_failed(1, retryable=True)         # the third retryable one in a row
    assert r.suspended(1) and picks(r, 1) == [2]
    for _ in range(10):
        r.note_failed(1, retryable=True)     # answers to what it had before the pause: no longer pause
    b.up = False
    assert picks(r, 1) == [1]                # suspended beats down
    b.up = True
    clock.t += 5.1
    assert picks(r, 1) == [1]                # the pause is over
    for _ in range(3):
        r.note_failed(1, retryable=True)     # still failing: suspended again, twice as long
    clock.t += 5.1
    assert picks(r, 1) == [2]
    clock.t += 5.0
    assert picks(r, 1) == [1]
    for _ in range(3):
        r.note_failed(1, retryable=True)
    assert r.suspended(1)
    r.note_sent(1)                           # one accepted submit ends it, and the doubling
    assert not r.suspended(1) and picks(r, 1) == [1]
    for _ in range(3):
        r.note_failed(1, retryable=True)
    clock.t += 5.1
    assert not r.suspended(1)


def test_failures_of_a_channel_that_is_down_do_not_suspend_it():
    a, b = FakeChannel(1), FakeChannel(2)
    r = router_with(a, b, routes=[Route(1, channel_id=1, priority=0), Route(2, channel_id=2, priority=1)])
    a.up = False
    for _ in range(50):
        r.note_failed(1, retryable=True)     # its link went, taking its window with it
    a.up = True
    assert not r.suspended(1) and picks(r, 1) == [1]


def test_a_message_avoids_the_channel_it_failed_on_when_it_can():
    a, b = FakeChannel(1), FakeChannel(2)
    r = router_with(a, b, routes=[Route(1, channel_id=1, weight=1), Route(2, channel_id=2, weight=1)])
    assert set(picks(r, 10, avoid=(1,))) == {2}
    b.up = False
    assert picks(r, 1, avoid=(1,)) == [1]    # the only one up: try it again
    no_routes = router_with(FakeChannel(1), FakeChannel(2), default=1)
    assert picks(no_routes, 1, avoid=(1,)) == [2]


# -- the table, reloaded --------------------------------------------------------------

def _seed_channels(engine, cipher, n=2):
    with engine.begin() as conn:
        for i in range(2, n + 1):
            conn.execute(insert(tables.channels).values(
                name=f"sim{i}", protocol="cmpp2", host="127.0.0.1", port=1, username="x",
                secret_enc=cipher.encrypt("x"), access_code="1069001", enabled=True, options="{}"))
        return dict(conn.execute(select(tables.channels.c.name, tables.channels.c.id)).all())


def test_schema_of_routes_matches_the_migrations(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    engine.dispose()
    reader.dispose()
    assert [d for d in diffs if "routes" in repr(d)] == []


def test_router_reloads_when_the_table_changes(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    seed(engine, cipher, sim_port=1)
    ids = _seed_channels(engine, cipher)
    clock = Clock()
    r = Router(reader, clock=clock, poll_s=1.0)
    sim, sim2 = FakeChannel(ids["sim"]), FakeChannel(ids["sim2"])
    r.add(sim, default=True)
    r.add(sim2)
    assert r.refresh() is False or r.routes() == ()
    assert picks(r, 1, UNICOM) == [sim.id]
    with engine.begin() as conn:
        rid = routing.add_route(conn, channel="sim2", carrier="联通")
    assert not r.refresh_due()               # checked at most once per poll_s
    clock.t += 1.0
    assert r.refresh_due() and r.refresh() is True
    assert picks(r, 1, UNICOM) == [sim2.id] and picks(r, 1, CMCC) == [sim.id]
    clock.t += 1.0
    assert r.refresh() is False              # nothing changed: nothing rebuilt
    with engine.begin() as conn:
        routing.set_route_enabled(conn, rid, False)   # same count, same max(id): still seen
    clock.t += 1.0
    assert r.refresh() is True and picks(r, 1, UNICOM) == [sim.id]
    with engine.begin() as conn:
        conn.execute(insert(tables.products).values(code="p1", name="P1", price=1, channel_id=ids["sim2"]))
        pid = conn.execute(select(tables.products.c.id)).scalar()
    clock.t += 1.0
    assert r.refresh() is True and picks(r, 1, CMCC, product=pid) == [sim2.id]
    engine.dispose()
    reader.dispose()


def test_admin_functions_validate_and_list_in_trial_order(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    seed(engine, cipher, sim_port=1)
    _seed_channels(engine, cipher)
    with engine.begin() as conn:
        catch_all = routing.add_route(conn, channel="sim", weight=3)
        unicom = routing.add_route(conn, channel="sim2", carrier="unicom", priority=2)
        mine = routing.add_route(conn, channel="sim2", account="alice", carrier="电信")
        for bad, match in (({"channel": "nope"}, "no channel"), ({"channel": "sim", "account": "bob"}, "no account"),
                           ({"channel": "sim", "product": "zz"}, "no product"),
                           ({"channel": "sim", "carrier": "xx"}, "unknown carrier"),
                           ({"channel": "sim", "weight": 0}, "weight")):
            with pytest.raises(AdminError, match=match):
                routing.add_route(conn, **bad)
        listed = routing.list_routes(conn)
        with pytest.raises(AdminError, match="no route"):
            routing.remove_route(conn, 999)
    assert [r["id"] for r in listed] == [mine, unicom, catch_all]
    assert listed[0]["account"] == "alice" and listed[0]["carrier"] == "telecom" and listed[0]["channel"] == "sim2"
    assert listed[2]["weight"] == 3 and listed[2]["carrier"] is None
    engine.dispose()
    reader.dispose()


# -- the dispatcher ---------------------------------------------------------------------

@pytest.fixture
async def dispatch_env(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    user = seed(engine, cipher, sim_port=1, extension="12")
    writer = Writer(engine, window_ms=1.0)
    writer.start()
    directory = Directory(reader, cipher)
    yield engine, reader, writer, directory, user
    writer.stop()
    engine.dispose()
    reader.dispose()


def queue(engine, account_id: int, phones_carriers: list[tuple[str, str]], content: str, *, extno: str = "",
          parts: int | None = None, sid: int = 1) -> list[int]:
    parts = parts or segments.count_parts(content)
    now = now_ms()
    ids = [sid * 1000 + i for i in range(len(phones_carriers))]
    with engine.begin() as conn:
        conn.execute(insert(tables.submissions).values(
            id=sid, account_id=account_id, content=content, extno=extno, recipients=len(ids), parts=parts,
            cost=parts * len(ids), state="accepted", created_at=now))
        conn.execute(insert(tables.messages), [
            {"id": mid, "submission_id": sid, "account_id": account_id, "phone": ph, "carrier": ca,
             "parts": parts, "cost": parts, "state": "queued", "due_at": now - 1}
            for mid, (ph, ca) in zip(ids, phones_carriers)])
    return ids


async def claim_and_hand(d: Dispatcher) -> list:
    rows = await d.writer.run(d._claim, 1000)
    await d._hand_over(rows)
    return rows


async def test_dispatch_routes_by_carrier_and_composes_sources(dispatch_env):
    engine, reader, writer, directory, user = dispatch_env
    a = FakeChannel(1, access_code="1069000")
    b = FakeChannel(2, access_code="10655", source_max_len="12")
    router = router_with(a, b, routes=[Route(1, channel_id=2, carrier=UNICOM)], default=1)
    d = Dispatcher(writer, reader, directory, router, node_id=1)
    queue(engine, user["id"], [("13800138000", CMCC), ("18612345678", UNICOM)], "【鸿雁】hi", extno="34567")
    await claim_and_hand(d)
    assert [(m.phone, m.source) for m in a.handed] == [("13800138000", "10690001234567")]
    # 10655 + 12 + 34567 is 12 digits: the whole; a 12-digit limit keeps it all.
    assert [(m.phone, m.source) for m in b.handed] == [("18612345678", "106551234567")]
    b.config.options["source_max_len"] = "9"
    d._sources.clear()
    queue(engine, user["id"], [("18612345679", UNICOM)], "【鸿雁】hi", extno="34567", sid=2)
    await claim_and_hand(d)
    assert b.handed[-1].source == "106551234"   # the request extension loses its end digits


async def test_dispatch_releases_what_no_channel_can_take(dispatch_env):
    engine, reader, writer, directory, user = dispatch_env
    a = FakeChannel(1, up=False)
    b = FakeChannel(2)
    router = router_with(a, b, routes=[Route(1, channel_id=1, carrier=UNICOM)], default=2)
    d = Dispatcher(writer, reader, directory, router, node_id=1)
    (mid,) = queue(engine, user["id"], [("18612345678", UNICOM)], "【鸿雁】hi")
    await claim_and_hand(d)
    assert a.handed == [] and b.handed == []
    with engine.connect() as conn:
        row = conn.execute(select(tables.messages).where(tables.messages.c.id == mid)).one()
    assert row.state == "queued" and row.attempts == 0 and row.due_at > now_ms() + 3000
    assert row.note == "no channel available"


async def test_a_retryable_failure_sends_the_next_attempt_elsewhere(dispatch_env):
    engine, reader, writer, directory, user = dispatch_env
    a, b = FakeChannel(1), FakeChannel(2)
    router = router_with(a, b, routes=[Route(1, channel_id=1, priority=0), Route(2, channel_id=2, priority=1)])
    d = Dispatcher(writer, reader, directory, router, node_id=1)
    recorder = Recorder(writer, Receiver(directory))
    watch_a, watch_b = d.watch(1, recorder.sink(1)), d.watch(2, recorder.sink(2))
    task = asyncio.create_task(recorder.run())
    try:
        (mid,) = queue(engine, user["id"], [("13800138000", CMCC)], "【鸿雁】hi")
        await claim_and_hand(d)
        assert [m.message_id for m in a.handed] == [mid]
        watch_a.failed(mid, "LINK", True)
        await recorder.flush()
        await d._housekeeping(asyncio.get_running_loop())   # writes the channel it failed on
        with engine.begin() as conn:
            row = conn.execute(select(tables.messages).where(tables.messages.c.id == mid)).one()
            assert row.state == "queued" and row.channel_id == 1 and row.attempts == 1
            conn.execute(update(tables.messages).values(due_at=now_ms() - 1))
        await claim_and_hand(d)
        assert [m.message_id for m in b.handed] == [mid] and len(a.handed) == 1
        # Another process (or this one restarted) knows it from the column alone.
        d2 = Dispatcher(writer, reader, directory, router_with(FakeChannel(1), FakeChannel(2), routes=[
            Route(1, channel_id=1, priority=0), Route(2, channel_id=2, priority=1)]), node_id=1)
        watch_b.failed(mid, "LINK", True)
        await recorder.flush()
        await d._housekeeping(asyncio.get_running_loop())
        with engine.begin() as conn:
            assert conn.execute(select(tables.messages.c.channel_id)
                                .where(tables.messages.c.id == mid)).scalar() == 2
            conn.execute(update(tables.messages).values(due_at=now_ms() - 1))
        await claim_and_hand(d2)
        assert [c.id for c in d2.router.channels() if c.handed] == [1]
        watch_a.sent(mid, ["c1"])
        await recorder.flush()
        with engine.connect() as conn:
            row = conn.execute(select(tables.messages).where(tables.messages.c.id == mid)).one()
        assert row.state == "submitted" and row.channel_id == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_seqno_channel_gets_numbered_pieces_and_records_one_message(dispatch_env):
    engine, reader, writer, directory, user = dispatch_env
    plain, seqno = FakeChannel(1), FakeChannel(2, supports_long="false")
    router = router_with(plain, seqno, routes=[Route(1, channel_id=2, carrier=UNICOM)], default=1)
    d = Dispatcher(writer, reader, directory, router, node_id=1)
    recorder = Recorder(writer, Receiver(directory))
    watch = d.watch(2, recorder.sink(2))
    task = asyncio.create_task(recorder.run())
    text = "【鸿雁】" + "长" * 130          # 134 units: 2 billed parts of 67
    try:
        cm, un = queue(engine, user["id"], [("13800138000", CMCC), ("18612345678", UNICOM)], text)
        await claim_and_hand(d)
        assert [m.message_id for m in plain.handed] == [cm] and plain.handed[0].text == text
        pieces = seqno.handed
        assert [p.text[:4] for p in pieces] == ["1/3)", "2/3)", "3/3)"]
        assert "".join(p.text[4:] for p in pieces) == text
        assert all(p.message_id < 0 and p.parts == 1 and segments.count_parts(p.text) == 1 for p in pieces)
        watch.sent(pieces[2].message_id, ["c3"])
        watch.sent(pieces[0].message_id, ["c1"])
        await recorder.flush()
        with engine.connect() as conn:
            assert conn.execute(select(tables.messages.c.state).where(tables.messages.c.id == un)).scalar() \
                == "submitting"
        watch.sent(pieces[1].message_id, ["c2"])
        await recorder.flush()
        with engine.connect() as conn:
            row = conn.execute(select(tables.messages).where(tables.messages.c.id == un)).one()
            parts = conn.execute(select(tables.carrier_ids.c.carrier_id).where(
                tables.carrier_ids.c.message_id == un).order_by(tables.carrier_ids.c.part_no)).scalars().all()
        assert row.state == "submitted" and row.parts == 2 and row.cost == 2   # billing stays by parts
        assert parts == ["c1", "c2", "c3"]
        assert len(d.pieces) == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_pieces_first_failure_fails_the_message_once():
    p = Pieces()
    outs = p.split(Outbound(message_id=5, phone="1", text="x", source="10"), ["1/3)a", "2/3)b", "3/3)c"])
    assert len({o.message_id for o in outs}) == 3 and all(o.source == "10" for o in outs)
    assert p.sent(outs[0].message_id, ["c1"]) is None
    assert p.failed(outs[1].message_id) == 5
    assert p.failed(outs[2].message_id) is None     # already failed
    assert p.sent(outs[2].message_id, ["c3"]) is None
    assert len(p) == 0


def test_seqno_pieces_are_never_fewer_than_the_billed_parts(dispatch_env_sync):
    d = dispatch_env_sync
    # 310 GSM characters: 3 concatenated parts of 153, but 2 numbered pieces of 156 would do.
    text = "a" * 310
    assert segments.count_parts(text) == 3 and len(segments.split_with_seqno(text)) == 2
    pieces = d._seqno_texts(text, 3)
    assert len(pieces) == 3 and "".join(x[4:] for x in pieces) == text
    assert all(len(x) <= 160 for x in pieces)


@pytest.fixture
def dispatch_env_sync():
    return Dispatcher(None, None, None, Router(), node_id=1)


async def test_a_channel_down_with_messages_queued_is_restarted_so_they_fail_over(dispatch_env):
    engine, reader, writer, directory, user = dispatch_env

    class Holding(FakeChannel):
        """Keeps messages while down, as a real channel does, and fails them on stop."""

        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            self.events = None
            self.starts = 0

        def queued(self) -> int:
            return len(self.handed)

        async def stop(self) -> None:
            held, self.handed = self.handed, []
            for m in held:
                self.events.failed(m.message_id, "STOPPED", True)

        async def start(self) -> None:
            self.starts += 1

    a, b = Holding(1), FakeChannel(2)
    router = router_with(a, b, routes=[Route(1, channel_id=1, priority=0), Route(2, channel_id=2, priority=1)])
    d = Dispatcher(writer, reader, directory, router, node_id=1, release_after=0.2)
    failed = []

    class Sink:
        def failed(self, mid, status, retryable):
            failed.append((mid, status, retryable))

    a.events = d.watch(1, Sink())
    ids = queue(engine, user["id"], [("13800138000", CMCC), ("13800138001", CMCC)], "【鸿雁】hi")
    await claim_and_hand(d)
    assert a.queued() == 2
    a.up = False
    loop = asyncio.get_running_loop()
    d._checked_channels = 0
    await d._housekeeping(loop)            # first seen down
    await asyncio.sleep(0.25)
    d._checked_channels = 0
    await d._housekeeping(loop)            # down long enough: restarted
    await asyncio.gather(*d._tasks)
    assert sorted(failed) == [(i, "STOPPED", True) for i in ids] and a.starts == 1
    assert all(d._tried[i] == (1,) for i in ids)


# -- CLI and admin API ------------------------------------------------------------------

def test_cli_route_commands(settings, tmp_path, monkeypatch):
    from hongyan.cli import main
    from hongyan.config import write_config

    cfg = tmp_path / "h.toml"
    write_config(str(cfg), {"database_url": settings.resolved_database_url(), "secret_key": settings.secret_key})
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    seed(engine, Cipher(settings.secret_key), sim_port=1)
    run = CliRunner().invoke
    base = ["--config", str(cfg)]
    r = run(main, [*base, "route", "add", "--channel", "sim", "--carrier", "联通", "--weight", "3"])
    assert r.exit_code == 0, r.output
    r = run(main, [*base, "route", "add", "--channel", "sim", "--account", "alice", "--priority", "2"])
    assert r.exit_code == 0, r.output
    r = run(main, [*base, "route", "add", "--channel", "nope"])
    assert r.exit_code != 0 and "no channel 'nope'" in r.output
    r = run(main, [*base, "route", "add", "--channel", "sim", "--carrier", "xx"])
    assert r.exit_code != 0 and "unknown carrier" in r.output
    r = run(main, [*base, "route", "list", "--json"])
    rows = orjson.loads(r.output)
    assert [(x["account"], x["carrier"], x["weight"]) for x in rows] == [("alice", None, 1), (None, "unicom", 3)]
    r = run(main, [*base, "route", "set", str(rows[1]["id"]), "--disabled"])
    assert r.exit_code == 0 and "disabled" in r.output
    r = run(main, [*base, "route", "list"])
    assert "disabled" in r.output.splitlines()[-1]
    r = run(main, [*base, "route", "remove", str(rows[0]["id"])])
    assert r.exit_code == 0
    r = run(main, [*base, "route", "remove", str(rows[0]["id"])])
    assert r.exit_code != 0 and "no route" in r.output
    r = run(main, [*base, "channel", "option", "sim", "supports_long=false", "source_max_len=20"])
    assert r.exit_code == 0, r.output
    r = run(main, [*base, "channel", "option", "sim", "source_max_len=40"])
    assert r.exit_code != 0 and "source_max_len" in r.output
    with engine.connect() as conn:
        opts = orjson.loads(conn.execute(select(tables.channels.c.options)).scalar())
        left = conn.execute(select(tables.routes)).all()
    assert opts["supports_long"] == "false" and opts["source_max_len"] == "20"
    assert opts["active_test_interval"] == 5          # the others are kept
    assert len(left) == 1 and left[0].enabled is False
    engine.dispose()
    reader.dispose()


async def test_admin_api_routes(settings):
    from hongyan.app import create_app
    from hongyan.runtime import Runtime

    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    user = seed(engine, cipher, sim_port=1)
    with engine.begin() as conn:
        _, _, admin_key = acc.create_account(conn, cipher, org_code="200001", username="ops", role="admin")
    settings.roles = ["api"]
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            admin = {"Authorization": f"Bearer {admin_key}"}
            r = await client.get("/v1/admin/routes", headers={"Authorization": f"Bearer {user['key']}"})
            assert r.status_code == 403 and r.json()["code"] == "permission_denied"
            r = await client.post("/v1/admin/routes", headers=admin,
                                  json={"channel": "sim", "carrier": "联通", "weight": 2})
            assert r.status_code == 201, r.text
            made = r.json()
            assert made["carrier"] == "unicom" and made["channel"] == "sim" and made["weight"] == 2
            r = await client.post("/v1/admin/routes", headers=admin, json={"channel": "nope"})
            assert r.status_code == 400 and "no channel" in r.json()["message"]
            r = await client.post("/v1/admin/routes", headers=admin, json={"channel": "sim", "weight": 0})
            assert r.status_code == 400
            r = await client.patch(f"/v1/admin/routes/{made['id']}", headers=admin, json={"enabled": False})
            assert r.status_code == 200 and r.json()["enabled"] is False
            r = await client.get("/v1/admin/routes", headers=admin)
            assert [i["id"] for i in r.json()["items"]] == [made["id"]]
            r = await client.delete(f"/v1/admin/routes/{made['id']}", headers=admin)
            assert r.status_code == 200
            r = await client.delete(f"/v1/admin/routes/{made['id']}", headers=admin)
            assert r.status_code == 400 and "no route" in r.json()["message"]
            assert (await client.get("/v1/admin/routes", headers=admin)).json()["items"] == []
    engine.dispose()
    reader.dispose()


async def test_invalid_source_settings_hold_the_messages_with_a_note(dispatch_env):
    engine, reader, writer, directory, user = dispatch_env
    bad = FakeChannel(1, access_code="1069", source_max_len="3")    # the access code alone is too long
    d = Dispatcher(writer, reader, directory, router_with(bad), node_id=1)
    (mid,) = queue(engine, user["id"], [("13800138000", CMCC)], "【鸿雁】hi")
    await claim_and_hand(d)
    assert bad.handed == []
    with engine.connect() as conn:
        row = conn.execute(select(tables.messages).where(tables.messages.c.id == mid)).one()
    assert row.state == "queued" and row.attempts == 0 and "source number" in row.note
