"""Numbers defined by the SMPP 3.4 specification.

SMPP (Short Message Peer-to-Peer, v3.4, SMS Forum, 12 October 1999, issue
1.2) runs between an ESME (an application such as this platform) and an SMSC
(the carrier's message centre). Every PDU starts with a 16-octet header:
command_length, command_id, command_status and sequence_number, all
big-endian uint32 (section 3.2). A response's command_id is its request's
with the top bit set (section 5.1.2.1).
"""
from __future__ import annotations

from enum import IntEnum

HEADER_LENGTH = 16          # command_length + command_id + command_status + sequence_number
# message_payload (5.3.2.32) may carry up to 64 K octets; allow that plus a
# generous fixed part, and refuse anything bigger as a lying command_length.
DEFAULT_MAX_PDU = 65536 + 1024
RESPONSE_BIT = 0x80000000   # set in the command_id of every response
MAX_SEQUENCE = 0x7FFFFFFF   # sequence_number range is 0x00000001..0x7FFFFFFF (5.1.4)
INTERFACE_VERSION = 0x34    # interface_version of a bind for SMPP 3.4 (5.2.4)


class CommandId(IntEnum):
    """command_id values (section 5.1.2.1, table 5-1)."""
    GENERIC_NACK = 0x80000000           # answer to a PDU that could not be understood (4.3)
    BIND_RECEIVER = 0x00000001          # ESME logs in to receive only (4.1.3)
    BIND_RECEIVER_RESP = 0x80000001     # SMSC accepts or refuses it (4.1.4)
    BIND_TRANSMITTER = 0x00000002       # ESME logs in to send only (4.1.1)
    BIND_TRANSMITTER_RESP = 0x80000002  # (4.1.2)
    QUERY_SM = 0x00000003               # ESME asks for a message's state (4.8.1)
    QUERY_SM_RESP = 0x80000003          # (4.8.2)
    SUBMIT_SM = 0x00000004              # ESME sends one message to one address (4.4.1)
    SUBMIT_SM_RESP = 0x80000004         # SMSC's message_id for it (4.4.2)
    DELIVER_SM = 0x00000005             # SMSC delivers an MO or a delivery receipt (4.6.1)
    DELIVER_SM_RESP = 0x80000005        # (4.6.2)
    UNBIND = 0x00000006                 # either side ends the session (4.2.1)
    UNBIND_RESP = 0x80000006            # (4.2.2)
    REPLACE_SM = 0x00000007             # ESME replaces a pending message (4.10.1)
    REPLACE_SM_RESP = 0x80000007        # (4.10.2)
    CANCEL_SM = 0x00000008              # ESME withdraws pending messages (4.9.1)
    CANCEL_SM_RESP = 0x80000008         # (4.9.2)
    BIND_TRANSCEIVER = 0x00000009       # ESME logs in to send and receive (4.1.5)
    BIND_TRANSCEIVER_RESP = 0x80000009  # (4.1.6)
    OUTBIND = 0x0000000B                # SMSC asks the ESME to bind as a receiver (4.1.7)
    ENQUIRE_LINK = 0x00000015           # keep-alive, either direction (4.11.1)
    ENQUIRE_LINK_RESP = 0x80000015      # (4.11.2)
    SUBMIT_MULTI = 0x00000021           # one message to many addresses (4.5.1)
    SUBMIT_MULTI_RESP = 0x80000021      # (4.5.2)
    ALERT_NOTIFICATION = 0x00000102     # SMSC: a subscriber became reachable (4.12.1)
    DATA_SM = 0x00000103                # either side: a message, TLV-driven (4.7.1)
    DATA_SM_RESP = 0x80000103           # (4.7.2)


