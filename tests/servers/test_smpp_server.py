"""The SMPP 3.4 server for customers, over loopback sockets, with our own codec as the customer."""
from __future__ import annotations

import asyncio
import socket
from datetime import datetime
from types import SimpleNamespace

import orjson
import pytest
from sqlalchemy import insert, select

from hongyan.channels.simulator import CmppSimulator
from hongyan.core import accounts as acc
from hongyan.core.accept import AcceptService
from hongyan.core.accounts import Directory
from hongyan.core.secrets import Cipher
from hongyan.domain.outcomes import Code
from hongyan.domain.segments import concat_udh, encoding_of
from hongyan.protocols.smpp import (
    CLOSED, NEED_DATA, BindReceiver, BindTransceiver, BindTransmitter, CommandStatus as S, Connection, DeliverSm,
    DeliverSmResp, EnquireLink, EnquireLinkResp, GenericNack, MessageState, SmeAddress,
    SmppProtocolError, SubmitMulti, SubmitSm, Tag, Tlv, Unbind, UnbindResp, encode, find_tlv, parse_receipt,
)
from hongyan.protocols.smpp.wire import HEADER
from hongyan.runtime import Runtime
from hongyan.servers.outbox import Outbox
from hongyan.servers.smpp import (
    ESME_RNOBALANCE, SmppServer, decode_text, gsm_encode, parse_time, read_receipt_ref, receipt_ref,
    status_for,
)
from hongyan.store.db import make_engine, migrate
from hongyan.store.tables import events, messages, submissions
from hongyan.store.writer import Writer
from tests.helpers import engines, seed, until

PHONE = "13800138000"


