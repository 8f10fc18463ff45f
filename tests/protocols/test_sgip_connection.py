"""Connection: framing of a byte stream and the session tables for both link kinds."""
from __future__ import annotations

from datetime import datetime

import pytest

from hongyan.protocols.sgip import (
    CLOSED, NEED_DATA, SMG_LINK, SP_LINK, TEST_LINK, Bind, BindResp, Connection, Deliver,
    DeliverResp, LoginType, Report, ReportResp, SequenceNumber, SessionState, SgipError,
    SgipProtocolError, Submit, SubmitResp, Trace, TraceResp, TraceResult, Unbind, UnbindResp,
    UserRpt, UserRptResp, encode,
)

SP_NODE = 3075512345
SMG_NODE = 2075500001
NOW = datetime(2024, 12, 2, 5, 12, 30)


def seq(n: int, node: int = SP_NODE) -> SequenceNumber:
    return SequenceNumber(node, 1202051230, n)


def deliver_to(receiver: Connection, data: bytes):
    receiver.receive_data(data)
    return receiver.next_event()


def sp_link() -> tuple[Connection, Connection]:
    """The SP connected to the SMG and bound with Login Type 1."""
    sp = Connection("sp", node_id=SP_NODE, clock=lambda: NOW)
    smg = Connection("smg", node_id=SMG_NODE, clock=lambda: NOW)
    bind = Bind(sp.next_sequence(), LoginType.SP_TO_SMG, "sp901234", "secret")
    assert deliver_to(smg, sp.send(bind)) == bind
    assert sp.state is smg.state is SessionState.BINDING
    assert deliver_to(sp, smg.send(BindResp(bind.sequence_number, 0))).result == 0
    assert sp.state is smg.state is SessionState.BOUND
    assert sp.link == smg.link == SP_LINK
    return sp, smg


def smg_link() -> tuple[Connection, Connection]:
    """The SMG connected to the SP and bound with Login Type 2."""
    sp = Connection("sp", node_id=SP_NODE, clock=lambda: NOW)
    smg = Connection("smg", node_id=SMG_NODE, clock=lambda: NOW)
    bind = Bind(smg.next_sequence(), LoginType.SMG_TO_SP, "unicom", "secret")
    assert deliver_to(sp, smg.send(bind)) == bind
    assert deliver_to(smg, sp.send(BindResp(bind.sequence_number, 0))).result == 0
    assert sp.state is smg.state is SessionState.BOUND
    assert sp.link == smg.link == SMG_LINK
    return sp, smg


# --- binding ----------------------------------------------------------------------------

def test_next_sequence_uses_node_and_clock():
    conn = Connection("sp", node_id=SP_NODE, clock=lambda: NOW)
    assert conn.next_sequence() == SequenceNumber(SP_NODE, 1202051230, 1)
    assert conn.next_sequence() == SequenceNumber(SP_NODE, 1202051230, 2)


def test_each_role_binds_with_its_own_login_type():
    sp, smg = Connection("sp"), Connection("smg")
    with pytest.raises(SgipProtocolError, match="UNBOUND"):
        sp.send(Bind(seq(1), LoginType.SMG_TO_SP, "sp", "pw"))
    with pytest.raises(SgipProtocolError):
        smg.send(Bind(seq(1), LoginType.SP_TO_SMG, "smg", "pw"))
    with pytest.raises(SgipProtocolError):
        smg.send(Bind(seq(1), LoginType.TEST, "smg", "pw"))      # only an SP opens a test link
    for gateway_link in (LoginType.SMG_TO_SMG, LoginType.SMG_TO_GNS, 0, 255):
        with pytest.raises(SgipProtocolError):
            sp.send(Bind(seq(1), gateway_link, "sp", "pw"))
        with pytest.raises(SgipProtocolError):
            smg.send(Bind(seq(1), gateway_link, "smg", "pw"))
    assert sp.state is smg.state is SessionState.UNBOUND
    assert sp.link is smg.link is None


