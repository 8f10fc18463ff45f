"""Byte layouts of SMPP 3.4 PDUs: one event <-> one complete PDU.

A PDU is a 16-octet header (command_length, command_id, command_status,
sequence_number; big-endian uint32, section 3.2), the mandatory parameters
of its command (section 4) and, for some commands, a TLV section (3.3).
Mandatory parameters are 1- or 4-octet integers and C-Octet Strings: ASCII
ended by one NUL, with a maximum length that includes the NUL (3.1). A
C-Octet String is not padded, so every later field's offset depends on the
text before it; each layout below is therefore a list of steps walked in
order, with runs of integers precompiled into one ``struct.Struct``.

Section numbers refer to "Short Message Peer to Peer Protocol Specification
v3.4", SMPP Developers Forum, 12 October 1999, issue 1.2.

This module does no framing: :func:`decode` takes exactly one PDU. Use
:class:`~hongyan.protocols.smpp.connection.Connection` for a byte stream.
"""
from __future__ import annotations

import re
from dataclasses import fields as dc_fields
from struct import Struct, error as StructError
from typing import NamedTuple

from .constants import HEADER_LENGTH, CommandId as C, CommandStatus as S, DestFlag
from .errors import SmppError
from .events import (
    AlertNotification, BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp,
    BindTransmitter, BindTransmitterResp, CancelSm, CancelSmResp, DataSm, DataSmResp,
    DeliverSm, DeliverSmResp, DistributionList, EnquireLink, EnquireLinkResp, Event,
    GenericNack, Outbind, QuerySm, QuerySmResp, Receipt, ReplaceSm, ReplaceSmResp, SmeAddress,
    SubmitMulti, SubmitMultiResp, SubmitSm, SubmitSmResp, Unbind, UnbindResp, UnsuccessSme,
)
from .tlv import decode_tlvs, encode_tlvs

# Header, section 3.2.
HEADER = Struct(">IIII")

MAX_SHORT_MESSAGE = 254     # sm_length range 0..254 (5.2.21)
MAX_DESTS = 254             # number_of_dests (4.5.1)
TIME_LENGTH = 16            # "YYMMDDhhmmsstnnp" (7.1); the field is 1 or 17 octets

# Step kinds.
_INTS = "ints"      # (kind, Struct, names)
_CSTR = "cstr"      # (kind, name, max octets with the NUL)
_TIME = "time"      # (kind, name): a C-Octet String of 1 or 17 octets
_SM = "sm"          # sm_length then short_message
_DESTS = "dests"    # number_of_dests then dest_address entries (4.5.1)
_UNSUCC = "unsucc"  # no_unsuccess then unsuccess_sme entries (4.5.2)

# The command_status a bad field is answered with (5.1.3); anything not
# listed is a malformed body, ESME_RINVCMDLEN.
_FIELD_STATUS = {
    "system_id": S.ESME_RINVSYSID,
    "password": S.ESME_RINVPASWD,
    "system_type": S.ESME_RINVSYSTYP,
    "service_type": S.ESME_RINVSERTYP,
    "source_addr": S.ESME_RINVSRCADR,
    "destination_addr": S.ESME_RINVDSTADR,
    "schedule_delivery_time": S.ESME_RINVSCHED,
    "validity_period": S.ESME_RINVEXPIRY,
    "message_id": S.ESME_RINVMSGID,
    "dl_name": S.ESME_RINVDLNAME,
}


def _int1(name: str) -> tuple:
    return ("B", name)


def _text(name: str, size: int) -> tuple:
    return (_CSTR, name, size)


def _when(name: str) -> tuple:
    return (_TIME, name)


def _compile(*spec: tuple) -> tuple[tuple, ...]:
    """Merge each run of integer fields into one precompiled Struct step."""
    steps: list[tuple] = []
    run_fmt: list[str] = []
    run_names: list[str] = []

    def flush() -> None:
        if run_fmt:
            steps.append((_INTS, Struct(">" + "".join(run_fmt)), tuple(run_names)))
            run_fmt.clear()
            run_names.clear()

    for item in spec:
        if item[0] == "B":
            run_fmt.append(item[0])
            run_names.append(item[1])
        else:
            flush()
            steps.append(item)
    flush()
    return tuple(steps)


