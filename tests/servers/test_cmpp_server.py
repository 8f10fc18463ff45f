"""The customer CMPP server over real loopback sockets, with our own codec as the customer.

The whole runtime runs (accept, dispatch to the CMPP simulator, reports, the
session outbox), so a submit made here comes back as a DELIVER report on the
customer's session.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import time
from datetime import datetime

import pytest
from sqlalchemy import select, update

from hongyan.channels.simulator import CmppSimulator
from hongyan.core import accounts as acc
from hongyan.core.secrets import Cipher
from hongyan.domain.segments import concat_udh
from hongyan.protocols.cmpp import auth
from hongyan.protocols.cmpp.connection import Connection
from hongyan.protocols.cmpp.events import (
    ActiveTest, ActiveTestResp, Cancel, CancelResp, Connect, ConnectResp, Deliver, DeliverResp, Query,
    QueryResp, Submit, SubmitResp, Terminate, TerminateResp,
)
from hongyan.runtime import Runtime
from hongyan.servers import cmpp as cmpp_server
from hongyan.store.db import make_engine, migrate
from hongyan.store.tables import accounts, events, messages, submissions
from tests.helpers import seed, until

TEXT = "【鸿雁】您的验证码是 1234"


class Customer:
    """An SP on one TCP connection, speaking CMPP through our sans-I/O codec."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, version: int) -> None:
        self.reader, self.writer = reader, writer
        self.conn = Connection("client", version=version)
        self.version = version
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.closed = asyncio.Event()
        self.auto_ack = False
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, version: int = 0x20) -> "Customer":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, version)

    @classmethod
    async def login(cls, port: int, username: str, secret: str, version: int = 0x20) -> "Customer":
        c = await cls.open(port, version)
        resp = await c.connect(username, secret, version)
        assert resp.status == 0, resp
        return c

    async def connect(self, username: str, secret: str, version: int | None = None) -> ConnectResp:
        ts = auth.timestamp_now()
        self.authenticator = auth.authenticator_source(username, secret, ts)
        self.send(Connect(self.conn.next_sequence(), username, self.authenticator, version or self.version, ts))
        return await self.expect(ConnectResp)

    def send(self, ev) -> None:
        self.writer.write(self.conn.send(ev))

    def raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                self.conn.receive_data(data)
                for ev in self.conn.events():
                    if self.auto_ack and type(ev) is Deliver:
                        self.send(DeliverResp(ev.sequence_id, ev.msg_id, 0))
                    await self.inbox.put(ev)
                if not data:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()

    async def expect(self, kind, timeout: float = 10.0):
        """The next event of type ``kind`` (others in between are dropped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"no {kind.__name__} within {timeout} s"
            try:
                ev = await asyncio.wait_for(self.inbox.get(), left)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {kind.__name__} within {timeout} s") from None
            if type(ev) is kind:
                return ev

    async def submit(self, to: str | tuple[str, ...], content: bytes, **kw) -> SubmitResp:
        seq = self.conn.next_sequence()
        self.send(Submit(seq, (to,) if isinstance(to, str) else to, content, **kw))
        resp = await self.expect(SubmitResp)
        assert resp.sequence_id == seq
        return resp

    async def wait_closed(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def close(self) -> None:
        self.writer.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Stack:
    pass


@pytest.fixture
async def stack(settings):
    """The simulator carrier, a seeded database and a running Runtime with its CMPP server."""
    sim = CmppSimulator(host="127.0.0.1", port=0, accounts={"901234": "sim-secret"}, report_delay=0.05)
    await sim.start()
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    cipher = Cipher(settings.secret_key)
    alice = seed(engine, cipher, sim_port=sim.port, balance=1000)
    with engine.begin() as conn:
        _, bob_secret, _ = acc.create_account(conn, cipher, org_code="200001", username="bob", extension="34")
    settings.server_idle_timeout = 30.0
    runtime = Runtime(settings)
    await runtime.start()
    s = Stack()
    s.sim, s.runtime, s.engine, s.settings = sim, runtime, engine, settings
    s.alice, s.bob_secret = alice, bob_secret
    s.port = runtime.servers["cmpp"].port
    s.server = runtime.servers["cmpp"]
    s.customers = []

    async def login(username="alice", secret=None, version=0x20):
        c = await Customer.login(s.port, username, secret or alice["secret"], version)
        s.customers.append(c)
        return c
    s.login = login
    try:
        yield s
    finally:
        for c in s.customers:
            await c.close()
        await runtime.stop()
        await sim.stop()
        engine.dispose()


def _submission(engine, msg_id: int):
    """The submission whose SUBMIT_RESP (or one of whose parts') gave ``msg_id``."""
    with engine.connect() as conn:
        rows = conn.execute(select(submissions)).all()
    found = [r for r in rows if (cmpp_server.read_client_ref(r.client_ref) or ([],))[0].count(msg_id)]
    assert len(found) <= 1
    return found[0] if found else None


# -- login -------------------------------------------------------------------------

@pytest.mark.parametrize("version", [0x20, 0x30])
async def test_login_with_the_account_and_its_secret(stack, version):
    c = await Customer.open(stack.port, version)
    stack.customers.append(c)
    resp = await c.connect("alice", stack.alice["secret"])
    assert resp.status == 0 and resp.version == version
    # The gateway proves it knows the secret too.
    assert resp.authenticator == auth.authenticator_ismg(0, c.authenticator, stack.alice["secret"], version)
    assert stack.server.stats()["bound"] == 1


async def test_login_refusals(stack):
    # (username, secret, the CONNECT's Version, the layout the answer comes in, the status)
    cases = [("alice", "wrong-secret", 0x20, 0x20, 3), ("nobody", "x", 0x20, 0x20, 2),
             ("alice", stack.alice["secret"], 0x10, 0x20, 4), ("alice", stack.alice["secret"], 0x40, 0x30, 4)]
    for username, secret, version, layout, status in cases:
        c = await Customer.open(stack.port, layout)
        stack.customers.append(c)
        resp = await c.connect(username, secret, version)
        assert resp.status == status, (username, version)
        await c.wait_closed()
    with stack.engine.begin() as conn:
        acc.update_account(conn, "bob", state="locked")
    stack.runtime.directory._by_id.clear()       # noqa: SLF001 - the cache would hide the change for 3 s
    c = await Customer.open(stack.port)
    stack.customers.append(c)
    assert (await c.connect("bob", stack.bob_secret)).status == 5
    assert stack.server.stats()["bound"] == 0


async def test_a_fifth_session_of_an_account_is_refused(stack):
    for _ in range(4):
        await stack.login()
    c = await Customer.open(stack.port)
    stack.customers.append(c)
    resp = await c.connect("alice", stack.alice["secret"])
    assert resp.status == cmpp_server.CONNECT_TOO_MANY
    await c.wait_closed()
    # Another account is not affected, and a closed session makes room again.
    await stack.login("bob", stack.bob_secret)
    first = stack.customers[0]
    first.send(Terminate(first.conn.next_sequence()))
    await first.expect(TerminateResp)
    await until(lambda: stack.server.bound_sessions(stack.alice["id"]) == 3, what="the session to go")
    await stack.login()


# -- submitting ----------------------------------------------------------------------

@pytest.mark.parametrize("version", [0x20, 0x30])
async def test_submit_is_accepted_and_stored(stack, version):
    c = await stack.login(version=version)
    resp = await c.submit("13800138000", TEXT.encode("utf-16-be"), msg_fmt=8, src_id="127", msg_src="alice")
    assert resp.result == 0 and resp.msg_id != 0
    sub = _submission(stack.engine, resp.msg_id)
    assert sub is not None and sub.dialect == "cmpp" and sub.content == TEXT and sub.extno == "7"
    assert sub.recipients == 1 and sub.parts == 1 and sub.account_id == stack.alice["id"]
    with stack.engine.connect() as conn:
        phones = [r.phone for r in conn.execute(select(messages.c.phone)
                                                 .where(messages.c.submission_id == sub.id))]
    assert phones == ["13800138000"]
    # ASCII and GBK content are read too.
    assert (await c.submit("13800138001", b"hello", msg_fmt=0)).result == 0
    gbk = await c.submit("13800138002", "【鸿雁】你好".encode("gbk"), msg_fmt=15)
    assert gbk.result == 0 and _submission(stack.engine, gbk.msg_id).content == "【鸿雁】你好"


async def test_at_time_schedules_the_message(stack):
    c = await stack.login()
    later = await c.submit("13800138000", b"in an hour", at_time="000000010000000R")   # relative: +1 h
    assert later.result == 0
    sub = _submission(stack.engine, later.msg_id)
    assert sub.state == "scheduled"
    assert abs(sub.scheduled_at - (time.time() + 3600) * 1000) < 60_000
    assert (await c.submit("13800138000", b"when?", at_time="tomorrow")).result == 1


async def test_refusals_carry_the_k1680_result_codes(stack):
    c = await stack.login()
    assert (await c.submit("12345", b"hi")).result == 11                       # not a mobile number
    assert (await c.submit("13800138000", b"hi", src_id="12abc")).result == 14  # extension not digits
    assert (await c.submit("13800138000", b"hi", src_id="99")).result == 14     # not under the account's number
    assert (await c.submit("13800138000", b"hi", msg_src="bob")).result == 9   # Msg_src is another account
    assert (await c.submit("13800138000", b"x" * 161)).result == 6              # more than one SMS
    assert (await c.submit("13800138000", b"\x00\x41\x00", msg_fmt=8)).result == 4  # odd UCS2 length
    assert (await c.submit("13800138000", b"\x01\x02", msg_fmt=4)).result == 1  # binary is not text
    bob = await stack.login("bob", stack.bob_secret)
    refused = await bob.submit("13800138000", b"hi")                            # bob has no balance
    assert refused.result == 13 and refused.msg_id == 0
    with stack.engine.connect() as conn:
        assert conn.execute(select(submissions.c.id)).all() == []


async def test_a_long_message_in_udh_parts_is_one_submission(stack):
    c = await stack.login()
    text = "【鸿雁】" + "长短信内容" * 25                     # 129 characters: two UCS2 parts of 67
    body = text.encode("utf-16-be")
    chunks = [body[i:i + 134] for i in range(0, len(body), 134)]
    assert len(chunks) == 2
    resps = []
    for i, chunk in enumerate(chunks, 1):
        resps.append(await c.submit("13800138000", concat_udh(0x5A, len(chunks), i) + chunk, msg_fmt=8,
                                    tp_udhi=1, pk_total=len(chunks), pk_number=i))
    assert [r.result for r in resps] == [0, 0]
    # Each part has its own Msg_Id, as a gateway gives every SUBMIT; they follow one another.
    assert resps[1].msg_id == resps[0].msg_id + 1
    sub = _submission(stack.engine, resps[0].msg_id)
    assert sub.content == text and sub.parts == 2 and sub.client_ref == f"{resps[0].msg_id}/2"
    assert _submission(stack.engine, resps[1].msg_id).id == sub.id
    # Three parts sent out of order, pipelined, to two numbers: still one submission.
    text3 = "Hongyan " * 40                                       # 320 GSM characters: three parts
    parts = [text3[i:i + 153].encode() for i in range(0, len(text3), 153)]
    seqs = {}
    for i in (2, 3, 1):
        seq = c.conn.next_sequence()
        seqs[seq] = i
        c.send(Submit(seq, ("13800138001", "13800138002"), concat_udh(7, 3, i) + parts[i - 1], tp_udhi=1))
    got = {seqs[r.sequence_id]: r for r in [await c.expect(SubmitResp) for _ in range(3)]}
    assert all(r.result == 0 for r in got.values())
    assert [got[i].msg_id - got[1].msg_id for i in (1, 2, 3)] == [0, 1, 2]
    sub = _submission(stack.engine, got[1].msg_id)
    assert sub.content == text3 and sub.recipients == 2 and sub.parts == 3
    with stack.engine.connect() as conn:
        assert len(conn.execute(select(submissions.c.id)).all()) == 2


async def test_the_parts_of_a_long_message_may_come_on_different_sessions(stack):
    a = await stack.login()
    first = await a.submit("13800138000", concat_udh(3, 2, 1) + b"first half, ", tp_udhi=1)
    assert first.result == 0 and _submission(stack.engine, first.msg_id) is None
    await a.close()                                              # the SP reconnects before the rest
    b = await stack.login()
    second = await b.submit("13800138000", concat_udh(3, 2, 2) + b"second half", tp_udhi=1)
    assert second.result == 0 and second.msg_id == first.msg_id + 1
    assert _submission(stack.engine, first.msg_id).content == "first half, second half"


async def test_an_incomplete_long_message_is_sent_as_far_as_it_goes_after_the_wait(stack, monkeypatch):
    monkeypatch.setattr(cmpp_server, "LONG_SMS_WAIT", 0.2)
    c = await stack.login()
    resp = await c.submit("13800138000", concat_udh(9, 3, 1) + b"first part ", tp_udhi=1)
    assert resp.result == 0
    stack.server.tick(time.monotonic())
    assert _submission(stack.engine, resp.msg_id) is None        # still waiting for the other parts
    await asyncio.sleep(0.3)
    stack.server.tick(time.monotonic())                          # what the server's sweep calls
    await until(lambda: _submission(stack.engine, resp.msg_id) is not None, what="the partial submission")
    sub = _submission(stack.engine, resp.msg_id)
    assert sub.content == "first part " and sub.client_ref == f"{resp.msg_id}/3"


# -- reports and MO -----------------------------------------------------------------

async def test_a_submit_comes_back_as_a_deliver_report(stack):
    c = await stack.login()
    resp = await c.submit("13800138000", TEXT.encode("utf-16-be"), msg_fmt=8)
    assert resp.result == 0
    report = await c.expect(Deliver)
    assert report.registered_delivery == 1 and report.msg_id == resp.msg_id
    r = report.report
    assert r.msg_id == resp.msg_id and r.stat == "DELIVRD" and r.dest_terminal_id == "13800138000"
    assert report.src_terminal_id == "13800138000"
    now = datetime.now()
    assert len(r.submit_time) == 10 and r.done_time[:6] == now.strftime("%y%m%d")
    c.send(DeliverResp(report.sequence_id, report.msg_id, 0))
    await until(lambda: _event_states(stack.engine) == ["done"], what="the report to be done")


async def test_a_long_message_is_reported_once_per_part_and_registered_delivery_0_gets_none(stack):
    c = await stack.login()
    ids = []
    for i, half in enumerate((b"first half, ", b"second half"), 1):
        ids.append((await c.submit("13800138000", concat_udh(4, 2, i) + half, tp_udhi=1)).msg_id)
    reports = [await c.expect(Deliver), await c.expect(Deliver)]
    assert sorted(r.report.msg_id for r in reports) == ids
    assert all(r.report.stat == "DELIVRD" and r.report.dest_terminal_id == "13800138000" for r in reports)
    c.send(DeliverResp(reports[0].sequence_id, reports[0].msg_id, 0))
    await asyncio.sleep(0.2)
    assert _event_states(stack.engine) == ["session"]            # done only when every part is answered
    c.send(DeliverResp(reports[1].sequence_id, reports[1].msg_id, 0))
    await until(lambda: _event_states(stack.engine) == ["done"], what="the report to be done")
    quiet = await c.submit("13800138001", b"no report please", registered_delivery=0)
    assert quiet.result == 0
    assert _submission(stack.engine, quiet.msg_id).client_ref == f"{quiet.msg_id};rd=0"
    await until(lambda: _event_states(stack.engine) == ["done", "done"], what="the unwanted report settled")
    await asyncio.sleep(0.2)
    assert c.inbox.empty()


async def test_a_report_made_while_no_session_is_bound_is_delivered_after_login(stack):
    c = await stack.login()
    resp = await c.submit("13800138000", b"hello")
    c.send(Terminate(c.conn.next_sequence()))
    await c.expect(TerminateResp)
    await c.wait_closed()
    await until(lambda: _event_states(stack.engine) == ["session"], what="the report to wait")
    await asyncio.sleep(0.3)
    assert _event_states(stack.engine) == ["session"]
    again = await stack.login(version=0x30)
    report = await again.expect(Deliver)
    assert report.report.msg_id == resp.msg_id and report.report.stat == "DELIVRD"
    again.send(DeliverResp(report.sequence_id, report.msg_id, 0))
    await until(lambda: _event_states(stack.engine) == ["done"], what="the report to be done")


async def test_an_unacknowledged_deliver_is_offered_again_after_reconnect(stack):
    c = await stack.login()
    resp = await c.submit("13800138000", b"hello")
    first = await c.expect(Deliver)
    assert first.report.msg_id == resp.msg_id
    await c.close()                                             # gone without a DELIVER_RESP
    again = await stack.login()
    second = await again.expect(Deliver)
    assert second.report.msg_id == resp.msg_id
    again.send(DeliverResp(second.sequence_id, second.msg_id, 0))
    await until(lambda: _event_states(stack.engine) == ["done"], what="the report to be done")
    await asyncio.sleep(0.3)
    assert again.inbox.empty()                                  # not offered a third time


async def test_a_deliver_left_unanswered_on_a_live_session_is_offered_again(stack, monkeypatch):
    monkeypatch.setattr(cmpp_server, "DELIVER_TIMEOUT", 0.2)
    c = await stack.login()
    resp = await c.submit("13800138000", b"hello")
    first = await c.expect(Deliver)
    await asyncio.sleep(0.3)
    session = next(iter(stack.server.sessions))
    session.tick(time.monotonic())                               # what the server's sweep calls
    again = await c.expect(Deliver)
    assert again.report.msg_id == resp.msg_id and again.sequence_id != first.sequence_id
    c.send(DeliverResp(again.sequence_id, again.msg_id, 0))
    await until(lambda: _event_states(stack.engine) == ["done"], what="the report to be done")


async def test_mo_arrives_as_deliver(stack):
    with stack.engine.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.username == "alice").values(mo_push_dialect="cmpp"))
    stack.runtime.directory._by_id.clear()       # noqa: SLF001
    c = await stack.login()
    await until(lambda: stack.sim.stats["connections"] > 0, what="a bound channel")
    stack.sim.inject_mo("13800138000", "1069000127", "回复 TD")
    mo = await c.expect(Deliver)
    assert mo.registered_delivery == 0 and mo.src_terminal_id == "13800138000"
    assert mo.dest_id == "1069000127" and mo.msg_fmt == 8 and mo.msg_content.decode("utf-16-be") == "回复 TD"
    c.send(DeliverResp(mo.sequence_id, mo.msg_id, 0))
    # A long reply comes as UDH parts; it is done when every part is acknowledged.
    stack.sim.inject_mo("13800138000", "1069000127", "长" * 100)
    parts = [await c.expect(Deliver), await c.expect(Deliver)]
    assert all(p.tp_udhi == 1 for p in parts)
    assert b"".join(p.msg_content[6:] for p in parts).decode("utf-16-be") == "长" * 100
    c.send(DeliverResp(parts[0].sequence_id, parts[0].msg_id, 0))
    await asyncio.sleep(0.2)
    assert _event_states(stack.engine, "mo") == ["done", "session"]
    c.send(DeliverResp(parts[1].sequence_id, parts[1].msg_id, 0))
    await until(lambda: _event_states(stack.engine, "mo") == ["done", "done"], what="both MO done")


