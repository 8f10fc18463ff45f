"""Which PDUs each side may send in each session state, as tables.

SGIP links are one-way for requests (SGIP 1.2, communication modes and
Bind). Whoever opens the TCP connection sends Bind and then the requests;
the other side only answers:

- On an **SP-initiated** link (Bind with Login Type 1) the SP sends Submit
  and Trace; the SMG answers with Submit_Resp and Trace_Resp.
- On an **SMG-initiated** link (Bind with Login Type 2) the SMG sends
  Deliver (MO messages), Report (status reports) and UserRpt; the SP answers
  with Deliver_Resp, Report_Resp and UserRpt_Resp.
- On a **test** link (Bind with Login Type 11, opened by the SP) the SP only
  traces messages: Trace, answered by Trace_Resp.

Other login types (gateway to gateway, gateway to routing server) are
outside the SP <-> SMG interface: such a Bind is refused as a protocol
error, so the receiver can answer Bind_Resp with Result 4 (bad login type).

Either side may end a bound session with Unbind; once the Unbind_Resp is
through the session is closed. A Bind_Resp with Result 0 binds the session;
any other Result leaves it unbound (the link kind is forgotten, so a new
Bind may open either kind). While UNBINDING only answers to requests sent
before the Unbind, and the Unbind exchange itself, are allowed.

Both ends walk the same states, because whatever one side sends the other
receives. So the table lists what each role may send; "the SMG receives" is
"the SP sends" and vice versa.
"""
from __future__ import annotations

from enum import Enum

from .constants import LoginType
from .errors import SgipProtocolError
from .events import (
    Bind, BindResp, Deliver, DeliverResp, Report, ReportResp, Submit, SubmitResp, Trace,
    TraceResp, Unbind, UnbindResp, UserRpt, UserRptResp,
)

SP = "sp"       # the service provider (us, as a customer of the carrier)
SMG = "smg"     # the carrier's short message gateway
SEND = "send"
RECEIVE = "receive"

SP_LINK = "SP->SMG"     # the SP connected and bound with Login Type 1
SMG_LINK = "SMG->SP"    # the SMG connected and bound with Login Type 2
TEST_LINK = "SP->SMG test"  # the SP connected with Login Type 11 to trace messages


class SessionState(Enum):
    UNBOUND = "UNBOUND"         # TCP is up, nobody has logged in
    BINDING = "BINDING"         # Bind sent, waiting for Bind_Resp
    BOUND = "BOUND"             # logged in: requests flow from the binding side
    UNBINDING = "UNBINDING"     # Unbind sent, waiting for Unbind_Resp
    CLOSED = "CLOSED"           # Unbind_Resp exchanged, or the peer closed TCP
    ERROR = "ERROR"             # the byte stream could not be framed; close the socket


UNBOUND = SessionState.UNBOUND
BINDING = SessionState.BINDING
BOUND = SessionState.BOUND
UNBINDING = SessionState.UNBINDING
CLOSED = SessionState.CLOSED
ERROR = SessionState.ERROR

# A Bind and a Bind_Resp move the session differently depending on a field,
# so they are looked up under these keys instead of their type.
BIND_SP_TO_SMG = "Bind(login_type=1)"
BIND_SMG_TO_SP = "Bind(login_type=2)"
BIND_TEST = "Bind(login_type=11)"
BIND_OTHER = "Bind(other login_type)"
BIND_ACCEPTED = "BindResp(result=0)"
BIND_REFUSED = "BindResp(result!=0)"

# The link a successful Bind opens.
LINK_OF_BIND = {BIND_SP_TO_SMG: SP_LINK, BIND_SMG_TO_SP: SMG_LINK, BIND_TEST: TEST_LINK}

# The requests and answers of a bound link, by who sends them.
_REQUESTS = {SP_LINK: (Submit, Trace), SMG_LINK: (Deliver, Report, UserRpt),
             TEST_LINK: (Trace,)}
_ANSWERS = {SP_LINK: (SubmitResp, TraceResp), SMG_LINK: (DeliverResp, ReportResp, UserRptResp),
            TEST_LINK: (TraceResp,)}

Table = dict[SessionState, dict[object, SessionState]]


def _initiator(link: str) -> Table:
    """What the side that sent the Bind may send on ``link``."""
    return {
        BINDING: {},
        BOUND: {**{cls: BOUND for cls in _REQUESTS[link]},
                Unbind: UNBINDING, UnbindResp: CLOSED},
        UNBINDING: {Unbind: UNBINDING, UnbindResp: CLOSED},
        CLOSED: {},
        ERROR: {},
    }


def _acceptor(link: str) -> Table:
    """What the side that accepted the connection may send on ``link``."""
    return {
        BINDING: {BIND_ACCEPTED: BOUND, BIND_REFUSED: UNBOUND},
        BOUND: {**{cls: BOUND for cls in _ANSWERS[link]},
                Unbind: UNBINDING, UnbindResp: CLOSED},
        UNBINDING: {**{cls: UNBINDING for cls in _ANSWERS[link]},
                    Unbind: UNBINDING, UnbindResp: CLOSED},
        CLOSED: {},
        ERROR: {},
    }


# TRANSITIONS[link][sending role][state][event key] -> next state.
# ``None`` is the link before a Bind went through: the SP may open an
# SP-initiated or a test link, the SMG an SMG-initiated one.
TRANSITIONS: dict[str | None, dict[str, Table]] = {
    None: {
        SP: {UNBOUND: {BIND_SP_TO_SMG: BINDING, BIND_TEST: BINDING}, CLOSED: {}, ERROR: {}},
        SMG: {UNBOUND: {BIND_SMG_TO_SP: BINDING}, CLOSED: {}, ERROR: {}},
    },
    SP_LINK: {SP: _initiator(SP_LINK), SMG: _acceptor(SP_LINK)},
    SMG_LINK: {SMG: _initiator(SMG_LINK), SP: _acceptor(SMG_LINK)},
    TEST_LINK: {SP: _initiator(TEST_LINK), SMG: _acceptor(TEST_LINK)},
}

_PEER = {SP: SMG, SMG: SP}
_BIND_KEYS = {LoginType.SP_TO_SMG: BIND_SP_TO_SMG, LoginType.SMG_TO_SP: BIND_SMG_TO_SP,
              LoginType.TEST: BIND_TEST}
_BIND_OUTCOME = {True: BIND_ACCEPTED, False: BIND_REFUSED}


def key(event: object) -> object:
    """The table key of ``event``: its type, or a field-dependent key for Bind/BindResp."""
    cls = type(event)
    if cls is Bind:
        return _BIND_KEYS.get(event.login_type, BIND_OTHER)
    if cls is BindResp:
        return _BIND_OUTCOME[event.result == 0]
    return cls


def next_state(role: str, direction: str, link: str | None, state: SessionState,
               event: object) -> tuple[SessionState, str | None]:
    """The (state, link) after ``role`` sends or receives ``event``.

    Raises :class:`SgipProtocolError` naming the state, the link and the
    event when the table does not allow it.
    """
    sender = role if direction == SEND else _PEER[role]
    k = key(event)
    after = TRANSITIONS[link][sender].get(state, {}).get(k)
    if after is None:
        verb = "send" if direction == SEND else "receive"
        where = f"an {link} link" if link else "no bound link"
        raise SgipProtocolError(
            f"the {role.upper()} may not {verb} {type(event).__name__} in state "
            f"{state.value} on {where}", state=state, event=event)
    if link is None:
        link = LINK_OF_BIND.get(k)
    elif after is UNBOUND:
        link = None           # a refused Bind: the next Bind may open either kind
    return after, link
