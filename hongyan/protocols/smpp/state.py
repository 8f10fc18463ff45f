"""Which PDUs each side may send in each session state, as one table.

SMPP 3.4 section 2.3 defines the session states OPEN (connected, not
bound), BOUND_TX, BOUND_RX, BOUND_TRX and CLOSED; section 2.4 says which
PDUs each bind type permits in each direction. The ESME binds with one of
the three bind requests; the matching bind_*_resp with command_status 0
binds the session, any other status (or a generic_nack) leaves it OPEN.
An SMSC may instead open the connection and send outbind, after which the
ESME binds as usual. Either side ends with unbind; once the unbind_resp is
through the session is CLOSED.

Both ends walk the same states because whatever one side sends the other
receives, so the table lists, per state, what the ESME may send and what the
SMSC may send; "SMSC receives" is "ESME sends" and vice versa. Two states
are added to the specification's: BINDING_* (bind sent, answer pending) and
UNBINDING (unbind sent, answer pending), in which only answers to earlier
requests, a crossing unbind and the unbind_resp itself are allowed.
"""
from __future__ import annotations

from enum import Enum

from .errors import SmppProtocolError
from .events import (
    AlertNotification, BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp,
    BindTransmitter, BindTransmitterResp, CancelSm, CancelSmResp, DataSm, DataSmResp,
    DeliverSm, DeliverSmResp, EnquireLink, EnquireLinkResp, GenericNack, Outbind, QuerySm,
    QuerySmResp, ReplaceSm, ReplaceSmResp, SubmitMulti, SubmitMultiResp, SubmitSm,
    SubmitSmResp, Unbind, UnbindResp,
)

ESME = "esme"   # the application: this platform when it talks to a carrier
SMSC = "smsc"   # the message centre: this platform when carriers' clients bind to it
SEND = "send"
RECEIVE = "receive"


class SessionState(Enum):
    OPEN = "OPEN"                   # TCP is up, not bound
    BINDING_TX = "BINDING_TX"       # bind_transmitter sent, waiting for its resp
    BINDING_RX = "BINDING_RX"       # bind_receiver sent
    BINDING_TRX = "BINDING_TRX"     # bind_transceiver sent
    BOUND_TX = "BOUND_TX"           # ESME may submit; SMSC delivers nothing
    BOUND_RX = "BOUND_RX"           # SMSC may deliver; ESME submits nothing
    BOUND_TRX = "BOUND_TRX"         # both
    UNBINDING = "UNBINDING"         # unbind sent, waiting for unbind_resp
    CLOSED = "CLOSED"               # unbind_resp exchanged, or the peer closed TCP
    ERROR = "ERROR"                 # the byte stream could not be framed; close the socket


OPEN = SessionState.OPEN
BINDING_TX = SessionState.BINDING_TX
BINDING_RX = SessionState.BINDING_RX
BINDING_TRX = SessionState.BINDING_TRX
BOUND_TX = SessionState.BOUND_TX
BOUND_RX = SessionState.BOUND_RX
BOUND_TRX = SessionState.BOUND_TRX
UNBINDING = SessionState.UNBINDING
CLOSED = SessionState.CLOSED
ERROR = SessionState.ERROR

BOUND_STATES = frozenset({BOUND_TX, BOUND_RX, BOUND_TRX})

# A bind_*_resp moves the session to different states depending on its
# command_status, so it is looked up under (type, accepted) instead of its type.
_BIND_RESPS = (BindTransmitterResp, BindReceiverResp, BindTransceiverResp)


def accepted(cls: type) -> tuple[type, bool]:
    return (cls, True)


def refused(cls: type) -> tuple[type, bool]:
    return (cls, False)


def _same(state: SessionState, *classes: type) -> dict[object, SessionState]:
    return {cls: state for cls in classes}


# Keep-alive and unbind work the same way in every bound state (4.2, 4.3, 4.11).
def _session(state: SessionState) -> dict[object, SessionState]:
    return {EnquireLink: state, EnquireLinkResp: state, GenericNack: state,
            Unbind: UNBINDING, UnbindResp: CLOSED}