def _event_states(engine, kind: str = "report") -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(events.c.push_state).where(events.c.kind == kind)
                                           .order_by(events.c.id))]


# -- bad input --------------------------------------------------------------------------

async def test_a_lying_length_closes_only_that_session(stack):
    bad = await stack.login()
    good = await stack.login()
    bad.raw(struct.pack(">III", 1_000_000, 0x00000004, 99))    # Total_Length far above any PDU
    await bad.wait_closed()
    assert (await good.submit("13800138000", b"still here")).result == 0
    with stack.engine.connect() as conn:
        assert len(conn.execute(select(submissions.c.id)).all()) == 1


async def test_an_unknown_command_is_answered_with_terminate(stack):
    bad = await stack.login()
    good = await stack.login()
    bad.raw(struct.pack(">III", 12, 0x00000077, 5))
    await bad.expect(Terminate)
    await bad.wait_closed()
    assert (await good.submit("13800138000", b"hi")).result == 0


async def test_a_malformed_submit_is_refused_and_the_session_goes_on(stack):
    c = await stack.login()
    # A SUBMIT whose body is far too short for its fields.
    c.raw(struct.pack(">III", 12 + 10, 0x00000004, 4242) + b"\x00" * 10)
    resp = await c.expect(SubmitResp)
    assert resp.sequence_id == 4242 and resp.result == 1
    c.conn._seq = 5000                                           # noqa: SLF001 - past the raw PDU's id
    assert (await c.submit("13800138000", b"after")).result == 0