class CommandStatus(IntEnum):
    """command_status values (section 5.1.3, table 5-2); also error_status_code."""
    ESME_ROK = 0x00000000               # no error
    ESME_RINVMSGLEN = 0x00000001        # message length is invalid
    ESME_RINVCMDLEN = 0x00000002        # command length is invalid
    ESME_RINVCMDID = 0x00000003         # invalid command_id: answer with generic_nack
    ESME_RINVBNDSTS = 0x00000004        # PDU not allowed in the current bind state
    ESME_RALYBND = 0x00000005           # ESME already bound
    ESME_RINVPRTFLG = 0x00000006        # invalid priority_flag
    ESME_RINVREGDLVFLG = 0x00000007     # invalid registered_delivery
    ESME_RSYSERR = 0x00000008           # system error
    ESME_RINVSRCADR = 0x0000000A        # invalid source address
    ESME_RINVDSTADR = 0x0000000B        # invalid destination address
    ESME_RINVMSGID = 0x0000000C         # message_id is invalid
    ESME_RBINDFAIL = 0x0000000D         # bind failed
    ESME_RINVPASWD = 0x0000000E         # invalid password
    ESME_RINVSYSID = 0x0000000F         # invalid system_id
    ESME_RCANCELFAIL = 0x00000011       # cancel_sm failed
    ESME_RREPLACEFAIL = 0x00000013      # replace_sm failed
    ESME_RMSGQFUL = 0x00000014          # message queue full
    ESME_RINVSERTYP = 0x00000015        # invalid service_type
    ESME_RINVNUMDESTS = 0x00000033      # invalid number_of_dests
    ESME_RINVDLNAME = 0x00000034        # invalid distribution list name
    ESME_RINVDESTFLAG = 0x00000040      # invalid dest_flag (submit_multi)
    ESME_RINVSUBREP = 0x00000042        # invalid "submit with replace" request
    ESME_RINVESMCLASS = 0x00000043      # invalid esm_class
    ESME_RCNTSUBDL = 0x00000044         # cannot submit to a distribution list
    ESME_RSUBMITFAIL = 0x00000045       # submit_sm or submit_multi failed
    ESME_RINVSRCTON = 0x00000048        # invalid source address TON
    ESME_RINVSRCNPI = 0x00000049        # invalid source address NPI
    ESME_RINVDSTTON = 0x00000050        # invalid destination address TON
    ESME_RINVDSTNPI = 0x00000051        # invalid destination address NPI
    ESME_RINVSYSTYP = 0x00000053        # invalid system_type
    ESME_RINVREPFLAG = 0x00000054       # invalid replace_if_present_flag
    ESME_RINVNUMMSGS = 0x00000055       # invalid number of messages
    ESME_RTHROTTLED = 0x00000058        # throttled: over the allowed rate, retry later
    ESME_RINVSCHED = 0x00000061         # invalid schedule_delivery_time
    ESME_RINVEXPIRY = 0x00000062        # invalid validity_period
    ESME_RINVDFTMSGID = 0x00000063      # predefined message not found
    ESME_RX_T_APPN = 0x00000064         # receiver temporary error: retry
    ESME_RX_P_APPN = 0x00000065         # receiver permanent error: do not retry
    ESME_RX_R_APPN = 0x00000066         # receiver rejects the message
    ESME_RQUERYFAIL = 0x00000067        # query_sm failed
    ESME_RINVOPTPARSTREAM = 0x000000C0  # error in the optional (TLV) part of the body
    ESME_ROPTPARNOTALLWD = 0x000000C1   # optional parameter not allowed
    ESME_RINVPARLEN = 0x000000C2        # invalid parameter length
    ESME_RMISSINGOPTPARAM = 0x000000C3  # expected optional parameter missing
    ESME_RINVOPTPARAMVAL = 0x000000C4   # invalid optional parameter value
    ESME_RDELIVERYFAILURE = 0x000000FE  # delivery failure (data_sm_resp)
    ESME_RUNKNOWNERR = 0x000000FF       # unknown error


class MessageState(IntEnum):
    """message_state of query_sm_resp and the message_state TLV (section 5.2.28)."""
    ENROUTE = 1         # still being delivered
    DELIVERED = 2       # reached the handset
    EXPIRED = 3         # validity period passed
    DELETED = 4         # cancelled
    UNDELIVERABLE = 5   # cannot be delivered
    ACCEPTED = 6        # accepted on the subscriber's behalf (e.g. by customer care)
    UNKNOWN = 7         # state unknown
    REJECTED = 8        # rejected


class DestFlag(IntEnum):
    """dest_flag of a submit_multi dest_address entry (section 5.2.25)."""
    SME_ADDRESS = 1         # followed by ton, npi and destination_addr
    DISTRIBUTION_LIST = 2   # followed by dl_name


class EsmClass(IntEnum):
    """The message-type bits (2-5) of esm_class in deliver_sm (section 5.2.12)."""
    DEFAULT = 0x00              # an ordinary MO message
    DELIVERY_RECEIPT = 0x04     # an SMSC delivery receipt
    DELIVERY_ACK = 0x08         # an SME delivery acknowledgement
    MANUAL_ACK = 0x10           # an SME manual/user acknowledgement
    CONVERSATION_ABORT = 0x18   # Korean CDMA conversation abort
    INTERMEDIATE_NOTIFICATION = 0x20  # an intermediate delivery notification


ESM_MESSAGE_TYPE_MASK = 0x3C    # bits 2-5 of esm_class
ESM_UDHI = 0x40                 # bit 6: short_message starts with a user data header


class Ton(IntEnum):
    """Type of number of an address (section 5.2.5)."""
    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER_NUMBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(IntEnum):
    """Numbering plan indicator of an address (section 5.2.6)."""
    UNKNOWN = 0
    ISDN = 1        # E.163/E.164: ordinary phone numbers
    DATA = 3        # X.121
    TELEX = 4       # F.69
    LAND_MOBILE = 6  # E.212
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    INTERNET = 14   # IP
    WAP = 18        # WAP client id
