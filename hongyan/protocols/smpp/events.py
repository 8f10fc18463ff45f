"""SMPP 3.4 PDUs as small frozen values, one class per command.

Every event carries its header's ``sequence_number``; a response echoes its
request's. Responses (and generic_nack) also carry ``command_status``; the
header field is defined as NULL in requests (section 3.2), so requests have
none. C-Octet String fields are ``str`` without their NUL; ``short_message``
stays ``bytes`` because its meaning depends on ``data_coding`` and
``esm_class``. ``tlvs`` is the optional-parameter section, in wire order
(see ``tlv.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .constants import ESM_MESSAGE_TYPE_MASK, INTERFACE_VERSION, EsmClass
from .tlv import Tlv


# --- bind, outbind, unbind, generic_nack (4.1, 4.2, 4.3) -------------------------

@dataclass(frozen=True, slots=True)
class BindTransmitter:
    sequence_number: int
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindReceiver:
    sequence_number: int
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindTransceiver:
    sequence_number: int
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindTransmitterResp:
    sequence_number: int
    command_status: int = 0
    system_id: str = ""
    tlvs: tuple[Tlv, ...] = ()      # sc_interface_version


@dataclass(frozen=True, slots=True)
class BindReceiverResp:
    sequence_number: int
    command_status: int = 0
    system_id: str = ""
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, slots=True)
class BindTransceiverResp:
    sequence_number: int
    command_status: int = 0
    system_id: str = ""
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, slots=True)
class Outbind:
    sequence_number: int
    system_id: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True)
class Unbind:
    sequence_number: int


@dataclass(frozen=True, slots=True)
class UnbindResp:
    sequence_number: int
    command_status: int = 0


@dataclass(frozen=True, slots=True)
class GenericNack:
    sequence_number: int
    command_status: int = 0


# --- messages (4.4 - 4.7) -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SubmitSm:
    sequence_number: int
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""    # "" (immediate) or the 16-character time format
    validity_period: str = ""           # "" (SMSC default) or the 16-character time format
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmitSmResp:
    sequence_number: int
    command_status: int = 0
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class SmeAddress:
    """A submit_multi destination that is one address (dest_flag 1)."""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True)
class DistributionList:
    """A submit_multi destination that is a list kept on the SMSC (dest_flag 2)."""
    dl_name: str = ""


@dataclass(frozen=True, slots=True)
class SubmitMulti:
    sequence_number: int
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addresses: tuple[SmeAddress | DistributionList, ...] = ()
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, slots=True)
class UnsuccessSme:
    """One destination a submit_multi could not be sent to, with its error."""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    error_status_code: int = 0


@dataclass(frozen=True, slots=True)
class SubmitMultiResp:
    sequence_number: int
    command_status: int = 0
    message_id: str = ""
    unsuccess_smes: tuple[UnsuccessSme, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliverSm:
    """An MO message, or a delivery receipt when ``esm_class & 0x04``.

    The layout is submit_sm's; section 4.6.1 requires schedule_delivery_time,
    validity_period, replace_if_present_flag and sm_default_msg_id to be
    unset, but they are carried as received.
    """
    sequence_number: int
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliverSmResp:
    sequence_number: int
    command_status: int = 0
    message_id: str = ""                # unused, NULL in 3.4 (4.6.2)


@dataclass(frozen=True, slots=True)
class DataSm:
    sequence_number: int
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""               # up to 64 characters here, not 20
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    tlvs: tuple[Tlv, ...] = ()          # the message itself is in message_payload


@dataclass(frozen=True, slots=True)
class DataSmResp:
    sequence_number: int
    command_status: int = 0
    message_id: str = ""
    tlvs: tuple[Tlv, ...] = ()


# --- query, cancel, replace (4.8 - 4.10) ---------------------------------------------

@dataclass(frozen=True, slots=True)
class QuerySm:
    sequence_number: int
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(frozen=True, slots=True)
class QuerySmResp:
    sequence_number: int
    command_status: int = 0
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0              # MessageState
    error_code: int = 0                 # network-specific error


@dataclass(frozen=True, slots=True)
class CancelSm:
    sequence_number: int
    service_type: str = ""
    message_id: str = ""                # "" cancels every message matching the addresses
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(frozen=True, slots=True)
class CancelSmResp:
    sequence_number: int
    command_status: int = 0


@dataclass(frozen=True, slots=True)
class ReplaceSm:
    sequence_number: int
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(frozen=True, slots=True)
class ReplaceSmResp:
    sequence_number: int
    command_status: int = 0


# --- enquire_link, alert_notification (4.11, 4.12) -------------------------------------

@dataclass(frozen=True, slots=True)
class EnquireLink:
    sequence_number: int


@dataclass(frozen=True, slots=True)
class EnquireLinkResp:
    sequence_number: int
    command_status: int = 0


@dataclass(frozen=True, slots=True)
class AlertNotification:
    sequence_number: int
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""               # the subscriber who became reachable
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""
    tlvs: tuple[Tlv, ...] = ()          # ms_availability_status


# --- delivery receipts (appendix B) -------------------------------------------------

@dataclass(frozen=True, slots=True)
class Receipt:
    """The text of a delivery receipt's short_message (SMPP 3.4 appendix B).

    Fields stay text because SMSCs differ in padding ("001" vs "1") and in
    the alphabet of ``message_id`` (hex or decimal).
    """
    message_id: str
    stat: str                   # DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD
    submit_date: str = ""       # YYMMDDhhmm (some SMSCs add seconds)
    done_date: str = ""
    sub: str = "001"
    dlvrd: str = "001"
    err: str = "000"
    text: str = ""              # the first 20 characters of the original message


def is_receipt(event: DeliverSm | DataSm) -> bool:
    """True when a deliver_sm / data_sm is an SMSC delivery receipt (esm_class, 5.2.12)."""
    return event.esm_class & ESM_MESSAGE_TYPE_MASK == EsmClass.DELIVERY_RECEIPT


Event = (BindTransmitter | BindTransmitterResp | BindReceiver | BindReceiverResp
         | BindTransceiver | BindTransceiverResp | Outbind | Unbind | UnbindResp | GenericNack
         | SubmitSm | SubmitSmResp | SubmitMulti | SubmitMultiResp | DeliverSm | DeliverSmResp
         | DataSm | DataSmResp | QuerySm | QuerySmResp | CancelSm | CancelSmResp | ReplaceSm
         | ReplaceSmResp | EnquireLink | EnquireLinkResp | AlertNotification)
