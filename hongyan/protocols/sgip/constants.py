"""Numbers defined by the SGIP 1.2 specification.

SGIP (Short message Gateway Interface Protocol) is China Unicom's TCP
protocol between a service provider ("SP", us) and Unicom's short message
gateway ("SMG"). Every PDU starts with a 20-octet header (SGIP 1.2, message
header definition): Message Length 4, Command ID 4, Sequence Number 12, all
big-endian unsigned integers. A response's Command ID is its request's with
the top bit set.

Unlike CMPP, a TCP connection carries requests in one direction only: the
SP connects to the SMG to submit (Bind login type 1), and the SMG connects
to the SP to deliver MO messages and status reports (login type 2).

References name the definition in "中国联通短消息网关系统接口协议 (SGIP)
1.2", China Unicom, that a value comes from: a command's field table, the
message header, or the error code table.
"""
from __future__ import annotations

from enum import IntEnum

HEADER_LENGTH = 20          # Message Length + Command ID + Sequence Number (4 + 4 + 12)
# The spec caps a PDU at 2 KB, but a 100-number Submit with a 160-octet text
# is about 2.4 KB and gateways send it; 4 KB still catches a lying length.
DEFAULT_MAX_PDU = 4096
RESPONSE_BIT = 0x80000000   # set in the Command ID of every response
MAX_USER_COUNT = 100        # Submit: "UserCount ... 1-100"
UINT32_MAX = 0xFFFFFFFF


class CommandId(IntEnum):
    """Command ID values of the SP <-> SMG interface (SGIP 1.2, Command ID table)."""
    BIND = 0x00000001               # the connecting side logs in
    BIND_RESP = 0x80000001          # login accepted or refused
    UNBIND = 0x00000002             # either side ends the session
    UNBIND_RESP = 0x80000002        # acknowledges the end
    SUBMIT = 0x00000003             # SP sends an MT short message
    SUBMIT_RESP = 0x80000003        # SMG's result for it
    DELIVER = 0x00000004            # SMG forwards an MO short message to the SP
    DELIVER_RESP = 0x80000004       # SP acknowledges the MO
    REPORT = 0x00000005             # SMG reports the outcome of an earlier Submit
    REPORT_RESP = 0x80000005        # SP acknowledges the report
    USERRPT = 0x00000011            # SMG tells the SP a subscriber's status changed
    USERRPT_RESP = 0x80000011       # SP acknowledges it
    TRACE = 0x00001000              # asks the SMGs on a message's path where it went
    TRACE_RESP = 0x80001000         # one result per SMG the message passed


class LoginType(IntEnum):
    """Login Type of Bind: which kind of link is being opened (SGIP 1.2, Bind)."""
    SP_TO_SMG = 1       # SP connects to the SMG to send Submit
    SMG_TO_SP = 2       # SMG connects to the SP to send Deliver, Report, UserRpt
    SMG_TO_SMG = 3      # between gateways, for forwarding
    SMG_TO_GNS = 4      # gateway to the routing server (GNS), route lookups
    GNS_TO_SMG = 5      # routing server pushing route updates
    GNS_TO_GNS = 6      # primary/standby routing servers
    TEST = 11           # test link between SP and SMG, for Trace


