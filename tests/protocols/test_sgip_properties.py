"""Property tests: round trips, hostile input, and arbitrary stream splits."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from hongyan.protocols.sgip import (
    CLOSED, NEED_DATA, Bind, BindResp, Connection, Deliver, DeliverResp, Report, ReportResp,
    SequenceNumber, SgipError, Submit, SubmitResp, Trace, TraceResp, TraceResult, Unbind,
    UnbindResp, UserRpt, UserRptResp, decode, encode,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
seqs = st.builds(SequenceNumber, u32, u32, u32)


def text(width: int) -> st.SearchStrategy[str]:
    """ASCII without NUL, up to the field width."""
    return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=width)


reserve = st.binary(max_size=8).map(lambda b: b.rstrip(b"\0"))
content = st.binary(max_size=160)

submits = st.builds(
    Submit, sequence_number=seqs, sp_number=text(21),
    user_numbers=st.lists(text(21), min_size=1, max_size=5).map(tuple),
    message_content=content, charge_number=text(21), corp_id=text(5), service_type=text(10),
    fee_type=u8, fee_value=text(6), given_value=text(6), agent_flag=u8, morelateto_mt_flag=u8,
    priority=u8, expire_time=text(16), schedule_time=text(16), report_flag=u8, tp_pid=u8,
    tp_udhi=u8, message_coding=u8, message_type=u8, reserve=reserve)
delivers = st.builds(Deliver, seqs, text(21), text(21), content, u8, u8, u8, reserve)
reports = st.builds(Report, seqs, seqs, u8, text(21), u8, u8, reserve)
userrpts = st.builds(UserRpt, seqs, text(21), text(21), u8, reserve)
traces = st.builds(Trace, seqs, seqs, text(21), reserve)
trace_results = st.builds(TraceResult, u8, text(6), text(16), text(16), reserve)
trace_resps = st.builds(TraceResp, seqs, st.lists(trace_results, max_size=4).map(tuple))


def result(cls):
    return st.builds(cls, seqs, u8, reserve)


EVENTS = {
    "Bind": st.builds(Bind, seqs, u8, text(16), text(16), reserve),
    "BindResp": result(BindResp),
    "Unbind": st.builds(Unbind, seqs),
    "UnbindResp": st.builds(UnbindResp, seqs),
    "Submit": submits,
    "SubmitResp": result(SubmitResp),
    "Deliver": delivers,
    "DeliverResp": result(DeliverResp),
    "Report": reports,
    "ReportResp": result(ReportResp),
    "UserRpt": userrpts,
    "UserRptResp": result(UserRptResp),
    "Trace": traces,
    "TraceResp": trace_resps,
}
any_event = st.one_of(*EVENTS.values())


@FAST
@given(any_event)
def test_decode_inverts_encode(event):
    pdu = encode(event)
    assert int.from_bytes(pdu[:4], "big") == len(pdu)
    assert decode(pdu) == event


def test_every_event_type_is_covered():
    import hongyan.protocols.sgip.wire as wire
    assert set(wire._V12_TABLE.encoders) == {
        Bind, BindResp, Unbind, UnbindResp, Submit, SubmitResp, Deliver, DeliverResp, Report,
        ReportResp, UserRpt, UserRptResp, Trace, TraceResp}
    assert len(EVENTS) == len(wire._V12_TABLE.encoders)


@settings(max_examples=10, deadline=None)
@given(st.lists(text(21), min_size=100, max_size=100).map(tuple), st.binary(max_size=160))
def test_submit_to_a_hundred_numbers_fits_the_default_limit(numbers, body):
    event = Submit(SequenceNumber(1, 2, 3), "10655", numbers, body)
    pdu = encode(event)
    assert len(pdu) <= 4096
    conn = Connection("smg")
    conn.receive_data(encode(Bind(SequenceNumber(1, 2, 2), 1, "sp", "pw")))
    conn.next_event()
    conn.send(BindResp(SequenceNumber(1, 2, 2), 0))
    conn.receive_data(pdu)
    assert conn.next_event() == event


def drain(conn: Connection) -> list:
    """Read until NEED_DATA, CLOSED or a fatal error; only SgipError may escape."""
    out = []
    for _ in range(10_000):                        # a hang would show up as running out
        try:
            event = conn.next_event()
        except SgipError as exc:
            if exc.fatal:
                return out
            continue
        if event is NEED_DATA or event is CLOSED:
            return out
        out.append(event)
    raise AssertionError("next_event never settled")


@FAST
@given(st.sampled_from(["sp", "smg"]), st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_only_raise_sgip_errors(role, chunks):
    conn = Connection(role)
    for chunk in chunks:
        if chunk:
            conn.receive_data(chunk)
            drain(conn)
    conn.receive_data(b"")
    drain(conn)


@FAST
@given(st.sampled_from(["sp", "smg"]), any_event, st.data())
def test_truncated_and_corrupted_pdus_only_raise_sgip_errors(role, event, data):
    pdu = encode(event)
    cut = data.draw(st.integers(0, len(pdu) - 1), label="cut")
    conn = Connection(role)
    conn.receive_data(pdu[:cut] or b"\0")
    drain(conn)
    conn.receive_data(b"")
    drain(conn)
    try:
        decode(pdu[:cut])
    except SgipError:
        pass
    else:
        raise AssertionError("a truncated PDU decoded")

    # Overwrite a few octets anywhere, header included.
    corrupted = bytearray(pdu)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        i = data.draw(st.integers(0, len(pdu) - 1))
        corrupted[i] = data.draw(u8)
    conn = Connection(role)
    conn.receive_data(bytes(corrupted))
    drain(conn)
    try:
        decode(bytes(corrupted))
    except SgipError:
        pass


def bound(role: str, login_type: int) -> Connection:
    """A connection of ``role`` that accepted a Bind of ``login_type``."""
    conn = Connection(role)
    conn.receive_data(encode(Bind(SequenceNumber(1, 2, 3), login_type, "peer", "pw")))
    conn.next_event()
    conn.send(BindResp(SequenceNumber(1, 2, 3), 0))
    return conn


# What the binding side may send on each link without changing the state.
sp_traffic = st.one_of(submits, traces)
smg_traffic = st.one_of(delivers, reports, userrpts)


@FAST
@given(st.sampled_from([("smg", 1, sp_traffic), ("sp", 2, smg_traffic)]), st.data())
def test_split_stream_yields_the_same_events(case, data):
    role, login_type, traffic = case
    events = data.draw(st.lists(traffic, min_size=1, max_size=25), label="events")
    stream = b"".join(encode(e) for e in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30), label="cuts"))
    conn = bound(role, login_type)
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