async def test_a_pdu_before_login_closes_the_session(stack):
    c = await Customer.open(stack.port)
    stack.customers.append(c)
    c.raw(struct.pack(">III", 12, 0x00000008, 1))               # ACTIVE_TEST before CONNECT
    await c.wait_closed()
    assert stack.server.stats()["bound"] == 0


async def test_active_test_is_answered_and_silent_sessions_are_closed(stack):
    stack.server.idle_timeout = 0.4
    stack.server._sweeper.cancel()                              # noqa: SLF001 - restart it with the short timeout
    stack.server._sweeper = asyncio.create_task(stack.server._sweep())  # noqa: SLF001
    talker = await stack.login()
    silent = await stack.login()
    for _ in range(6):
        talker.send(ActiveTest(talker.conn.next_sequence()))
        await talker.expect(ActiveTestResp)
        await asyncio.sleep(0.15)
    await silent.expect(Terminate, timeout=3)
    await silent.wait_closed()
    assert not talker.closed.is_set()


async def test_a_customer_that_stops_reading_is_not_buffered_without_bound(stack):
    """Submits keep coming but no answer is read: the server stops reading that
    session once its write buffer is full, instead of queueing answers forever."""
    c = await stack.login()
    c._task.cancel()                                             # noqa: SLF001 - stop reading our socket
    session = next(iter(stack.server.sessions))
    # Small socket buffers, so the answers pile up in the server's transport soon.
    session.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c.writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pdu = c.conn.send(Submit(c.conn.next_sequence(), ("12345",), b"x"))  # refused at once: no DB work
    for _ in range(2000):
        c.raw(pdu * 100)
        try:
            await asyncio.wait_for(c.writer.drain(), 0.5)
        except asyncio.TimeoutError:
            break                                                # the server no longer reads us
        if session._read_paused:                                 # noqa: SLF001
            break
    await until(lambda: session._read_paused, what="the server to stop reading")  # noqa: SLF001
    assert session.transport.get_write_buffer_size() < 1024 * 1024
    # The other sessions are served meanwhile.
    other = await stack.login()
    assert (await other.submit("13800138000", b"hi")).result == 0


