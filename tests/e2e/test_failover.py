"""Two simulated carriers behind routes: one is stopped in the middle of a load and
every message still ends delivered, recorded and reported once; numbers go to
their carrier's route; a carrier without long SMS gets numbered pieces."""
from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import orjson
from sqlalchemy import func, insert, select

from hongyan.app import create_app
from hongyan.channels.simulator import CmppSimulator
from hongyan.core import accounts as acc
from hongyan.core import routing
from hongyan.core.secrets import Cipher
from hongyan.store import tables
from hongyan.store.db import make_engine
from tests.e2e.conftest import carrier_and_customer, serve_asgi, stop_asgi
from tests.helpers import free_port, until


class Seen:
    """What one simulator was sent: destination numbers, source numbers."""

    def __init__(self, sim: CmppSimulator) -> None:
        self.phones: Counter[str] = Counter()
        self.sources: dict[str, str] = {}
        self.submits: list = []
        sim.on_submit.append(self)

    def __call__(self, ev) -> None:
        self.submits.append(ev)
        for phone in ev.dest_terminal_ids:
            self.phones[phone] += 1
            self.sources[phone] = ev.src_id


async def two_carriers(settings, *, report_delay: float, mps: int, routes: list[dict], **a_options):
    """Simulator A (the seeded channel ``sim``, on a fixed port so it can come back) and B (``sim2``)."""
    sim_a_port = free_port()
    sim_a = CmppSimulator(host="127.0.0.1", port=sim_a_port, accounts={"901234": "sim-secret"},
                          report_delay=report_delay)
    # carrier_and_customer starts its own simulator for the seeded channel; it becomes B.
    sim_b, cb, cb_server, user = await carrier_and_customer(settings, report_delay=report_delay,
                                                            balance=100_000, mps=mps, window=16, connections=1)
    await sim_a.start()
    engine = make_engine(settings.resolved_database_url())
    cipher = Cipher(settings.secret_key)
    with engine.begin() as conn:
        conn.execute(tables.channels.update().where(tables.channels.c.name == "sim").values(
            port=sim_a_port, options=orjson.dumps({"active_test_interval": 5, "reconnect_max": 0.5,
                                                   **a_options}).decode()))
        conn.execute(insert(tables.channels).values(
            name="sim2", protocol="cmpp2", host="127.0.0.1", port=sim_b.port, username="901234",
            secret_enc=cipher.encrypt("sim-secret"), access_code="1069555", service_id="TEST", mps=mps,
            window=16, connections=1, enabled=True, is_default=False,
            options='{"active_test_interval": 5, "reconnect_max": 0.5}'))
        for r in routes:
            routing.add_route(conn, **r)
    engine.dispose()
    return sim_a, sim_b, cb, cb_server, user


async def start_server(settings):
    from hongyan.runtime import Runtime

    settings.http_port = free_port()
    runtime = Runtime(settings)
    server = await serve_asgi(create_app(settings, runtime), settings.http_port)
    return runtime, server


def states(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(tables.messages.c.state, func.count())
                                 .group_by(tables.messages.c.state)).all())


