"""CMPP 2.0 and 3.0, China Mobile's SP <-> SMS gateway protocol, as a sans-I/O codec.

``wire.encode``/``decode`` and ``Connection`` take ``version`` (0x20 or 0x30);
a server that speaks both reads the CONNECT first and picks the session's
version with ``negotiate_version``.

Modelled on h11: bytes in, events out; no sockets, no asyncio, no timers.

- ``events``: one frozen dataclass per PDU (``Submit``, ``Deliver``, ...).
- ``wire``: ``encode(event) -> bytes`` and ``decode(pdu) -> event`` for one PDU.
- ``connection``: ``Connection`` frames a byte stream and enforces the
  session state table in ``state``.
- ``auth``: the MD5 login authenticators; ``msgid``: the 64-bit Msg_Id.
- ``constants``: command ids, versions, status and result codes.
"""
from . import msgid
from .auth import authenticator_ismg, authenticator_source, timestamp_now, verify_connect
from .connection import CLOSED, NEED_DATA, Connection
from .constants import (
    DEFAULT_MAX_PDU, HEADER_LENGTH, V20, V30, CommandId, ConnectStatus, MsgFmt, SubmitResult,
    Version,
)
from .errors import CmppError, CmppProtocolError
from .events import (
    ActiveTest, ActiveTestResp, Cancel, CancelResp, Connect, ConnectResp, Deliver,
    DeliverResp, Event, Query, QueryResp, StatusReport, Submit, SubmitResp, Terminate,
    TerminateResp,
)
from .msgid import MsgIdGenerator, MsgIdParts
from .state import SessionState
from .wire import SUPPORTED_VERSIONS, decode, decode_report, encode, encode_report, negotiate_version

__all__ = [
    "ActiveTest", "ActiveTestResp", "CLOSED", "Cancel", "CancelResp", "CmppError",
    "CmppProtocolError", "CommandId", "Connect", "ConnectResp", "ConnectStatus", "Connection",
    "DEFAULT_MAX_PDU", "Deliver", "DeliverResp", "Event", "HEADER_LENGTH", "MsgFmt",
    "MsgIdGenerator", "MsgIdParts", "NEED_DATA", "Query", "QueryResp", "SessionState",
    "StatusReport", "Submit", "SubmitResp", "SubmitResult", "Terminate", "TerminateResp",
    "V20", "V30", "Version", "authenticator_ismg", "authenticator_source", "decode",
    "decode_report", "encode", "encode_report", "msgid", "negotiate_version", "SUPPORTED_VERSIONS",
    "timestamp_now", "verify_connect",
]
