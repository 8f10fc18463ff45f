"""Connection: framing of a byte stream and the session state table."""
from __future__ import annotations

import pytest

from hongyan.protocols.smpp import (
    CLOSED, NEED_DATA, AlertNotification, BindReceiver, BindReceiverResp, BindTransceiver,
    BindTransceiverResp, BindTransmitter, BindTransmitterResp, CommandStatus, Connection,
    DataSm, DataSmResp, DeliverSm, DeliverSmResp, EnquireLink, EnquireLinkResp, GenericNack,
    Outbind, QuerySm, SessionState, SmppError, SmppProtocolError, SubmitMulti, SubmitSm,
    SubmitSmResp, Unbind, UnbindResp, encode,
)

BINDS = {
    "tx": (BindTransmitter, BindTransmitterResp, SessionState.BOUND_TX),
    "rx": (BindReceiver, BindReceiverResp, SessionState.BOUND_RX),
    "trx": (BindTransceiver, BindTransceiverResp, SessionState.BOUND_TRX),
}


def deliver_to(receiver: Connection, data: bytes):
    receiver.receive_data(data)
    return receiver.next_event()


def bound_pair(kind: str = "trx") -> tuple[Connection, Connection]:
    """An ESME and an SMSC that completed a bind of ``kind``."""
    bind, resp, state = BINDS[kind]
    esme, smsc = Connection("esme"), Connection("smsc")
    assert deliver_to(smsc, esme.send(bind(1, "hy", "pw"))) == bind(1, "hy", "pw")
    assert deliver_to(esme, smsc.send(resp(1, 0, "SMSC"))) == resp(1, 0, "SMSC")
    assert esme.state is smsc.state is state
    return esme, smsc


# --- binding ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(BINDS))
def test_each_bind_reaches_its_state(kind):
    bind, _, state = BINDS[kind]
    esme = Connection("esme")
    esme.send(bind(1))
    assert esme.state is SessionState["BINDING_" + kind.upper()]
    bound_pair(kind)


def test_refused_bind_leaves_session_open_and_may_be_retried():
    esme, smsc = Connection("esme"), Connection("smsc")
    deliver_to(smsc, esme.send(BindTransceiver(1, "hy", "wrong")))
    resp = BindTransceiverResp(1, CommandStatus.ESME_RINVPASWD)
    assert deliver_to(esme, smsc.send(resp)) == resp
    assert esme.state is smsc.state is SessionState.OPEN
    with pytest.raises(SmppProtocolError):
        esme.send(SubmitSm(2))
    esme.send(BindTransceiver(3, "hy", "right"))
    assert esme.state is SessionState.BINDING_TRX


def test_generic_nack_to_a_bind_leaves_session_open():
    esme = Connection("esme")
    esme.send(BindTransmitter(1))
    nack = GenericNack(1, CommandStatus.ESME_RINVCMDLEN)
    assert deliver_to(esme, encode(nack)) == nack
    assert esme.state is SessionState.OPEN


def test_bind_resp_must_match_the_bind():
    esme = Connection("esme")
    esme.send(BindTransmitter(1))
    with pytest.raises(SmppProtocolError) as info:
        deliver_to(esme, encode(BindReceiverResp(1, 0, "SMSC")))
    assert info.value.state is SessionState.BINDING_TX
    assert info.value.command_id == 0x80000001
    assert esme.state is SessionState.BINDING_TX


def test_outbind_then_bind_receiver():
    esme, smsc = Connection("esme"), Connection("smsc")
    assert deliver_to(esme, smsc.send(Outbind(1, "SMSC", "pw"))) == Outbind(1, "SMSC", "pw")
    deliver_to(smsc, esme.send(BindReceiver(1, "hy", "pw")))
    deliver_to(esme, smsc.send(BindReceiverResp(1, 0, "SMSC")))
    assert esme.state is smsc.state is SessionState.BOUND_RX


