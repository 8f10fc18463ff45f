"""Numbers defined by the CMPP specification.

CMPP (China Mobile Peer to Peer) is the TCP protocol between a service
provider ("SP", us as a client) and China Mobile's internet SMS gateway
("ISMG", the server). Every PDU starts with a 12-octet header: Total_Length,
Command_Id and Sequence_Id, all big-endian uint32 (CMPP 2.0 section 7.3).
A response's Command_Id is its request's with the top bit set.
"""
from __future__ import annotations

from enum import IntEnum

HEADER_LENGTH = 12          # Total_Length + Command_Id + Sequence_Id
DEFAULT_MAX_PDU = 4096      # above the largest legal PDU (a 100-number submit: ~2.5 KB in 2.0, ~3.6 KB in 3.0)
RESPONSE_BIT = 0x80000000   # set in the Command_Id of every response
MAX_SEQUENCE = 0x7FFFFFFF   # some gateways treat Sequence_Id as signed, so stay positive


class Version(IntEnum):
    """The Version octet of CMPP_CONNECT: high nibble major, low nibble minor."""
    V20 = 0x20  # CMPP 2.0
    V30 = 0x30  # CMPP 3.0: wider status/result fields, 32-octet numbers, LinkID


V20 = Version.V20
V30 = Version.V30


class CommandId(IntEnum):
    """Command_Id values for the SP <-> ISMG link (CMPP 2.0 section 7.4)."""
    CMPP_CONNECT = 0x00000001           # SP logs in (7.4.1.1)
    CMPP_CONNECT_RESP = 0x80000001      # gateway accepts or refuses the login (7.4.1.2)
    CMPP_TERMINATE = 0x00000002         # either side ends the session (7.4.2.1)
    CMPP_TERMINATE_RESP = 0x80000002    # acknowledges the end (7.4.2.2)
    CMPP_SUBMIT = 0x00000004            # SP sends an MT short message (7.4.3.1)
    CMPP_SUBMIT_RESP = 0x80000004       # gateway's Msg_Id and result for it (7.4.3.2)
    CMPP_DELIVER = 0x00000005           # gateway delivers an MO or a status report (7.4.5.1)
    CMPP_DELIVER_RESP = 0x80000005      # SP acknowledges the delivery (7.4.5.2)
    CMPP_QUERY = 0x00000006             # SP asks for traffic statistics (7.4.4.1)
    CMPP_QUERY_RESP = 0x80000006        # the statistics (7.4.4.2)
    CMPP_CANCEL = 0x00000007            # SP withdraws a submitted message (7.4.6.1)
    CMPP_CANCEL_RESP = 0x80000007       # whether the withdrawal worked (7.4.6.2)
    CMPP_ACTIVE_TEST = 0x00000008       # keep-alive, either direction (7.4.7.1)
    CMPP_ACTIVE_TEST_RESP = 0x80000008  # keep-alive answer (7.4.7.2)


CMPP_CONNECT = CommandId.CMPP_CONNECT
CMPP_CONNECT_RESP = CommandId.CMPP_CONNECT_RESP
CMPP_TERMINATE = CommandId.CMPP_TERMINATE
CMPP_TERMINATE_RESP = CommandId.CMPP_TERMINATE_RESP
CMPP_SUBMIT = CommandId.CMPP_SUBMIT
CMPP_SUBMIT_RESP = CommandId.CMPP_SUBMIT_RESP
CMPP_DELIVER = CommandId.CMPP_DELIVER
CMPP_DELIVER_RESP = CommandId.CMPP_DELIVER_RESP
CMPP_QUERY = CommandId.CMPP_QUERY
CMPP_QUERY_RESP = CommandId.CMPP_QUERY_RESP
CMPP_CANCEL = CommandId.CMPP_CANCEL
CMPP_CANCEL_RESP = CommandId.CMPP_CANCEL_RESP
CMPP_ACTIVE_TEST = CommandId.CMPP_ACTIVE_TEST
CMPP_ACTIVE_TEST_RESP = CommandId.CMPP_ACTIVE_TEST_RESP


class ConnectStatus(IntEnum):
    """Status of CMPP_CONNECT_RESP (7.4.1.2). Anything but OK means not logged in."""
    OK = 0                  # logged in; the session is bound
    BAD_STRUCTURE = 1       # the CONNECT PDU was malformed
    BAD_SOURCE_ADDR = 2     # unknown SP id (Source_Addr)
    AUTH_FAILED = 3         # AuthenticatorSource did not match: wrong secret or timestamp
    VERSION_TOO_HIGH = 4    # gateway does not speak the requested version
    OTHER = 5               # 5 and above: other errors; gateways use it for a suspended account


class SubmitResult(IntEnum):
    """Result of CMPP_SUBMIT_RESP (7.4.3.2); CMPP_DELIVER_RESP uses 0-8 the same way."""
    OK = 0                      # accepted; the response carries the gateway's Msg_Id
    BAD_STRUCTURE = 1           # the PDU was malformed
    BAD_COMMAND_ID = 2          # unknown or unexpected Command_Id
    SEQUENCE_REPEATED = 3       # duplicate Sequence_Id; some gateways also send it for a suspended account
    BAD_LENGTH = 4              # Msg_Length does not match the content
    BAD_FEE_CODE = 5            # FeeCode/FeeType not valid for this SP
    CONTENT_TOO_LONG = 6        # content above 140 octets (160 for ASCII)
    BAD_SERVICE_ID = 7          # Service_Id not registered for this SP
    FLOW_CONTROL = 8            # over the permitted rate or window: slow down and retry
    # 2.0 calls 9 and above "other errors"; 3.0 (and many 2.0 gateways) define 9-13:
    FEE_TERMINAL_NOT_SERVED = 9  # this gateway does not serve the charged number
    BAD_SRC_ID = 10             # Src_Id is not under the SP's access code
    BAD_MSG_SRC = 11            # Msg_src is not the SP id
    BAD_FEE_TERMINAL_ID = 12    # Fee_terminal_Id is not a valid number
    BAD_DEST_TERMINAL_ID = 13   # a Dest_terminal_Id is not a valid number


class MsgFmt(IntEnum):
    """Msg_Fmt of SUBMIT and DELIVER: how to read Msg_Content (7.4.3.1)."""
    ASCII = 0       # 7-bit text, up to 160 octets
    WRITE_CARD = 3  # SIM card write operation
    BINARY = 4      # 8-bit data
    UCS2 = 8        # UTF-16BE text, up to 140 octets (70 characters)
    GBK = 15        # GB-encoded Chinese text


# The status report inside a DELIVER is always 60 octets in 2.0 and 71 in
# 3.0, whose Dest_terminal_Id is 32 octets instead of 21 (7.4.5.1).
STATUS_REPORT_LENGTH = 60
STATUS_REPORT_LENGTH_V30 = 71