class Result(IntEnum):
    """Result octet of every *_Resp; 21 and above appear as Report's ErrorCode
    (SGIP 1.2, error code table)."""
    OK = 0                      # accepted
    BAD_LOGIN = 1               # login name or password wrong
    DUPLICATE_LOGIN = 2         # a second Bind on the same TCP connection
    TOO_MANY_CONNECTIONS = 3    # the node holds too many connections
    BAD_LOGIN_TYPE = 4          # Login Type wrong for this side
    BAD_PARAMETER = 5           # a field does not match its type or allowed range
    BAD_USER_NUMBER = 6         # a mobile number is malformed (e.g. no leading 86)
    BAD_COMMAND_ID = 7          # unknown or unexpected Command ID
    BAD_LENGTH = 8              # Message Length or MessageLength wrong
    BAD_SEQUENCE = 9            # Sequence Number repeated or malformed
    BAD_GNS_OPERATION = 10      # operation not allowed on the GNS
    NODE_BUSY = 11              # queue full: slow down and retry
    SERVICE_NOT_REGISTERED = 13  # no registered service matches SPNumber + ServiceType
    # Report ErrorCode values:
    DESTINATION_UNREACHABLE = 21  # route exists but the next node is down
    ROUTING_ERROR = 22          # routed to the wrong SMG
    NO_ROUTE = 23               # the destination node is not in the routing table
    BAD_CHARGE_NUMBER = 24      # charging authentication failed
    USER_UNREACHABLE = 25       # handset off or out of coverage
    HANDSET_MEMORY_FULL = 26    # the handset has no room for the message
    SMS_NOT_SUPPORTED = 27      # the handset cannot receive short messages
    HANDSET_RECEIVE_ERROR = 28  # the handset failed while receiving
    UNKNOWN_USER = 29           # no such subscriber
    FUNCTION_NOT_PROVIDED = 30  # the function is not offered
    ILLEGAL_DEVICE = 31         # the handset is barred as illegal equipment
    SYSTEM_FAILURE = 32         # the SMG or SMSC failed
    SMSC_QUEUE_FULL = 33        # the SMSC's queue is full


class ReportState(IntEnum):
    """State of Report (SGIP 1.2, Report)."""
    DELIVERED = 0   # sent successfully
    WAITING = 1     # still waiting to be sent
    FAILED = 2      # failed; ErrorCode says why


class ReportType(IntEnum):
    """ReportType of Report: what the report is about (SGIP 1.2, Report)."""
    SUBMIT = 0      # an earlier Submit
    DELIVER = 1     # an earlier Deliver forwarded between gateways


class ReportFlag(IntEnum):
    """ReportFlag of Submit: when a status report is wanted (SGIP 1.2, Submit)."""
    ON_ERROR = 0        # only if the message finally fails
    ALWAYS = 1          # whether it succeeds or fails
    NEVER = 2           # no report
    FEE_ONLY = 3        # carries only a monthly charge, not shown to the user; report wanted


class FeeType(IntEnum):
    """FeeType of Submit: how the charged number is billed (SGIP 1.2, Submit)."""
    NOT_CHARGED = 0     # "send" type: no information fee, only the SP's channel fee
    FREE = 1            # free for the charged number
    PER_MESSAGE = 2     # information fee per message
    MONTHLY = 3         # monthly subscription fee
    SP_CHARGED = 4      # the SP bills the user itself


class MoRelatedFlag(IntEnum):
    """MorelatetoMTFlag of Submit: what caused this MT (SGIP 1.2, Submit)."""
    MO_FIRST = 0        # first MT answering an MO request
    MO_FOLLOWING = 1    # a later MT answering an MO request
    NOT_MO = 2          # not caused by an MO (pushed by the SP)
    SYSTEM = 3          # a system feedback message


class AgentFlag(IntEnum):
    """AgentFlag of Submit: how the carrier collects the fee (SGIP 1.2, Submit)."""
    RECEIVABLE = 0      # receivable
    RECEIVED = 1        # actually received


class UserCondition(IntEnum):
    """UserCondition of UserRpt (SGIP 1.2, UserRpt)."""
    CANCELLED = 0       # the subscriber cancelled the service
    SUSPENDED = 1       # suspended for arrears
    RESUMED = 2         # back to normal


class MessageCoding(IntEnum):
    """MessageCoding of Submit and Deliver: how to read MessageContent."""
    ASCII = 0       # 7-bit text
    WRITE_CARD = 3  # SIM card write operation
    BINARY = 4      # 8-bit data
    UCS2 = 8        # UTF-16BE text
    GBK = 15        # GB-encoded Chinese text
