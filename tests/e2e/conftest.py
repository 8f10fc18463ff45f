"""End to end over real sockets: simulator (CMPP over TCP), the server (HTTP over
TCP, uvicorn) and a customer's callback server, all in the test's event loop."""
from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest
import uvicorn

from hongyan.app import create_app
from hongyan.channels.simulator import CmppSimulator
from hongyan.core.notify import sign
from hongyan.runtime import Runtime
from hongyan.store.db import make_engine, migrate
from hongyan.core.secrets import Cipher
from tests.helpers import free_port, seed


class Callbacks:
    """A customer's server: records every push, answers ``status`` with ``answer``.

    ``raw`` keeps every request as (method, path, query bytes, headers, body);
    native JSON pushes are also parsed into ``pushes`` and ``items``.
    """

    def __init__(self) -> None:
        self.pushes: list[tuple[dict, dict]] = []
        self.raw: list[tuple[str, str, bytes, dict, bytes]] = []
        self.status = 200
        self.answer = b"ok"
        self.items: dict[int, dict] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status = self.status
        if status == 200:
            self.raw.append((scope["method"], scope["path"], scope.get("query_string", b""), headers, body))
            if headers.get("content-type", "").startswith("application/json"):
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError:
                    doc = None
                if isinstance(doc, dict) and "items" in doc:
                    self.pushes.append((headers, doc))
                    headers["_body"] = body
                    for item in doc["items"]:
                        self.items[item["id"]] = item
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": self.answer})

    def reports(self) -> list[dict]:
        return [i for i in self.items.values() if "message_id" in i]


async def serve_asgi(app, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    server._task = task  # noqa: SLF001
    return server


async def stop_asgi(server: uvicorn.Server) -> None:
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server._task, 20)  # noqa: SLF001


async def carrier_and_customer(settings, *, report_delay: float, **seed_kw):
    """A simulated carrier, a customer's callback server and a seeded database."""
    sim = CmppSimulator(host="127.0.0.1", port=0, accounts={"901234": "sim-secret"}, report_delay=report_delay)
    await sim.start()
    cb = Callbacks()
    cb_port = free_port()
    cb_server = await serve_asgi(cb, cb_port)
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    seed_kw.setdefault("balance", 10_000)
    user = seed(engine, Cipher(settings.secret_key), sim_port=sim.port,
                report_url=f"http://127.0.0.1:{cb_port}/reports", **seed_kw)
    engine.dispose()
    return sim, cb, cb_server, user


@pytest.fixture
async def stack(settings):
    """Simulator + Hongyan + callback server; yields a namespace of them."""
    sim, cb, cb_server, user = await carrier_and_customer(settings, report_delay=0.05)
    settings.http_port = free_port()
    runtime = Runtime(settings)
    server = await serve_asgi(create_app(settings, runtime), settings.http_port)

    class Stack:
        pass
    s = Stack()
    s.sim, s.callbacks, s.runtime, s.user, s.settings = sim, cb, runtime, user, settings
    s.base = f"http://127.0.0.1:{settings.http_port}"
    s.headers = {"Authorization": f"Bearer {user['key']}"}
    s.verify = lambda headers: headers["x-hongyan-signature"] == sign(
        user["secret"], headers["x-hongyan-timestamp"], headers["_body"])
    try:
        yield s
    finally:
        await stop_asgi(server)
        await stop_asgi(cb_server)
        await sim.stop()
