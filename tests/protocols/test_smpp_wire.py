"""Byte-exact SMPP 3.4 PDUs, each written out field by field from the spec.

The expected bytes are built by hand here (never by the encoder): header
fields with ``u32``, one-octet fields with ``u8``, C-Octet Strings with
``c`` (the text and its NUL). ``pdu`` takes the command_length counted by
hand and checks it against the octets given, so a miscount fails loudly.
Every PDU is checked in both directions.
"""
from __future__ import annotations

import pytest

from hongyan.protocols.smpp import (
    AlertNotification, BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp,
    BindTransmitter, BindTransmitterResp, CancelSm, CancelSmResp, CommandStatus, DataSm,
    DataSmResp, DeliverSm, DeliverSmResp, DistributionList, EnquireLink, EnquireLinkResp,
    GenericNack, MessageState, Outbind, QuerySm, QuerySmResp, Receipt, ReplaceSm,
    ReplaceSmResp, SmeAddress, SmppError, SubmitMulti, SubmitMultiResp, SubmitSm, SubmitSmResp,
    Tag, Tlv, Unbind, UnbindResp, UnsuccessSme, decode, encode, find_tlv, format_receipt,
    is_receipt, parse_receipt,
)


def u8(v: int) -> bytes:
    return bytes([v])


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def c(text: bytes) -> bytes:
    """A C-Octet String: the text and one NUL."""
    return text + b"\x00"


def tlv(tag: int, value: bytes) -> bytes:
    return u16(tag) + u16(len(value)) + value


def pdu(total: int, command_id: int, status: int, seq: int, *fields: bytes) -> bytes:
    body = b"".join(fields)
    assert 16 + len(body) == total, f"hand count {total} != {16 + len(body)}"
    return u32(total) + u32(command_id) + u32(status) + u32(seq) + body


def roundtrip(event, data: bytes) -> None:
    assert encode(event) == data
    assert decode(data) == event


# --- bind, outbind, unbind, generic_nack --------------------------------------------

def test_bind_transmitter_hex():
    # 4.1.1: "smppclient1", "password", "", 0x34, ton 1, npi 1, "".
    data = bytes.fromhex(
        "0000002a" "00000002" "00000000" "00000001"
        "736d7070636c69656e743100" "70617373776f726400" "00" "34" "01" "01" "00")
    roundtrip(BindTransmitter(1, "smppclient1", "password", "", 0x34, 1, 1, ""), data)


@pytest.mark.parametrize("cls, command_id", [(BindReceiver, 0x01), (BindTransceiver, 0x09)])
def test_bind_receiver_and_transceiver(cls, command_id):
    data = pdu(41, command_id, 0, 2, c(b"hy"), c(b"secret"), c(b"SMS"), u8(0x34), u8(0),
               u8(0), c(b"^1065.*"))
    roundtrip(cls(2, "hy", "secret", "SMS", 0x34, 0, 0, "^1065.*"), data)


def test_bind_transceiver_resp_with_sc_interface_version():
    data = pdu(26, 0x80000009, 0, 1, c(b"SMSC"), tlv(0x0210, u8(0x34)))
    event = BindTransceiverResp(1, 0, "SMSC", (Tlv(Tag.SC_INTERFACE_VERSION, 0x34),))
    roundtrip(event, data)
    assert find_tlv(decode(data).tlvs, Tag.SC_INTERFACE_VERSION) == 0x34


def test_bind_resp_error_has_no_body():
    roundtrip(BindReceiverResp(3, CommandStatus.ESME_RINVPASWD),
              pdu(16, 0x80000001, 0x0E, 3))
    roundtrip(BindTransmitterResp(4, 0), pdu(17, 0x80000002, 0, 4, c(b"")))


def test_bind_resp_error_with_a_body_keeps_it():
    data = pdu(21, 0x80000002, 0x0D, 5, c(b"SMSC"))
    roundtrip(BindTransmitterResp(5, CommandStatus.ESME_RBINDFAIL, "SMSC"), data)


def test_outbind():
    roundtrip(Outbind(9, "SMSC", "pw"), pdu(24, 0x0000000B, 0, 9, c(b"SMSC"), c(b"pw")))


