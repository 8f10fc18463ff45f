"""Which PDUs each side may send in each session state, as one table.

A CMPP session runs over one TCP connection. The client is the SP; the
server is the gateway (ISMG). The client logs in with CONNECT; a
CONNECT_RESP with status 0 binds the session, any other status leaves it
unbound. While bound the client submits MT messages (SUBMIT), asks for
statistics (QUERY) and withdraws messages (CANCEL); the server delivers MO
messages and status reports (DELIVER); either side sends keep-alives
(ACTIVE_TEST). Either side ends the session with TERMINATE; once the
TERMINATE_RESP is through it is closed. Every request is answered with its
response carrying the same Sequence_Id.

Both ends walk the same states, because whatever one side sends the other
receives. So the table lists, per state, what the client may send and what
the server may send; "server receives" is "client sends" and vice versa.

While CLOSING only answers (to requests sent before the TERMINATE) and the
TERMINATE exchange itself are allowed; a crossing TERMINATE from the other
side is accepted too.
"""
from __future__ import annotations

from enum import Enum

from .errors import CmppProtocolError
from .events import (
    ActiveTest, ActiveTestResp, Cancel, CancelResp, Connect, ConnectResp, Deliver,
    DeliverResp, Query, QueryResp, Submit, SubmitResp, Terminate, TerminateResp,
)

CLIENT = "client"   # the SP
SERVER = "server"   # the gateway (ISMG)
SEND = "send"
RECEIVE = "receive"


class SessionState(Enum):
    UNBOUND = "UNBOUND"         # TCP is up, nobody has logged in
    CONNECTING = "CONNECTING"   # CONNECT sent, waiting for CONNECT_RESP
    BOUND = "BOUND"             # logged in: messages flow
    CLOSING = "CLOSING"         # TERMINATE sent, waiting for TERMINATE_RESP
    CLOSED = "CLOSED"           # TERMINATE_RESP exchanged, or the peer closed TCP
    ERROR = "ERROR"             # the byte stream could not be framed; close the socket


UNBOUND = SessionState.UNBOUND
CONNECTING = SessionState.CONNECTING
BOUND = SessionState.BOUND
CLOSING = SessionState.CLOSING
CLOSED = SessionState.CLOSED
ERROR = SessionState.ERROR

# A CONNECT_RESP moves the session to different states depending on its
# status, so it is looked up under one of these keys instead of its type.
CONNECT_ACCEPTED = "ConnectResp(status=0)"
CONNECT_REFUSED = "ConnectResp(status!=0)"

_CLIENT_SENDS: dict[SessionState, dict[object, SessionState]] = {
    UNBOUND: {Connect: CONNECTING},
    CONNECTING: {},
    BOUND: {
        Submit: BOUND, Query: BOUND, Cancel: BOUND, ActiveTest: BOUND,
        DeliverResp: BOUND, ActiveTestResp: BOUND,
        Terminate: CLOSING, TerminateResp: CLOSED,
    },
    CLOSING: {
        DeliverResp: CLOSING, ActiveTestResp: CLOSING,
        Terminate: CLOSING, TerminateResp: CLOSED,
    },
    CLOSED: {},
    ERROR: {},
}

_SERVER_SENDS: dict[SessionState, dict[object, SessionState]] = {
    UNBOUND: {},
    CONNECTING: {CONNECT_ACCEPTED: BOUND, CONNECT_REFUSED: UNBOUND},
    BOUND: {
        Deliver: BOUND, ActiveTest: BOUND,
        SubmitResp: BOUND, QueryResp: BOUND, CancelResp: BOUND, ActiveTestResp: BOUND,
        Terminate: CLOSING, TerminateResp: CLOSED,
    },
    CLOSING: {
        SubmitResp: CLOSING, QueryResp: CLOSING, CancelResp: CLOSING, ActiveTestResp: CLOSING,
        Terminate: CLOSING, TerminateResp: CLOSED,
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

_CONNECT_OUTCOME = {True: CONNECT_ACCEPTED, False: CONNECT_REFUSED}


def _key(event: object) -> object:
    cls = type(event)
    return _CONNECT_OUTCOME[event.status == 0] if cls is ConnectResp else cls


def next_state(role: str, direction: str, state: SessionState, event: object) -> SessionState:
    """The state after ``role`` sends or receives ``event`` in ``state``.

    Raises :class:`CmppProtocolError` naming the state and the event when the
    table does not allow it.
    """
    try:
        return TRANSITIONS[role, direction][state][_key(event)]
    except KeyError:
        pass
    verb = "send" if direction == SEND else "receive"
    raise CmppProtocolError(
        f"the {role} may not {verb} {type(event).__name__} in state {state.value}",
        state=state, event=event)