# --- layouts ------------------------------------------------------------------------

# 4.1.1 bind_transmitter, 4.1.3 bind_receiver, 4.1.5 bind_transceiver:
# system_id 16, password 9, system_type 13, interface_version 1, addr_ton 1,
# addr_npi 1, address_range 41.
_BIND = _compile(_text("system_id", 16), _text("password", 9), _text("system_type", 13),
                 _int1("interface_version"), _int1("addr_ton"), _int1("addr_npi"),
                 _text("address_range", 41))
# 4.1.2 / 4.1.4 / 4.1.6 bind_*_resp: system_id 16, then TLV sc_interface_version.
_BIND_RESP = _compile(_text("system_id", 16))
# 4.1.7 outbind: system_id 16, password 9.
_OUTBIND = _compile(_text("system_id", 16), _text("password", 9))
# 4.4.1 submit_sm and 4.6.1 deliver_sm: service_type 6, source_addr_ton 1,
# source_addr_npi 1, source_addr 21, dest_addr_ton 1, dest_addr_npi 1,
# destination_addr 21, esm_class 1, protocol_id 1, priority_flag 1,
# schedule_delivery_time 1|17, validity_period 1|17, registered_delivery 1,
# replace_if_present_flag 1, data_coding 1, sm_default_msg_id 1, sm_length 1,
# short_message 0-254, then TLVs.
_SM_TAIL = (_int1("esm_class"), _int1("protocol_id"), _int1("priority_flag"),
            _when("schedule_delivery_time"), _when("validity_period"),
            _int1("registered_delivery"), _int1("replace_if_present_flag"), _int1("data_coding"),
            _int1("sm_default_msg_id"), (_SM,))
_SUBMIT_SM = _compile(_text("service_type", 6), _int1("source_addr_ton"), _int1("source_addr_npi"),
                      _text("source_addr", 21), _int1("dest_addr_ton"), _int1("dest_addr_npi"),
                      _text("destination_addr", 21), *_SM_TAIL)
# 4.4.2 submit_sm_resp: message_id 65. (4.6.2 deliver_sm_resp: message_id,
# unused and sent as NULL.)
_MESSAGE_ID = _compile(_text("message_id", 65))
# 4.5.1 submit_multi: service_type 6, source_addr_ton 1, source_addr_npi 1,
# source_addr 21, number_of_dests 1, dest_address (dest_flag 1, then either
# dest_addr_ton 1, dest_addr_npi 1, destination_addr 21 or dl_name 21) x n,
# then the submit_sm tail from esm_class on, then TLVs.
_SUBMIT_MULTI = _compile(_text("service_type", 6), _int1("source_addr_ton"),
                         _int1("source_addr_npi"), _text("source_addr", 21), (_DESTS,),
                         *_SM_TAIL)
# 4.5.2 submit_multi_resp: message_id 65, no_unsuccess 1, unsuccess_sme
# (dest_addr_ton 1, dest_addr_npi 1, destination_addr 21, error_status_code 4) x n.
_SUBMIT_MULTI_RESP = _compile(_text("message_id", 65), (_UNSUCC,))
# 4.7.1 data_sm: service_type 6, source_addr_ton 1, source_addr_npi 1,
# source_addr 65, dest_addr_ton 1, dest_addr_npi 1, destination_addr 65,
# esm_class 1, registered_delivery 1, data_coding 1, then TLVs.
_DATA_SM = _compile(_text("service_type", 6), _int1("source_addr_ton"), _int1("source_addr_npi"),
                    _text("source_addr", 65), _int1("dest_addr_ton"), _int1("dest_addr_npi"),
                    _text("destination_addr", 65), _int1("esm_class"), _int1("registered_delivery"),
                    _int1("data_coding"))
# 4.8.1 query_sm: message_id 65, source_addr_ton 1, source_addr_npi 1, source_addr 21.
_QUERY_SM = _compile(_text("message_id", 65), _int1("source_addr_ton"), _int1("source_addr_npi"),
                     _text("source_addr", 21))