# 2.4: requests the ESME originates when bound as a transmitter.
_ESME_TX_REQUESTS = (SubmitSm, SubmitMulti, DataSm, QuerySm, CancelSm, ReplaceSm)
_SMSC_TX_RESPONSES = (SubmitSmResp, SubmitMultiResp, DataSmResp, QuerySmResp, CancelSmResp,
                      ReplaceSmResp)
# 2.4: requests the SMSC originates to a receiver.
_SMSC_RX_REQUESTS = (DeliverSm, DataSm, AlertNotification)
_ESME_RX_RESPONSES = (DeliverSmResp, DataSmResp)

_ESME_SENDS: dict[SessionState, dict[object, SessionState]] = {
    OPEN: {BindTransmitter: BINDING_TX, BindReceiver: BINDING_RX,
           BindTransceiver: BINDING_TRX, EnquireLink: OPEN, EnquireLinkResp: OPEN,
           GenericNack: OPEN},
    BINDING_TX: {},
    BINDING_RX: {},
    BINDING_TRX: {},
    BOUND_TX: {**_same(BOUND_TX, *_ESME_TX_REQUESTS), **_session(BOUND_TX)},
    BOUND_RX: {**_same(BOUND_RX, *_ESME_RX_RESPONSES), **_session(BOUND_RX)},
    BOUND_TRX: {**_same(BOUND_TRX, *_ESME_TX_REQUESTS, *_ESME_RX_RESPONSES),
                **_session(BOUND_TRX)},
    UNBINDING: {**_same(UNBINDING, *_ESME_RX_RESPONSES, EnquireLinkResp, GenericNack, Unbind),
                UnbindResp: CLOSED},
    CLOSED: {},
    ERROR: {},
}

_SMSC_SENDS: dict[SessionState, dict[object, SessionState]] = {
    OPEN: {Outbind: OPEN, EnquireLink: OPEN, EnquireLinkResp: OPEN, GenericNack: OPEN},
    BINDING_TX: {accepted(BindTransmitterResp): BOUND_TX,
                 refused(BindTransmitterResp): OPEN, GenericNack: OPEN},
    BINDING_RX: {accepted(BindReceiverResp): BOUND_RX,
                 refused(BindReceiverResp): OPEN, GenericNack: OPEN},
    BINDING_TRX: {accepted(BindTransceiverResp): BOUND_TRX,
                  refused(BindTransceiverResp): OPEN, GenericNack: OPEN},
    BOUND_TX: {**_same(BOUND_TX, *_SMSC_TX_RESPONSES), **_session(BOUND_TX)},
    BOUND_RX: {**_same(BOUND_RX, *_SMSC_RX_REQUESTS), **_session(BOUND_RX)},
    BOUND_TRX: {**_same(BOUND_TRX, *_SMSC_TX_RESPONSES, *_SMSC_RX_REQUESTS),
                **_session(BOUND_TRX)},
    UNBINDING: {**_same(UNBINDING, *_SMSC_TX_RESPONSES, EnquireLinkResp, GenericNack, Unbind),
                UnbindResp: CLOSED},
    CLOSED: {},
    ERROR: {},
}

TRANSITIONS: dict[tuple[str, str], dict[SessionState, dict[object, SessionState]]] = {
    (ESME, SEND): _ESME_SENDS,
    (ESME, RECEIVE): _SMSC_SENDS,
    (SMSC, SEND): _SMSC_SENDS,
    (SMSC, RECEIVE): _ESME_SENDS,
}


def _key(event: object) -> object:
    cls = type(event)
    if cls in _BIND_RESPS:
        return (cls, event.command_status == 0)
    return cls


def next_state(role: str, direction: str, state: SessionState, event: object) -> SessionState:
    """The state after ``role`` sends or receives ``event`` in ``state``.

    Raises :class:`SmppProtocolError` (status ESME_RINVBNDSTS) naming the
    state and the event when the table does not allow it.
    """
    try:
        return TRANSITIONS[role, direction][state][_key(event)]
    except KeyError:
        pass
    verb = "send" if direction == SEND else "receive"
    raise SmppProtocolError(
        f"the {role} may not {verb} {type(event).__name__} in state {state.value}",
        state=state, event=event)
