"""SMPP 3.4, the SMS Forum's ESME <-> SMSC protocol, as a sans-I/O codec.

Modelled on h11: bytes in, events out; no sockets, no asyncio, no timers.

- ``events``: one frozen dataclass per PDU (``SubmitSm``, ``DeliverSm``, ...).
- ``wire``: ``encode(event) -> bytes`` and ``decode(pdu) -> event`` for one
  PDU, and the delivery-receipt text (``parse_receipt``, ``format_receipt``).
- ``tlv``: the optional-parameter section (``Tlv``, ``Tag``).
- ``connection``: ``Connection`` frames a byte stream and enforces the
  session state table in ``state``.
- ``constants``: command ids, command_status values and field codes.
"""
from .connection import CLOSED, NEED_DATA, Connection
from .constants import (
    DEFAULT_MAX_PDU, ESM_MESSAGE_TYPE_MASK, ESM_UDHI, HEADER_LENGTH, INTERFACE_VERSION,
    CommandId, CommandStatus, DestFlag, EsmClass, MessageState, Npi, Ton,
)
from .errors import SmppError, SmppProtocolError
from .events import (
    AlertNotification, BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp,
    BindTransmitter, BindTransmitterResp, CancelSm, CancelSmResp, DataSm, DataSmResp,
    DeliverSm, DeliverSmResp, DistributionList, EnquireLink, EnquireLinkResp, Event,
    GenericNack, Outbind, QuerySm, QuerySmResp, Receipt, ReplaceSm, ReplaceSmResp, SmeAddress,
    SubmitMulti, SubmitMultiResp, SubmitSm, SubmitSmResp, Unbind, UnbindResp, UnsuccessSme,
    is_receipt,
)
from .state import ESME, SMSC, SessionState
from .tlv import Tag, Tlv, find as find_tlv
from .wire import decode, encode, format_receipt, parse_receipt


__all__ = [
    "AlertNotification", "BindReceiver", "BindReceiverResp", "BindTransceiver",
    "BindTransceiverResp", "BindTransmitter", "BindTransmitterResp", "CLOSED", "CancelSm",
    "CancelSmResp", "CommandId", "CommandStatus", "Connection", "DEFAULT_MAX_PDU", "DataSm",
    "DataSmResp", "DeliverSm", "DeliverSmResp", "DestFlag", "DistributionList", "ESME",
    "ESM_MESSAGE_TYPE_MASK", "ESM_UDHI", "EnquireLink", "EnquireLinkResp", "EsmClass", "Event",
    "GenericNack", "HEADER_LENGTH", "INTERFACE_VERSION", "MessageState", "NEED_DATA", "Npi",
    "Outbind", "QuerySm", "QuerySmResp", "Receipt", "ReplaceSm", "ReplaceSmResp", "SMSC",
    "SessionState", "SmeAddress", "SmppError", "SmppProtocolError", "SubmitMulti",
    "SubmitMultiResp", "SubmitSm", "SubmitSmResp", "Tag", "Tlv", "Ton", "Unbind", "UnbindResp",
    "UnsuccessSme", "decode", "encode", "find_tlv", "format_receipt", "is_receipt",
    "parse_receipt",
]