def test_esme_may_not_submit_before_binding():
    smsc = Connection("smsc")
    with pytest.raises(SmppProtocolError) as info:
        deliver_to(smsc, encode(SubmitSm(5, destination_addr="8613800138000")))
    err = info.value
    assert (err.sequence_number, err.command_id, err.fatal) == (5, 0x04, False)
    assert err.status == CommandStatus.ESME_RINVBNDSTS
    assert err.generic_nack() == GenericNack(5, CommandStatus.ESME_RINVBNDSTS)
    assert err.event == SubmitSm(5, destination_addr="8613800138000")


# --- what each bind type permits ---------------------------------------------------------

def test_transmitter_submits_but_receives_no_deliveries():
    esme, smsc = bound_pair("tx")
    deliver_to(smsc, esme.send(SubmitSm(2, short_message=b"hi")))
    assert deliver_to(esme, smsc.send(SubmitSmResp(2, 0, "m1"))).message_id == "m1"
    with pytest.raises(SmppProtocolError):
        smsc.send(DeliverSm(3))
    with pytest.raises(SmppProtocolError):
        deliver_to(esme, encode(DeliverSm(3)))
    assert esme.state is SessionState.BOUND_TX


def test_receiver_receives_but_may_not_submit():
    esme, smsc = bound_pair("rx")
    deliver_to(esme, smsc.send(DeliverSm(2, esm_class=0x04)))
    deliver_to(smsc, esme.send(DeliverSmResp(2)))
    deliver_to(esme, smsc.send(AlertNotification(3)))
    with pytest.raises(SmppProtocolError):
        esme.send(SubmitSm(4))
    with pytest.raises(SmppProtocolError):
        esme.send(SubmitMulti(4))


def test_transceiver_does_both_and_data_sm_flows_both_ways():
    esme, smsc = bound_pair("trx")
    deliver_to(smsc, esme.send(SubmitSm(2)))
    deliver_to(esme, smsc.send(DeliverSm(3)))
    deliver_to(smsc, esme.send(DeliverSmResp(3)))
    deliver_to(esme, smsc.send(SubmitSmResp(2, 0, "m")))
    deliver_to(smsc, esme.send(DataSm(4)))
    deliver_to(esme, smsc.send(DataSmResp(4, 0, "d")))
    deliver_to(esme, smsc.send(DataSm(5)))
    deliver_to(smsc, esme.send(DataSmResp(5)))
    with pytest.raises(SmppProtocolError):
        esme.send(AlertNotification(6))             # only the SMSC alerts
    with pytest.raises(SmppProtocolError):
        esme.send(BindTransceiver(7))               # already bound


@pytest.mark.parametrize("kind", sorted(BINDS))
def test_enquire_link_either_way(kind):
    esme, smsc = bound_pair(kind)
    deliver_to(smsc, esme.send(EnquireLink(9)))
    deliver_to(esme, smsc.send(EnquireLinkResp(9)))
    deliver_to(esme, smsc.send(EnquireLink(10)))
    deliver_to(smsc, esme.send(EnquireLinkResp(10)))
    assert esme.state is smsc.state is BINDS[kind][2]


# --- unbinding ----------------------------------------------------------------------------

def test_unbind_closes_after_outstanding_answers():
    esme, smsc = bound_pair("trx")
    deliver_to(smsc, esme.send(SubmitSm(2)))
    deliver_to(smsc, esme.send(Unbind(3)))
    assert esme.state is smsc.state is SessionState.UNBINDING
    # The answer to the submit may still come; new requests may not.
    deliver_to(esme, smsc.send(SubmitSmResp(2, 0, "m")))
    with pytest.raises(SmppProtocolError):
        esme.send(SubmitSm(4))
    deliver_to(esme, smsc.send(UnbindResp(3)))
    assert esme.state is smsc.state is SessionState.CLOSED
    with pytest.raises(SmppProtocolError):
        esme.send(EnquireLink(5))


def test_smsc_may_unbind_and_crossing_unbinds_are_fine():
    esme, smsc = bound_pair("rx")
    deliver_to(esme, smsc.send(Unbind(1)))
    deliver_to(smsc, esme.send(Unbind(2)))
    deliver_to(esme, smsc.send(UnbindResp(2)))
    assert esme.state is SessionState.CLOSED


