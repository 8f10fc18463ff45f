"""SMGP Connection: framing of a byte stream and the session state table."""
from __future__ import annotations

import pytest

from hongyan.protocols.smgp import (
    CLOSED, NEED_DATA, ActiveTest, ActiveTestResp, Connection, Deliver, DeliverResp, Exit,
    ExitResp, Login, LoginResp, Query, QueryResp, SessionState, SmgpError, SmgpProtocolError,
    StatusReport, Submit, SubmitResp, encode,
)

AUTH = bytes(16)
MSG_ID = bytes.fromhex("12345603151030000042")


def login(seq: int = 1) -> Login:
    return Login(seq, "31000001", AUTH, 2, 102030405)


def submit(seq: int) -> Submit:
    return Submit(seq, ("13300000000",), b"hi")


def bound_pair() -> tuple[Connection, Connection]:
    """A client and a server that completed the Login handshake."""
    client, server = Connection("client"), Connection("server")
    server.receive_data(client.send(login()))
    assert server.next_event() == login()
    client.receive_data(server.send(LoginResp(1, 0, AUTH)))
    assert client.next_event() == LoginResp(1, 0, AUTH)
    assert client.state is server.state is SessionState.BOUND
    return client, server


def deliver_to(receiver: Connection, data: bytes):
    receiver.receive_data(data)
    return receiver.next_event()


# --- handshake and state table ---------------------------------------------------------

def test_handshake_binds_both_sides():
    client, server = Connection("client"), Connection("server")
    assert client.state is server.state is SessionState.UNBOUND
    data = client.send(login())
    assert client.state is SessionState.CONNECTING
    assert deliver_to(server, data) == login()
    assert server.state is SessionState.CONNECTING
    assert deliver_to(client, server.send(LoginResp(1, 0, AUTH))).status == 0
    assert client.state is server.state is SessionState.BOUND


def test_refused_login_leaves_session_unbound():
    client, server = Connection("client"), Connection("server")
    deliver_to(server, client.send(login()))
    deliver_to(client, server.send(LoginResp(1, 21, AUTH)))
    assert client.state is server.state is SessionState.UNBOUND
    with pytest.raises(SmgpProtocolError):
        client.send(submit(2))
    client.send(login(3))                       # the client may try again
    assert client.state is SessionState.CONNECTING


def test_client_may_not_submit_before_bound():
    client = Connection("client")
    with pytest.raises(SmgpProtocolError, match="UNBOUND") as info:
        client.send(submit(1))
    assert "Submit" in str(info.value)
    assert info.value.state is SessionState.UNBOUND
    client.send(login())
    with pytest.raises(SmgpProtocolError, match="CONNECTING"):
        client.send(submit(2))
    assert client.state is SessionState.CONNECTING


def test_server_rejects_submit_before_login_and_reads_on():
    server = Connection("server")
    server.receive_data(encode(submit(5)) + encode(login(6)))
    with pytest.raises(SmgpProtocolError, match="Submit") as info:
        server.next_event()
    assert info.value.fatal is False
    assert info.value.sequence_id == 5
    assert info.value.request_id == 0x00000002
    assert server.next_event() == login(6)
    assert server.state is SessionState.CONNECTING


def test_roles_own_their_pdus():
    client, server = bound_pair()
    with pytest.raises(SmgpProtocolError):
        client.send(Deliver(1, MSG_ID, "133", "106"))       # only the gateway delivers
    with pytest.raises(SmgpProtocolError):
        server.send(submit(1))                              # only the SP submits
    with pytest.raises(SmgpProtocolError):
        server.send(Login(9, "x", AUTH, 0, 0))              # only the client logs in


def test_bound_traffic_both_ways():
    client, server = bound_pair()
    assert deliver_to(server, client.send(submit(2))) == submit(2)
    assert deliver_to(client, server.send(SubmitResp(2, MSG_ID, 0))) == SubmitResp(2, MSG_ID, 0)
    report = StatusReport(MSG_ID, "DELIVRD", "2603151030", "2603151031")
    got = deliver_to(client, server.send(Deliver(7, MSG_ID, "133", "106", report=report)))
    assert got.report == report
    assert deliver_to(server, client.send(DeliverResp(7, MSG_ID))) == DeliverResp(7, MSG_ID)
    assert deliver_to(server, client.send(Query(3, "20260315"))) == Query(3, "20260315")
    resp = QueryResp(3, "20260315", 0, "", 1, 2, 3, 4, 5, 6, 7, 8)
    assert deliver_to(client, server.send(resp)) == resp
    for a, b in ((client, server), (server, client)):
        assert deliver_to(b, a.send(ActiveTest(9))) == ActiveTest(9)
        assert deliver_to(a, b.send(ActiveTestResp(9))) == ActiveTestResp(9)
    assert client.state is server.state is SessionState.BOUND