@pytest.mark.parametrize("event, command_id, status", [
    (Unbind(7), 0x00000006, 0),
    (UnbindResp(7), 0x80000006, 0),
    (GenericNack(7, CommandStatus.ESME_RINVCMDID), 0x80000000, 3),
    (EnquireLink(7), 0x00000015, 0),
    (EnquireLinkResp(7), 0x80000015, 0),
    (CancelSmResp(7, CommandStatus.ESME_RCANCELFAIL), 0x80000008, 0x11),
    (ReplaceSmResp(7), 0x80000007, 0),
])
def test_header_only_pdus(event, command_id, status):
    roundtrip(event, pdu(16, command_id, status, 7))


def test_enquire_link_hex():
    roundtrip(EnquireLink(0x7FFFFFFF),
              bytes.fromhex("00000010" "00000015" "00000000" "7fffffff"))


def test_request_command_status_is_ignored():
    # 3.2: command_status is NULL in requests; a stray value is not an error.
    assert decode(pdu(16, 0x15, 0x99, 1)) == EnquireLink(1)


# --- submit_sm, deliver_sm ---------------------------------------------------------------

SUBMIT_FIELDS = (
    c(b""),                                 # service_type
    u8(5), u8(0), c(b"Hongyan"),            # source: alphanumeric
    u8(1), u8(1), c(b"8613800138000"),      # destination: international, ISDN
    u8(0), u8(0), u8(0),                    # esm_class, protocol_id, priority_flag
    c(b""), c(b""),                         # schedule_delivery_time, validity_period
    u8(1), u8(0), u8(8), u8(0),             # registered_delivery, replace, data_coding, default id
    u8(4), "你好".encode("utf-16-be"),      # sm_length, short_message
)


def test_submit_sm_with_sar_tlvs():
    data = pdu(73, 0x00000004, 0, 0x10, *SUBMIT_FIELDS,
               tlv(0x020C, u16(0x1234)), tlv(0x020E, u8(2)), tlv(0x020F, u8(1)))
    event = SubmitSm(0x10, "", 5, 0, "Hongyan", 1, 1, "8613800138000", 0, 0, 0, "", "", 1, 0, 8,
                     0, "你好".encode("utf-16-be"),
                     (Tlv(Tag.SAR_MSG_REF_NUM, 0x1234), Tlv(Tag.SAR_TOTAL_SEGMENTS, 2),
                      Tlv(Tag.SAR_SEGMENT_SEQNUM, 1)))
    roundtrip(event, data)


def test_submit_sm_with_validity_and_message_payload():
    payload = b"x" * 300
    data = pdu(16 + 1 + 2 + 5 + 2 + 14 + 3 + 1 + 17 + 4 + 1 + 4 + 300, 0x00000004, 0, 1,
               c(b""), u8(0), u8(0), c(b"1065"), u8(1), u8(1), c(b"8613800138000"),
               u8(0), u8(0), u8(1), c(b""), c(b"000001000000000R"),
               u8(1), u8(0), u8(0), u8(0), u8(0),
               tlv(0x0424, payload))
    event = SubmitSm(1, source_addr="1065", dest_addr_ton=1, dest_addr_npi=1,
                     destination_addr="8613800138000", priority_flag=1,
                     validity_period="000001000000000R", registered_delivery=1,
                     tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, payload),))
    roundtrip(event, data)


def test_unknown_tlv_round_trips_raw():
    data = pdu(57 + 6, 0x00000004, 0, 0x10, *SUBMIT_FIELDS, tlv(0x1401, b"ab"))
    event = decode(data)
    assert event.tlvs == (Tlv(0x1401, b"ab"),)
    assert encode(event) == data


RECEIPT_TEXT = (b"id:0123abcd sub:001 dlvrd:001 submit date:2401020304 "
                b"done date:2401020305 stat:DELIVRD err:000 text:hello")


def test_deliver_sm_receipt():
    data = pdu(173, 0x00000005, 0, 77,
               c(b""), u8(1), u8(1), c(b"8613800138000"), u8(0), u8(0), c(b"1065"),
               u8(0x04), u8(0), u8(0), c(b""), c(b""), u8(0), u8(0), u8(0), u8(0),
               u8(105), RECEIPT_TEXT,
               tlv(0x001E, c(b"0123abcd")), tlv(0x0427, u8(2)))
    event = DeliverSm(77, source_addr_ton=1, source_addr_npi=1, source_addr="8613800138000",
                      destination_addr="1065", esm_class=0x04, short_message=RECEIPT_TEXT,
                      tlvs=(Tlv(Tag.RECEIPTED_MESSAGE_ID, "0123abcd"),
                            Tlv(Tag.MESSAGE_STATE, MessageState.DELIVERED)))
    roundtrip(event, data)
    assert is_receipt(event)
    assert not is_receipt(DeliverSm(1, esm_class=0x40))     # UDHI only: an MO
    receipt = parse_receipt(event.short_message)
    assert receipt == Receipt("0123abcd", "DELIVRD", "2401020304", "2401020305", "001", "001",
                              "000", "hello")