# 4.8.2 query_sm_resp: message_id 65, final_date 1|17, message_state 1, error_code 1.
_QUERY_SM_RESP = _compile(_text("message_id", 65), _when("final_date"), _int1("message_state"),
                          _int1("error_code"))
# 4.9.1 cancel_sm: service_type 6, message_id 65, source_addr_ton 1,
# source_addr_npi 1, source_addr 21, dest_addr_ton 1, dest_addr_npi 1,
# destination_addr 21.
_CANCEL_SM = _compile(_text("service_type", 6), _text("message_id", 65), _int1("source_addr_ton"),
                      _int1("source_addr_npi"), _text("source_addr", 21), _int1("dest_addr_ton"),
                      _int1("dest_addr_npi"), _text("destination_addr", 21))
# 4.10.1 replace_sm: message_id 65, source_addr_ton 1, source_addr_npi 1,
# source_addr 21, schedule_delivery_time 1|17, validity_period 1|17,
# registered_delivery 1, sm_default_msg_id 1, sm_length 1, short_message 0-254.
_REPLACE_SM = _compile(_text("message_id", 65), _int1("source_addr_ton"), _int1("source_addr_npi"),
                       _text("source_addr", 21), _when("schedule_delivery_time"),
                       _when("validity_period"), _int1("registered_delivery"),
                       _int1("sm_default_msg_id"), (_SM,))
# 4.12.1 alert_notification: source_addr_ton 1, source_addr_npi 1,
# source_addr 65, esme_addr_ton 1, esme_addr_npi 1, esme_addr 65, then TLV
# ms_availability_status.
_ALERT = _compile(_int1("source_addr_ton"), _int1("source_addr_npi"), _text("source_addr", 65),
                  _int1("esme_addr_ton"), _int1("esme_addr_npi"), _text("esme_addr", 65))
# 4.2 unbind(_resp), 4.3 generic_nack, 4.9.2 cancel_sm_resp, 4.10.2
# replace_sm_resp, 4.11 enquire_link(_resp): header only.
_EMPTY: tuple = ()

_DEST_SME = Struct(">BBB")          # dest_flag, dest_addr_ton, dest_addr_npi
_UNSUCC_HEAD = Struct(">BB")        # dest_addr_ton, dest_addr_npi
_U32 = Struct(">I")


class Layout(NamedTuple):
    command_id: int
    cls: type
    steps: tuple
    tlvs: bool              # has an optional-parameter section
    response: bool          # carries command_status
    # A response whose command_status is non-zero may come with no body at
    # all (4.4.2 says so for submit_sm_resp; SMSCs do it for every response).
    body_optional: bool = False


def _layout(command_id: int, cls: type, steps: tuple, tlvs: bool = False) -> Layout:
    response = bool(command_id & 0x80000000)
    return Layout(command_id, cls, steps, tlvs, response, response and bool(steps or tlvs))