async def test_query_counts_the_day(stack):
    c = await stack.login()
    ok = await c.submit("13800138000", b"hello")
    assert ok.result == 0
    await c.expect(Deliver)
    day = datetime.now().strftime("%Y%m%d")
    c.send(Query(c.conn.next_sequence(), day, 0))
    q = await c.expect(QueryResp)
    assert q.time == day and q.mt_tlmsg == 1 and q.mt_tlusr == 1 and q.mt_scs == 1 and q.mt_wt == 0


async def test_the_bench_front_pipelines_a_window_per_session_and_acks_every_report(stack):
    """``hongyan bench --front cmpp``'s customer: every submit answered and accepted,
    every report delivered on one of the sessions and acknowledged."""
    from hongyan.bench import FrontRun, Numbers, drive_front

    run = FrontRun(300, Numbers(seed=7), "【鸿雁】验证码 1234", window=16)
    clients = await drive_front("cmpp", "127.0.0.1", stack.port, "alice", stack.alice["secret"], run,
                                connections=2, timeout=30, echo=print)
    try:
        assert run.complete() and run.accepted == 300 and not run.refused
        assert run.reports == {"DELIVRD": 300}
        assert len(run.latencies) == 300 and run.closed_early == 0
        await until(lambda: _event_states(stack.engine) == ["done"] * 300, what="every report done")
    finally:
        for c in clients:
            c.close()