def test_receipted_message_id_without_nul_is_accepted():
    fields = (c(b""), u8(0), u8(0), c(b"1"), u8(0), u8(0), c(b"2"), u8(4), u8(0), u8(0),
              c(b""), c(b""), u8(0), u8(0), u8(0), u8(0), u8(0))
    data = pdu(16 + 19 + 4 + 3, 0x05, 0, 1, *fields, tlv(0x001E, b"abc"))
    assert find_tlv(decode(data).tlvs, Tag.RECEIPTED_MESSAGE_ID) == "abc"


def test_submit_sm_resp():
    roundtrip(SubmitSmResp(2, 0, "0123abcd"), pdu(25, 0x80000004, 0, 2, c(b"0123abcd")))


def test_submit_sm_resp_error_without_body():
    # 4.4.2: no body when command_status is non-zero.
    data = bytes.fromhex("00000010" "80000004" "00000058" "00000003")
    roundtrip(SubmitSmResp(3, CommandStatus.ESME_RTHROTTLED), data)


def test_deliver_sm_resp():
    roundtrip(DeliverSmResp(77), pdu(17, 0x80000005, 0, 77, c(b"")))
    roundtrip(DeliverSmResp(78, CommandStatus.ESME_RX_T_APPN), pdu(16, 0x80000005, 0x64, 78))


# --- submit_multi -------------------------------------------------------------------------

def test_submit_multi_with_sme_and_distribution_list():
    data = pdu(63, 0x00000021, 0, 4,
               c(b""), u8(0), u8(0), c(b"1065"),
               u8(2),                                           # number_of_dests
               u8(1), u8(1), u8(1), c(b"8613800138000"),        # dest_flag 1: SME address
               u8(2), c(b"friends"),                            # dest_flag 2: list name
               u8(0), u8(0), u8(0), c(b""), c(b""), u8(0), u8(0), u8(0), u8(0),
               u8(2), b"hi")
    event = SubmitMulti(4, source_addr="1065",
                        dest_addresses=(SmeAddress(1, 1, "8613800138000"),
                                        DistributionList("friends")),
                        short_message=b"hi")
    roundtrip(event, data)


def test_submit_multi_resp_with_unsuccess_sme():
    data = pdu(40, 0x80000021, 0, 4, c(b"m1"), u8(1),
               u8(1), u8(1), c(b"8613800138001"), u32(0x0B))
    event = SubmitMultiResp(4, 0, "m1",
                            (UnsuccessSme(1, 1, "8613800138001",
                                          CommandStatus.ESME_RINVDSTADR),))
    roundtrip(event, data)
    roundtrip(SubmitMultiResp(5, 0, "m2"), pdu(20, 0x80000021, 0, 5, c(b"m2"), u8(0)))


def test_submit_multi_bad_dest_flag():
    data = pdu(16 + 1 + 2 + 2 + 1 + 1, 0x21, 0, 8, c(b""), u8(0), u8(0), c(b"1"), u8(1), u8(3))
    with pytest.raises(SmppError) as info:
        decode(data)
    assert info.value.status == CommandStatus.ESME_RINVDESTFLAG
    assert info.value.sequence_number == 8


# --- data_sm, query_sm, cancel_sm, replace_sm, alert_notification ----------------------------

def test_data_sm():
    data = pdu(59, 0x00000103, 0, 6,
               c(b"WAP"), u8(0), u8(0), c(b"1065"), u8(1), u8(1), c(b"8613800138000"),
               u8(0), u8(1), u8(4),
               tlv(0x0424, b"\x01\x02\x03"), tlv(0x020A, u16(0x0B84)))
    event = DataSm(6, "WAP", 0, 0, "1065", 1, 1, "8613800138000", 0, 1, 4,
                   (Tlv(Tag.MESSAGE_PAYLOAD, b"\x01\x02\x03"), Tlv(Tag.SOURCE_PORT, 0x0B84)))
    roundtrip(event, data)


def test_data_sm_takes_longer_addresses_than_submit_sm():
    long_addr = "a" * 64
    assert decode(encode(DataSm(1, source_addr=long_addr))).source_addr == long_addr
    with pytest.raises(SmppError):
        encode(SubmitSm(1, source_addr="a" * 21))


def test_data_sm_resp():
    data = pdu(26, 0x80000103, 0, 6, c(b"x1"), tlv(0x0423, b"\x03\x00\x01"))
    roundtrip(DataSmResp(6, 0, "x1", (Tlv(Tag.NETWORK_ERROR_CODE, b"\x03\x00\x01"),)), data)
    roundtrip(DataSmResp(7, CommandStatus.ESME_RDELIVERYFAILURE), pdu(16, 0x80000103, 0xFE, 7))


def test_query_sm():
    data = pdu(41, 0x00000003, 0, 11, c(b"0123abcd"), u8(1), u8(1), c(b"8613800138000"))
    roundtrip(QuerySm(11, "0123abcd", 1, 1, "8613800138000"), data)


def test_query_sm_resp():
    data = pdu(44, 0x80000003, 0, 11, c(b"0123abcd"), c(b"240102030405000+"), u8(2), u8(0))
    roundtrip(QuerySmResp(11, 0, "0123abcd", "240102030405000+", MessageState.DELIVERED, 0),
              data)
    roundtrip(QuerySmResp(12, CommandStatus.ESME_RQUERYFAIL), pdu(16, 0x80000003, 0x67, 12))


def test_cancel_sm():
    data = pdu(49, 0x00000008, 0, 12, c(b""), c(b"0123abcd"), u8(1), u8(1), c(b"1065"),
               u8(1), u8(1), c(b"8613800138000"))
    roundtrip(CancelSm(12, "", "0123abcd", 1, 1, "1065", 1, 1, "8613800138000"), data)


def test_replace_sm():
    data = pdu(40, 0x00000007, 0, 13, c(b"0123abcd"), u8(0), u8(0), c(b"1065"), c(b""), c(b""),
               u8(1), u8(0), u8(3), b"new")
    roundtrip(ReplaceSm(13, "0123abcd", 0, 0, "1065", "", "", 1, 0, b"new"), data)


def test_alert_notification():
    data = pdu(44, 0x00000102, 0, 14, u8(1), u8(1), c(b"8613800138000"), u8(0), u8(0),
               c(b"1065"), tlv(0x0422, u8(0)))
    roundtrip(AlertNotification(14, 1, 1, "8613800138000", 0, 0, "1065",
                                (Tlv(Tag.MS_AVAILABILITY_STATUS, 0),)), data)


# --- values that do not fit are refused, not cut ------------------------------------------

@pytest.mark.parametrize("event", [
    BindTransmitter(1, system_id="x" * 16),             # 15 characters plus the NUL
    BindTransmitter(1, password="x" * 9),
    BindTransmitter(1, interface_version=256),
    SubmitSm(1, destination_addr="1" * 21),
    SubmitSm(1, short_message=b"x" * 255),
    SubmitSm(1, validity_period="0001"),                # neither empty nor 16 characters
    SubmitSm(1, source_addr="a\0b"),
    SubmitSm(1, service_type="é"),
    SubmitSm(1, tlvs=(Tlv(Tag.SAR_TOTAL_SEGMENTS, 256),)),
    SubmitSm(1, tlvs=(Tlv(Tag.SAR_MSG_REF_NUM, "7"),)),
    SubmitSm(1, tlvs=(Tlv(Tag.NETWORK_ERROR_CODE, b"\x01\x02"),)),
    SubmitSm(1, tlvs=(Tlv(Tag.RECEIPTED_MESSAGE_ID, "x" * 65),)),
    SubmitSm(1, tlvs=(Tlv(0x10000, b""),)),
    SubmitMulti(1, dest_addresses=tuple(SmeAddress() for _ in range(255))),
    SubmitMulti(1, dest_addresses=("8613800138000",)),
    SubmitSmResp(1, message_id="x" * 65),
    EnquireLink(1 << 32),
])
def test_values_that_do_not_fit_raise(event):
    with pytest.raises(SmppError) as info:
        encode(event)
    assert info.value.sequence_number == event.sequence_number


def test_not_an_event():
    with pytest.raises(SmppError):
        encode(object())


# --- malformed bodies name the command, the sequence and the answer --------------------------

def test_unknown_command_is_answerable_with_generic_nack():
    data = pdu(20, 0x00000099, 0, 42, b"junk")
    with pytest.raises(SmppError) as info:
        decode(data)
    err = info.value
    assert (err.command_id, err.sequence_number, err.fatal) == (0x99, 42, False)
    assert err.status == CommandStatus.ESME_RINVCMDID
    assert err.generic_nack() == GenericNack(42, CommandStatus.ESME_RINVCMDID)
    assert "0x00000099" in str(err)