@pytest.mark.parametrize("closer", ["client", "server"])
def test_exit_closes_the_session(closer):
    client, server = bound_pair()
    a, b = (client, server) if closer == "client" else (server, client)
    deliver_to(b, a.send(Exit(20)))
    assert a.state is b.state is SessionState.CLOSING
    # Answers to earlier requests still flow while closing; new requests do not.
    if closer == "client":
        deliver_to(a, b.send(SubmitResp(2, MSG_ID, 0)))
        with pytest.raises(SmgpProtocolError):
            a.send(submit(21))
    else:
        deliver_to(a, b.send(DeliverResp(2, MSG_ID)))
        with pytest.raises(SmgpProtocolError):
            a.send(Deliver(21, MSG_ID, "133", "106"))
    deliver_to(a, b.send(ExitResp(20)))
    assert a.state is b.state is SessionState.CLOSED
    with pytest.raises(SmgpProtocolError):
        a.send(ActiveTest(22))


def test_crossing_exits():
    client, server = bound_pair()
    to_server, to_client = client.send(Exit(30)), server.send(Exit(31))
    deliver_to(server, to_server)
    deliver_to(client, to_client)
    assert client.state is server.state is SessionState.CLOSING
    deliver_to(server, client.send(ExitResp(31)))
    assert client.state is server.state is SessionState.CLOSED


# --- framing ---------------------------------------------------------------------------

def test_byte_at_a_time():
    client, server = bound_pair()
    data = b"".join(client.send(submit(i)) for i in range(2, 5))
    seen = []
    for i in range(len(data)):
        server.receive_data(data[i:i + 1])
        while (event := server.next_event()) is not NEED_DATA:
            seen.append(event)
    assert seen == [submit(2), submit(3), submit(4)]
    assert server.buffered == 0


def test_eof_between_pdus_closes_cleanly():
    client, server = bound_pair()
    server.receive_data(client.send(submit(2)))
    server.receive_data(b"")
    assert server.next_event() == submit(2)
    assert server.next_event() is CLOSED
    assert server.state is SessionState.CLOSED
    with pytest.raises(RuntimeError):
        server.receive_data(b"more")


def test_eof_inside_a_pdu_is_fatal():
    client, server = bound_pair()
    server.receive_data(client.send(submit(2))[:-3])
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    with pytest.raises(SmgpError) as info:
        server.next_event()
    assert info.value.fatal and info.value.sequence_id == 2
    assert server.state is SessionState.ERROR
    with pytest.raises(SmgpError):                  # it stays broken
        server.next_event()


@pytest.mark.parametrize("length", [0, 11, 4097, 0xFFFFFFFF])
def test_lying_packet_length_is_fatal(length):
    _, server = bound_pair()
    server.receive_data(length.to_bytes(4, "big") + bytes.fromhex("00000004" "00000001"))
    with pytest.raises(SmgpError, match="PacketLength") as info:
        server.next_event()
    assert info.value.fatal
    assert server.state is SessionState.ERROR


def test_unknown_request_is_skipped_and_named():
    client, server = bound_pair()
    unknown = bytes.fromhex("0000000c" "00000005" "0000002a")      # Forward: not SP traffic
    server.receive_data(unknown + client.send(submit(2)))
    with pytest.raises(SmgpError, match="RequestID") as info:
        server.next_event()
    assert not info.value.fatal
    assert (info.value.request_id, info.value.sequence_id) == (5, 42)
    assert server.next_event() == submit(2)


def test_events_returns_what_it_has_then_raises():
    client, server = bound_pair()
    bad = bytes.fromhex("0000000d" "00000004" "00000009" "00")     # Active_Test with a body
    server.receive_data(client.send(submit(2)) + bad + client.send(submit(3)))
    assert server.events() == [submit(2)]
    with pytest.raises(SmgpError) as info:
        server.events()
    assert info.value.sequence_id == 9 and not info.value.fatal
    assert server.events() == [submit(3)]


def test_next_sequence_wraps_and_stays_positive():
    conn = Connection("client")
    assert [conn.next_sequence() for _ in range(3)] == [1, 2, 3]
    conn._seq = 0x7FFFFFFE
    assert [conn.next_sequence() for _ in range(2)] == [0x7FFFFFFF, 1]


def test_failed_encode_leaves_state_alone():
    client = Connection("client")
    with pytest.raises(SmgpError):
        client.send(Login(1, "far-too-long-id", AUTH, 2, 0))
    assert client.state is SessionState.UNBOUND


def test_constructor_checks():
    with pytest.raises(ValueError):
        Connection("gateway")
    with pytest.raises(ValueError):
        Connection("client", version=0x20)
    with pytest.raises(ValueError):
        Connection("client", max_pdu=8)