async def test_a_carrier_stopped_mid_load_loses_nothing_and_sends_nothing_twice(settings):
    sim_a, sim_b, cb, cb_server, user = await two_carriers(
        settings, report_delay=0.3, mps=300,
        routes=[{"channel": "sim", "weight": 1}, {"channel": "sim2", "weight": 1}])
    seen_a, seen_b = Seen(sim_a), Seen(sim_b)
    runtime, server = await start_server(settings)
    engine = runtime.engine
    n = 600
    phones = [f"1380013{i:04d}" for i in range(n)]
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        await until(lambda: sim_a.stats["connections"] and sim_b.stats["connections"], what="both channels bound")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {user['key']}"}) as client:
            ids: list[int] = []
            for i in range(0, n, 50):
                r = await client.post("/v1/messages", json={"to": phones[i:i + 50], "content": "【鸿雁】验证码 1234"})
                assert r.status_code == 200, r.text
                ids += [m["id"] for m in r.json()["messages"]]
        # Both share the load by weight until A goes away mid-way.
        await until(lambda: sim_a.stats["submits"] >= 60 and sim_b.stats["submits"] >= 60, what="load on both")
        await sim_a.stop()
        stopped_at_a = sum(seen_a.phones.values())
        assert stopped_at_a < n // 2      # A really was stopped in the middle
        # Everything A cannot take any more goes out on B.
        await until(lambda: len(seen_a.phones.keys() | seen_b.phones.keys()) == n, timeout=30,
                    what="every number submitted to one carrier or the other")
        # A comes back and delivers the reports it still owed for what it had taken.
        await sim_a.start()
        await until(lambda: states(engine).get("delivered", 0) == n, timeout=30, what="every message delivered")
        await until(lambda: len(cb.reports()) == n, timeout=20, what="every report pushed")
    finally:
        await stop_asgi(server)
        await stop_asgi(cb_server)
        await sim_a.stop()
        await sim_b.stop()
    url = settings.resolved_database_url()
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(tables.messages.c.id, tables.messages.c.channel_id, tables.messages.c.attempts)
                            .order_by(tables.messages.c.id)).all()
        recorded = Counter(conn.execute(select(tables.carrier_ids.c.message_id)).scalars())
        channel_ids = dict(conn.execute(select(tables.channels.c.name, tables.channels.c.id)).all())
        assert acc.ledger_mismatches(conn) == []
    engine.dispose()
    assert sorted(r.id for r in rows) == sorted(ids)
    # Recorded as sent once each (one part), on the channel that took it.
    assert set(recorded.values()) == {1} and set(recorded) == set(ids)
    on = Counter(r.channel_id for r in rows)
    assert on[channel_ids["sim"]] >= 60 and on[channel_ids["sim2"]] > n // 2
    failed_over = [r for r in rows if r.attempts > 1]
    assert failed_over and all(r.channel_id == channel_ids["sim2"] for r in failed_over)
    # One report pushed per message, none twice.
    pushed = Counter(item["message_id"] for _, doc in cb.pushes for item in doc["items"] if "message_id" in item)
    assert set(pushed) == set(ids) and set(pushed.values()) == {1}
    # At the carriers: every number once, except those A took but whose answer the
    # stop cut off (at most its window): those went again on B, at least once is the rule.
    twice = {p for p in phones if seen_a.phones[p] + seen_b.phones[p] > 1}
    assert len(twice) <= 16, len(twice)
    assert all(seen_a.phones[p] <= 1 and seen_b.phones[p] <= 1 for p in phones)
    print(f"failover: {stopped_at_a} on A before the stop, {len(failed_over)} failed over, "
          f"{len(twice)} taken by A unanswered and sent again on B")


async def test_numbers_go_to_their_carriers_route(settings):
    sim_a, sim_b, cb, cb_server, user = await two_carriers(
        settings, report_delay=0.05, mps=500,
        routes=[{"channel": "sim2", "carrier": "联通"}, {"channel": "sim"}])
    seen_a, seen_b = Seen(sim_a), Seen(sim_b)
    runtime, server = await start_server(settings)
    cmcc, unicom, telecom = "13800138000", "18612345678", "18912345678"
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        await until(lambda: sim_a.stats["connections"] and sim_b.stats["connections"], what="both channels bound")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {user['key']}"}) as client:
            r = await client.post("/v1/messages", json={"to": [cmcc, unicom, telecom], "content": "【鸿雁】x",
                                                        "extno": "77"})
            assert r.status_code == 200, r.text
        await until(lambda: states(runtime.engine).get("delivered", 0) == 3, what="three delivered")
    finally:
        await stop_asgi(server)
        await stop_asgi(cb_server)
        await sim_a.stop()
        await sim_b.stop()
    assert set(seen_b.phones) == {unicom}
    assert set(seen_a.phones) == {cmcc, telecom}
    # Each channel's access code + the account's extension 12 + the request's 77.
    assert seen_b.sources[unicom] == "10695551277" and seen_a.sources[cmcc] == "10690001277"