LAYOUTS: tuple[Layout, ...] = (
    _layout(C.BIND_TRANSMITTER, BindTransmitter, _BIND),
    _layout(C.BIND_TRANSMITTER_RESP, BindTransmitterResp, _BIND_RESP, tlvs=True),
    _layout(C.BIND_RECEIVER, BindReceiver, _BIND),
    _layout(C.BIND_RECEIVER_RESP, BindReceiverResp, _BIND_RESP, tlvs=True),
    _layout(C.BIND_TRANSCEIVER, BindTransceiver, _BIND),
    _layout(C.BIND_TRANSCEIVER_RESP, BindTransceiverResp, _BIND_RESP, tlvs=True),
    _layout(C.OUTBIND, Outbind, _OUTBIND),
    _layout(C.UNBIND, Unbind, _EMPTY),
    _layout(C.UNBIND_RESP, UnbindResp, _EMPTY),
    _layout(C.GENERIC_NACK, GenericNack, _EMPTY),
    _layout(C.SUBMIT_SM, SubmitSm, _SUBMIT_SM, tlvs=True),
    _layout(C.SUBMIT_SM_RESP, SubmitSmResp, _MESSAGE_ID),
    _layout(C.SUBMIT_MULTI, SubmitMulti, _SUBMIT_MULTI, tlvs=True),
    _layout(C.SUBMIT_MULTI_RESP, SubmitMultiResp, _SUBMIT_MULTI_RESP),
    _layout(C.DELIVER_SM, DeliverSm, _SUBMIT_SM, tlvs=True),
    _layout(C.DELIVER_SM_RESP, DeliverSmResp, _MESSAGE_ID),
    _layout(C.DATA_SM, DataSm, _DATA_SM, tlvs=True),
    _layout(C.DATA_SM_RESP, DataSmResp, _MESSAGE_ID, tlvs=True),
    _layout(C.QUERY_SM, QuerySm, _QUERY_SM),
    _layout(C.QUERY_SM_RESP, QuerySmResp, _QUERY_SM_RESP),
    _layout(C.CANCEL_SM, CancelSm, _CANCEL_SM),
    _layout(C.CANCEL_SM_RESP, CancelSmResp, _EMPTY),
    _layout(C.REPLACE_SM, ReplaceSm, _REPLACE_SM),
    _layout(C.REPLACE_SM_RESP, ReplaceSmResp, _EMPTY),
    _layout(C.ENQUIRE_LINK, EnquireLink, _EMPTY),
    _layout(C.ENQUIRE_LINK_RESP, EnquireLinkResp, _EMPTY),
    _layout(C.ALERT_NOTIFICATION, AlertNotification, _ALERT, tlvs=True),
)

BY_CLASS: dict[type, Layout] = {lay.cls: lay for lay in LAYOUTS}
BY_COMMAND: dict[int, Layout] = {lay.command_id: lay for lay in LAYOUTS}

def _step_names(step: tuple) -> tuple[str, ...]:
    kind = step[0]
    if kind == _INTS:
        return step[2]
    return {_SM: ("short_message",), _DESTS: ("dest_addresses",),
            _UNSUCC: ("unsuccess_smes",)}.get(kind) or (step[1],)


def _check_layouts() -> None:
    """Every layout must name exactly its event's fields; a slip fails at import."""
    for lay in LAYOUTS:
        names = {"sequence_number"}
        if lay.response:
            names.add("command_status")
        if lay.tlvs:
            names.add("tlvs")
        for step in lay.steps:
            names.update(_step_names(step))
        if names != {f.name for f in dc_fields(lay.cls)}:
            raise RuntimeError(f"layout of {lay.cls.__name__} does not match its fields")


_check_layouts()


def command_name(command_id: int) -> str:
    try:
        return C(command_id).name.lower()
    except ValueError:
        return f"command 0x{command_id:08X}"


# --- encoding ------------------------------------------------------------------------

def _cstring(value: str, size: int, name: str) -> bytes:
    raw = value.encode("ascii")
    if b"\0" in raw:
        # A NUL would end the string early on the other side.
        raise SmppError(f"{name} contains a NUL")
    if len(raw) >= size:
        raise SmppError(f"{name} is {len(raw)} characters; the field holds {size - 1} "
                        f"plus its NUL")
    return raw + b"\0"


def _time(value: str, name: str) -> bytes:
    if value and len(value) != TIME_LENGTH:
        raise SmppError(f"{name} must be empty or {TIME_LENGTH} characters, "
                        f"not {len(value)} ({value!r})")
    return _cstring(value, TIME_LENGTH + 1, name)


def _short_message(value: bytes) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise SmppError(f"short_message must be bytes, not {type(value).__name__}")
    if len(value) > MAX_SHORT_MESSAGE:
        raise SmppError(f"short_message is {len(value)} octets; sm_length holds at most "
                        f"{MAX_SHORT_MESSAGE} (use the message_payload TLV)")
    return bytes((len(value),)) + value


