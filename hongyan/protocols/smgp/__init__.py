"""SMGP 3.0, China Telecom's SP <-> SMS gateway protocol, as a sans-I/O codec.

Modelled on h11: bytes in, events out; no sockets, no asyncio, no timers.

- ``events``: one frozen dataclass per PDU (``Submit``, ``Deliver``, ...).
- ``wire``: ``encode(event) -> bytes`` and ``decode(pdu) -> event`` for one
  PDU; the login authenticators; the 10-octet BCD MsgID; the status report
  text inside a Deliver.
- ``tlv``: the optional Tag-Length-Value fields after Submit and Deliver.
- ``connection``: ``Connection`` frames a byte stream and enforces the
  session state table in ``state``.
- ``constants``: request ids, versions, status codes and field values.
"""
from . import tlv
from .connection import CLOSED, NEED_DATA, Connection
from .constants import (
    DEFAULT_MAX_PDU, HEADER_LENGTH, MSG_ID_LENGTH, V30, LoginMode, MsgFormat, MsgType,
    NeedReport, RequestId, Status, Version,
)
from .errors import SmgpError, SmgpProtocolError
from .events import (
    ActiveTest, ActiveTestResp, Deliver, DeliverResp, Event, Exit, ExitResp, Login, LoginResp,
    Query, QueryResp, StatusReport, Submit, SubmitResp,
)
from .state import SessionState
from .tlv import Tag, Tlv
from .wire import (
    MsgIdGenerator, MsgIdParts, authenticator_client, authenticator_server, decode,
    decode_report, encode, encode_report, msg_id_from_str, msg_id_to_str, pack_msg_id,
    timestamp_now, unpack_msg_id, verify_login,
)

__all__ = [
    "ActiveTest", "ActiveTestResp", "CLOSED", "Connection", "DEFAULT_MAX_PDU", "Deliver",
    "DeliverResp", "Event", "Exit", "ExitResp", "HEADER_LENGTH", "Login", "LoginMode",
    "LoginResp", "MSG_ID_LENGTH", "MsgFormat", "MsgIdGenerator", "MsgIdParts", "MsgType",
    "NEED_DATA", "NeedReport", "Query", "QueryResp", "RequestId", "SessionState",
    "SmgpError", "SmgpProtocolError", "Status", "StatusReport", "Submit", "SubmitResp",
    "Tag", "Tlv", "V30", "Version", "authenticator_client", "authenticator_server",
    "decode", "decode_report", "encode", "encode_report", "msg_id_from_str",
    "msg_id_to_str", "pack_msg_id", "timestamp_now", "tlv", "unpack_msg_id", "verify_login",
]
