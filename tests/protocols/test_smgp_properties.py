"""SMGP property tests: round trips, hostile input, and arbitrary stream splits."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from hongyan.protocols.smgp import (
    CLOSED, NEED_DATA, ActiveTest, ActiveTestResp, Connection, Deliver, DeliverResp, Exit,
    ExitResp, Login, LoginResp, Query, QueryResp, SmgpError, StatusReport, Submit, SubmitResp,
    Tlv, decode, decode_report, encode, encode_report, msg_id_from_str, msg_id_to_str,
    pack_msg_id, unpack_msg_id,
)
from hongyan.protocols.smgp.tlv import INTEGER_TAGS, STRING_WIDTHS, Tag

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
seq = u32
msg_ids = st.binary(min_size=10, max_size=10)


def text(width: int) -> st.SearchStrategy[str]:
    """ASCII without NUL, up to the field width."""
    return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=width)


def word(width: int) -> st.SearchStrategy[str]:
    """Printable ASCII without blanks: a status report field."""
    return st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=width)


reserve = st.binary(max_size=8).map(lambda b: b.rstrip(b"\0"))
content = st.binary(max_size=160)

_known_tags = sorted(INTEGER_TAGS | set(STRING_WIDTHS))
unknown_tags = st.integers(0, 0xFFFF).filter(lambda t: t not in _known_tags)
tlv_items = st.one_of(
    st.builds(Tlv, st.sampled_from(sorted(INTEGER_TAGS)), u8),
    st.sampled_from(sorted(STRING_WIDTHS)).flatmap(
        lambda tag: st.builds(Tlv, st.just(tag), text(STRING_WIDTHS[tag]))),
    st.builds(Tlv, unknown_tags, st.binary(max_size=40)),
)
tlv_lists = st.lists(tlv_items, max_size=6).map(tuple)

logins = st.builds(Login, seq, text(8), st.binary(min_size=16, max_size=16), u8, u32, u8)
login_resps = st.builds(LoginResp, seq, u32, st.binary(min_size=16, max_size=16), u8)
submits = st.builds(
    Submit, sequence_id=seq,
    dest_term_ids=st.lists(text(21), min_size=1, max_size=5).map(tuple),
    msg_content=content, msg_type=u8, need_report=u8, priority=u8, service_id=text(10),
    fee_type=text(2), fee_code=text(6), fixed_fee=text(6), msg_format=u8,
    valid_time=text(17), at_time=text(17), src_term_id=text(21), charge_term_id=text(21),
    reserve=reserve, tlvs=tlv_lists)
reports = st.builds(StatusReport, msg_ids, word(7), word(10), word(10), word(3), word(3),
                    word(3), st.binary(max_size=20))
mo_delivers = st.builds(
    Deliver, sequence_id=seq, msg_id=msg_ids, src_term_id=text(21), dest_term_id=text(21),
    msg_content=content, msg_format=u8, recv_time=text(14), reserve=reserve, tlvs=tlv_lists)
# A decoded report carries its encoded form in msg_content.
report_delivers = st.builds(
    lambda d, r: Deliver(d.sequence_id, d.msg_id, d.src_term_id, d.dest_term_id,
                         encode_report(r), d.msg_format, d.recv_time, d.reserve, d.tlvs, r),
    mo_delivers, reports)
queries = st.builds(Query, seq, text(8), u8, text(10))
query_resps = st.builds(QueryResp, seq, text(8), u8, text(10), u32, u32, u32, u32, u32, u32,
                        u32, u32, reserve)

EVENTS = {
    "Login": logins,
    "LoginResp": login_resps,
    "Exit": st.builds(Exit, seq),
    "ExitResp": st.builds(ExitResp, seq),
    "ActiveTest": st.builds(ActiveTest, seq),
    "ActiveTestResp": st.builds(ActiveTestResp, seq),
    "Submit": submits,
    "SubmitResp": st.builds(SubmitResp, seq, msg_ids, u32),
    "Deliver (MO)": mo_delivers,
    "Deliver (report)": report_delivers,
    "DeliverResp": st.builds(DeliverResp, seq, msg_ids, u32),
    "Query": queries,
    "QueryResp": query_resps,
}
any_event = st.one_of(*EVENTS.values())


@FAST
@given(any_event)
def test_decode_inverts_encode(event):
    pdu = encode(event)
    assert int.from_bytes(pdu[:4], "big") == len(pdu)
    assert decode(pdu) == event


@FAST
@given(reports)
def test_report_text_round_trips(report):
    assert decode_report(encode_report(report)) == report


@FAST
@given(st.tuples(st.integers(0, 999_999), st.integers(1, 12), st.integers(1, 31),
                 st.integers(0, 23), st.integers(0, 59), st.integers(0, 999_999)))
def test_msg_id_parts_round_trip(parts):
    packed = pack_msg_id(*parts)
    assert len(packed) == 10
    assert tuple(unpack_msg_id(packed)) == parts
    text_form = msg_id_to_str(packed)
    assert text_form.isdigit() and len(text_form) == 20
    assert msg_id_from_str(text_form) == packed


@settings(max_examples=10, deadline=None)
@given(st.lists(st.text("0123456789", min_size=11, max_size=21), min_size=100, max_size=100)
       .map(tuple), st.binary(max_size=140), tlv_lists)
def test_submit_to_a_hundred_numbers_round_trips(numbers, body, tlvs):
    event = Submit(1, numbers, body, tlvs=tlvs)
    pdu = encode(event)
    assert len(pdu) <= 4096
    assert decode(pdu) == event


def drain(conn: Connection) -> list:
    """Read until NEED_DATA, CLOSED or a fatal error; only SmgpError may escape."""
    out = []
    for _ in range(10_000):                        # a hang would show up as running out
        try:
            event = conn.next_event()
        except SmgpError as exc:
            if exc.fatal:
                return out
            continue
        if event is NEED_DATA or event is CLOSED:
            return out
        out.append(event)
    raise AssertionError("next_event never settled")


@FAST
@given(st.sampled_from(["client", "server"]), st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_only_raise_smgp_errors(role, chunks):
    conn = Connection(role)
    for chunk in chunks:
        if chunk:
            conn.receive_data(chunk)
            drain(conn)
    conn.receive_data(b"")
    drain(conn)


@FAST
@given(st.binary(max_size=200))
def test_random_report_text_only_raises_smgp_errors(data):
    try:
        decode_report(data)
    except SmgpError:
        pass


@FAST
@given(st.sampled_from(["client", "server"]), any_event, st.data())
def test_truncated_and_corrupted_pdus_only_raise_smgp_errors(role, event, data):
    pdu = encode(event)
    cut = data.draw(st.integers(0, len(pdu) - 1), label="cut")
    conn = Connection(role)
    conn.receive_data(pdu[:cut] or b"\0")
    drain(conn)
    conn.receive_data(b"")
    drain(conn)
    # A bare decode of a cut PDU must fail cleanly.
    try:
        decode(pdu[:cut])
    except SmgpError:
        pass
    else:
        raise AssertionError("a truncated PDU decoded")

    # Flip a few octets anywhere, header included.
    corrupted = bytearray(pdu)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        i = data.draw(st.integers(0, len(pdu) - 1))
        corrupted[i] = data.draw(u8)
    conn = Connection(role)
    conn.receive_data(bytes(corrupted))
    drain(conn)
    try:
        decode(bytes(corrupted))
    except SmgpError:
        pass


# What a bound client may send (so a bound server may receive) with no state change.
client_traffic = st.one_of(submits, queries, st.builds(ActiveTest, seq),
                           st.builds(ActiveTestResp, seq),
                           st.builds(DeliverResp, seq, msg_ids, u32))


def bound_server() -> Connection:
    server = Connection("server")
    server.receive_data(encode(Login(1, "31000001", bytes(16), 2, 0)))
    server.next_event()
    server.send(LoginResp(1, 0, bytes(16)))
    return server


@FAST
@given(st.lists(client_traffic, min_size=1, max_size=25), st.data())
def test_split_stream_yields_the_same_events(events, data):
    stream = b"".join(encode(e) for e in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30), label="cuts"))
    server = bound_server()
    seen = []
    start = 0
    for cut in cuts + [len(stream)]:
        if cut > start:
            server.receive_data(stream[start:cut])
            start = cut
        seen.extend(server.events())
    assert seen == events
    assert server.buffered == 0
    server.receive_data(b"")
    assert server.next_event() is CLOSED


def test_tag_table_covers_every_tag():
    assert set(Tag) == INTEGER_TAGS | set(STRING_WIDTHS)