@pytest.mark.parametrize("data, status", [
    # query_sm with an octet after its last field.
    (pdu(23, 0x03, 0, 5, c(b"a"), u8(0), u8(0), c(b"b"), b"!"), CommandStatus.ESME_RINVCMDLEN),
    # query_sm cut inside the source address.
    (pdu(21, 0x03, 0, 5, c(b"a"), u8(0), u8(0), b"b"), CommandStatus.ESME_RINVSRCADR),
    # system_id with no NUL within its 16 octets.
    (pdu(16 + 17 + 3 + 1 + 3 + 1, 0x02, 0, 5, b"x" * 17, c(b"pw"), c(b""), u8(0x34), u8(0),
         u8(0), c(b"")), CommandStatus.ESME_RINVSYSID),
    # sm_length says 9 but only 2 octets follow.
    (pdu(16 + 19 + 2, 0x04, 0, 5, c(b""), u8(0), u8(0), c(b"1"), u8(0), u8(0), c(b"2"), u8(0),
         u8(0), u8(0), c(b""), c(b""), u8(0), u8(0), u8(0), u8(0), u8(9), b"hi"),
     CommandStatus.ESME_RINVMSGLEN),
    # a TLV header cut short.
    (pdu(16 + 5 + 3, 0x80000002, 0, 5, c(b"SMSC"), b"\x02\x10\x00"),
     CommandStatus.ESME_RINVOPTPARSTREAM),
    # a TLV claiming more octets than remain.
    (pdu(16 + 5 + 5, 0x80000002, 0, 5, c(b"SMSC"), u16(0x0210), u16(2), u8(0x34)),
     CommandStatus.ESME_RINVOPTPARSTREAM),
    # sc_interface_version is one octet, not two.
    (pdu(16 + 5 + 6, 0x80000002, 0, 5, c(b"SMSC"), tlv(0x0210, u16(0x34))),
     CommandStatus.ESME_RINVPARLEN),
    # a non-ASCII message_id.
    (pdu(16 + 2, 0x80000004, 0, 5, c(b"\xff")), CommandStatus.ESME_RINVMSGID),
])
def test_malformed_bodies(data, status):
    with pytest.raises(SmppError) as info:
        decode(data)
    assert info.value.status == status
    assert info.value.sequence_number == 5
    assert not info.value.fatal


def test_length_disagreeing_with_the_pdu():
    with pytest.raises(SmppError):
        decode(pdu(16, 0x15, 0, 1)[:15])
    with pytest.raises(SmppError) as info:
        decode(u32(17) + u32(0x15) + u32(0) + u32(1))
    assert info.value.sequence_number == 1


# --- delivery receipt text (appendix B) -----------------------------------------------------

def test_parse_receipt_spec_form():
    text = (b"id:1234567890 sub:001 dlvrd:001 submit date:0610191018 "
            b"done date:0610191018 stat:DELIVRD err:000 Text:Hello World")
    assert parse_receipt(text) == Receipt("1234567890", "DELIVRD", "0610191018", "0610191018",
                                          "001", "001", "000", "Hello World")


def test_parse_receipt_variants():
    # Fields in another order, upper case, dates with seconds, no text.
    r = parse_receipt("STAT:UNDELIV ID:ab12 err:024 submit date:240102030405 "
                      "done date:240102030406 sub:1 dlvrd:0")
    assert (r.message_id, r.stat, r.err, r.sub, r.dlvrd, r.text) == \
        ("ab12", "UNDELIV", "024", "1", "0", "")
    assert r.submit_date == "240102030405"
    # The text runs to the end, keywords inside it included.
    assert parse_receipt(b"id:1 stat:DELIVRD text:id:2 stat:X").text == "id:2 stat:X"
    assert parse_receipt(b"id:1 stat:EXPIRED").done_date == ""


@pytest.mark.parametrize("text", [b"", b"hello", b"id:1 sub:001", b"stat:DELIVRD"])
def test_parse_receipt_refuses_other_text(text):
    with pytest.raises(SmppError):
        parse_receipt(text)


def test_format_receipt():
    r = Receipt("0123abcd", "DELIVRD", "2401020304", "2401020305", text="hello")
    assert format_receipt(r) == RECEIPT_TEXT
    assert parse_receipt(format_receipt(r)) == r
    with pytest.raises(SmppError):
        format_receipt(Receipt("1", "DELIVRD", text="你好"))
