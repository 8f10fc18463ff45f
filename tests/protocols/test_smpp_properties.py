"""Property tests: round trips, hostile input, and arbitrary stream splits."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from hongyan.protocols.smpp import (
    CLOSED, NEED_DATA, AlertNotification, BindReceiver, BindReceiverResp, BindTransceiver,
    BindTransceiverResp, BindTransmitter, BindTransmitterResp, CancelSm, CancelSmResp,
    Connection, DataSm, DataSmResp, DeliverSm, DeliverSmResp, DistributionList, EnquireLink,
    EnquireLinkResp, GenericNack, Outbind, QuerySm, QuerySmResp, Receipt, ReplaceSm,
    ReplaceSmResp, SmeAddress, SmppError, SubmitMulti, SubmitMultiResp, SubmitSm, SubmitSmResp,
    Tlv, Unbind, UnbindResp, UnsuccessSme, decode, encode, format_receipt, parse_receipt,
)
from hongyan.protocols.smpp.tlv import CSTRING, EMPTY, INT, TAG_SPECS

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
seq = st.integers(1, 0x7FFFFFFF)
status = st.one_of(st.just(0), u32)


def cstr(size: int) -> st.SearchStrategy[str]:
    """ASCII without NUL that fits a C-Octet String of ``size`` octets."""
    return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=size - 1)


times = st.one_of(st.just(""), st.text(st.sampled_from("0123456789+-R"), min_size=16,
                                       max_size=16))
short_messages = st.binary(max_size=254)


def _tlv_for(tag: int) -> st.SearchStrategy[Tlv]:
    spec = TAG_SPECS[tag]
    if spec.kind == INT:
        value = st.integers(0, (1 << (8 * spec.size)) - 1)
    elif spec.kind == CSTRING:
        value = cstr(spec.size)
    elif spec.kind == EMPTY:
        value = st.none()
    else:
        value = st.binary(min_size=spec.low, max_size=min(spec.size, 300))
    return value.map(lambda v: Tlv(tag, v))


known_tlvs = st.sampled_from(sorted(TAG_SPECS)).flatmap(_tlv_for)
unknown_tlvs = st.builds(Tlv, st.integers(0, 0xFFFF).filter(lambda t: t not in TAG_SPECS),
                         st.binary(max_size=40))
tlvs = st.lists(st.one_of(known_tlvs, unknown_tlvs), max_size=4).map(tuple)

binds = {cls: st.builds(cls, seq, cstr(16), cstr(9), cstr(13), u8, u8, u8, cstr(41))
         for cls in (BindTransmitter, BindReceiver, BindTransceiver)}
bind_resps = {cls: st.builds(cls, seq, status, cstr(16), tlvs)
              for cls in (BindTransmitterResp, BindReceiverResp, BindTransceiverResp)}


def _sm(cls):
    return st.builds(cls, sequence_number=seq, service_type=cstr(6), source_addr_ton=u8,
                     source_addr_npi=u8, source_addr=cstr(21), dest_addr_ton=u8,
                     dest_addr_npi=u8, destination_addr=cstr(21), esm_class=u8,
                     protocol_id=u8, priority_flag=u8, schedule_delivery_time=times,
                     validity_period=times, registered_delivery=u8,
                     replace_if_present_flag=u8, data_coding=u8, sm_default_msg_id=u8,
                     short_message=short_messages, tlvs=tlvs)


dest_addresses = st.lists(st.one_of(st.builds(SmeAddress, u8, u8, cstr(21)),
                                    st.builds(DistributionList, cstr(21))),
                          max_size=8).map(tuple)
submit_multis = st.builds(
    SubmitMulti, sequence_number=seq, service_type=cstr(6), source_addr_ton=u8,
    source_addr_npi=u8, source_addr=cstr(21), dest_addresses=dest_addresses, esm_class=u8,
    protocol_id=u8, priority_flag=u8, schedule_delivery_time=times, validity_period=times,
    registered_delivery=u8, replace_if_present_flag=u8, data_coding=u8, sm_default_msg_id=u8,
    short_message=short_messages, tlvs=tlvs)
submit_multi_resps = st.builds(
    SubmitMultiResp, seq, status, cstr(65),
    st.lists(st.builds(UnsuccessSme, u8, u8, cstr(21), u32), max_size=5).map(tuple))
data_sms = st.builds(DataSm, seq, cstr(6), u8, u8, cstr(65), u8, u8, cstr(65), u8, u8, u8, tlvs)
query_sms = st.builds(QuerySm, seq, cstr(65), u8, u8, cstr(21))
cancel_sms = st.builds(CancelSm, seq, cstr(6), cstr(65), u8, u8, cstr(21), u8, u8, cstr(21))
replace_sms = st.builds(ReplaceSm, seq, cstr(65), u8, u8, cstr(21), times, times, u8, u8,
                        short_messages)

EVENTS = {
    **{cls.__name__: s for cls, s in binds.items()},
    **{cls.__name__: s for cls, s in bind_resps.items()},
    "Outbind": st.builds(Outbind, seq, cstr(16), cstr(9)),
    "Unbind": st.builds(Unbind, seq),
    "UnbindResp": st.builds(UnbindResp, seq, status),
    "GenericNack": st.builds(GenericNack, seq, status),
    "SubmitSm": _sm(SubmitSm),
    "SubmitSmResp": st.builds(SubmitSmResp, seq, status, cstr(65)),
    "SubmitMulti": submit_multis,
    "SubmitMultiResp": submit_multi_resps,
    "DeliverSm": _sm(DeliverSm),
    "DeliverSmResp": st.builds(DeliverSmResp, seq, status, cstr(65)),
    "DataSm": data_sms,
    "DataSmResp": st.builds(DataSmResp, seq, status, cstr(65), tlvs),
    "QuerySm": query_sms,
    "QuerySmResp": st.builds(QuerySmResp, seq, status, cstr(65), times, u8, u8),
    "CancelSm": cancel_sms,
    "CancelSmResp": st.builds(CancelSmResp, seq, status),
    "ReplaceSm": replace_sms,
    "ReplaceSmResp": st.builds(ReplaceSmResp, seq, status),
    "EnquireLink": st.builds(EnquireLink, seq),
    "EnquireLinkResp": st.builds(EnquireLinkResp, seq, status),
    "AlertNotification": st.builds(AlertNotification, seq, u8, u8, cstr(65), u8, u8, cstr(65),
                                   tlvs),
}
any_event = st.one_of(*EVENTS.values())


def test_every_pdu_type_has_a_strategy():
    from hongyan.protocols.smpp.wire import LAYOUTS
    assert {lay.cls.__name__ for lay in LAYOUTS} == set(EVENTS)


@FAST
@given(any_event)
def test_decode_inverts_encode(event):
    data = encode(event)
    assert int.from_bytes(data[:4], "big") == len(data)
    assert decode(data) == event


def drain(conn: Connection) -> list:
    """Read until NEED_DATA, CLOSED or a fatal error; only SmppError may escape."""
    out = []
    for _ in range(10_000):                        # a hang would show up as running out
        try:
            event = conn.next_event()
        except SmppError as exc:
            if exc.fatal:
                return out
            assert exc.sequence_number is not None
            continue
        if event is NEED_DATA or event is CLOSED:
            return out
        out.append(event)
    raise AssertionError("next_event never settled")


@FAST
@given(st.sampled_from(["esme", "smsc"]), st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_only_raise_smpp_errors(role, chunks):
    conn = Connection(role)
    for chunk in chunks:
        if chunk:
            conn.receive_data(chunk)
            drain(conn)
    conn.receive_data(b"")
    drain(conn)


@FAST
@given(st.sampled_from(["esme", "smsc"]), any_event, st.data())
def test_truncated_and_corrupted_pdus_only_raise_smpp_errors(role, event, data):
    pdu = encode(event)
    cut = data.draw(st.integers(0, len(pdu) - 1), label="cut")
    conn = Connection(role)
    conn.receive_data(pdu[:cut] or b"\0")
    drain(conn)
    conn.receive_data(b"")
    drain(conn)
    # The same cut with a command_length that agrees: a short body, not a short stream.
    if cut >= 16:
        short = cut.to_bytes(4, "big") + pdu[4:cut]
        try:
            decode(short)
        except SmppError as exc:
            assert not exc.fatal and exc.sequence_number == event.sequence_number

    corrupted = bytearray(pdu)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        i = data.draw(st.integers(0, len(pdu) - 1))
        corrupted[i] = data.draw(u8)
    conn = Connection(role)
    conn.receive_data(bytes(corrupted))
    drain(conn)
    try:
        decode(bytes(corrupted))
    except SmppError:
        pass


# What a bound transceiver ESME may send, so a bound SMSC may receive, with no state change.
esme_traffic = st.one_of(_sm(SubmitSm), submit_multis, data_sms, query_sms, cancel_sms,
                         replace_sms, st.builds(EnquireLink, seq),
                         st.builds(EnquireLinkResp, seq, status),
                         st.builds(DeliverSmResp, seq, status, cstr(65)),
                         st.builds(DataSmResp, seq, status, cstr(65), tlvs))


def bound_smsc() -> Connection:
    smsc = Connection("smsc")
    smsc.receive_data(encode(BindTransceiver(1, "hy", "pw")))
    smsc.next_event()
    smsc.send(BindTransceiverResp(1, 0, "SMSC"))
    return smsc


@FAST
@given(st.lists(esme_traffic, min_size=1, max_size=20), st.data())
def test_split_stream_yields_the_same_events(events, data):
    stream = b"".join(encode(e) for e in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30), label="cuts"))
    smsc = bound_smsc()
    seen = []
    start = 0
    for cut in cuts + [len(stream)]:
        if cut > start:
            smsc.receive_data(stream[start:cut])
            start = cut
        seen.extend(smsc.events())
    assert seen == events
    assert smsc.buffered == 0
    smsc.receive_data(b"")
    assert smsc.next_event() is CLOSED


receipt_field = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12)
receipts = st.builds(Receipt, receipt_field, receipt_field, receipt_field, receipt_field,
                     receipt_field, receipt_field, receipt_field,
                     st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20))


@FAST
@given(receipts)
def test_parse_receipt_inverts_format_receipt(receipt):
    assert parse_receipt(format_receipt(receipt)) == receipt


@FAST
@given(st.binary(max_size=200))
def test_parse_receipt_on_any_bytes_returns_or_raises_smpp_error(raw):
    try:
        parse_receipt(raw)
    except SmppError:
        pass
