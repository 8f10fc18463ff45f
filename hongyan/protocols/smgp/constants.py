"""Numbers defined by the SMGP 3.0 specification.

SMGP (Short Message Gateway Protocol) is China Telecom's TCP protocol between
a service provider ("SP", us as a client) and the short message gateway
("SMGW", the server). Every PDU starts with a 12-octet header: PacketLength,
RequestID and SequenceID, all big-endian uint32 (SMGP V3.0 section 5.2.1).
A response's RequestID is its request's with the top bit set.

Section numbers refer to "China Telecom Short Message Gateway Protocol
(SMGP) V3.0" (SN RC1 SMGP V3.0.2): chapter 5.2 lays out the PDUs, chapter 6
describes their fields (6.1 header, 6.2 mandatory body fields, 6.3 TLVs).
"""
from __future__ import annotations

from enum import IntEnum

HEADER_LENGTH = 12          # PacketLength + RequestID + SequenceID
DEFAULT_MAX_PDU = 4096      # a 100-number submit with full content and every TLV is ~2.9 KB
RESPONSE_BIT = 0x80000000   # set in the RequestID of every response
MAX_SEQUENCE = 0x7FFFFFFF   # some gateways treat SequenceID as signed, so stay positive
MAX_DEST_TERM_IDS = 100     # DestTermIDCount is at most 100 (6.2.21)
# MsgID: SMGW code 3 + MMDDHHMM 4 + sequence 3 octets, all packed BCD (chapter 6.2, MsgID).
MSG_ID_LENGTH = 10


class Version(IntEnum):
    """ClientVersion / ServerVersion: high nibble major, low nibble minor (6.2.5)."""
    V30 = 0x30  # SMGP 3.0, the layouts implemented in wire.py (TLVs after the fixed body)


V30 = Version.V30


class RequestId(IntEnum):
    """RequestID values for the SP <-> SMGW link (6.1.2)."""
    LOGIN = 0x00000001              # client logs in (5.2.2.1)
    LOGIN_RESP = 0x80000001         # server accepts or refuses the login (5.2.2.1)
    SUBMIT = 0x00000002             # SP sends an MT short message (5.2.2.2)
    SUBMIT_RESP = 0x80000002        # gateway's MsgID and status for it (5.2.2.2)
    DELIVER = 0x00000003            # gateway delivers an MO or a status report (5.2.2.3)
    DELIVER_RESP = 0x80000003       # SP acknowledges the delivery (5.2.2.3)
    ACTIVE_TEST = 0x00000004        # keep-alive, either direction
    ACTIVE_TEST_RESP = 0x80000004   # keep-alive answer
    EXIT = 0x00000006               # either side ends the session
    EXIT_RESP = 0x80000006          # acknowledges the end
    QUERY = 0x00000007              # SP asks for traffic statistics
    QUERY_RESP = 0x80000007         # the statistics


LOGIN = RequestId.LOGIN
LOGIN_RESP = RequestId.LOGIN_RESP
SUBMIT = RequestId.SUBMIT
SUBMIT_RESP = RequestId.SUBMIT_RESP
DELIVER = RequestId.DELIVER
DELIVER_RESP = RequestId.DELIVER_RESP
ACTIVE_TEST = RequestId.ACTIVE_TEST
ACTIVE_TEST_RESP = RequestId.ACTIVE_TEST_RESP
EXIT = RequestId.EXIT
EXIT_RESP = RequestId.EXIT_RESP
QUERY = RequestId.QUERY
QUERY_RESP = RequestId.QUERY_RESP


class LoginMode(IntEnum):
    """LoginMode of Login (6.2.3): which traffic this connection carries."""
    SEND = 0        # the client sends MT messages (Submit)
    RECEIVE = 1     # the client receives MO messages and reports (Deliver)
    TRANSMIT = 2    # both directions on one connection


class Status(IntEnum):
    """Status of Login_Resp (6.2.6), Submit_Resp and Deliver_Resp (chapter 6.2, Status).

    Anything but OK is a failure; the table below lists the codes gateways
    actually send, other values are passed through as plain ints.
    """
    OK = 0                          # success
    SYSTEM_BUSY = 1                 # gateway overloaded: retry later
    TOO_MANY_CONNECTIONS = 2        # the account's connection limit is reached
    BAD_STRUCTURE = 10              # the PDU was malformed
    BAD_REQUEST_ID = 11             # unknown or unexpected RequestID
    SEQUENCE_REPEATED = 12          # duplicate SequenceID
    BAD_IP_ADDRESS = 20             # the client's address is not allowed for this account
    AUTH_FAILED = 21                # AuthenticatorClient did not match: wrong secret or clock
    VERSION_TOO_HIGH = 22           # gateway does not speak the requested version
    BAD_MSG_TYPE = 30               # MsgType not valid
    BAD_PRIORITY = 31               # Priority not valid
    BAD_FEE_TYPE = 32               # FeeType not valid
    BAD_FEE_CODE = 33               # FeeCode not valid
    BAD_MSG_FORMAT = 34             # MsgFormat not valid
    BAD_TIME_FORMAT = 35            # ValidTime / AtTime / Time not in the time format
    BAD_MSG_LENGTH = 36             # MsgLength does not match or exceeds the limit
    EXPIRED = 37                    # ValidTime already passed
    BAD_QUERY_TYPE = 38             # QueryType not valid
    ROUTING_ERROR = 39              # no route to the destination
    BAD_FIXED_FEE = 40              # FixedFee not valid
    BAD_SERVICE_ID = 43             # ServiceID not registered for this SP
    BAD_VALID_TIME = 44             # ValidTime not valid
    BAD_AT_TIME = 45                # AtTime not valid
    BAD_SRC_TERM_ID = 46            # SrcTermID is not under the SP's access code
    BAD_DEST_TERM_ID = 47           # a DestTermID is not a valid number
    BAD_CHARGE_TERM_ID = 48         # ChargeTermID is not a valid number
    BAD_SP_CODE = 49                # the SP code is not valid


class MsgType(IntEnum):
    """MsgType of Submit (6.2.9)."""
    MO = 0          # mobile originated (gateway-to-gateway forwarding)
    MT = 6          # mobile terminated: what an SP submits
    P2P = 7         # point to point


class MsgFormat(IntEnum):
    """MsgFormat of Submit and Deliver: how to read MsgContent (6.2.16)."""
    ASCII = 0       # 7-bit text, up to 160 octets
    WRITE_CARD = 3  # SIM card write operation
    BINARY = 4      # 8-bit data
    UCS2 = 8        # UTF-16BE text, up to 140 octets (70 characters)
    GB18030 = 15    # GB-encoded Chinese text


class NeedReport(IntEnum):
    """NeedReport of Submit (6.2.10)."""
    NO = 0          # no status report
    YES = 1         # send a status report for this message
