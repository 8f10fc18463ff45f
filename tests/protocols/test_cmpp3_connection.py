"""Connection on CMPP 3.0: fixed 3.0 sessions, and a server that serves 2.0 and 3.0."""
from __future__ import annotations

import pytest

from hongyan.protocols.cmpp import (
    CLOSED, NEED_DATA, ActiveTest, CmppError, CmppProtocolError, Connect, ConnectResp,
    ConnectStatus, Connection, Deliver, DeliverResp, SessionState, StatusReport, Submit,
    SubmitResp, Terminate, TerminateResp, authenticator_ismg, authenticator_source, encode,
    verify_connect,
)

V20, V30 = 0x20, 0x30
SECRET = "s3cret"
TS = 102030405


def connect(seq: int = 1, version: int = V30) -> Connect:
    return Connect(seq, "901234", authenticator_source("901234", SECRET, TS), version, TS)


def deliver_to(receiver: Connection, data: bytes):
    receiver.receive_data(data)
    return receiver.next_event()


def answer_connect(server: Connection, request: Connect) -> ConnectResp:
    """What a gateway serving both versions answers, in the version it picked."""
    if not verify_connect(request, SECRET):
        status = ConnectStatus.AUTH_FAILED
    elif request.version != server.version:
        status = ConnectStatus.VERSION_TOO_HIGH
    else:
        status = ConnectStatus.OK
    auth = authenticator_ismg(status, request.authenticator, SECRET, version=server.version)
    return ConnectResp(request.sequence_id, int(status), auth, server.version)


# --- a session fixed to 3.0 -----------------------------------------------------------------

def test_30_session_speaks_30_layouts_both_ways():
    client, server = Connection("client", version=V30), Connection("server", version=V30)
    assert deliver_to(server, client.send(connect())) == connect()
    data = server.send(answer_connect(server, connect()))
    assert len(data) == 33                                # Status is four octets
    resp = deliver_to(client, data)
    assert resp.status == 0
    assert resp.authenticator == authenticator_ismg(0, connect().authenticator, SECRET, V30)
    assert client.state is server.state is SessionState.BOUND

    submit = Submit(client.next_sequence(), ("13800138000",), b"hi", link_id="ORDER42")
    data = client.send(submit)
    assert len(data) == 12 + 151 + 32 + 2
    assert deliver_to(server, data) == submit
    data = server.send(SubmitResp(submit.sequence_id, 99, 0))
    assert len(data) == 24
    assert deliver_to(client, data) == SubmitResp(submit.sequence_id, 99, 0)

    report = StatusReport(99, "DELIVRD", "2403151030", "2403151031", "13800138000", 1)
    received = deliver_to(client, server.send(Deliver(server.next_sequence(), 5, "1065",
                                                       "13800138000", report=report)))
    assert received.report == report and len(received.msg_content) == 71
    assert deliver_to(server, client.send(DeliverResp(received.sequence_id, 5, 0))) == \
        DeliverResp(received.sequence_id, 5, 0)

    deliver_to(server, client.send(Terminate(9)))
    deliver_to(client, server.send(TerminateResp(9)))
    assert client.state is server.state is SessionState.CLOSED


def test_30_state_table_is_the_20_one():
    client = Connection("client", version=V30)
    with pytest.raises(CmppProtocolError, match="UNBOUND"):
        client.send(Submit(1, ("13800138000",), b"hi"))
    server = Connection("server", version=V30)
    server.receive_data(encode(Submit(5, ("13800138000",), b"hi"), version=V30))
    with pytest.raises(CmppProtocolError, match="Submit") as info:
        server.next_event()
    assert (info.value.fatal, info.value.command_id, info.value.sequence_id) == (False, 4, 5)


def test_30_unknown_command_is_not_fatal_and_lying_length_is():
    server = Connection("server", version=V30)
    server.receive_data(bytes.fromhex("0000000c" "00000009" "0000002a") + encode(connect()))
    with pytest.raises(CmppError, match="0x00000009") as info:
        server.next_event()
    assert (info.value.fatal, info.value.command_id, info.value.sequence_id) == (False, 9, 42)
    assert server.next_event() == connect()

    server = Connection("server", version=V30)
    server.receive_data(bytes.fromhex("00ffffff" "00000004" "00000001"))
    with pytest.raises(CmppError) as info:
        server.next_event()
    assert info.value.fatal
    assert server.state is SessionState.ERROR


