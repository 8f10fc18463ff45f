"""What the carrier simulators share: the listening socket, sessions, fault switches.

A simulator subclasses :class:`Simulator` and says in ``new_session()`` which
:class:`SimSession` serves an accepted connection. It calls ``fault()`` for
every submit it reads: "drop" (cut the connection now, the submit
unanswered), "busy" (answer with the protocol's flow control code) or None
(answer normally). Tests and the demo switch faults on with
``drop_after(n)`` and ``flow_control_every(k)``.
"""
from __future__ import annotations

import asyncio
import random


class SimSession(asyncio.Protocol):
    """One accepted connection of a simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.transport: asyncio.Transport | None = None
        self.bound = False
        self.open = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.open = True
        self.sim.stats["accepted"] += 1
        self.sim._sessions.add(self)

    def connection_lost(self, exc) -> None:
        self.open = False
        self.transport = None
        self.sim._sessions.discard(self)
        if self.bound:
            self.bound = False
            self.sim.stats["connections"] -= 1

    def bind(self) -> None:
        self.bound = True
        self.sim.stats["connections"] += 1

    def close(self, abort: bool = False) -> None:
        if self.transport is not None:
            self.transport.abort() if abort else self.transport.close()
        self.open = False

    def write(self, data: bytes) -> None:
        if self.transport is not None and self.open:
            self.transport.write(data)


class Simulator:
    """A carrier over real TCP. ``accounts`` maps login to password (None: any)."""

    STATS = ("connections", "accepted", "auth_failures", "submits", "refused", "reports_sent",
             "mo_sent", "acked", "bad_pdus")

    def __init__(self, host: str, port: int, accounts: dict[str, str | None] | None,
                 report_delay: float, fail_rate: float, seed: int | None) -> None:
        self.host = host
        self._port = port
        self.accounts = accounts
        self.report_delay = report_delay
        self.fail_rate = fail_rate
        self.stats = dict.fromkeys(self.STATS, 0)
        self._rng = random.Random(seed)
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[SimSession] = set()
        self._count = 0
        self._drop_at = 0
        self._fc_every = 0

    def new_session(self) -> SimSession:
        raise NotImplementedError

    def password_ok(self, login: str, password: str) -> bool:
        return self.accounts is None or self.accounts.get(login, object()) in (password, None)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.new_session, self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self._sessions):
            s.close(abort=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    def drop_after(self, n: int) -> None:
        """Cut the connection carrying the n-th submit from now, unanswered. Once."""
        self._drop_at = self._count + n if n > 0 else 0

    def flow_control_every(self, k: int) -> None:
        """Answer every k-th submit with the protocol's flow control code; 0 turns it off."""
        self._fc_every = max(0, k)

    def fault(self) -> str | None:
        """Count one submit and say what to do with it: "drop", "busy" or None."""
        self._count += 1
        self.stats["submits"] += 1
        if self._drop_at and self._count >= self._drop_at:
            self._drop_at = 0
            return "drop"
        if self._fc_every and self._count % self._fc_every == 0:
            self.stats["refused"] += 1
            return "busy"
        return None

    def _live(self) -> SimSession | None:
        for s in self._sessions:
            if s.open and s.bound:
                return s
        return None