def test_bind_with_the_wrong_login_type_is_answerable():
    # An SP receiving a Bind that claims to come from an SP: the caller
    # answers Bind_Resp result 4 (bad login type) with the same sequence.
    sp = Connection("sp")
    sp.receive_data(encode(Bind(seq(1), LoginType.SP_TO_SMG, "x", "y")))
    with pytest.raises(SgipProtocolError, match="Bind") as info:
        sp.next_event()
    assert not info.value.fatal
    assert info.value.command_id == 1 and info.value.sequence_number == seq(1)
    assert sp.state is SessionState.UNBOUND
    # The correct Bind is read after it.
    sp.receive_data(encode(Bind(seq(2), LoginType.SMG_TO_SP, "x", "y")))
    assert sp.next_event().login_type == 2
    assert sp.link == SMG_LINK


def test_refused_bind_leaves_session_unbound_and_link_open():
    sp, smg = Connection("sp"), Connection("smg")
    deliver_to(smg, sp.send(Bind(seq(1), 1, "sp", "wrong")))
    deliver_to(sp, smg.send(BindResp(seq(1), 1)))
    assert sp.state is smg.state is SessionState.UNBOUND
    assert sp.link is smg.link is None
    with pytest.raises(SgipProtocolError):
        sp.send(Submit(seq(2), "10655", ("8613000000000",), b"hi"))
    sp.send(Bind(seq(3), 1, "sp", "right"))
    assert sp.state is SessionState.BINDING


def test_nothing_but_bind_resp_while_binding():
    sp = Connection("sp")
    sp.send(Bind(seq(1), 1, "sp", "pw"))
    with pytest.raises(SgipProtocolError, match="BINDING"):
        sp.send(Submit(seq(2), "10655", ("8613000000000",), b"hi"))
    with pytest.raises(SgipProtocolError):
        sp.send(Bind(seq(3), 1, "sp", "pw"))          # a second Bind on the same connection
    assert sp.state is SessionState.BINDING


def test_smg_rejects_submit_before_bind_and_reads_on():
    smg = Connection("smg")
    stray = encode(Submit(seq(5), "10655", ("8613000000000",), b"hi"))
    smg.receive_data(stray + encode(Bind(seq(6), 1, "sp", "pw")))
    with pytest.raises(SgipProtocolError, match="Submit") as info:
        smg.next_event()
    assert not info.value.fatal
    assert info.value.sequence_number == seq(5) and info.value.command_id == 3
    assert smg.next_event() == Bind(seq(6), 1, "sp", "pw")


# --- who may send what on each link ---------------------------------------------------------

def test_sp_link_carries_submit_and_trace():
    sp, smg = sp_link()
    submit = Submit(sp.next_sequence(), "10655", ("8613000000000",), b"hello")
    assert deliver_to(smg, sp.send(submit)) == submit
    resp = SubmitResp(submit.sequence_number, 0)
    assert deliver_to(sp, smg.send(resp)) == resp
    trace = Trace(sp.next_sequence(), submit.sequence_number, "8613000000000")
    assert deliver_to(smg, sp.send(trace)) == trace
    answer = TraceResp(trace.sequence_number, (TraceResult(0, "30755", "1202051230", ""),))
    assert deliver_to(sp, smg.send(answer)) == answer
    assert sp.state is smg.state is SessionState.BOUND


def test_sp_link_refuses_smg_requests():
    sp, smg = sp_link()
    for request in (Deliver(seq(9, SMG_NODE), "8613000000000", "10655", b"x"),
                    Report(seq(9, SMG_NODE), seq(1), 0, "8613000000000", 0, 0),
                    UserRpt(seq(9, SMG_NODE), "10655", "8613000000000", 0)):
        with pytest.raises(SgipProtocolError, match="SP->SMG"):
            smg.send(request)
        sp.receive_data(encode(request))
        with pytest.raises(SgipProtocolError):
            sp.next_event()
    with pytest.raises(SgipProtocolError):
        smg.send(Submit(seq(9), "10655", ("8613000000000",), b"x"))
    with pytest.raises(SgipProtocolError):
        sp.send(DeliverResp(seq(9), 0))
    assert sp.state is smg.state is SessionState.BOUND