def _dest_addresses(dests) -> bytes:
    if isinstance(dests, (str, bytes)) or len(dests) > MAX_DESTS:
        raise SmppError(f"dest_addresses must be a sequence of at most {MAX_DESTS} addresses")
    parts = [bytes((len(dests),))]
    for d in dests:
        if isinstance(d, SmeAddress):
            parts.append(_DEST_SME.pack(DestFlag.SME_ADDRESS, d.dest_addr_ton, d.dest_addr_npi))
            parts.append(_cstring(d.destination_addr, 21, "destination_addr"))
        elif isinstance(d, DistributionList):
            parts.append(bytes((DestFlag.DISTRIBUTION_LIST,)))
            parts.append(_cstring(d.dl_name, 21, "dl_name"))
        else:
            raise SmppError(f"a dest_address is SmeAddress or DistributionList, "
                            f"not {type(d).__name__}")
    return b"".join(parts)


def _unsuccess_smes(smes) -> bytes:
    if len(smes) > 255:
        raise SmppError("no_unsuccess holds at most 255 entries")
    parts = [bytes((len(smes),))]
    for u in smes:
        if not isinstance(u, UnsuccessSme):
            raise SmppError(f"unsuccess_smes holds UnsuccessSme values, not {type(u).__name__}")
        parts.append(_UNSUCC_HEAD.pack(u.dest_addr_ton, u.dest_addr_npi))
        parts.append(_cstring(u.destination_addr, 21, "destination_addr"))
        parts.append(_U32.pack(u.error_status_code))
    return b"".join(parts)


def _encode_body(lay: Layout, e: Event) -> bytes:
    parts = []
    for step in lay.steps:
        kind = step[0]
        if kind == _INTS:
            parts.append(step[1].pack(*[getattr(e, n) for n in step[2]]))
        elif kind == _CSTR:
            parts.append(_cstring(getattr(e, step[1]), step[2], step[1]))
        elif kind == _TIME:
            parts.append(_time(getattr(e, step[1]), step[1]))
        elif kind == _SM:
            parts.append(_short_message(e.short_message))
        elif kind == _DESTS:
            parts.append(_dest_addresses(e.dest_addresses))
        else:
            parts.append(_unsuccess_smes(e.unsuccess_smes))
    if lay.tlvs:
        parts.append(encode_tlvs(e.tlvs))
    return b"".join(parts)


def encode(event: Event) -> bytes:
    """Serialise one event to a complete PDU, header included.

    Text must be ASCII and fit its field with the NUL; integers must fit
    their width. Anything else raises :class:`SmppError` rather than being
    cut. A response with a non-zero status and nothing else set is sent
    without a body, as section 4.4.2 prescribes for submit_sm_resp.
    """
    lay = BY_CLASS.get(type(event))
    if lay is None:
        raise SmppError(f"{type(event).__name__} is not an SMPP event")
    seq = getattr(event, "sequence_number", None)
    try:
        status = event.command_status if lay.response else 0
        if lay.body_optional and status and event == lay.cls(seq, status):
            body = b""
        else:
            body = _encode_body(lay, event)
        return HEADER.pack(HEADER_LENGTH + len(body), lay.command_id, status, seq) + body
    except SmppError as exc:
        raise SmppError(f"cannot encode {type(event).__name__}: {exc}",
                        sequence_number=seq) from exc
    except (StructError, UnicodeError, TypeError, AttributeError) as exc:
        # struct.error: an integer out of range; UnicodeError: non-ASCII text;
        # TypeError/AttributeError: a field of the wrong type.
        raise SmppError(f"cannot encode {type(event).__name__}: {exc}",
                        sequence_number=seq) from exc


# --- decoding ------------------------------------------------------------------------
# Decoders read straight out of the caller's buffer (bytes or bytearray),
# never past ``end``: the connection's buffer holds the next PDUs too.

def _short(name: str, need: int, have: int) -> SmppError:
    return SmppError(f"body ends inside {name} ({need} octets needed, {have} left)",
                     status=S.ESME_RINVCMDLEN)


def _read_cstring(buf, p: int, end: int, size: int, name: str) -> tuple[str, int]:
    nul = buf.find(b"\0", p, min(p + size, end))
    if nul < 0:
        raise SmppError(f"{name} has no NUL within {min(size, end - p)} octets",
                        status=_FIELD_STATUS.get(name, S.ESME_RINVCMDLEN))
    try:
        return bytes(buf[p:nul]).decode("ascii"), nul + 1
    except UnicodeDecodeError:
        raise SmppError(f"{name} is not ASCII",
                        status=_FIELD_STATUS.get(name, S.ESME_RINVCMDLEN)) from None


