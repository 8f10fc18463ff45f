"""CMPP 3.0 property tests: round trips, hostile input, and arbitrary stream splits."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from hongyan.protocols.cmpp import (
    CLOSED, NEED_DATA, ActiveTest, ActiveTestResp, Cancel, CancelResp, CmppError, Connect,
    ConnectResp, Connection, Deliver, DeliverResp, Query, QueryResp, StatusReport, Submit,
    SubmitResp, Terminate, TerminateResp, decode, encode, encode_report,
)

V30 = 0x30
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
seq = u32


def text(width: int) -> st.SearchStrategy[str]:
    """ASCII without NUL, up to the field width."""
    return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=width)


content = st.binary(max_size=160)
auth = st.binary(min_size=16, max_size=16)

submits = st.builds(
    Submit, sequence_id=seq,
    dest_terminal_ids=st.lists(text(32), min_size=1, max_size=5).map(tuple),
    msg_content=content, msg_id=u64, pk_total=u8, pk_number=u8, registered_delivery=u8,
    msg_level=u8, service_id=text(10), fee_user_type=u8, fee_terminal_id=text(32),
    tp_pid=u8, tp_udhi=u8, msg_fmt=u8, msg_src=text(6), fee_type=text(2), fee_code=text(6),
    valid_time=text(17), at_time=text(17), src_id=text(21), fee_terminal_type=u8,
    dest_terminal_type=u8, link_id=text(20))
reports = st.builds(StatusReport, u64, text(7), text(10), text(10), text(32), u32)
mo_delivers = st.builds(
    Deliver, sequence_id=seq, msg_id=u64, dest_id=text(21), src_terminal_id=text(32),
    msg_content=content, service_id=text(10), tp_pid=u8, tp_udhi=u8, msg_fmt=u8,
    registered_delivery=u8.filter(lambda v: v != 1), src_terminal_type=u8, link_id=text(20))
# A decoded report carries its 71-octet form in msg_content and registered_delivery=1.
report_delivers = st.builds(
    lambda d, r: Deliver(d.sequence_id, d.msg_id, d.dest_id, d.src_terminal_id,
                         encode_report(r, V30), d.service_id, d.tp_pid, d.tp_udhi, d.msg_fmt,
                         1, report=r, src_terminal_type=d.src_terminal_type,
                         link_id=d.link_id),
    mo_delivers, reports)
queries = st.builds(Query, seq, text(8), u8, text(10), text(8))
query_resps = st.builds(QueryResp, seq, text(8), u8, text(10), u32, u32, u32, u32, u32, u32,
                        u32, u32)

EVENTS = {
    "Connect": st.builds(Connect, seq, text(6), auth, u8, u32),
    "ConnectResp": st.builds(ConnectResp, seq, u32, auth, u8),
    "Terminate": st.builds(Terminate, seq),
    "TerminateResp": st.builds(TerminateResp, seq),
    "ActiveTest": st.builds(ActiveTest, seq),
    "ActiveTestResp": st.builds(ActiveTestResp, seq, u8),
    "Submit": submits,
    "SubmitResp": st.builds(SubmitResp, seq, u64, u32),
    "Deliver (MO)": mo_delivers,
    "Deliver (report)": report_delivers,
    "DeliverResp": st.builds(DeliverResp, seq, u64, u32),
    "Query": queries,
    "QueryResp": query_resps,
    "Cancel": st.builds(Cancel, seq, u64),
    "CancelResp": st.builds(CancelResp, seq, u32),
}
any_event = st.one_of(*EVENTS.values())


@FAST
@given(any_event)
def test_decode_inverts_encode(event):
    pdu = encode(event, version=V30)
    assert int.from_bytes(pdu[:4], "big") == len(pdu)
    assert decode(pdu, version=V30) == event


@settings(max_examples=10, deadline=None)
@given(st.lists(text(32), min_size=100, max_size=100).map(tuple), st.binary(max_size=140),
       text(20))
def test_submit_to_a_hundred_numbers_round_trips(numbers, body, link_id):
    event = Submit(1, numbers, body, link_id=link_id)
    pdu = encode(event, version=V30)
    assert len(pdu) <= 4096                        # fits the default max_pdu
    assert decode(pdu, version=V30) == event


def drain(conn: Connection) -> list:
    """Read until NEED_DATA, CLOSED or a fatal error; only CmppError may escape."""
    out = []
    for _ in range(10_000):                        # a hang would show up as running out
        try:
            event = conn.next_event()
        except CmppError as exc:
            if exc.fatal:
                return out
            continue
        if event is NEED_DATA or event is CLOSED:
            return out
        out.append(event)
    raise AssertionError("next_event never settled")


roles = st.sampled_from(["client", "server"])
versions = st.sampled_from([V30, None])            # fixed 3.0, or picked from the CONNECT


@FAST
@given(roles, versions, st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_only_raise_cmpp_errors(role, version, chunks):
    conn = Connection(role, version=version)
    for chunk in chunks:
        if chunk:
            conn.receive_data(chunk)
            drain(conn)
    conn.receive_data(b"")
    drain(conn)


@FAST
@given(roles, versions, any_event, st.data())
def test_truncated_and_corrupted_pdus_only_raise_cmpp_errors(role, version, event, data):
    pdu = encode(event, version=V30)
    cut = data.draw(st.integers(0, len(pdu) - 1), label="cut")
    conn = Connection(role, version=version)
    conn.receive_data(pdu[:cut] or b"\0")
    drain(conn)
    conn.receive_data(b"")
    drain(conn)

    corrupted = bytearray(pdu)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        i = data.draw(st.integers(0, len(pdu) - 1))
        corrupted[i] = data.draw(u8)
    conn = Connection(role, version=version)
    conn.receive_data(bytes(corrupted))
    drain(conn)
    try:
        decode(bytes(corrupted), version=V30)
    except CmppError:
        pass


# What a bound client may send (so a bound server may receive) with no state change.
client_traffic = st.one_of(submits, queries, st.builds(Cancel, seq, u64),
                           st.builds(ActiveTest, seq), st.builds(ActiveTestResp, seq, u8),
                           st.builds(DeliverResp, seq, u64, u32))
# What a bound server may send to a bound client.
server_traffic = st.one_of(mo_delivers, report_delivers, st.builds(SubmitResp, seq, u64, u32),
                           query_resps, st.builds(CancelResp, seq, u32),
                           st.builds(ActiveTest, seq), st.builds(ActiveTestResp, seq, u8))


def bound(role: str) -> Connection:
    """A 3.0 connection past the handshake; a server negotiates the version."""
    connect = Connect(1, "901234", bytes(16), V30, 0)
    accepted = ConnectResp(1, 0, bytes(16), V30)
    if role == "server":
        conn = Connection("server", version=None)
        conn.receive_data(encode(connect))
        conn.next_event()
        assert conn.version == V30
        conn.send(accepted)
    else:
        conn = Connection("client", version=V30)
        conn.send(connect)
        conn.receive_data(encode(accepted, version=V30))
        conn.next_event()
    return conn


@FAST
@given(st.sampled_from(["client", "server"]), st.data())
def test_split_stream_yields_the_same_events(receiver, data):
    traffic = client_traffic if receiver == "server" else server_traffic
    events = data.draw(st.lists(traffic, min_size=1, max_size=25), label="events")
    stream = b"".join(encode(e, version=V30) for e in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30), label="cuts"))
    conn = bound(receiver)
    seen = []
    start = 0
    for cut in cuts + [len(stream)]:
        if cut > start:
            conn.receive_data(stream[start:cut])
            start = cut
        seen.extend(conn.events())
    assert seen == events
    assert conn.buffered == 0
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED
