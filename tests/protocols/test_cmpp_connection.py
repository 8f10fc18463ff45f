"""Connection: framing of a byte stream and the session state table."""
from __future__ import annotations

import pytest

from hongyan.protocols.cmpp import (
    CLOSED, NEED_DATA, ActiveTest, ActiveTestResp, Cancel, CancelResp, CmppError,
    CmppProtocolError, Connect, ConnectResp, Connection, Deliver, DeliverResp, Query,
    QueryResp, SessionState, Submit, SubmitResp, Terminate, TerminateResp, encode,
)

AUTH = bytes(16)


def connect(seq: int = 1) -> Connect:
    return Connect(seq, "901234", AUTH, 0x20, 102030405)


def bound_pair() -> tuple[Connection, Connection]:
    """A client and a server that completed the CONNECT handshake."""
    client, server = Connection("client"), Connection("server")
    server.receive_data(client.send(connect()))
    assert server.next_event() == connect()
    client.receive_data(server.send(ConnectResp(1, 0, AUTH, 0x20)))
    assert client.next_event() == ConnectResp(1, 0, AUTH, 0x20)
    assert client.state is server.state is SessionState.BOUND
    return client, server


def deliver_to(receiver: Connection, data: bytes):
    receiver.receive_data(data)
    return receiver.next_event()


# --- handshake and state table ---------------------------------------------------------

def test_handshake_binds_both_sides():
    client, server = Connection("client"), Connection("server")
    assert client.state is server.state is SessionState.UNBOUND
    data = client.send(connect())
    assert client.state is SessionState.CONNECTING
    assert deliver_to(server, data) == connect()
    assert server.state is SessionState.CONNECTING
    assert deliver_to(client, server.send(ConnectResp(1, 0, AUTH, 0x20))).status == 0
    assert client.state is server.state is SessionState.BOUND


def test_refused_connect_leaves_session_unbound():
    client, server = Connection("client"), Connection("server")
    deliver_to(server, client.send(connect()))
    deliver_to(client, server.send(ConnectResp(1, 3, AUTH, 0x20)))
    assert client.state is server.state is SessionState.UNBOUND
    with pytest.raises(CmppProtocolError):
        client.send(Submit(2, ("13800138000",), b"hi"))
    # The client may try to log in again.
    client.send(connect(3))
    assert client.state is SessionState.CONNECTING


def test_client_may_not_submit_before_bound():
    client = Connection("client")
    with pytest.raises(CmppProtocolError, match="UNBOUND") as info:
        client.send(Submit(1, ("13800138000",), b"hi"))
    assert "Submit" in str(info.value)
    assert info.value.state is SessionState.UNBOUND
    client.send(connect())
    with pytest.raises(CmppProtocolError, match="CONNECTING"):
        client.send(Submit(2, ("13800138000",), b"hi"))
    assert client.state is SessionState.CONNECTING


def test_server_rejects_submit_before_connect_and_reads_on():
    server = Connection("server")
    stray = encode(Submit(5, ("13800138000",), b"hi"))
    server.receive_data(stray + encode(connect(6)))
    with pytest.raises(CmppProtocolError, match="Submit") as info:
        server.next_event()
    assert info.value.fatal is False
    assert info.value.sequence_id == 5
    assert info.value.command_id == 0x00000004
    assert server.next_event() == connect(6)          # the stray PDU was skipped
    assert server.state is SessionState.CONNECTING


def test_roles_are_enforced():
    client, server = bound_pair()
    with pytest.raises(CmppProtocolError):
        client.send(Deliver(2, 1, "1065", "13800138000", b"x"))   # only the gateway delivers
    with pytest.raises(CmppProtocolError):
        server.send(Submit(2, ("13800138000",), b"x"))            # only the SP submits
    with pytest.raises(CmppProtocolError):
        server.send(connect(2))


def test_server_answers_bound_traffic():
    client, server = bound_pair()
    submit = Submit(client.next_sequence(), ("13800138000",), b"hello")
    assert deliver_to(server, client.send(submit)) == submit
    resp = SubmitResp(submit.sequence_id, 0x37A9EB41E240BEEF, 0)
    assert deliver_to(client, server.send(resp)) == resp

    mo = Deliver(server.next_sequence(), 7, "1065", "13800138000", b"TD")
    assert deliver_to(client, server.send(mo)) == mo
    ack = DeliverResp(mo.sequence_id, 7, 0)
    assert deliver_to(server, client.send(ack)) == ack

    for request, response in [(Query(3, "20240315", 0), QueryResp(3, "20240315", 0, "")),
                              (Cancel(4, 1), CancelResp(4, 0)),
                              (ActiveTest(5), ActiveTestResp(5))]:
        assert deliver_to(server, client.send(request)) == request
        assert deliver_to(client, server.send(response)) == response
    # Keep-alives go both ways.
    assert deliver_to(client, server.send(ActiveTest(9))) == ActiveTest(9)
    assert deliver_to(server, client.send(ActiveTestResp(9))) == ActiveTestResp(9)
    assert client.state is server.state is SessionState.BOUND


def test_client_initiated_terminate():
    client, server = bound_pair()
    data = client.send(Terminate(10))
    assert client.state is SessionState.CLOSING
    with pytest.raises(CmppProtocolError, match="CLOSING"):
        client.send(Submit(11, ("13800138000",), b"late"))
    assert deliver_to(server, data) == Terminate(10)
    assert server.state is SessionState.CLOSING
    # Answers to earlier requests may still cross.
    deliver_to(client, server.send(SubmitResp(3, 0, 0)))
    assert deliver_to(client, server.send(TerminateResp(10))) == TerminateResp(10)
    assert client.state is server.state is SessionState.CLOSED
    with pytest.raises(CmppProtocolError, match="CLOSED"):
        client.send(ActiveTest(12))
    client.receive_data(b"")
    assert client.next_event() is CLOSED


def test_server_initiated_terminate():
    client, server = bound_pair()
    assert deliver_to(client, server.send(Terminate(20))) == Terminate(20)
    assert client.state is SessionState.CLOSING
    assert deliver_to(server, client.send(TerminateResp(20))) == TerminateResp(20)
    assert client.state is server.state is SessionState.CLOSED


def test_crossing_terminates():
    client, server = bound_pair()
    c, s = client.send(Terminate(1)), server.send(Terminate(2))
    assert deliver_to(server, c) == Terminate(1)
    assert deliver_to(client, s) == Terminate(2)
    deliver_to(client, server.send(TerminateResp(1)))
    assert client.state is SessionState.CLOSED


def test_send_does_not_advance_state_when_encoding_fails():
    client = Connection("client")
    with pytest.raises(CmppError):
        client.send(Connect(1, "TOO-LONG-ID", AUTH, 0x20, 0))
    assert client.state is SessionState.UNBOUND


# --- framing ---------------------------------------------------------------------------

def test_need_data_until_a_whole_pdu_arrived():
    client, server = bound_pair()
    data = client.send(Submit(2, ("13800138000",), b"byte by byte"))
    for i in range(len(data) - 1):
        server.receive_data(data[i:i + 1])
        assert server.next_event() is NEED_DATA
    server.receive_data(data[-1:])
    assert server.next_event().msg_content == b"byte by byte"
    assert server.next_event() is NEED_DATA
    assert server.buffered == 0


def test_events_drains_everything_buffered():
    client, server = bound_pair()
    sent = [Submit(client.next_sequence(), ("13800138000",), b"%d" % i) for i in range(50)]
    stream = b"".join(client.send(e) for e in sent)
    server.receive_data(stream + stream[:7])        # plus the start of another PDU
    assert server.events() == sent
    assert server.buffered == 7
    assert server.events() == []


def test_events_returns_good_events_then_raises_the_error():
    client, server = bound_pair()
    good = ActiveTest(3)
    unknown = bytes.fromhex("0000000c" "00000009" "00000004")
    server.receive_data(client.send(good) + unknown + client.send(ActiveTest(5)))
    assert server.events() == [good]
    with pytest.raises(CmppError) as info:
        server.events()
    assert info.value.command_id == 9 and not info.value.fatal
    assert server.events() == [ActiveTest(5)]


@pytest.mark.parametrize("total", [0, 11, 4097, 0xFFFFFFFF])
def test_lying_total_length_is_fatal(total):
    client, server = bound_pair()
    server.receive_data(total.to_bytes(4, "big") + bytes.fromhex("00000004" "00000001"))
    with pytest.raises(CmppError, match="Total_Length") as info:
        server.next_event()
    assert info.value.fatal
    assert server.state is SessionState.ERROR
    with pytest.raises(CmppError):                  # stays broken
        server.next_event()
    with pytest.raises(CmppProtocolError):
        server.send(DeliverResp(1, 0, 0))


def test_max_pdu_is_configurable():
    server = Connection("server", max_pdu=30)
    server.receive_data(encode(connect()))          # 39 octets
    with pytest.raises(CmppError, match="39"):
        server.next_event()


def test_unknown_command_id_is_skipped():
    client = Connection("client")
    client.receive_data(bytes.fromhex("00000010" "00000009" "00000001" "deadbeef"))
    with pytest.raises(CmppError, match="0x00000009") as info:
        client.next_event()
    assert info.value.command_id == 9
    assert info.value.sequence_id == 1
    assert not info.value.fatal
    assert client.next_event() is NEED_DATA


def test_eof_inside_a_pdu_is_fatal():
    server = Connection("server")
    server.receive_data(encode(connect())[:20])
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    with pytest.raises(CmppError, match="closed inside") as info:
        server.next_event()
    assert info.value.fatal


def test_eof_after_whole_pdus_gives_the_events_then_closed():
    server = Connection("server")
    server.receive_data(encode(connect()))
    server.receive_data(b"")
    assert server.events() == [connect()]
    assert server.next_event() is CLOSED
    assert server.state is SessionState.CLOSED
    with pytest.raises(RuntimeError):
        server.receive_data(b"more")


def test_buffer_is_compacted():
    client, server = bound_pair()
    pdu = client.send(ActiveTest(2))
    for _ in range(20_000):                         # 240 KB through the buffer
        server.receive_data(pdu + pdu[:5])
        server.events()
        server.receive_data(pdu[5:])
    assert server.events()
    assert len(server._buf) < 70 * 1024             # consumed bytes were dropped


def test_next_sequence_wraps_to_one():
    conn = Connection("client")
    assert [conn.next_sequence() for _ in range(3)] == [1, 2, 3]
    conn._seq = 0x7FFFFFFE                          # jump ahead rather than count 2**31
    assert [conn.next_sequence() for _ in range(3)] == [0x7FFFFFFF, 1, 2]


def test_constructor_validates_arguments():
    with pytest.raises(ValueError):
        Connection("gateway")
    with pytest.raises(ValueError):
        Connection("client", version=0x31)
    with pytest.raises(ValueError):
        Connection("client", max_pdu=5)