def test_smg_link_carries_deliver_report_and_userrpt():
    sp, smg = smg_link()
    for request, answer in [
        (Deliver(smg.next_sequence(), "8613000000000", "10655", b"TD"), DeliverResp),
        (Report(smg.next_sequence(), seq(1), 0, "8613000000000", 0, 0), ReportResp),
        (UserRpt(smg.next_sequence(), "10655", "8613000000000", 1), UserRptResp),
    ]:
        assert deliver_to(sp, smg.send(request)) == request
        resp = answer(request.sequence_number, 0)
        assert deliver_to(smg, sp.send(resp)) == resp
    assert sp.state is smg.state is SessionState.BOUND


def test_smg_link_refuses_sp_requests():
    sp, smg = smg_link()
    with pytest.raises(SgipProtocolError, match="SMG->SP"):
        sp.send(Submit(seq(9), "10655", ("8613000000000",), b"x"))
    with pytest.raises(SgipProtocolError):
        sp.send(Trace(seq(9), seq(1), "8613000000000"))
    with pytest.raises(SgipProtocolError):
        sp.send(Deliver(seq(9), "8613000000000", "10655", b"x"))
    with pytest.raises(SgipProtocolError):
        smg.send(SubmitResp(seq(9), 0))
    smg.receive_data(encode(Submit(seq(9), "10655", ("8613000000000",), b"x")))
    with pytest.raises(SgipProtocolError):
        smg.next_event()


def test_test_link_carries_only_trace():
    sp, smg = Connection("sp"), Connection("smg")
    deliver_to(smg, sp.send(Bind(seq(1), LoginType.TEST, "sp", "pw")))
    deliver_to(sp, smg.send(BindResp(seq(1), 0)))
    assert sp.link == smg.link == TEST_LINK
    trace = Trace(seq(2), seq(1), "8613000000000")
    assert deliver_to(smg, sp.send(trace)) == trace
    assert deliver_to(sp, smg.send(TraceResp(seq(2), ()))) == TraceResp(seq(2), ())
    with pytest.raises(SgipProtocolError, match="test"):
        sp.send(Submit(seq(3), "10655", ("8613000000000",), b"x"))
    with pytest.raises(SgipProtocolError):
        smg.send(Deliver(seq(3), "8613000000000", "10655", b"x"))


# --- unbinding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("link", [sp_link, smg_link])
def test_either_side_unbinds(link):
    for first in (0, 1):
        pair = link()
        a, b = pair[first], pair[1 - first]
        data = a.send(Unbind(seq(20)))
        assert a.state is SessionState.UNBINDING
        assert deliver_to(b, data) == Unbind(seq(20))
        assert b.state is SessionState.UNBINDING
        assert deliver_to(a, b.send(UnbindResp(seq(20)))) == UnbindResp(seq(20))
        assert a.state is b.state is SessionState.CLOSED
        with pytest.raises(SgipProtocolError, match="CLOSED"):
            a.send(Unbind(seq(21)))
        a.receive_data(b"")
        assert a.next_event() is CLOSED


def test_answers_may_cross_an_unbind_but_requests_may_not():
    sp, smg = sp_link()
    submit = sp.send(Submit(seq(2), "10655", ("8613000000000",), b"x"))
    smg.receive_data(submit)
    smg.next_event()
    deliver_to(smg, sp.send(Unbind(seq(3))))
    with pytest.raises(SgipProtocolError, match="UNBINDING"):
        sp.send(Submit(seq(4), "10655", ("8613000000000",), b"late"))
    assert deliver_to(sp, smg.send(SubmitResp(seq(2), 0))) == SubmitResp(seq(2), 0)
    deliver_to(sp, smg.send(UnbindResp(seq(3))))
    assert sp.state is smg.state is SessionState.CLOSED


