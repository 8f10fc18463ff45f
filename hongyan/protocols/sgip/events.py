"""SGIP 1.2 PDUs as small frozen values, one class per command.

Every event carries its header's ``sequence_number``, a
:class:`SequenceNumber` triple. A response must echo the sequence number of
its request. Strings are decoded octet strings with their NUL padding
stripped; ``message_content`` stays bytes because its meaning depends on
``message_coding`` and ``tp_udhi``. ``reserve`` is the 8-octet Reserve field
with trailing NULs stripped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class SequenceNumber(NamedTuple):
    """The 12-octet Sequence Number: three big-endian uint32 (SGIP 1.2, message header).

    ``node_id`` identifies the sending node (for an SP: 3 + area code + corp
    id, e.g. 3075512345), ``timestamp`` is MMDDHHMMSS read as a decimal
    number, ``number`` a counter. The triple is unique per request, and the
    Report of a Submit quotes the Submit's triple.
    """
    node_id: int
    timestamp: int
    number: int


@dataclass(frozen=True, slots=True)
class Bind:
    sequence_number: SequenceNumber
    login_type: int           # LoginType: 1 SP -> SMG, 2 SMG -> SP
    login_name: str           # 16 octets
    login_password: str       # 16 octets
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class BindResp:
    sequence_number: SequenceNumber
    result: int
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class Unbind:
    sequence_number: SequenceNumber


@dataclass(frozen=True, slots=True)
class UnbindResp:
    sequence_number: SequenceNumber


@dataclass(frozen=True, slots=True)
class Submit:
    sequence_number: SequenceNumber
    sp_number: str                    # the SP's access number (+ extension), 21 octets
    user_numbers: tuple[str, ...]     # 1-100 receiving mobile numbers, 21 octets each
    message_content: bytes
    charge_number: str = ""           # "" = charge the receiver; "000...0" = charge the SP
    corp_id: str = ""                 # 5 octets
    service_type: str = ""            # 10 octets
    fee_type: int = 0
    fee_value: str = "0"              # in fen, 6 octets
    given_value: str = "0"            # free value given to the user, 6 octets
    agent_flag: int = 0
    morelateto_mt_flag: int = 2       # 2: not caused by an MO
    priority: int = 0                 # 0-9
    expire_time: str = ""             # YYMMDDhhmmsstnnp, 16 octets
    schedule_time: str = ""           # YYMMDDhhmmsstnnp, 16 octets
    report_flag: int = 1              # 1: always report
    tp_pid: int = 0
    tp_udhi: int = 0
    message_coding: int = 0           # 0 ASCII, 8 UCS2, 15 GBK
    message_type: int = 0             # 0: short message
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class SubmitResp:
    sequence_number: SequenceNumber
    result: int
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class Deliver:
    """An MO message the SMG forwards to the SP."""
    sequence_number: SequenceNumber
    user_number: str                  # the sending mobile, 21 octets
    sp_number: str                    # the number it was sent to, 21 octets
    message_content: bytes
    tp_pid: int = 0
    tp_udhi: int = 0
    message_coding: int = 0
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class DeliverResp:
    sequence_number: SequenceNumber
    result: int
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of an earlier Submit, for one of its user numbers."""
    sequence_number: SequenceNumber
    submit_sequence_number: SequenceNumber   # the Submit's header triple
    report_type: int                          # ReportType
    user_number: str                          # 21 octets
    state: int                                # ReportState
    error_code: int                           # Result codes, 21-33 for delivery failures
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class ReportResp:
    sequence_number: SequenceNumber
    result: int
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class UserRpt:
    """A subscriber's status for the SP's service changed (cancelled, suspended, resumed)."""
    sequence_number: SequenceNumber
    sp_number: str                    # 21 octets
    user_number: str                  # 21 octets
    user_condition: int               # UserCondition
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class UserRptResp:
    sequence_number: SequenceNumber
    result: int
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class Trace:
    """Asks where the Submit with ``submit_sequence_number`` to ``user_number`` went."""
    sequence_number: SequenceNumber
    submit_sequence_number: SequenceNumber
    user_number: str                  # 21 octets
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class TraceResult:
    """What one SMG on the message's path knows about it."""
    result: int
    node_id: str                      # 6 octets
    receive_time: str                 # YYMMDDhhmmss..., 16 octets
    send_time: str                    # 16 octets
    reserve: bytes = b""


@dataclass(frozen=True, slots=True)
class TraceResp:
    sequence_number: SequenceNumber
    results: tuple[TraceResult, ...]  # Count octet, then one entry per node


Event = (Bind | BindResp | Unbind | UnbindResp | Submit | SubmitResp | Deliver | DeliverResp
         | Report | ReportResp | UserRpt | UserRptResp | Trace | TraceResp)