def _read_u8(buf, p: int, end: int, name: str) -> int:
    if p >= end:
        raise _short(name, 1, 0)
    return buf[p]


def _read_dests(buf, p: int, end: int) -> tuple[tuple, int]:
    count = _read_u8(buf, p, end, "number_of_dests")
    if count > MAX_DESTS:
        raise SmppError(f"number_of_dests is {count}; at most {MAX_DESTS}",
                        status=S.ESME_RINVNUMDESTS)
    p += 1
    out = []
    for _ in range(count):
        flag = _read_u8(buf, p, end, "dest_flag")
        p += 1
        if flag == DestFlag.SME_ADDRESS:
            if end - p < 2:
                raise _short("dest_address", 2, end - p)
            ton, npi = buf[p], buf[p + 1]
            addr, p = _read_cstring(buf, p + 2, end, 21, "destination_addr")
            out.append(SmeAddress(ton, npi, addr))
        elif flag == DestFlag.DISTRIBUTION_LIST:
            name, p = _read_cstring(buf, p, end, 21, "dl_name")
            out.append(DistributionList(name))
        else:
            raise SmppError(f"dest_flag {flag} is neither 1 (SME) nor 2 (list)",
                            status=S.ESME_RINVDESTFLAG)
    return tuple(out), p


def _read_unsuccess(buf, p: int, end: int) -> tuple[tuple, int]:
    count = _read_u8(buf, p, end, "no_unsuccess")
    p += 1
    out = []
    for _ in range(count):
        if end - p < 2:
            raise _short("unsuccess_sme", 2, end - p)
        ton, npi = buf[p], buf[p + 1]
        addr, p = _read_cstring(buf, p + 2, end, 21, "destination_addr")
        if end - p < 4:
            raise _short("error_status_code", 4, end - p)
        out.append(UnsuccessSme(ton, npi, addr, _U32.unpack_from(buf, p)[0]))
        p += 4
    return tuple(out), p


def _decode_fields(lay: Layout, buf, p: int, end: int, values: dict) -> int:
    for step in lay.steps:
        kind = step[0]
        if kind == _INTS:
            s = step[1]
            if end - p < s.size:
                raise _short(step[2][0], s.size, end - p)
            values.update(zip(step[2], s.unpack_from(buf, p)))
            p += s.size
        elif kind == _CSTR:
            values[step[1]], p = _read_cstring(buf, p, end, step[2], step[1])
        elif kind == _TIME:
            # Read leniently (any text up to 16 characters); only encode insists
            # on the exact 16-character format.
            values[step[1]], p = _read_cstring(buf, p, end, TIME_LENGTH + 1, step[1])
        elif kind == _SM:
            length = _read_u8(buf, p, end, "sm_length")
            p += 1
            if length > end - p:
                raise SmppError(f"sm_length {length} but {end - p} octets remain",
                                status=S.ESME_RINVMSGLEN)
            values["short_message"] = bytes(buf[p:p + length])
            p += length
        elif kind == _DESTS:
            values["dest_addresses"], p = _read_dests(buf, p, end)
        else:
            values["unsuccess_smes"], p = _read_unsuccess(buf, p, end)
    return p


