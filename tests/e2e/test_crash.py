"""Kill the server with SIGKILL in the middle of a load, start it again, and
prove that nothing it answered "ok" is lost or billed twice."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from hongyan.config import write_config
from hongyan.core import accounts as acc
from hongyan.store import tables
from hongyan.store.db import make_engine
from tests.e2e.conftest import carrier_and_customer, stop_asgi
from tests.helpers import free_port, until

pytestmark = pytest.mark.slow


def start_server(cfg: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hongyan.cli", "--config", str(cfg), "serve"],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=cfg.parent)


async def wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()[-3000:]}")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not become healthy")


async def test_sigkill_mid_load_loses_nothing_and_bills_once(settings, tmp_path):
    sim, cb, cb_server, user = await carrier_and_customer(settings, report_delay=0.3, balance=1_000_000,
                                                          mps=3000)
    url = settings.resolved_database_url()
    engine = make_engine(url)
    port = free_port()
    cfg = tmp_path / "hongyan.toml"
    write_config(str(cfg), {"database_url": url, "secret_key": settings.secret_key, "http_port": port,
                            "simulator": False, "cmpp_server_port": 0,
                            "smpp_server_port": 0})
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    proc = start_server(cfg, log)
    accepted: dict[int, str] = {}
    try:
        await wait_healthy(base, proc, log)
        stop = asyncio.Event()
        counter = iter(range(10**6))

        async def client_loop():
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {user['key']}"},
                                         timeout=5) as client:
                while not stop.is_set():
                    i = next(counter)
                    to = [f"1390000{(i * 5 + k) % 10000:04d}" for k in range(5)]
                    try:
                        r = await client.post("/v1/messages", json={"to": to, "content": f"【测试】第{i}条"})
                    except httpx.HTTPError:
                        await asyncio.sleep(0.05)
                        continue
                    if r.status_code == 200:
                        for m in r.json()["messages"]:
                            accepted[m["id"]] = m["to"]

        clients = [asyncio.create_task(client_loop()) for _ in range(16)]
        await until(lambda: len(accepted) >= 1500, timeout=60, what="load to build up")
        await until(lambda: len(cb.reports()) > 0, timeout=30, what="first reports")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*clients)
        answered_ok = dict(accepted)
        proc = start_server(cfg, log)
        await wait_healthy(base, proc, log)

        def all_reported():
            got = {r["message_id"] for r in cb.reports()}
            return set(answered_ok) <= got
        await until(all_reported, timeout=90, interval=0.2, what="a report push for every accepted message")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        await stop_asgi(cb_server)
        await sim.stop()

    with engine.connect() as conn:
        states = dict(conn.execute(select(tables.messages.c.state, func.count())
                                   .where(tables.messages.c.id.in_(list(answered_ok)))
                                   .group_by(tables.messages.c.state)).all())
        assert set(states) <= {"delivered", "failed"}, states
        debits = Counter(r.submission_id for r in conn.execute(
            select(tables.ledger.c.submission_id).where(tables.ledger.c.kind == "debit")))
        assert debits and max(debits.values()) == 1  # no submission billed twice
        refunds = Counter(r.message_id for r in conn.execute(
            select(tables.ledger.c.message_id).where(tables.ledger.c.kind == "refund")))
        assert not refunds or max(refunds.values()) == 1
        billed = conn.execute(select(func.sum(tables.submissions.c.cost))).scalar()
        assert -conn.execute(select(func.sum(tables.ledger.c.amount))
                             .where(tables.ledger.c.kind == "debit")).scalar() == billed
        assert acc.ledger_mismatches(conn) == []
        # A message sent more than once says why.
        resent = conn.execute(select(tables.messages.c.note).where(tables.messages.c.attempts > 1)).all()
        assert all(r.note for r in resent)
    engine.dispose()
    # Pushes are at least once and carry ids: repeats are recognisable, none is missing.
    assert len(cb.reports()) >= len(answered_ok)