# --- framing ------------------------------------------------------------------------------

def test_byte_at_a_time_and_several_per_read():
    esme, smsc = bound_pair("trx")
    events = [SubmitSm(2, short_message=b"a"), EnquireLink(3), SubmitSm(4, short_message=b"b")]
    stream = b"".join(encode(e) for e in events)
    got = []
    for i in range(len(stream)):
        smsc.receive_data(stream[i:i + 1])
        got.extend(smsc.events())
    assert got == events
    smsc.receive_data(stream)
    assert smsc.events() == events
    assert smsc.next_event() is NEED_DATA
    smsc.receive_data(b"")
    assert smsc.next_event() is CLOSED
    assert smsc.state is SessionState.CLOSED


def test_unknown_command_is_skipped_and_answerable():
    esme, smsc = bound_pair("trx")
    unknown = (20).to_bytes(4, "big") + (0x00000099).to_bytes(4, "big") + bytes(4) \
        + (77).to_bytes(4, "big") + b"junk"
    smsc.receive_data(unknown + encode(EnquireLink(78)))
    with pytest.raises(SmppError) as info:
        smsc.next_event()
    err = info.value
    assert not err.fatal and err.sequence_number == 77 and err.command_id == 0x99
    nack = smsc.send(err.generic_nack())
    assert nack == encode(GenericNack(77, CommandStatus.ESME_RINVCMDID))
    assert smsc.next_event() == EnquireLink(78)


def test_events_returns_good_events_then_raises():
    _, smsc = bound_pair("trx")
    bad = encode(QuerySm(3, "m"))[:-1]             # a query_sm one octet short...
    bad = (len(bad)).to_bytes(4, "big") + bad[4:]   # ...with a matching length
    smsc.receive_data(encode(EnquireLink(2)) + bad + encode(EnquireLink(4)))
    assert smsc.events() == [EnquireLink(2)]
    with pytest.raises(SmppError) as info:
        smsc.events()
    assert info.value.sequence_number == 3 and not info.value.fatal
    assert smsc.events() == [EnquireLink(4)]


@pytest.mark.parametrize("length", [0, 15, 65536 + 1025])
def test_lying_length_is_fatal(length):
    _, smsc = bound_pair("trx")
    smsc.receive_data(length.to_bytes(4, "big") + (0x15).to_bytes(4, "big") + bytes(8))
    with pytest.raises(SmppError) as info:
        smsc.next_event()
    assert info.value.fatal
    assert smsc.state is SessionState.ERROR
    with pytest.raises(SmppError):          # and stays broken
        smsc.next_event()


def test_max_pdu_is_configurable():
    conn = Connection("smsc", max_pdu=100)
    conn.receive_data(encode(SubmitSm(1, short_message=b"x" * 200)))
    with pytest.raises(SmppError) as info:
        conn.next_event()
    assert info.value.fatal


def test_eof_inside_a_pdu_is_fatal():
    _, smsc = bound_pair("trx")
    smsc.receive_data(encode(SubmitSm(2))[:20])
    assert smsc.next_event() is NEED_DATA
    smsc.receive_data(b"")
    with pytest.raises(SmppError) as info:
        smsc.next_event()
    assert info.value.fatal and info.value.sequence_number == 2


def test_send_does_not_advance_state_when_encoding_fails():
    esme = Connection("esme")
    with pytest.raises(SmppError):
        esme.send(BindTransmitter(1, system_id="x" * 40))
    assert esme.state is SessionState.OPEN


def test_next_sequence_wraps_and_stays_positive():
    conn = Connection("esme")
    assert [conn.next_sequence() for _ in range(3)] == [1, 2, 3]
    conn._seq = 0x7FFFFFFF
    assert conn.next_sequence() == 1


def test_bad_arguments():
    with pytest.raises(ValueError):
        Connection("client")
    with pytest.raises(ValueError):
        Connection("esme", max_pdu=8)
    conn = Connection("esme")
    conn.receive_data(b"")
    with pytest.raises(RuntimeError):
        conn.receive_data(b"x")
