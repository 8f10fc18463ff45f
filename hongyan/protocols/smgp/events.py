"""SMGP PDUs as small frozen values, one class per command (the h11 model).

Every event carries the header's ``sequence_id``; a response must echo the
sequence id of its request. Strings are decoded octet strings with their NUL
padding stripped; ``msg_content`` stays bytes because its meaning depends on
``msg_format`` and the TP_udhi TLV.

``msg_id`` is the 10-octet SMGP MsgID as ``bytes`` (see ``wire.pack_msg_id``
and ``wire.msg_id_to_str``), kept raw so an id from a gateway that does not
fill it with BCD still matches its report exactly.

``tlvs`` is a tuple of :class:`~hongyan.protocols.smgp.tlv.Tlv` in wire order.
"""
from __future__ import annotations

from dataclasses import dataclass

from .tlv import Tlv


@dataclass(frozen=True, slots=True)
class Login:
    sequence_id: int
    client_id: str            # account (8 octets)
    authenticator: bytes      # AuthenticatorClient, 16 octets
    login_mode: int           # 0 send, 1 receive, 2 both (LoginMode)
    timestamp: int            # MMDDHHMMSS as an integer
    version: int = 0x30       # ClientVersion


@dataclass(frozen=True, slots=True)
class LoginResp:
    sequence_id: int
    status: int               # 0 logged in; see constants.Status
    authenticator: bytes      # AuthenticatorServer, 16 octets
    version: int = 0x30       # ServerVersion


@dataclass(frozen=True, slots=True)
class Exit:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class ExitResp:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class ActiveTest:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class ActiveTestResp:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class Submit:
    sequence_id: int
    dest_term_ids: tuple[str, ...]
    msg_content: bytes
    msg_type: int = 6         # 6 MT
    need_report: int = 1
    priority: int = 0         # 0 lowest .. 3 highest
    service_id: str = ""
    fee_type: str = "00"      # 00 free, 01 per message, 02 monthly, 03 capped
    fee_code: str = ""        # in fen
    fixed_fee: str = ""       # monthly / cap fee, in fen
    msg_format: int = 0       # 0 ASCII, 8 UCS2, 15 GB18030
    valid_time: str = ""      # YYMMDDhhmmsstnnp, empty for the gateway default
    at_time: str = ""         # scheduled send time, same format; empty to send now
    src_term_id: str = ""     # source number: access code + extension
    charge_term_id: str = ""  # number charged; empty when ChargeUserType decides
    reserve: bytes = b""
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmitResp:
    sequence_id: int
    msg_id: bytes             # 10 octets
    status: int


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The MsgContent of a Deliver whose IsReport is 1.

    On the wire it is text with one raw field:
    ``id:<10 MsgID octets> sub:001 dlvrd:001 Submit_date:YYMMDDhhmm
    done_date:YYMMDDhhmm Stat:DELIVRD Err:000 Txt:<up to 20 octets>``.
    """
    msg_id: bytes             # the MsgID the SubmitResp gave, 10 octets
    stat: str                 # DELIVRD, EXPIRED, UNDELIV, REJECTD, ...
    submit_date: str          # YYMMDDhhmm
    done_date: str            # YYMMDDhhmm
    err: str = "000"
    sub: str = "001"
    dlvrd: str = "001"
    txt: bytes = b""          # often the first octets of the original message


@dataclass(frozen=True, slots=True)
class Deliver:
    """An MO (``report is None``) or a status report (``report`` set).

    For a report, ``msg_content`` is ignored on encode (IsReport is written
    as 1 and the content is the formatted report) and filled with the
    received content on decode.
    """
    sequence_id: int
    msg_id: bytes             # 10 octets
    src_term_id: str          # the mobile number
    dest_term_id: str         # the number the MO was sent to (access code + ext)
    msg_content: bytes = b""
    msg_format: int = 0
    recv_time: str = ""       # YYYYMMDDhhmmss
    reserve: bytes = b""
    tlvs: tuple[Tlv, ...] = ()
    report: StatusReport | None = None


@dataclass(frozen=True, slots=True)
class DeliverResp:
    sequence_id: int
    msg_id: bytes             # the Deliver's MsgID
    status: int = 0


@dataclass(frozen=True, slots=True)
class Query:
    sequence_id: int
    time: str                 # YYYYMMDD
    query_type: int = 0       # 0 total, 1 by service code
    query_code: str = ""      # the service code when query_type is 1


@dataclass(frozen=True, slots=True)
class QueryResp:
    sequence_id: int
    time: str
    query_type: int
    query_code: str
    mt_tlmsg: int = 0         # MT messages received from the SP
    mt_tlusr: int = 0         # MT users
    mt_scs: int = 0           # MT delivered
    mt_wt: int = 0            # MT waiting
    mt_fl: int = 0            # MT failed
    mo_scs: int = 0           # MO delivered to the SP
    mo_wt: int = 0            # MO waiting
    mo_fl: int = 0            # MO failed
    reserve: bytes = b""


Event = (Login | LoginResp | Exit | ExitResp | ActiveTest | ActiveTestResp | Submit
         | SubmitResp | Deliver | DeliverResp | Query | QueryResp)
