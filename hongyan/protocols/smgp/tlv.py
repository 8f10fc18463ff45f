"""The optional TLV parameters that follow the fixed body of Submit and Deliver.

SMGP 3.0 appends optional fields as Tag (uint16), Length (uint16), Value
(Length octets), all big-endian (SMGP V3.0 section 6.3.1). The tags below are
the ones section 6.3 defines; each is either a one-octet integer or a short
ASCII octet string.

Values are kept as:

- ``int`` for a known integer tag whose Length is 1;
- ``str`` for a known string tag whose value is ASCII, fits the width the
  specification gives and has no NUL other than trailing padding (which is
  stripped: some gateways pad LinkID to its full 20 octets);
- ``bytes`` for everything else: unknown tags, and known tags whose value is
  not in the form above. Such values are re-sent exactly as received.

So a decoded TLV can always be encoded again, and order and duplicates are
preserved: a PDU's TLVs are a tuple, not a dict.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from struct import Struct

from .errors import SmgpError


class Tag(IntEnum):
    """TLV tags of SMGP 3.0 (section 6.3)."""
    TP_PID = 0x0001             # GSM TP-PID (6.3.2)
    TP_UDHI = 0x0002            # 1: MsgContent starts with a user data header (6.3.3)
    LINK_ID = 0x0003            # transaction id tying an MT to its on-demand MO (6.3.4)
    CHARGE_USER_TYPE = 0x0004   # who pays: 0 dest, 1 src, 2 SP, 3 ChargeTermID
    CHARGE_TERM_TYPE = 0x0005   # ChargeTermID is 0 a real number, 1 a pseudo number
    CHARGE_TERM_PSEUDO = 0x0006  # the pseudo number charged
    DEST_TERM_TYPE = 0x0007     # DestTermID is 0 real, 1 pseudo
    DEST_TERM_PSEUDO = 0x0008   # the pseudo destination number
    PK_TOTAL = 0x0009           # parts of a long message
    PK_NUMBER = 0x000A          # this part's number, from 1
    SUBMIT_MSG_TYPE = 0x000B    # kind of SP message (0 normal, 5 monthly fee notice, 13/15 sync)
    SP_DEAL_RESULT = 0x000C     # SP's answer to a subscription sync (SPDealReslt)
    SRC_TERM_TYPE = 0x000D      # SrcTermID is 0 real, 1 pseudo
    SRC_TERM_PSEUDO = 0x000E    # the pseudo source number
    NODES_COUNT = 0x000F        # gateways the message passed (loop protection)
    MSG_SRC = 0x0010            # the message source: the SP code
    SRC_TYPE = 0x0011           # SrcTermID is 0 the MO's destination, 1 the SP's number
    M_SERVICE_ID = 0x0012       # service id of a mobile (WAP/MMS) service


# Known integer tags: Value is one octet.
INTEGER_TAGS = frozenset({
    Tag.TP_PID, Tag.TP_UDHI, Tag.CHARGE_USER_TYPE, Tag.CHARGE_TERM_TYPE, Tag.DEST_TERM_TYPE,
    Tag.PK_TOTAL, Tag.PK_NUMBER, Tag.SUBMIT_MSG_TYPE, Tag.SP_DEAL_RESULT, Tag.SRC_TERM_TYPE,
    Tag.NODES_COUNT, Tag.SRC_TYPE,
})

# Known string tags and the widest value section 6.3 allows for each.
STRING_WIDTHS: dict[int, int] = {
    Tag.LINK_ID: 20,
    Tag.CHARGE_TERM_PSEUDO: 32,
    Tag.DEST_TERM_PSEUDO: 32,
    Tag.SRC_TERM_PSEUDO: 32,
    Tag.MSG_SRC: 8,
    Tag.M_SERVICE_ID: 21,
}

_KNOWN: dict[int, Tag] = {t.value: t for t in Tag}
_TL = Struct(">HH")
_TL_BYTE = Struct(">HHB")
_MAX_VALUE = 0xFFFF


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: int | str | bytes


def get(tlvs: tuple[Tlv, ...], tag: int, default: object = None) -> object:
    """The value of the first TLV with ``tag``, or ``default``."""
    for item in tlvs:
        if item.tag == tag:
            return item.value
    return default


def _encode_one(item: Tlv) -> bytes:
    tag, value = item.tag, item.value
    if not isinstance(tag, int) or not 0 <= tag <= 0xFFFF:
        raise SmgpError(f"TLV tag {tag!r} is not a uint16")
    if isinstance(value, bool) or not isinstance(value, (int, str, bytes)):
        raise SmgpError(f"TLV 0x{tag:04X} value {value!r} is not int, str or bytes")
    if isinstance(value, int):
        if tag not in INTEGER_TAGS:
            # An int could not be told apart from raw bytes when read back.
            raise SmgpError(f"TLV 0x{tag:04X} is not an integer tag; give its value as bytes")
        if not 0 <= value <= 0xFF:
            raise SmgpError(f"TLV 0x{tag:04X} value {value} does not fit one octet")
        return _TL_BYTE.pack(tag, 1, value)
    if isinstance(value, str):
        width = STRING_WIDTHS.get(tag)
        if width is None:
            raise SmgpError(f"TLV 0x{tag:04X} is not a string tag; give its value as bytes")
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError as exc:
            raise SmgpError(f"TLV 0x{tag:04X} value is not ASCII") from exc
        if b"\0" in raw:
            raise SmgpError(f"TLV 0x{tag:04X} value contains a NUL")
        if len(raw) > width:
            raise SmgpError(f"TLV 0x{tag:04X} value is {len(raw)} octets; the field holds {width}")
        return _TL.pack(tag, len(raw)) + raw
    if len(value) > _MAX_VALUE:
        raise SmgpError(f"TLV 0x{tag:04X} value is {len(value)} octets; Length holds {_MAX_VALUE}")
    return _TL.pack(tag, len(value)) + bytes(value)


def encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    """The wire form of ``tlvs``, in order."""
    if isinstance(tlvs, Tlv):
        raise SmgpError("tlvs must be a sequence of Tlv, not one Tlv")
    out = []
    for item in tlvs:
        if not isinstance(item, Tlv):
            raise SmgpError(f"{item!r} is not a Tlv")
        out.append(_encode_one(item))
    return b"".join(out)


def _value(tag: int, raw: bytes) -> int | str | bytes:
    if tag in INTEGER_TAGS:
        return raw[0] if len(raw) == 1 else raw
    width = STRING_WIDTHS.get(tag)
    if width is not None:
        text = raw.rstrip(b"\0")
        if len(text) <= width and b"\0" not in text and text.isascii():
            return text.decode("ascii")
    return raw


def decode_tlvs(buf, start: int, end: int) -> tuple[Tlv, ...]:
    """Parse the TLVs in ``buf[start:end]``; raise SmgpError if one is cut off."""
    out = []
    p = start
    while p < end:
        if end - p < _TL.size:
            raise SmgpError(f"{end - p} stray octets after the last TLV")
        tag, length = _TL.unpack_from(buf, p)
        p += _TL.size
        if p + length > end:
            raise SmgpError(f"TLV 0x{tag:04X} Length={length} runs past the end of the PDU")
        known = _KNOWN.get(tag, tag)
        out.append(Tlv(known, _value(tag, bytes(buf[p:p + length]))))
        p += length
    return tuple(out)