def test_crossing_unbinds():
    sp, smg = smg_link()
    a, b = sp.send(Unbind(seq(1))), smg.send(Unbind(seq(1, SMG_NODE)))
    deliver_to(smg, a)
    deliver_to(sp, b)
    deliver_to(sp, smg.send(UnbindResp(seq(1))))
    assert sp.state is SessionState.CLOSED


def test_send_does_not_advance_state_when_encoding_fails():
    sp = Connection("sp")
    with pytest.raises(SgipError):
        sp.send(Bind(seq(1), 1, "a-login-name-of-17", "pw"))
    assert sp.state is SessionState.UNBOUND and sp.link is None


# --- framing ---------------------------------------------------------------------------------

def test_need_data_until_a_whole_pdu_arrived():
    sp, smg = sp_link()
    data = sp.send(Submit(seq(2), "10655", ("8613000000000",), b"byte by byte"))
    for i in range(len(data) - 1):
        smg.receive_data(data[i:i + 1])
        assert smg.next_event() is NEED_DATA
    smg.receive_data(data[-1:])
    assert smg.next_event().message_content == b"byte by byte"
    assert smg.next_event() is NEED_DATA
    assert smg.buffered == 0


def test_events_drains_everything_buffered():
    sp, smg = smg_link()
    sent = [Deliver(smg.next_sequence(), "8613000000000", "10655", b"%d" % i) for i in range(50)]
    stream = b"".join(smg.send(e) for e in sent)
    sp.receive_data(stream + stream[:7])
    assert sp.events() == sent
    assert sp.buffered == 7
    assert sp.events() == []


def test_events_returns_good_events_then_raises_the_error():
    sp, smg = smg_link()
    good = Deliver(seq(3, SMG_NODE), "8613000000000", "10655", b"a")
    unknown = bytes.fromhex("00000014" "00000009") + bytes(12)     # QueryRoute: not ours
    sp.receive_data(encode(good) + unknown + encode(good))
    assert sp.events() == [good]
    with pytest.raises(SgipError) as info:
        sp.events()
    assert info.value.command_id == 9 and not info.value.fatal
    assert sp.events() == [good]


@pytest.mark.parametrize("total", [0, 19, 4097, 0xFFFFFFFF])
def test_lying_message_length_is_fatal(total):
    sp, smg = sp_link()
    smg.receive_data(total.to_bytes(4, "big") + bytes.fromhex("00000003") + bytes(12))
    with pytest.raises(SgipError) as info:
        smg.next_event()
    assert info.value.fatal and info.value.command_id == 3
    assert smg.state is SessionState.ERROR
    with pytest.raises(SgipError):                 # and it stays broken
        smg.next_event()


def test_eof_inside_a_pdu_is_fatal():
    sp, smg = sp_link()
    data = sp.send(Submit(seq(2), "10655", ("8613000000000",), b"cut"))
    smg.receive_data(data[:-1])
    assert smg.next_event() is NEED_DATA
    smg.receive_data(b"")
    with pytest.raises(SgipError) as info:
        smg.next_event()
    assert info.value.fatal


def test_eof_inside_a_header_is_fatal_and_clean_eof_closes():
    conn = Connection("sp")
    conn.receive_data(b"\0\0\0")
    conn.receive_data(b"")
    with pytest.raises(SgipError):
        conn.next_event()
    conn = Connection("sp")
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED
    assert conn.state is SessionState.CLOSED
    with pytest.raises(RuntimeError):
        conn.receive_data(b"late")


def test_max_pdu_is_configurable():
    sp, smg = sp_link()
    smg.max_pdu = 100
    smg.receive_data(sp.send(Submit(seq(2), "10655", ("8613000000000",) * 3, b"x")))
    with pytest.raises(SgipError, match="outside"):
        smg.next_event()


def test_constructor_checks_arguments():
    with pytest.raises(ValueError):
        Connection("client")
    with pytest.raises(ValueError):
        Connection("sp", max_pdu=19)
    with pytest.raises(ValueError):
        Connection("sp", version=0x13)
    with pytest.raises(ValueError):
        Connection("sp", node_id=-1)
