"""One process's services, wired: store, accept, dispatch, receive, notify, channels.

Which services run follows the configured roles: ``api`` answers requests,
``dispatch`` claims messages and holds the carrier connections (and so also
receives their reports and MO), ``notify`` pushes events to customers. ``all``
(the embedded default) runs everything in one process.
"""
from __future__ import annotations

import asyncio
import logging

import orjson
from sqlalchemy import select

from hongyan.channels import make_channel
from hongyan.channels.base import ChannelConfig
from hongyan.config import Settings
from hongyan.core.accept import AcceptService
from hongyan.core.accounts import Directory
from hongyan.core.dispatch import Dispatcher
from hongyan.core.limits import make_limits
from hongyan.core.maintenance import Maintenance, register_node, requeue_orphans
from hongyan.core.notify import Notifier
from hongyan.core.receive import Receiver
from hongyan.core.recorder import Recorder
from hongyan.core.routing import Router
from hongyan.core.secrets import Cipher
from hongyan.servers import Outbox
from hongyan.servers.session import SessionServer
from hongyan.store import tables
from hongyan.store.db import make_engine, migrate
from hongyan.store.writer import Writer

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.resolved_database_url()
        self.engine = make_engine(self.url, synchronous=settings.sqlite_synchronous)
        # Reads (API queries, caches) go through their own engine so that on
        # SQLite they never wait behind the writer's lock.
        self.reader = make_engine(self.url, synchronous=settings.sqlite_synchronous,
                                  read_only=True) if settings.is_sqlite else self.engine
        self.cipher = Cipher(settings.secret_key)
        self.writer = Writer(self.engine, max_batch=settings.commit_max_batch,
                             window_ms=settings.commit_window_ms)
        self.directory = Directory(self.reader, self.cipher)
        self.receiver = Receiver(self.directory)
        self.router = Router(self.reader)
        self.accept = AcceptService(self.directory, self.writer, on_accepted=self._accepted,
                                    on_events=self._events, receiver=self.receiver,
                                    limits=make_limits(settings.redis_url))
        self.node_id = 0
        self.dispatcher: Dispatcher | None = None
        self.recorder: Recorder | None = None
        self.notifier: Notifier | None = None
        self.simulator = None
        # Customers' CMPP (and SMPP) sessions, and the outbox that hands their
        # reports and MO to them (role api).
        self.outbox = Outbox(self.writer)
        self.servers: dict[str, SessionServer] = {}
        self._tasks: list[asyncio.Task] = []

    def _accepted(self, submission_id: int, content: str, extno: str, product_id: int | None,
                  scheduled: bool, window: tuple[int, int] | None = None) -> None:
        if self.dispatcher is not None:
            self.dispatcher.remember(submission_id, (content, extno, product_id, window))
            if not scheduled:
                self.dispatcher.wake()

    def approved(self, decisions) -> None:
        """Held submissions an operator approved (``core.review.Decision``): their messages are due."""
        for d in decisions:
            self._accepted(d.submission_id, d.content, d.extno, d.product_id, d.scheduled, d.window)

    def _requeued(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def _events(self) -> None:
        if self.notifier is not None:
            self.notifier.wake()
        self.outbox.wake()

    async def start(self) -> None:
        s = self.settings
        migrate(self.url)
        self.writer.start()
        self.node_id = await self.writer.run(lambda conn, _: register_node(conn, s.roles, s.node_name))
        if s.has_role("dispatch"):
            # One embedded process owns its SQLite file: whatever another node left
            # half-submitted is ours to finish now rather than after a timeout.
            n = await self.writer.run(requeue_orphans, (self.node_id, s.is_sqlite))
            if n:
                log.warning("re-queued %d messages that a stopped process was submitting", n)
            if s.simulator:
                await self._start_simulator()
            self.recorder = Recorder(self.writer, self.receiver, on_events=self._events,
                                     on_requeued=self._requeued)
            # The dispatcher comes first: every channel reports through its watch.
            self.dispatcher = Dispatcher(self.writer, self.reader, self.directory, self.router, self.node_id,
                                         batch=s.dispatch_batch, postgres=not s.is_sqlite)
            await self._start_channels()
            self._spawn(self.recorder.run(), self.dispatcher.run())
        if s.has_role("notify"):
            self.notifier = Notifier(self.writer, self.directory, batch=s.push_batch,
                                     timeout=s.push_timeout, max_attempts=s.push_max_attempts)
            from hongyan.dialects import push_formats
            self.notifier.formats.update(push_formats())
            self._spawn(self.notifier.run())
        if s.has_role("api"):
            await self._start_servers()
        self._spawn(Maintenance(self.writer, self.receiver, self.node_id, on_requeued=self._requeued,
                                on_events=self._events, report_timeout_hours=s.report_timeout_hours).run())

    async def _start_servers(self) -> None:
        """The session front doors the settings ask for, and the outbox that feeds them."""
        s = self.settings
        port = s.listen_port(s.cmpp_server_port)
        if port is not None:
            from hongyan.servers.cmpp import CmppServer

            server = CmppServer(self.accept, self.directory, self.outbox, host=s.server_host, port=port,
                                max_sessions=s.server_max_sessions, idle_timeout=s.server_idle_timeout,
                                gateway_code=self.node_id, receiver=self.receiver, on_events=self._events)
            await server.start()
            self.servers["cmpp"] = server
        port = s.listen_port(s.smpp_server_port)
        if port is not None:
            from hongyan.servers.smpp import SmppServer

            server = SmppServer(self.accept, self.directory, self.outbox, host=s.server_host, port=port,
                                max_sessions=s.server_max_sessions, idle_timeout=s.server_idle_timeout)
            await server.start()
            self.servers["smpp"] = server
        if self.servers:
            self._spawn(self.outbox.run())

    def _spawn(self, *coros) -> None:
        for coro in coros:
            task = asyncio.create_task(coro)
            task.add_done_callback(_report_crash)
            self._tasks.append(task)

    async def _start_simulator(self) -> None:
        from hongyan.channels.simulator import CmppSimulator

        s = self.settings
        accounts = {ch.username: ch.password for ch in self.channel_configs()
                    if ch.port == s.simulator_port and ch.host in ("127.0.0.1", "localhost")}
        self.simulator = CmppSimulator(host="127.0.0.1", port=s.simulator_port, accounts=accounts or None,
                                       report_delay=s.simulator_report_delay, fail_rate=s.simulator_fail_rate)
        await self.simulator.start()
        log.info("carrier simulator listening on 127.0.0.1:%d", self.simulator.port)

    def channel_configs(self) -> list[ChannelConfig]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(tables.channels).where(tables.channels.c.enabled.is_(True))
                                .order_by(tables.channels.c.id)).all()
        return [ChannelConfig(
            id=r.id, name=r.name, protocol=r.protocol, host=r.host, port=r.port, username=r.username,
            password=self.cipher.decrypt(r.secret_enc) if r.secret_enc else "",
            access_code=r.access_code, service_id=r.service_id, mps=r.mps, window=r.window,
            connections=r.connections, options={**orjson.loads(r.options or "{}"), "default": r.is_default})
            for r in rows]

    async def _start_channels(self) -> None:
        for cfg in self.channel_configs():
            # A bad option stops the start here, naming the channel, rather than the dispatcher later.
            _ = (cfg.seqno_split, cfg.source_max_len)
            channel = make_channel(cfg, self.dispatcher.watch(cfg.id, self.recorder.sink(cfg.id, cfg.access_code)))
            self.router.add(channel, default=bool(cfg.options.get("default")))
            await channel.start()
        self.router.refresh()  # routes and products' channels; reloaded by the dispatcher when they change

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.close()  # no channel restarts from here on
        # Customers' sessions first: what they acknowledged is written while the writer runs.
        for name, server in list(self.servers.items()):
            try:
                await asyncio.wait_for(server.stop(), 10)
            except Exception:  # noqa: BLE001
                log.exception("stopping the %s server", name)
        self.servers.clear()
        for ch in self.router.channels():
            try:
                await asyncio.wait_for(ch.stop(), 10)
            except Exception:  # noqa: BLE001
                log.exception("stopping channel %s", ch.config.name)
        if self.recorder is not None:
            try:
                await asyncio.wait_for(self.recorder.flush(), 10)
            except Exception:  # noqa: BLE001
                log.exception("flushing channel events")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.notifier is not None:
            await self.notifier.close()
        if self.simulator is not None:
            await self.simulator.stop()
        await self.accept.limits.close()
        self.writer.stop()
        self.engine.dispose()
        self.reader.dispose()

    def stats(self) -> dict:
        return {
            "node": self.node_id,
            "writer": {"commits": self.writer.commits, "jobs": self.writer.jobs},
            "dispatch": {"claimed": self.dispatcher.claimed if self.dispatcher else 0},
            "recorded": {"sent": self.recorder.recorded_sent if self.recorder else 0,
                         "reports": self.recorder.recorded_reports if self.recorder else 0,
                         "backlog": self.recorder.backlog() if self.recorder else 0},
            "pushed": self.notifier.pushed if self.notifier else 0,
            "push_failures": self.notifier.failures if self.notifier else 0,
            "servers": {name: server.stats() for name, server in self.servers.items()},
            "channels": [{"id": ch.id, "name": ch.config.name, "protocol": ch.config.protocol,
                          "connected": ch.connected, "queued": ch.queued(),
                          "suspended": self.router.suspended(ch.id)} for ch in self.router.channels()],
            "routes": len(self.router.routes()),
        }


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("service task crashed", exc_info=task.exception())
