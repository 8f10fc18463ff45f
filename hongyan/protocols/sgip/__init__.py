"""SGIP 1.2, China Unicom's SP <-> SMS gateway protocol, as a sans-I/O codec.

Bytes in, events out; no sockets, no asyncio, no timers.

- ``events``: one frozen dataclass per PDU (``Submit``, ``Deliver``, ...) and
  the 12-octet ``SequenceNumber`` triple every header carries.
- ``wire``: ``encode(event) -> bytes`` and ``decode(pdu) -> event`` for one PDU.
- ``connection``: ``Connection`` frames a byte stream and enforces the
  session tables in ``state``; ``SequenceGenerator`` makes unique triples.
- ``constants``: command ids, login types, result and report codes.

SGIP links carry requests one way: the SP connects to submit, the gateway
connects back to deliver MO messages and status reports. ``state`` says who
may send what on each kind of link.
"""
from .connection import CLOSED, NEED_DATA, Connection, SequenceGenerator, timestamp
from .constants import (
    DEFAULT_MAX_PDU, HEADER_LENGTH, MAX_USER_COUNT, AgentFlag, CommandId, FeeType, LoginType,
    MessageCoding, MoRelatedFlag, ReportFlag, ReportState, ReportType, Result, UserCondition,
)
from .errors import SgipError, SgipProtocolError
from .events import (
    Bind, BindResp, Deliver, DeliverResp, Event, Report, ReportResp, SequenceNumber, Submit,
    SubmitResp, Trace, TraceResp, TraceResult, Unbind, UnbindResp, UserRpt, UserRptResp,
)
from .state import SMG, SMG_LINK, SP, SP_LINK, TEST_LINK, SessionState
from .wire import V12, decode, encode

__all__ = [
    "AgentFlag", "Bind", "BindResp", "CLOSED", "CommandId", "DEFAULT_MAX_PDU", "Deliver",
    "DeliverResp", "Connection", "Event", "FeeType", "HEADER_LENGTH", "LoginType",
    "MAX_USER_COUNT", "MessageCoding", "MoRelatedFlag", "NEED_DATA", "Report", "ReportFlag",
    "ReportResp", "ReportState", "ReportType", "Result", "SMG", "SMG_LINK", "SP", "SP_LINK",
    "SequenceGenerator", "SequenceNumber", "SessionState", "SgipError", "SgipProtocolError",
    "Submit", "SubmitResp", "TEST_LINK", "Trace", "TraceResp", "TraceResult", "Unbind",
    "UnbindResp", "UserCondition", "UserRpt", "UserRptResp", "V12", "decode", "encode", "timestamp",
]
