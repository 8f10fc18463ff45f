"""Which PDUs each side may send in each session state, as one table.

An SMGP session runs over one TCP connection. The client is the SP; the
server is the gateway (SMGW). The client logs in with Login; a Login_Resp
with status 0 binds the session, any other status leaves it unbound. While
bound the client submits MT messages (Submit) and asks for statistics
(Query); the server delivers MO messages and status reports (Deliver);
either side sends keep-alives (Active_Test). Either side ends the session
with Exit; once the Exit_Resp is through it is closed. Every request is
answered with its response carrying the same SequenceID (SMGP V3.0 chapter 4.2).

LoginMode (send, receive, transmit) is not enforced here: gateways differ
in how strictly they apply it, and they answer a misdirected PDU with an
error status, which the caller sees as an ordinary response.

Both ends walk the same states, because whatever one side sends the other
receives. So the table lists, per state, what the client may send and what
the server may send; "server receives" is "client sends" and vice versa.

While CLOSING only answers (to requests sent before the Exit) and the Exit
exchange itself are allowed; a crossing Exit from the other side is
accepted too.
"""
from __future__ import annotations

from enum import Enum

from .errors import SmgpProtocolError
from .events import (
    ActiveTest, ActiveTestResp, Deliver, DeliverResp, Exit, ExitResp, Login, LoginResp, Query,
    QueryResp, Submit, SubmitResp,
)

CLIENT = "client"   # the SP
SERVER = "server"   # the gateway (SMGW)
SEND = "send"
RECEIVE = "receive"


class SessionState(Enum):
    UNBOUND = "UNBOUND"         # TCP is up, nobody has logged in
    CONNECTING = "CONNECTING"   # Login sent, waiting for Login_Resp
    BOUND = "BOUND"             # logged in: messages flow
    CLOSING = "CLOSING"         # Exit sent, waiting for Exit_Resp
    CLOSED = "CLOSED"           # Exit_Resp exchanged, or the peer closed TCP
    ERROR = "ERROR"             # the byte stream could not be framed; close the socket


UNBOUND = SessionState.UNBOUND
CONNECTING = SessionState.CONNECTING
BOUND = SessionState.BOUND
CLOSING = SessionState.CLOSING
CLOSED = SessionState.CLOSED
ERROR = SessionState.ERROR

# A Login_Resp moves the session to different states depending on its
# status, so it is looked up under one of these keys instead of its type.
LOGIN_ACCEPTED = "LoginResp(status=0)"
LOGIN_REFUSED = "LoginResp(status!=0)"

_CLIENT_SENDS: dict[SessionState, dict[object, SessionState]] = {
    UNBOUND: {Login: CONNECTING},
    CONNECTING: {},
    BOUND: {
        Submit: BOUND, Query: BOUND, ActiveTest: BOUND,
        DeliverResp: BOUND, ActiveTestResp: BOUND,
        Exit: CLOSING, ExitResp: CLOSED,
    },
    CLOSING: {
        DeliverResp: CLOSING, ActiveTestResp: CLOSING,
        Exit: CLOSING, ExitResp: CLOSED,
    },
    CLOSED: {},
    ERROR: {},
}

_SERVER_SENDS: dict[SessionState, dict[object, SessionState]] = {
    UNBOUND: {},
    CONNECTING: {LOGIN_ACCEPTED: BOUND, LOGIN_REFUSED: UNBOUND},
    BOUND: {
        Deliver: BOUND, ActiveTest: BOUND,
        SubmitResp: BOUND, QueryResp: BOUND, ActiveTestResp: BOUND,
        Exit: CLOSING, ExitResp: CLOSED,
    },
    CLOSING: {
        SubmitResp: CLOSING, QueryResp: CLOSING, ActiveTestResp: CLOSING,
        Exit: CLOSING, ExitResp: CLOSED,
    },
    CLOSED: {},
    ERROR: {},
}

TRANSITIONS: dict[tuple[str, str], dict[SessionState, dict[object, SessionState]]] = {
    (CLIENT, SEND): _CLIENT_SENDS,
    (CLIENT, RECEIVE): _SERVER_SENDS,
    (SERVER, SEND): _SERVER_SENDS,
    (SERVER, RECEIVE): _CLIENT_SENDS,
}

_LOGIN_OUTCOME = {True: LOGIN_ACCEPTED, False: LOGIN_REFUSED}


def _key(event: object) -> object:
    cls = type(event)
    return _LOGIN_OUTCOME[event.status == 0] if cls is LoginResp else cls


def next_state(role: str, direction: str, state: SessionState, event: object) -> SessionState:
    """The state after ``role`` sends or receives ``event`` in ``state``.

    Raises :class:`SmgpProtocolError` naming the state and the event when the
    table does not allow it.
    """
    try:
        return TRANSITIONS[role, direction][state][_key(event)]
    except KeyError:
        pass
    verb = "send" if direction == SEND else "receive"
    raise SmgpProtocolError(
        f"the {role} may not {verb} {type(event).__name__} in state {state.value}",
        state=state, event=event)
