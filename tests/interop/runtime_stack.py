"""A running Hongyan for the interop tests of the customer servers.

The whole runtime (accept, dispatch, receive, the session outbox and the
customer session servers) runs in the test's loop with the CMPP simulator as
the carrier, so a peer's submit goes out to the "carrier" and its report
comes back to the peer on its session.
"""
from __future__ import annotations

from sqlalchemy import update

from hongyan.channels.simulator import CmppSimulator
from hongyan.core.secrets import Cipher
from hongyan.runtime import Runtime
from hongyan.store.db import make_engine, migrate
from hongyan.store.tables import accounts
from tests.helpers import seed

# CMPP's Source_Addr is six octets and pycmpp writes the SP id unpadded, so the
# customer's username is exactly six characters.
USERNAME = "shop01"
EXTENSION = "12"
ACCESS_CODE = "1069000"          # the simulator channel's access code (tests.helpers.seed)
SIGNED = "【鸿雁】"              # the default rules want a signature


class Stack:
    """What a test needs: ``runtime``, ``sim``, ``engine``, ``user`` and ``port(name)``."""

    def __init__(self, settings, mo_dialect: str = "cmpp") -> None:
        self.settings = settings
        self.mo_dialect = mo_dialect
        self.sim = CmppSimulator(host="127.0.0.1", port=0, accounts={"901234": "sim-secret"}, report_delay=0.05)
        self.runtime = None
        self.engine = None
        self.user: dict = {}

    async def start(self) -> Stack:
        await self.sim.start()
        s = self.settings
        url = s.resolved_database_url()
        migrate(url)
        self.engine = make_engine(url)
        self.user = seed(self.engine, Cipher(s.secret_key), sim_port=self.sim.port, balance=1000,
                         username=USERNAME, extension=EXTENSION)
        with self.engine.begin() as conn:
            # Replies come back on the customer's session (of this protocol), as reports do.
            conn.execute(update(accounts).where(accounts.c.username == USERNAME)
                         .values(mo_push_dialect=self.mo_dialect))
        s.server_host = "127.0.0.1"
        s.cmpp_server_port = 0
        s.smpp_server_port = 0
        self.runtime = Runtime(s)
        await self.runtime.start()
        return self

    def port(self, name: str) -> int:
        return self.runtime.servers[name].port

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        await self.sim.stop()
        if self.engine is not None:
            self.engine.dispose()