# -- wiring ---------------------------------------------------------------------------

def test_the_port_setting_turns_the_server_on_off_or_onto_a_free_port(monkeypatch, tmp_path):
    from hongyan.config import Settings, load

    assert Settings().cmpp_server_port == 7890 and Settings().server_host == "127.0.0.1"
    for env, port in (("off", None), ("", None), ("none", None), ("0", 0), ("-1", None), ("7999", 7999)):
        monkeypatch.setenv("HONGYAN_CMPP_SERVER_PORT", env)
        s = load(str(tmp_path / "absent.toml"))
        assert Settings.listen_port(s.cmpp_server_port) == port, env


async def test_a_negative_port_starts_no_server_and_port_0_shows_the_one_picked(settings):
    settings.cmpp_server_port = -1
    runtime = Runtime(settings)
    await runtime.start()
    try:
        assert "cmpp" not in runtime.servers and "cmpp" not in runtime.stats()["servers"]
    finally:
        await runtime.stop()
    settings.cmpp_server_port = 0
    runtime = Runtime(settings)
    await runtime.start()
    try:
        port = runtime.stats()["servers"]["cmpp"]["port"]
        assert port > 0
        c = await Customer.open(port)
        assert (await c.connect("nobody", "x")).status == 2      # it is listening there
        await c.close()
    finally:
        await runtime.stop()