def decode_body(command_id: int, command_status: int, sequence_number: int, buf,
                offset: int, length: int) -> Event:
    """Decode a body of ``length`` octets at ``buf[offset:]`` (header already parsed).

    The zero-copy entry point the connection uses on its receive buffer;
    most callers want :func:`decode`. Errors carry the command and sequence
    number so the PDU can be answered (generic_nack for an unknown command).
    """
    lay = BY_COMMAND.get(command_id)
    if lay is None:
        raise SmppError(f"unknown command_id 0x{command_id:08X}", command_id=command_id,
                        sequence_number=sequence_number, status=S.ESME_RINVCMDID)
    try:
        if length == 0 and lay.body_optional:
            return lay.cls(sequence_number, command_status)
        values: dict = {"sequence_number": sequence_number}
        if lay.response:
            values["command_status"] = command_status
        end = offset + length
        p = _decode_fields(lay, buf, offset, end, values)
        if lay.tlvs:
            values["tlvs"] = decode_tlvs(buf, p, end)
        elif p != end:
            raise SmppError(f"{end - p} octets after the last parameter",
                            status=S.ESME_RINVCMDLEN)
        return lay.cls(**values)
    except SmppError as exc:
        raise SmppError(f"malformed {command_name(command_id)} (sequence {sequence_number}): "
                        f"{exc}", command_id=command_id, sequence_number=sequence_number,
                        status=exc.status) from None
    except (StructError, IndexError) as exc:
        raise SmppError(f"malformed {command_name(command_id)} (sequence {sequence_number}): "
                        f"{exc}", command_id=command_id, sequence_number=sequence_number,
                        status=S.ESME_RINVCMDLEN) from exc


def decode(pdu: bytes) -> Event:
    """Parse exactly one complete PDU (header and body) into an event.

    Raises :class:`SmppError` if command_length disagrees with ``len(pdu)``,
    the command_id is unknown, or the body does not match its layout.
    """
    if len(pdu) < HEADER_LENGTH:
        raise SmppError(f"a PDU is at least {HEADER_LENGTH} octets, got {len(pdu)}",
                        status=S.ESME_RINVCMDLEN)
    total, command_id, status, seq = HEADER.unpack_from(pdu, 0)
    if total != len(pdu):
        raise SmppError(f"command_length is {total} but the PDU is {len(pdu)} octets",
                        command_id=command_id, sequence_number=seq, status=S.ESME_RINVCMDLEN)
    return decode_body(command_id, status, seq, pdu, HEADER_LENGTH, total - HEADER_LENGTH)


# --- delivery receipts (appendix B) ------------------------------------------------------
# "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
#  stat:DDDDDDD err:E Text: . . . . . . . ." -- the format is informative only
# and SMSCs vary: case ("Text:"/"text:"), field order, seconds in the dates.
# Fields are therefore found by keyword; "text:" takes the rest of the line.

_RECEIPT_FIELD = re.compile(
    r"(?i)(?:^|\s)(id|sub|dlvrd|submit date|done date|stat|err|text):"
    r"(?:(?<=text:)(.*)|(\S*))", re.DOTALL)
_RECEIPT_ATTRS = {"id": "message_id", "sub": "sub", "dlvrd": "dlvrd",
                  "submit date": "submit_date", "done date": "done_date", "stat": "stat",
                  "err": "err", "text": "text"}


def parse_receipt(short_message: bytes | str) -> Receipt:
    """Read the appendix-B receipt text of a deliver_sm's short_message.

    ``id`` and ``stat`` are required; other missing fields are left empty.
    Raises :class:`SmppError` for text that is not a receipt.
    """
    if isinstance(short_message, (bytes, bytearray)):
        text = bytes(short_message).decode("latin-1")
    else:
        text = short_message
    found: dict[str, str] = {}
    for m in _RECEIPT_FIELD.finditer(text):
        key = _RECEIPT_ATTRS[m.group(1).lower()]
        found.setdefault(key, m.group(2) if m.group(2) is not None else m.group(3))
    if "message_id" not in found or "stat" not in found:
        raise SmppError(f"not a delivery receipt (no id: or stat:): {text[:80]!r}")
    for key in ("sub", "dlvrd", "err", "submit_date", "done_date", "text"):
        found.setdefault(key, "")
    return Receipt(**found)


def format_receipt(receipt: Receipt) -> bytes:
    """The appendix-B text of ``receipt``, ASCII, for a deliver_sm short_message."""
    text = (f"id:{receipt.message_id} sub:{receipt.sub} dlvrd:{receipt.dlvrd} "
            f"submit date:{receipt.submit_date} done date:{receipt.done_date} "
            f"stat:{receipt.stat} err:{receipt.err} text:{receipt.text}")
    try:
        return text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise SmppError(f"receipt text must be ASCII: {exc}") from None
