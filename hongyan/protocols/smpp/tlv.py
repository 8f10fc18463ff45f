"""The optional-parameter (TLV) section of SMPP 3.4 bodies (section 3.3, 5.3).

Each TLV is a 2-octet tag, a 2-octet length and ``length`` octets of value,
big-endian. The tags named in section 5.3.2 are decoded to typed values:
``int`` for the Integer parameters, ``str`` for the C-Octet Strings and
``bytes`` for the Octet Strings. A tag not in the table (vendor tags
0x1400-0x3FFF, or tags of later versions) is kept as raw ``bytes`` so it
round-trips unchanged. Order and repeats are kept as they arrived.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from struct import Struct
from typing import NamedTuple

from .constants import CommandStatus
from .errors import SmppError

TLV_HEADER = Struct(">HH")
_U8, _U16, _U32 = Struct(">B"), Struct(">H"), Struct(">I")
_INTS = {1: _U8, 2: _U16, 4: _U32}


class Tag(IntEnum):
    """Optional parameter tags (section 5.3.2, table 5-18)."""
    DEST_ADDR_SUBUNIT = 0x0005          # 5.3.2.1: handset subunit to deliver to
    DEST_NETWORK_TYPE = 0x0006          # 5.3.2.3
    DEST_BEARER_TYPE = 0x0007           # 5.3.2.5
    DEST_TELEMATICS_ID = 0x0008         # 5.3.2.7
    SOURCE_ADDR_SUBUNIT = 0x000D        # 5.3.2.2
    SOURCE_NETWORK_TYPE = 0x000E        # 5.3.2.4
    SOURCE_BEARER_TYPE = 0x000F         # 5.3.2.6
    SOURCE_TELEMATICS_ID = 0x0010       # 5.3.2.8
    QOS_TIME_TO_LIVE = 0x0017           # 5.3.2.9: seconds the message may live
    PAYLOAD_TYPE = 0x0019               # 5.3.2.10: 0 WDP, 1 WCMP
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D  # 5.3.2.11: free text about a status
    RECEIPTED_MESSAGE_ID = 0x001E       # 5.3.2.12: the message a receipt is about
    MS_MSG_WAIT_FACILITIES = 0x0030     # 5.3.2.13: message-waiting indicator
    PRIVACY_INDICATOR = 0x0201          # 5.3.2.14
    SOURCE_SUBADDRESS = 0x0202          # 5.3.2.15
    DEST_SUBADDRESS = 0x0203            # 5.3.2.16
    USER_MESSAGE_REFERENCE = 0x0204     # 5.3.2.17: the ESME's own reference
    USER_RESPONSE_CODE = 0x0205         # 5.3.2.18
    SOURCE_PORT = 0x020A                # 5.3.2.20: application port (WAP, ...)
    DESTINATION_PORT = 0x020B           # 5.3.2.21
    SAR_MSG_REF_NUM = 0x020C            # 5.3.2.22: reference shared by a long message's parts
    LANGUAGE_INDICATOR = 0x020D         # 5.3.2.19
    SAR_TOTAL_SEGMENTS = 0x020E         # 5.3.2.23: number of parts
    SAR_SEGMENT_SEQNUM = 0x020F         # 5.3.2.24: this part, from 1
    SC_INTERFACE_VERSION = 0x0210       # 5.3.2.25: SMPP version of the SMSC (bind resp)
    CALLBACK_NUM_PRES_IND = 0x0302      # 5.3.2.37
    CALLBACK_NUM_ATAG = 0x0303          # 5.3.2.38
    NUMBER_OF_MESSAGES = 0x0304         # 5.3.2.39
    CALLBACK_NUM = 0x0381               # 5.3.2.36: a call-back number for the handset
    DPF_RESULT = 0x0420                 # 5.3.2.28
    SET_DPF = 0x0421                    # 5.3.2.29
    MS_AVAILABILITY_STATUS = 0x0422     # 5.3.2.30: in alert_notification
    NETWORK_ERROR_CODE = 0x0423         # 5.3.2.31: network type (1) + error code (2)
    MESSAGE_PAYLOAD = 0x0424            # 5.3.2.32: the message when above 254 octets
    DELIVERY_FAILURE_REASON = 0x0425    # 5.3.2.33
    MORE_MESSAGES_TO_SEND = 0x0426      # 5.3.2.34
    MESSAGE_STATE = 0x0427              # 5.3.2.35: final state, in a receipt
    USSD_SERVICE_OP = 0x0501            # 5.3.2.44
    DISPLAY_TIME = 0x1201               # 5.3.2.26
    SMS_SIGNAL = 0x1203                 # 5.3.2.40
    MS_VALIDITY = 0x1204                # 5.3.2.27
    ALERT_ON_MESSAGE_DELIVERY = 0x130C  # 5.3.2.41: no value
    ITS_REPLY_TYPE = 0x1380             # 5.3.2.42
    ITS_SESSION_INFO = 0x1383           # 5.3.2.43


# Value kinds of the table below.
INT = "int"          # unsigned big-endian integer of exactly ``size`` octets
CSTRING = "cstring"  # ASCII, NUL-terminated, at most ``size`` octets with the NUL
OCTETS = "octets"    # raw octets, ``low``..``size`` long
EMPTY = "empty"      # no value at all


class TagSpec(NamedTuple):
    kind: str
    size: int       # INT: width; CSTRING/OCTETS: maximum length
    low: int = 0    # OCTETS: minimum length


# Value type and length of each named tag, from the per-tag tables of 5.3.2.
TAG_SPECS: dict[int, TagSpec] = {
    Tag.DEST_ADDR_SUBUNIT: TagSpec(INT, 1),
    Tag.DEST_NETWORK_TYPE: TagSpec(INT, 1),
    Tag.DEST_BEARER_TYPE: TagSpec(INT, 1),
    Tag.DEST_TELEMATICS_ID: TagSpec(INT, 2),
    Tag.SOURCE_ADDR_SUBUNIT: TagSpec(INT, 1),
    Tag.SOURCE_NETWORK_TYPE: TagSpec(INT, 1),
    Tag.SOURCE_BEARER_TYPE: TagSpec(INT, 1),
    Tag.SOURCE_TELEMATICS_ID: TagSpec(INT, 2),
    Tag.QOS_TIME_TO_LIVE: TagSpec(INT, 4),
    Tag.PAYLOAD_TYPE: TagSpec(INT, 1),
    Tag.ADDITIONAL_STATUS_INFO_TEXT: TagSpec(CSTRING, 256),
    Tag.RECEIPTED_MESSAGE_ID: TagSpec(CSTRING, 65),
    Tag.MS_MSG_WAIT_FACILITIES: TagSpec(INT, 1),
    Tag.PRIVACY_INDICATOR: TagSpec(INT, 1),
    Tag.SOURCE_SUBADDRESS: TagSpec(OCTETS, 23, 2),
    Tag.DEST_SUBADDRESS: TagSpec(OCTETS, 23, 2),
    Tag.USER_MESSAGE_REFERENCE: TagSpec(INT, 2),
    Tag.USER_RESPONSE_CODE: TagSpec(INT, 1),
    Tag.SOURCE_PORT: TagSpec(INT, 2),
    Tag.DESTINATION_PORT: TagSpec(INT, 2),
    Tag.SAR_MSG_REF_NUM: TagSpec(INT, 2),
    Tag.LANGUAGE_INDICATOR: TagSpec(INT, 1),
    Tag.SAR_TOTAL_SEGMENTS: TagSpec(INT, 1),
    Tag.SAR_SEGMENT_SEQNUM: TagSpec(INT, 1),
    Tag.SC_INTERFACE_VERSION: TagSpec(INT, 1),
    Tag.CALLBACK_NUM_PRES_IND: TagSpec(INT, 1),
    Tag.CALLBACK_NUM_ATAG: TagSpec(OCTETS, 65),
    Tag.NUMBER_OF_MESSAGES: TagSpec(INT, 1),
    Tag.CALLBACK_NUM: TagSpec(OCTETS, 19, 4),
    Tag.DPF_RESULT: TagSpec(INT, 1),
    Tag.SET_DPF: TagSpec(INT, 1),
    Tag.MS_AVAILABILITY_STATUS: TagSpec(INT, 1),
    Tag.NETWORK_ERROR_CODE: TagSpec(OCTETS, 3, 3),
    Tag.MESSAGE_PAYLOAD: TagSpec(OCTETS, 0xFFFF),
    Tag.DELIVERY_FAILURE_REASON: TagSpec(INT, 1),
    Tag.MORE_MESSAGES_TO_SEND: TagSpec(INT, 1),
    Tag.MESSAGE_STATE: TagSpec(INT, 1),
    Tag.USSD_SERVICE_OP: TagSpec(OCTETS, 1, 1),
    Tag.DISPLAY_TIME: TagSpec(INT, 1),
    Tag.SMS_SIGNAL: TagSpec(INT, 2),
    Tag.MS_VALIDITY: TagSpec(INT, 1),
    Tag.ALERT_ON_MESSAGE_DELIVERY: TagSpec(EMPTY, 0),
    Tag.ITS_REPLY_TYPE: TagSpec(INT, 1),
    Tag.ITS_SESSION_INFO: TagSpec(OCTETS, 2, 2),
}

_RAW = TagSpec(OCTETS, 0xFFFF)   # how an unnamed tag is carried


@dataclass(frozen=True, slots=True)
class Tlv:
    """One optional parameter: ``value`` is int, str, bytes or None (EMPTY)."""
    tag: int
    value: int | str | bytes | None = None


def find(tlvs: tuple[Tlv, ...], tag: int, default=None):
    """The value of the first TLV with ``tag`` in ``tlvs``, else ``default``."""
    for t in tlvs:
        if t.tag == tag:
            return t.value
    return default


def _value_bytes(t: Tlv) -> bytes:
    spec = TAG_SPECS.get(t.tag, _RAW)
    value = t.value
    kind = spec.kind
    if kind == INT:
        if type(value) is not int and not isinstance(value, IntEnum):
            raise SmppError(f"TLV 0x{t.tag:04X} takes an int, not {type(value).__name__}")
        if not 0 <= value < 1 << (8 * spec.size):
            raise SmppError(f"TLV 0x{t.tag:04X} value {value} does not fit {spec.size} octets")
        return _INTS[spec.size].pack(value)
    if kind == CSTRING:
        if not isinstance(value, str):
            raise SmppError(f"TLV 0x{t.tag:04X} takes a str, not {type(value).__name__}")
        raw = value.encode("ascii") + b"\0"
        if b"\0" in raw[:-1]:
            raise SmppError(f"TLV 0x{t.tag:04X} contains a NUL")
        if len(raw) > spec.size:
            raise SmppError(f"TLV 0x{t.tag:04X} is {len(raw)} octets with its NUL; "
                            f"at most {spec.size}")
        return raw
    if kind == EMPTY:
        if value is not None and value != b"":
            raise SmppError(f"TLV 0x{t.tag:04X} carries no value")
        return b""
    if not isinstance(value, (bytes, bytearray)):
        raise SmppError(f"TLV 0x{t.tag:04X} takes bytes, not {type(value).__name__}")
    if not spec.low <= len(value) <= spec.size:
        raise SmppError(f"TLV 0x{t.tag:04X} is {len(value)} octets; "
                        f"{spec.low}..{spec.size} allowed")
    return bytes(value)


def encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    """The TLV section for ``tlvs``, in order."""
    if not tlvs:
        return b""
    parts = []
    for t in tlvs:
        if not isinstance(t, Tlv):
            raise SmppError(f"optional parameters must be Tlv values, not {type(t).__name__}")
        if not 0 <= t.tag <= 0xFFFF:
            raise SmppError(f"TLV tag {t.tag} does not fit 2 octets")
        value = _value_bytes(t)
        parts.append(TLV_HEADER.pack(t.tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def _bad(message: str, status: int) -> SmppError:
    return SmppError(message, status=status)


def _decode_value(tag: int, raw: bytes):
    spec = TAG_SPECS.get(tag)
    if spec is None:
        return raw
    kind = spec.kind
    n = len(raw)
    if kind == INT:
        if n != spec.size:
            raise _bad(f"TLV 0x{tag:04X} is {n} octets; it must be {spec.size}",
                       CommandStatus.ESME_RINVPARLEN)
        return int.from_bytes(raw, "big")
    if kind == CSTRING:
        if n > spec.size:
            raise _bad(f"TLV 0x{tag:04X} is {n} octets; at most {spec.size}",
                       CommandStatus.ESME_RINVPARLEN)
        # The terminating NUL is required by 3.3 but some SMSCs leave it out
        # of receipted_message_id; a value without it is read the same way.
        text = raw[:-1] if raw.endswith(b"\0") else raw
        if b"\0" in text:
            raise _bad(f"TLV 0x{tag:04X} has a NUL inside its text",
                       CommandStatus.ESME_RINVOPTPARAMVAL)
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            raise _bad(f"TLV 0x{tag:04X} is not ASCII",
                       CommandStatus.ESME_RINVOPTPARAMVAL) from None
    if kind == EMPTY:
        if n:
            raise _bad(f"TLV 0x{tag:04X} must be empty, got {n} octets",
                       CommandStatus.ESME_RINVPARLEN)
        return None
    if not spec.low <= n <= spec.size:
        raise _bad(f"TLV 0x{tag:04X} is {n} octets; {spec.low}..{spec.size} allowed",
                   CommandStatus.ESME_RINVPARLEN)
    return raw


def decode_tlvs(buf, offset: int, end: int) -> tuple[Tlv, ...]:
    """Every TLV in ``buf[offset:end]``; the section must end exactly at ``end``."""
    out = []
    p = offset
    while p < end:
        if end - p < TLV_HEADER.size:
            raise _bad(f"{end - p} stray octets where a TLV header was expected",
                       CommandStatus.ESME_RINVOPTPARSTREAM)
        tag, length = TLV_HEADER.unpack_from(buf, p)
        p += TLV_HEADER.size
        if length > end - p:
            raise _bad(f"TLV 0x{tag:04X} claims {length} octets; {end - p} remain",
                       CommandStatus.ESME_RINVOPTPARSTREAM)
        value = _decode_value(tag, bytes(buf[p:p + length]))
        p += length
        out.append(Tlv(Tag(tag) if tag in TAG_SPECS else tag, value))
    return tuple(out)