async def test_a_carrier_without_long_sms_gets_numbered_pieces_billed_as_parts(settings):
    sim_a, sim_b, cb, cb_server, user = await two_carriers(
        settings, report_delay=0.05, mps=500,
        routes=[{"channel": "sim2", "carrier": "联通"}, {"channel": "sim"}])
    engine = make_engine(settings.resolved_database_url())
    with engine.begin() as conn:
        conn.execute(tables.channels.update().where(tables.channels.c.name == "sim2").values(
            options=orjson.dumps({"active_test_interval": 5, "supports_long": "false"}).decode()))
    engine.dispose()
    seen_a, seen_b = Seen(sim_a), Seen(sim_b)
    runtime, server = await start_server(settings)
    text = "【鸿雁】" + "长" * 130              # 134 UCS2 units: 2 parts of 67
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        await until(lambda: sim_a.stats["connections"] and sim_b.stats["connections"], what="both channels bound")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {user['key']}"}) as client:
            r = await client.post("/v1/messages", json={"to": ["13800138000", "18612345678"], "content": text})
            assert r.status_code == 200, r.text
            assert r.json()["parts"] == 2 and r.json()["cost"] == 4
        await until(lambda: states(runtime.engine).get("delivered", 0) == 2, what="both delivered")
        await until(lambda: len(cb.reports()) == 2, what="both reports pushed")
    finally:
        await stop_asgi(server)
        await stop_asgi(cb_server)
        await sim_a.stop()
        await sim_b.stop()
    # The carrier with long SMS: two parts with a concatenation header.
    assert [(ev.pk_total, ev.tp_udhi) for ev in seen_a.submits] == [(2, 1), (2, 1)]
    # The one without: three plain SMS, numbered, that read as the text once joined.
    pieces = [ev.msg_content.decode("utf-16-be") for ev in seen_b.submits]
    assert [(ev.pk_total, ev.tp_udhi) for ev in seen_b.submits] == [(1, 0)] * 3
    assert [p[:4] for p in pieces] == ["1/3)", "2/3)", "3/3)"] and "".join(p[4:] for p in pieces) == text
    assert {r["parts"] for r in cb.reports()} == {2} and all(r["status"] == "delivered" for r in cb.reports())


async def test_a_carrier_that_refuses_for_flow_control_is_suspended_and_its_messages_go_elsewhere(settings):
    sim_a, sim_b, cb, cb_server, user = await two_carriers(
        settings, report_delay=0.05, mps=500,
        routes=[{"channel": "sim", "weight": 1}, {"channel": "sim2", "weight": 1}])
    sim_a.flow_control_every(1)            # A answers every submit "flow control" (CMPP result 8)
    seen_a, seen_b = Seen(sim_a), Seen(sim_b)
    runtime, server = await start_server(settings)
    n = 200
    phones = [f"1390013{i:04d}" for i in range(n)]
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        await until(lambda: sim_a.stats["connections"] and sim_b.stats["connections"], what="both channels bound")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {user['key']}"}) as client:
            r = await client.post("/v1/messages", json={"to": phones, "content": "【鸿雁】验证码 1234"})
            assert r.status_code == 200, r.text
        await until(lambda: states(runtime.engine).get("delivered", 0) == n, timeout=30, what="every message delivered")
        ids = {ch.config.name: ch.id for ch in runtime.router.channels()}
        assert runtime.router.suspended(ids["sim"])
        health = {c["name"]: c for c in runtime.stats()["channels"]}
        assert health["sim"]["suspended"] is True and health["sim2"]["suspended"] is False
        assert runtime.stats()["routes"] == 2
        with runtime.engine.connect() as conn:
            on = Counter(conn.execute(select(tables.messages.c.channel_id)).scalars())
    finally:
        await stop_asgi(server)
        await stop_asgi(cb_server)
        await sim_a.stop()
        await sim_b.stop()
    assert on == {ids["sim2"]: n}        # every message ended up submitted on B
    assert set(seen_b.phones) == set(phones) and all(v == 1 for v in seen_b.phones.values())
    # A was handed its weighted share of the first batch, refused it, and then no more.
    assert 3 <= sum(seen_a.phones.values()) <= n // 2 + 1