async def test_a_stopping_server_answers_the_submits_it_is_accepting_then_says_goodbye(stack):
    c = await stack.login()
    # The writer is held up, so the submits are still being accepted when the stop begins.
    stall = stack.runtime.writer.submit(lambda conn, _: time.sleep(0.5))
    seqs = []
    for i in range(16):
        seq = c.conn.next_sequence()
        seqs.append(seq)
        c.send(Submit(seq, (f"1380013{i:04d}",), b"last orders"))
    await c.writer.drain()
    await until(lambda: any(s.in_flight for s in stack.server.sessions), what="submits being accepted")
    await stack.server.stop()
    answers = [await c.expect(SubmitResp) for _ in range(16)]
    assert sorted(a.sequence_id for a in answers) == seqs and all(a.result == 0 for a in answers)
    await c.expect(Terminate)
    await stall
    with stack.engine.connect() as conn:
        assert len(conn.execute(select(submissions.c.id)).all()) == 16


async def test_a_port_in_use_is_named_in_the_error(stack):
    from hongyan.servers.cmpp import CmppServer

    taken = CmppServer(stack.runtime.accept, stack.runtime.directory, stack.runtime.outbox,
                       host="127.0.0.1", port=stack.port)
    with pytest.raises(OSError, match=rf"CMPP server cannot listen on 127.0.0.1:{stack.port}"):
        await taken.start()