class Esme:
    """A customer's SMPP client on a real socket, built on our own codec."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = Connection("esme")
        self.queue: list = []

    @classmethod
    async def connect(cls, port: int, rcvbuf: int | None = None) -> Esme:
        sock = socket.socket()
        if rcvbuf:
            # Set before connecting, so the kernel does not grow the window past it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def send(self, ev) -> None:
        self.writer.write(self.conn.send(ev))
        await self.writer.drain()

    async def raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0):
        """The next PDU from the server; None once it closed the connection."""
        while not self.queue:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.conn.receive_data(data)
            while True:
                try:
                    ev = self.conn.next_event()
                except SmppProtocolError as e:
                    ev = e.event    # an answer to a PDU sent raw, past our own state table
                if ev is NEED_DATA or ev is CLOSED:
                    break
                self.queue.append(ev)
        return self.queue.pop(0)

    async def answer_of(self, seq: int, timeout: float = 5.0):
        """The response to request ``seq``; other PDUs (deliver_sm) stay queued in ``others``."""
        others = []
        try:
            while True:
                ev = await self.recv(timeout)
                assert ev is not None, "the server closed the connection"
                if ev.sequence_number == seq and not isinstance(ev, DeliverSm):
                    return ev
                others.append(ev)
        finally:
            self.queue[:0] = others

    async def request(self, ev):
        await self.send(ev)
        return await self.answer_of(ev.sequence_number)

    async def bind(self, user: dict, kind=BindTransceiver, password: str | None = None):
        pw = user["secret"][:8] if password is None else password
        return await self.request(kind(self.conn.next_sequence(), user["username"], pw))

    async def submit(self, **kw):
        kw.setdefault("destination_addr", PHONE)
        kw.setdefault("short_message", b"hello")
        return await self.request(SubmitSm(self.conn.next_sequence(), **kw))

    async def closed(self, timeout: float = 5.0) -> bool:
        while True:
            ev = await self.recv(timeout)
            if ev is None:
                return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def front(settings):
    """Accept, outbox and the SMPP server over a seeded database (no carrier)."""
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    cipher = Cipher(settings.secret_key)
    user = seed(engine, cipher, balance=1000)
    writer = Writer(engine, window_ms=1.0)
    writer.start()
    directory = Directory(reader, cipher)
    accept = AcceptService(directory, writer)
    outbox = Outbox(writer, poll=0.02)
    task = asyncio.create_task(outbox.run())
    server = SmppServer(accept, directory, outbox, port=0, max_sessions=2, idle_timeout=2.0,
                        bind_timeout=1.0, deliver_timeout=1.0, refused_retry=0.2, unbind_wait=0.2,
                        long_sms_timeout=0.5)
    await server.start()
    f = SimpleNamespace(engine=engine, cipher=cipher, user=user, writer=writer, server=server,
                        outbox=outbox, outbox_task=task, port=server.port)
    try:
        yield f
    finally:
        await server.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        writer.stop()
        engine.dispose()
        if reader is not engine:
            reader.dispose()


def _rows(engine, table, *where):
    with engine.connect() as conn:
        return conn.execute(select(table).where(*where).order_by(table.c.id)).all()


def _add_events(engine, account_id: int, payloads: list[tuple[str, dict]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(events), [
            {"account_id": account_id, "kind": kind, "ref_id": i, "payload": orjson.dumps(p).decode(),
             "created_at": 0, "push_state": "session", "attempts": 0, "next_at": 0}
            for i, (kind, p) in enumerate(payloads)])


def _report(submission_id: int, status: str = "delivered", carrier: str = "DELIVRD") -> dict:
    return {"message_id": submission_id * 10, "submission_id": submission_id, "to": PHONE,
            "status": status, "carrier_status": carrier, "submitted_at": "2026-12-02T10:00:00.000+00:00",
            "done_at": "2026-12-02T10:00:05.000+00:00"}


# -- bind -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [BindTransmitter, BindReceiver, BindTransceiver])
async def test_bind_each_kind_with_the_first_eight_characters_of_the_secret(front, kind):
    esme = await Esme.connect(front.port)
    resp = await esme.bind(front.user, kind)
    assert resp.command_status == 0 and resp.system_id == "HONGYAN"
    assert find_tlv(resp.tlvs, Tag.SC_INTERFACE_VERSION) == 0x34
    assert front.server.bound_sessions(front.user["id"]) == 1
    assert isinstance(await esme.request(EnquireLink(esme.conn.next_sequence())), EnquireLinkResp)
    assert isinstance(await esme.request(Unbind(esme.conn.next_sequence())), UnbindResp)
    assert await esme.closed()
    await until(lambda: front.server.bound_sessions(front.user["id"]) == 0, 5)


@pytest.mark.parametrize("who,password", [("alice", "wrongpw"), ("nobody", "whatever"), ("alice", "")])
async def test_bad_credentials_refused_and_closed(front, who, password):
    esme = await Esme.connect(front.port)
    resp = await esme.request(BindTransceiver(1, who, password))
    assert resp.command_status == S.ESME_RINVPASWD
    assert await esme.closed()
    assert front.server.bound_sessions(front.user["id"]) == 0


async def test_a_password_longer_than_the_field_is_refused_not_nacked(front):
    # The field holds 8 octets and its NUL; a client that sends the whole secret
    # gets a bind answer, not a generic_nack.
    body = b"alice\0" + front.user["secret"].encode() + b"\0" + b"\0" + bytes((0x34, 0, 0)) + b"\0"
    esme = await Esme.connect(front.port)
    await esme.raw(HEADER.pack(16 + len(body), 0x00000009, 0, 7) + body)
    resp = await esme.answer_of(7)
    assert type(resp).__name__ == "BindTransceiverResp" and resp.command_status == S.ESME_RINVPASWD


async def test_wrong_state_and_second_bind(front):
    esme = await Esme.connect(front.port)
    # submit_sm before any bind: answered, not dropped.
    await esme.raw(encode(SubmitSm(3, destination_addr=PHONE, short_message=b"x")))
    resp = await esme.answer_of(3)
    assert type(resp).__name__ == "SubmitSmResp" and resp.command_status == S.ESME_RINVBNDSTS
    assert (await esme.bind(front.user, BindReceiver)).command_status == 0
    await esme.raw(encode(BindTransceiver(8, "alice", front.user["secret"][:8])))
    assert (await esme.answer_of(8)).command_status == S.ESME_RALYBND
    # A receiver may not submit.
    await esme.raw(encode(SubmitSm(9, destination_addr=PHONE, short_message=b"x")))
    assert (await esme.answer_of(9)).command_status == S.ESME_RINVBNDSTS
    assert front.server.bound_sessions(front.user["id"]) == 1
    assert _rows(front.engine, submissions) == []


async def test_session_limit_per_account(front):
    first, second, third = [await Esme.connect(front.port) for _ in range(3)]
    assert (await first.bind(front.user)).command_status == 0
    assert (await second.bind(front.user, BindTransmitter)).command_status == 0
    assert (await third.bind(front.user)).command_status == S.ESME_RBINDFAIL
    assert await third.closed()
    await first.request(Unbind(first.conn.next_sequence()))
    await until(lambda: front.server.bound_sessions(front.user["id"]) == 1, 5)
    again = await Esme.connect(front.port)
    assert (await again.bind(front.user)).command_status == 0


async def test_an_unbound_connection_is_closed_after_the_bind_timeout(front):
    esme = await Esme.connect(front.port)
    assert await esme.closed(timeout=5)


# -- submit -----------------------------------------------------------------------

async def test_submit_is_answered_after_commit_with_the_id_receipts_carry(front):
    esme = await Esme.connect(front.port)
    await esme.bind(front.user, BindTransmitter)
    resp = await esme.submit(source_addr="12345", short_message=b"hello @ 1", registered_delivery=1)
    assert resp.command_status == 0
    [sub] = _rows(front.engine, submissions)
    assert resp.message_id == str(sub.id)
    assert (sub.dialect, sub.content, sub.extno) == ("smpp", "hello ¡ 1", "345")
    [msg] = _rows(front.engine, messages, messages.c.submission_id == sub.id)
    assert msg.phone == PHONE
    # data_coding 8 (UCS2) and 3 (Latin-1)
    assert (await esme.submit(short_message="你好".encode("utf-16-be"), data_coding=8)).command_status == 0
    assert (await esme.submit(short_message="café".encode("latin-1"), data_coding=3,
                              destination_addr="+8613800138001")).command_status == 0
    assert [r.content for r in _rows(front.engine, submissions)][1:] == ["你好", "café"]
    assert [r.phone for r in _rows(front.engine, messages)][1:] == [PHONE, "13800138001"]


async def test_submit_multi_lists_the_numbers_it_could_not_take(front):
    esme = await Esme.connect(front.port)
    await esme.bind(front.user)
    dests = (SmeAddress(1, 1, PHONE), SmeAddress(1, 1, "12345"), SmeAddress(1, 1, "13900139000"))
    resp = await esme.request(SubmitMulti(esme.conn.next_sequence(), dest_addresses=dests, short_message=b"hi"))
    assert resp.command_status == 0
    assert [(u.destination_addr, u.error_status_code) for u in resp.unsuccess_smes] == [("12345", S.ESME_RINVDSTADR)]
    [sub] = _rows(front.engine, submissions)
    assert resp.message_id == str(sub.id)
    assert sorted(r.phone for r in _rows(front.engine, messages)) == [PHONE, "13900139000"]


async def test_refusals_are_mapped(front):
    with front.engine.begin() as conn:
        _, secret, _ = acc.create_account(conn, front.cipher, org_code="200001", username="poor", extension="13")
    esme = await Esme.connect(front.port)
    await esme.bind(front.user)
    cases = [
        (dict(destination_addr="12345"), S.ESME_RINVDSTADR),
        (dict(destination_addr="138,139"), S.ESME_RINVDSTADR),
        (dict(source_addr="99"), S.ESME_RINVSRCADR),
        (dict(source_addr="12abc"), S.ESME_RINVSRCADR),
        (dict(short_message=b""), S.ESME_RINVMSGLEN),
        (dict(schedule_delivery_time="010101000000000+"), S.ESME_RINVSCHED),
        (dict(data_coding=4, short_message=b"\x01\x02"), S.ESME_RSUBMITFAIL),
        (dict(esm_class=0x08), S.ESME_RINVESMCLASS),
        (dict(tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"x"),)), S.ESME_ROPTPARNOTALLWD),
    ]
    for kw, status in cases:
        assert (await esme.submit(**kw)).command_status == status, kw
    poor = await Esme.connect(front.port)
    assert (await poor.bind({"username": "poor", "secret": secret})).command_status == 0
    assert (await poor.submit()).command_status == ESME_RNOBALANCE
    assert _rows(front.engine, submissions) == []


def test_outcome_table_follows_smpp_3_4():
    assert status_for(Code.OK) == 0 and status_for(Code.CONTENT_HELD) == 0
    assert status_for(Code.INVALID_NUMBER) == S.ESME_RINVDSTADR
    assert status_for(Code.INVALID_EXTNO) == S.ESME_RINVSRCADR
    assert status_for(Code.RATE_LIMITED) == S.ESME_RTHROTTLED
    assert status_for(Code.CONTENT_BLOCKED) == S.ESME_RSUBMITFAIL
    assert status_for(Code.INSUFFICIENT_BALANCE) == ESME_RNOBALANCE
    assert status_for(Code.SYSTEM_ERROR) == S.ESME_RSYSERR
    assert status_for(Code.DUPLICATE_REQUEST) == S.ESME_RSUBMITFAIL   # anything unlisted


def test_text_and_time_helpers():
    assert decode_text(gsm_encode("a@b_{€}"), 0) == "a@b_{€}"
    assert decode_text(b"\x00\x02\x11", 0) == "@$_"
    # Every character the segmenter sends as GSM 7-bit survives data_coding 0 both ways.
    gsm7 = "".join(chr(c) for c in range(128) if encoding_of(chr(c)) == "gsm7")
    assert len(gsm7) > 90 and decode_text(gsm_encode(gsm7), 0) == gsm7
    assert decode_text("中文".encode("gbk"), 0) == "中文"      # GBK sent as data_coding 0
    assert decode_text("中文".encode("gbk"), 15) == "中文"
    assert decode_text(b"\xe9", 3) == "é"
    assert decode_text(b"a@b_c", 1) == "a@b_c"                  # IA5 as it is
    assert decode_text(gsm_encode("a@b_c"), 1) == "a@b_c"       # GSM septets labelled IA5
    with pytest.raises(ValueError):
        decode_text(b"\x01", 4)
    assert parse_time("261202103000000+") == parse_time("261202113000004+")   # +1 h in quarter hours
    assert parse_time("000000000100000R", now=1000.0) == 1_060_000
    with pytest.raises(ValueError):
        parse_time("2612021030")


LONG = "长消息" * 30   # 90 UCS2 characters: two parts


@pytest.mark.parametrize("style", ["udh", "sar", "payload"])
async def test_long_sms_becomes_one_submission(front, style):
    esme = await Esme.connect(front.port)
    await esme.bind(front.user)
    body = LONG.encode("utf-16-be")
    halves = [body[:134], body[134:]]
    if style == "payload":
        pdus = [dict(tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, body),), short_message=b"")]
    elif style == "udh":
        pdus = [dict(esm_class=0x40, short_message=concat_udh(7, 2, i + 1) + h) for i, h in enumerate(halves)]
    else:
        pdus = [dict(short_message=h, tlvs=(Tlv(Tag.SAR_MSG_REF_NUM, 300), Tlv(Tag.SAR_TOTAL_SEGMENTS, 2),
                                            Tlv(Tag.SAR_SEGMENT_SEQNUM, i + 1))) for i, h in enumerate(halves)]
    answers = [await esme.submit(data_coding=8, registered_delivery=1, **kw) for kw in pdus]
    assert all(a.command_status == 0 for a in answers)
    [sub] = _rows(front.engine, submissions)
    assert sub.content == LONG and sub.parts == 2
    assert answers[-1].message_id == str(sub.id)
    assert len({a.message_id for a in answers}) == len(answers)     # early parts get ids of their own
    # The receipt goes out once for every submit_sm the customer sent, with its id.
    _add_events(front.engine, front.user["id"], [("report", {**_report(sub.id), "client_ref": sub.client_ref})])
    receipts = [await esme.recv() for _ in answers]
    assert [find_tlv(r.tlvs, Tag.RECEIPTED_MESSAGE_ID) for r in receipts] == [a.message_id for a in answers]
    assert [parse_receipt(r.short_message).message_id for r in receipts] == [a.message_id for a in answers]
    for r in receipts:
        await esme.send(DeliverSmResp(r.sequence_number))
    await until(lambda: [r.push_state for r in _rows(front.engine, events)] == ["done"], 5)


async def test_registered_delivery_decides_which_receipts_go_out(front):
    esme = await Esme.connect(front.port)
    await esme.bind(front.user)
    ids = [(await esme.submit(registered_delivery=rd)).message_id for rd in (0, 2, 2, 1)]
    subs = {str(r.id): r for r in _rows(front.engine, submissions)}
    outcomes = [("delivered", "DELIVRD"), ("delivered", "DELIVRD"), ("failed", "UNDELIV"), ("delivered", "DELIVRD")]
    _add_events(front.engine, front.user["id"], [
        ("report", {**_report(int(i), st, cs), "client_ref": subs[i].client_ref}) for i, (st, cs) in zip(ids, outcomes)])
    got = [await esme.recv(), await esme.recv()]
    await asyncio.sleep(0.3)
    assert esme.queue == []
    # none asked for (0), a success when only failures were (2): done without a deliver_sm
    assert [find_tlv(r.tlvs, Tag.RECEIPTED_MESSAGE_ID) for r in got] == [ids[2], ids[3]]
    for r in got:
        await esme.send(DeliverSmResp(r.sequence_number))
    await until(lambda: [r.push_state for r in _rows(front.engine, events)] == ["done"] * 4, 5)


async def test_long_sms_parts_may_come_on_different_sessions(front):
    one, two = await Esme.connect(front.port), await Esme.connect(front.port)
    await one.bind(front.user, BindTransmitter)
    await two.bind(front.user, BindTransmitter)
    body = LONG.encode("utf-16-be")
    assert (await one.submit(data_coding=8, esm_class=0x40, short_message=concat_udh(9, 2, 1) + body[:134])).command_status == 0
    assert _rows(front.engine, submissions) == []
    last = await two.submit(data_coding=8, esm_class=0x40, short_message=concat_udh(9, 2, 2) + body[134:])
    [sub] = _rows(front.engine, submissions)
    assert last.message_id == str(sub.id) and sub.content == LONG


async def test_an_incomplete_long_sms_goes_out_as_far_as_it_came(front):
    esme = await Esme.connect(front.port)
    await esme.bind(front.user)
    three = ("第一段" * 23, "第二段" * 23, "第三段" * 23)        # 69 characters each: three parts
    answers = []
    for seq in (1, 3):
        body = three[seq - 1].encode("utf-16-be")
        answers.append(await esme.submit(data_coding=8, esm_class=0x40, registered_delivery=1,
                                         short_message=concat_udh(4, 3, seq) + body))
    assert [a.command_status for a in answers] == [0, 0]
    assert int(answers[1].message_id) - int(answers[0].message_id) == 2       # part n: first id + n - 1
    await until(lambda: _rows(front.engine, submissions), 5)
    [sub] = _rows(front.engine, submissions)
    assert sub.content == three[0] + three[2]
    # Its report: a receipt for each part's id, none for the submission id nobody was given.
    _add_events(front.engine, front.user["id"], [("report", {**_report(sub.id), "client_ref": sub.client_ref})])
    got = [await esme.recv() for _ in range(3)]
    first = int(answers[0].message_id)
    assert [find_tlv(r.tlvs, Tag.RECEIPTED_MESSAGE_ID) for r in got] == [str(first + i) for i in range(3)]


def test_receipt_reference_round_trip():
    assert receipt_ref(1) is None and read_receipt_ref(None) == (1, None)
    assert read_receipt_ref(receipt_ref(0)) == (0, None)
    assert read_receipt_ref(receipt_ref(3)) == (1, None)
    parts = ((1 << 62) + (1 << 61) + 12345, 255, 255)
    ref = receipt_ref(2, parts)
    assert len(ref) <= 64 and read_receipt_ref(ref) == (2, parts)
    assert read_receipt_ref("order-17") == (1, None)      # a reference from another front door


# -- deliveries -------------------------------------------------------------------

async def test_events_wait_while_unbound_and_go_to_receivers_only(front):
    aid = front.user["id"]
    _add_events(front.engine, aid, [("report", _report(41)),
                                   ("mo", {"mo_id": 5, "from": PHONE, "to": "106900012", "extno": "",
                                           "content": "reply 你好", "received_at": "2026-12-02T10:00:00+00:00"})])
    tx = await Esme.connect(front.port)
    await tx.bind(front.user, BindTransmitter)
    await asyncio.sleep(0.3)
    assert tx.queue == [] and [r.push_state for r in _rows(front.engine, events)] == ["session", "session"]

    rx = await Esme.connect(front.port)
    await rx.bind(front.user, BindReceiver)
    receipt, mo = await rx.recv(), await rx.recv()
    assert receipt.esm_class == 0x04
    assert find_tlv(receipt.tlvs, Tag.RECEIPTED_MESSAGE_ID) == "41"
    assert find_tlv(receipt.tlvs, Tag.MESSAGE_STATE) == MessageState.DELIVERED
    r = parse_receipt(receipt.short_message)
    assert (r.message_id, r.stat, r.err, r.dlvrd) == ("41", "DELIVRD", "000", "001")
    local = datetime.fromisoformat("2026-12-02T10:00:05.000+00:00").astimezone().strftime("%y%m%d%H%M")
    assert r.done_date == local     # the server's local time, to the minute
    assert receipt.source_addr == PHONE
    assert mo.esm_class == 0 and mo.data_coding == 8 and mo.short_message.decode("utf-16-be") == "reply 你好"
    assert (mo.source_addr, mo.destination_addr) == (PHONE, "106900012")
    for ev in (receipt, mo):
        await rx.send(DeliverSmResp(ev.sequence_number))
    await until(lambda: [r.push_state for r in _rows(front.engine, events)] == ["done", "done"], 5)


async def test_an_unanswered_deliver_sm_is_offered_again_after_reconnect(front):
    _add_events(front.engine, front.user["id"], [("report", _report(42, "failed", "UNDELIV"))])
    first = await Esme.connect(front.port)
    await first.bind(front.user)
    ev = await first.recv()
    assert find_tlv(ev.tlvs, Tag.MESSAGE_STATE) == MessageState.UNDELIVERABLE
    first.close()       # gone without answering
    await until(lambda: front.server.bound_sessions(front.user["id"]) == 0, 5)
    second = await Esme.connect(front.port)
    await second.bind(front.user)
    again = await second.recv()
    assert find_tlv(again.tlvs, Tag.RECEIPTED_MESSAGE_ID) == "42"
    assert parse_receipt(again.short_message).stat == "UNDELIV"
    await second.send(DeliverSmResp(again.sequence_number))
    await until(lambda: _rows(front.engine, events)[0].push_state == "done", 5)


async def test_refused_and_unanswered_deliver_sm_come_again_on_the_same_session(front):
    _add_events(front.engine, front.user["id"], [("report", _report(43))])
    esme = await Esme.connect(front.port)
    await esme.bind(front.user)
    ev = await esme.recv()
    await esme.send(DeliverSmResp(ev.sequence_number, S.ESME_RX_T_APPN))   # temporary: later
    ev2 = await esme.recv()
    assert find_tlv(ev2.tlvs, Tag.RECEIPTED_MESSAGE_ID) == "43" and ev2.sequence_number != ev.sequence_number
    ev3 = await esme.recv(timeout=5)         # not answered: offered again after deliver_timeout
    assert find_tlv(ev3.tlvs, Tag.RECEIPTED_MESSAGE_ID) == "43"
    await esme.send(DeliverSmResp(ev3.sequence_number))
    await until(lambda: _rows(front.engine, events)[0].push_state == "done", 5)


async def test_stopping_with_deliver_sm_unanswered_gives_them_back_and_ends(front):
    _add_events(front.engine, front.user["id"], [("report", _report(44))])
    esme = await Esme.connect(front.port)
    await esme.bind(front.user)
    assert find_tlv((await esme.recv()).tlvs, Tag.RECEIPTED_MESSAGE_ID) == "44"
    await front.server.stop()
    # The outbox was just woken by the events coming back; cancelled now, it still ends.
    front.outbox_task.cancel()
    await asyncio.wait_for(asyncio.gather(front.outbox_task, return_exceptions=True), 2)
    assert _rows(front.engine, events)[0].push_state == "session"     # offered again later


async def test_window_is_sixteen_unanswered(front):
    _add_events(front.engine, front.user["id"], [("report", _report(100 + i)) for i in range(20)])
    esme = await Esme.connect(front.port)
    await esme.bind(front.user, BindReceiver)
    got = [await esme.recv() for _ in range(16)]
    await asyncio.sleep(0.3)
    assert esme.queue == [] and len(got) == 16
    await esme.send(DeliverSmResp(got[0].sequence_number))
    more = await esme.recv()
    assert find_tlv(more.tlvs, Tag.RECEIPTED_MESSAGE_ID) == "116"


# -- bad input --------------------------------------------------------------------

async def test_generic_nack_for_an_unknown_command_and_the_session_goes_on(front):
    esme = await Esme.connect(front.port)
    await esme.bind(front.user)
    await esme.raw(HEADER.pack(16, 0x00000077, 0, 99))
    nack = await esme.answer_of(99)
    assert isinstance(nack, GenericNack) and nack.command_status == S.ESME_RINVCMDID
    assert (await esme.submit()).command_status == 0


@pytest.mark.parametrize("header", [HEADER.pack(8, 4, 0, 5), HEADER.pack(10_000_000, 4, 0, 5)],
                         ids=["short", "oversize"])
async def test_a_lying_length_closes_only_that_session(front, header):
    good, bad = await Esme.connect(front.port), await Esme.connect(front.port)
    await good.bind(front.user)
    await bad.bind(front.user)
    await bad.raw(header + b"\0" * 64)
    nack = await bad.recv()
    assert isinstance(nack, GenericNack) and nack.command_status == S.ESME_RINVCMDLEN
    assert await bad.closed()
    assert (await good.submit()).command_status == 0
    await until(lambda: front.server.bound_sessions(front.user["id"]) == 1, 5)


async def test_a_customer_that_does_not_read_is_paused_not_buffered(front):
    esme = await Esme.connect(front.port, rcvbuf=4096)
    await esme.bind(front.user)
    [session] = list(front.server.sessions)
    # 400,000 enquire_links (6.4 MB) and never a read: more answers than the
    # kernel's buffers hold pile up on the server.
    n = 400_000
    blob = b"".join(encode(EnquireLink(i)) for i in range(1, n + 1))
    esme.writer.write(blob)
    await until(lambda: session._read_paused, 5)
    await asyncio.sleep(0.3)
    assert session.transport.get_write_buffer_size() < 512 * 1024
    # Reading again drains it (every answer arrives: 16 octets each) and the session goes on.
    expected = len(encode(EnquireLinkResp(1))) * n
    got = 0
    while got < expected:
        got += len(await asyncio.wait_for(esme.reader.read(1 << 20), 10))
    assert got == expected
    assert (await esme.submit()).command_status == 0


# -- through the whole runtime ------------------------------------------------------

async def test_report_comes_back_as_deliver_sm_through_the_runtime(settings):
    sim = CmppSimulator(host="127.0.0.1", port=0, accounts={"901234": "sim-secret"}, report_delay=0.05)
    await sim.start()
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    user = seed(engine, Cipher(settings.secret_key), sim_port=sim.port, balance=100)
    settings.server_host = "127.0.0.1"
    runtime = Runtime(settings)
    await runtime.start()
    try:
        esme = await Esme.connect(runtime.servers["smpp"].port)
        await esme.bind(user)
        resp = await esme.submit(registered_delivery=1, short_message=b"your code is 1234")
        assert resp.command_status == 0
        receipt = await esme.recv(timeout=15)
        assert isinstance(receipt, DeliverSm) and receipt.esm_class == 0x04
        assert find_tlv(receipt.tlvs, Tag.RECEIPTED_MESSAGE_ID) == resp.message_id
        assert parse_receipt(receipt.short_message).stat == "DELIVRD"
        await esme.send(DeliverSmResp(receipt.sequence_number))
        await until(lambda: [r.push_state for r in _rows(engine, events)] == ["done"], 10)
        [msg] = _rows(engine, messages)
        assert msg.state == "delivered" and str(msg.submission_id) == resp.message_id
    finally:
        await runtime.stop()
        await sim.stop()
        engine.dispose()


async def test_the_bench_customer_submits_through_its_window_and_counts_receipts(front):
    from hongyan.bench import FrontRun, Numbers, SmppFrontClient

    run = FrontRun(40, Numbers(), "bench text", 4)
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(2):
        _, c = await loop.create_connection(lambda: SmppFrontClient(run, "alice", front.user["secret"]),
                                            "127.0.0.1", front.port)
        await asyncio.wait_for(c.bound, 5)
        clients.append(c)
    for c in clients:
        c.start()
    await until(lambda: run.answered == 40, 10)
    assert run.accepted == 40 and not run.refused
    subs = _rows(front.engine, submissions)
    assert len(subs) == 40 and {s.content for s in subs} == {"bench text"}
    _add_events(front.engine, front.user["id"], [("report", _report(s.id)) for s in subs])
    await until(lambda: run.report_count() == 40, 10)
    assert run.reports == {"DELIVRD": 40} and run.complete()
    for c in clients:
        c.close()
