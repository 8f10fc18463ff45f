"""CMPP PDUs as small frozen values, one class per command (the h11 model).

Every event carries the header's ``sequence_id``. A response must echo the
sequence id of its request. Strings are decoded octet strings with their NUL
padding stripped; ``msg_content`` stays bytes because its meaning depends on
``msg_fmt`` and ``tp_udhi``.

``msg_id`` is the 64-bit CMPP Msg_Id as an unsigned int (see ``msgid.py``).

The classes serve CMPP 2.0 and 3.0 alike. Fields that exist in only one
version have defaults and must be left at them in the other (the codec
raises rather than drop a value): ``reserve``/``reserved`` are 2.0's,
``fee_terminal_type``, ``dest_terminal_type``, ``src_terminal_type`` and
``link_id`` are 3.0's. Status and result fields are one octet in 2.0 and four
in 3.0.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Connect:
    sequence_id: int
    source_addr: str          # SP id (6 octets)
    authenticator: bytes      # AuthenticatorSource, 16 octets
    version: int              # 0x20 for CMPP 2.0, 0x30 for 3.0
    timestamp: int            # MMDDHHMMSS as an integer


@dataclass(frozen=True, slots=True)
class ConnectResp:
    sequence_id: int
    status: int
    authenticator: bytes      # AuthenticatorISMG, 16 octets
    version: int


@dataclass(frozen=True, slots=True)
class Terminate:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class TerminateResp:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class ActiveTest:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class ActiveTestResp:
    sequence_id: int
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class Submit:
    sequence_id: int
    dest_terminal_ids: tuple[str, ...]
    msg_content: bytes
    msg_id: int = 0
    pk_total: int = 1
    pk_number: int = 1
    registered_delivery: int = 1
    msg_level: int = 0
    service_id: str = ""
    fee_user_type: int = 0
    fee_terminal_id: str = ""
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = 0          # 0 ASCII, 8 UCS2, 15 GBK
    msg_src: str = ""         # SP id
    fee_type: str = "01"
    fee_code: str = ""
    valid_time: str = ""
    at_time: str = ""
    src_id: str = ""          # source number: access code + extension
    reserve: bytes = b""      # 2.0 only
    fee_terminal_type: int = 0   # 3.0 only: 0 real number, 1 pseudo-code
    dest_terminal_type: int = 0  # 3.0 only, one for all numbers: 0 real, 1 pseudo-code
    link_id: str = ""         # 3.0 only: ties an MT to the MO or order it answers


@dataclass(frozen=True, slots=True)
class SubmitResp:
    sequence_id: int
    msg_id: int
    result: int


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The Msg_Content of a Deliver whose Registered_Delivery is 1."""
    msg_id: int               # the Msg_Id the SubmitResp gave
    stat: str                 # DELIVRD, EXPIRED, UNDELIV, REJECTD, MA:0001, ...
    submit_time: str          # YYMMDDHHMM
    done_time: str            # YYMMDDHHMM
    dest_terminal_id: str     # 21 octets in 2.0, 32 in 3.0
    smsc_sequence: int = 0


@dataclass(frozen=True, slots=True)
class Deliver:
    """An MO (``report is None``) or a status report (``report`` set).

    For a report, ``msg_content`` is ignored on encode and filled with the
    encoded report on decode.
    """
    sequence_id: int
    msg_id: int
    dest_id: str              # the number the MO was sent to (access code + ext)
    src_terminal_id: str      # the mobile number
    msg_content: bytes = b""
    service_id: str = ""
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = 0
    registered_delivery: int = 0
    reserved: bytes = b""     # 2.0 only
    report: StatusReport | None = field(default=None)
    src_terminal_type: int = 0   # 3.0 only: 0 real number, 1 pseudo-code
    link_id: str = ""         # 3.0 only: echo it in the answering Submit


@dataclass(frozen=True, slots=True)
class DeliverResp:
    sequence_id: int
    msg_id: int
    result: int = 0


@dataclass(frozen=True, slots=True)
class Query:
    sequence_id: int
    time: str                 # YYYYMMDD
    query_type: int           # 0 total, 1 by service code
    query_code: str = ""
    reserve: str = ""


@dataclass(frozen=True, slots=True)
class QueryResp:
    sequence_id: int
    time: str
    query_type: int
    query_code: str
    mt_tlmsg: int = 0
    mt_tlusr: int = 0
    mt_scs: int = 0
    mt_wt: int = 0
    mt_fl: int = 0
    mo_scs: int = 0
    mo_wt: int = 0
    mo_fl: int = 0


@dataclass(frozen=True, slots=True)
class Cancel:
    sequence_id: int
    msg_id: int


@dataclass(frozen=True, slots=True)
class CancelResp:
    sequence_id: int
    success_id: int


Event = (Connect | ConnectResp | Terminate | TerminateResp | ActiveTest | ActiveTestResp
         | Submit | SubmitResp | Deliver | DeliverResp | Query | QueryResp | Cancel | CancelResp)