def test_30_bad_body_names_command_and_sequence():
    client, server = Connection("client", version=V30), Connection("server", version=V30)
    deliver_to(server, client.send(connect()))
    deliver_to(client, server.send(ConnectResp(1, 0, bytes(16), V30)))
    # A 2.0-sized SUBMIT_RESP (Result one octet) on a 3.0 session.
    client.receive_data(bytes.fromhex("00000015" "80000004" "00000007")
                        + bytes(8) + b"\x00")
    with pytest.raises(CmppError, match="CMPP_SUBMIT_RESP") as info:
        client.next_event()
    assert (info.value.fatal, info.value.command_id, info.value.sequence_id) == \
        (False, 0x80000004, 7)
    assert client.next_event() is NEED_DATA


# --- a server that serves both versions ------------------------------------------------------

@pytest.mark.parametrize("version", [V20, V30])
def test_dual_server_takes_the_version_of_the_connect(version):
    client = Connection("client", version=version)
    server = Connection("server", version=None)
    assert server.version is None
    request = deliver_to(server, client.send(connect(version=version)))
    assert server.version == version
    resp = deliver_to(client, server.send(answer_connect(server, request)))
    assert resp.status == 0 and resp.version == version
    assert client.state is server.state is SessionState.BOUND
    # Both ends now read each other's layouts.
    mo = Deliver(server.next_sequence(), 1, "1065", "13800138000", b"TD")
    assert deliver_to(client, server.send(mo)) == mo
    submit = Submit(client.next_sequence(), ("13800138000",), b"ok")
    assert deliver_to(server, client.send(submit)) == submit


def test_dual_server_refuses_a_newer_version_then_accepts_a_retry():
    client = Connection("client", version=None)
    server = Connection("server", version=None)
    request = deliver_to(server, client.send(connect(1, version=0x40)))
    assert client.version == server.version == V30          # nearest lower version
    resp = deliver_to(client, server.send(answer_connect(server, request)))
    assert resp.status == ConnectStatus.VERSION_TOO_HIGH and resp.version == V30
    assert client.state is server.state is SessionState.UNBOUND
    # The SP tries again with the version the gateway announced.
    request = deliver_to(server, client.send(connect(2, version=resp.version)))
    assert deliver_to(client, server.send(answer_connect(server, request))).status == 0
    assert client.state is server.state is SessionState.BOUND


def test_dual_server_switches_version_when_a_refused_sp_retries_with_20():
    server = Connection("server", version=None)
    deliver_to(server, encode(Connect(1, "901234", bytes(16), V30, TS)))
    assert server.version == V30
    server.send(answer_connect(server, Connect(1, "901234", bytes(16), V30, TS)))  # bad auth
    assert server.state is SessionState.UNBOUND
    deliver_to(server, encode(connect(2, version=V20)))
    assert server.version == V20
    assert len(server.send(answer_connect(server, connect(2, version=V20)))) == 30


def test_dual_server_reads_on_after_traffic_before_the_connect():
    server = Connection("server", version=None)
    server.receive_data(encode(ActiveTest(3)) + encode(connect(4)))
    with pytest.raises(CmppProtocolError):
        server.next_event()
    assert server.version is None
    assert server.next_event() == connect(4)
    assert server.version == V30


def test_a_connect_refused_by_the_state_table_does_not_change_the_version():
    server = Connection("server", version=None)
    deliver_to(server, encode(connect(1, version=V20)))
    server.send(ConnectResp(1, 0, bytes(16), V20))
    assert server.state is SessionState.BOUND
    server.receive_data(encode(connect(2, version=V30)))
    with pytest.raises(CmppProtocolError):
        server.next_event()
    assert server.version == V20


def test_a_failed_send_does_not_fix_the_version():
    client = Connection("client", version=None)
    with pytest.raises(CmppError):
        client.send(Connect(1, "TOO-LONG-ID", bytes(16), V30, TS))
    assert client.version is None and client.state is SessionState.UNBOUND


def test_eof_before_the_connect():
    server = Connection("server", version=None)
    server.receive_data(b"")
    assert server.next_event() is CLOSED


def test_constructor_accepts_30_and_none_only_besides_20():
    assert Connection("client", version=V30).version == V30
    assert Connection("server", version=None).version is None
    with pytest.raises(ValueError, match="0x31"):
        Connection("client", version=0x31)
