"""Small helpers shared by tests: ports, seeding, waiting."""
from __future__ import annotations

import asyncio
import socket
import time

from sqlalchemy import insert

from hongyan.core import accounts as acc
from hongyan.core.secrets import Cipher
from hongyan.store import tables


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(engine, cipher: Cipher, *, balance: int = 1000, sim_port: int | None = None,
         username: str = "alice", org: str = "200001", extension: str = "12", report_url: str | None = None,
         mps: int = 5000, window: int = 64, connections: int = 2) -> dict:
    """An org, an account with a balance and, with ``sim_port``, a CMPP channel to a simulator."""
    with engine.begin() as conn:
        acc.create_org(conn, org, "Test Org")
        aid, secret, key = acc.create_account(conn, cipher, org_code=org, username=username,
                                              extension=extension, report_url=report_url)
        if balance:
            acc.topup(conn, acc.owner_of(conn, username), balance, note="test")
        if sim_port is not None:
            conn.execute(insert(tables.channels).values(
                name="sim", protocol="cmpp2", host="127.0.0.1", port=sim_port, username="901234",
                secret_enc=cipher.encrypt("sim-secret"), access_code="1069000", service_id="TEST",
                mps=mps, window=window, connections=connections, enabled=True, is_default=True,
                options='{"active_test_interval": 5}'))
    return {"id": aid, "secret": secret, "key": key, "username": username}


async def until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def engines(url: str):
    """The writer's engine and the readers' engine, as the runtime makes them."""
    from hongyan.store.db import make_engine

    engine = make_engine(url)
    reader = make_engine(url, read_only=True) if url.startswith("sqlite") else engine
    return engine, reader