async def test_a_connection_that_never_logs_in_is_closed(stack, monkeypatch):
    monkeypatch.setattr(cmpp_server, "LOGIN_TIMEOUT", 0.2)
    idle = await Customer.open(stack.port)
    stack.customers.append(idle)
    await asyncio.sleep(0.3)
    for s in list(stack.server.sessions):
        s.tick(time.monotonic())                                 # what the server's sweep calls
    await idle.wait_closed()
    assert stack.server.stats()["sessions"] == 0


async def test_cancel_withdraws_a_scheduled_message_and_refunds_it(stack):
    c = await stack.login()
    later = await c.submit("13800138000", b"in an hour", at_time="000000010000000R")
    assert later.result == 0
    c.send(Cancel(c.conn.next_sequence(), later.msg_id))
    assert (await c.expect(CancelResp)).success_id == 1
    sub = _submission(stack.engine, later.msg_id)
    assert sub.state == "cancelled"
    with stack.engine.connect() as conn:
        assert conn.execute(select(messages.c.state, messages.c.status)
                            .where(messages.c.submission_id == sub.id)).one() == ("failed", "CANCEL")
        assert acc.ledger_mismatches(conn) == []
    # Its report (CANCEL) comes on the session; a second cancel, or one of a message
    # already with the carrier, or of an unknown Msg_Id, withdraws nothing.
    report = await c.expect(Deliver)
    assert report.report.msg_id == later.msg_id and report.report.stat == "CANCEL"
    c.send(DeliverResp(report.sequence_id, report.msg_id, 0))
    sent = await c.submit("13800138001", b"now")
    await until(lambda: stack.sim.stats["submits"] >= 1, what="the message at the carrier")
    for msg_id in (later.msg_id, sent.msg_id, 12345):
        c.send(Cancel(c.conn.next_sequence(), msg_id))
        assert (await c.expect(CancelResp)).success_id == 0
