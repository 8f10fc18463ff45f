"""Small drivers around the PyPI SMPP clients, shared by the interop tests.

``SyncEsme`` runs smpplib (a blocking client) step by step in a worker
thread, so the asyncio side of the test (Hongyan's simulator or server) keeps
running in the test's loop meanwhile. The receipt and UDH readers below are
written from SMPP 3.4 (appendix B) and 3GPP TS 23.040 (9.2.3.24.1), not from
Hongyan's code, so they check Hongyan's bytes independently.
"""
from __future__ import annotations

import re
import socket
import time

import pytest

smpplib_client = pytest.importorskip("smpplib.client", reason="smpplib is not installed (pip install -e '.[test]')")
import smpplib.consts  # noqa: E402
import smpplib.exceptions  # noqa: E402
import smpplib.gsm  # noqa: E402

RECEIPT = re.compile(
    r"id:(?P<id>\S+) sub:(?P<sub>\d+) dlvrd:(?P<dlvrd>\d+) submit date:(?P<submit>\d{10}) "
    r"done date:(?P<done>\d{10}) stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) [Tt]ext:(?P<text>.*)",
    re.S)


def read_receipt(short_message: bytes) -> dict[str, str]:
    """The appendix-B fields of a receipt's text; fails the test if it does not match."""
    m = RECEIPT.fullmatch(short_message.decode("ascii"))
    assert m, f"not an SMPP 3.4 appendix-B receipt: {short_message!r}"
    return m.groupdict()


def split_concat(body: bytes) -> tuple[int, int, int, bytes]:
    """(ref, total, seq, data) of a part carrying the 8-bit concatenation IE first."""
    udhl = body[0]
    assert body[1:3] == b"\x00\x03", f"no 8-bit concatenation IE in {body[:udhl + 1].hex()}"
    return body[3], body[4], body[5], body[udhl + 1:]


class SyncEsme:
    """An smpplib transceiver; every blocking call is meant for ``asyncio.to_thread``."""

    def __init__(self, port: int, timeout: float = 2.0) -> None:
        self.client = smpplib_client.Client("127.0.0.1", port, timeout=timeout,
                                            allow_unknown_opt_params=True)
        self.responses: list = []        # submit_sm_resp PDUs, in arrival order
        self.delivered: list = []        # deliver_sm PDUs (receipts and MO)
        self.client.set_message_sent_handler(lambda pdu, **_: self.responses.append(pdu))
        self.client.set_message_received_handler(lambda pdu, **_: self.delivered.append(pdu))

    def bind(self, system_id: str, password: str):
        self.client.connect()
        return self.client.bind_transceiver(system_id=system_id, password=password)

    def submit(self, text: str, dest: str, source: str = "1069", receipt: bool = True,
               encoding=smpplib.consts.SMPP_ENCODING_DEFAULT) -> list:
        """Send ``text`` as smpplib's make_parts splits it (UDH for long SMS)."""
        parts, coding, esm_class = smpplib.gsm.make_parts(text, encoding=encoding)
        pdus = []
        for part in parts:
            pdus.append(self.client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_UNK, source_addr=source,
                dest_addr_ton=smpplib.consts.SMPP_TON_UNK, destination_addr=dest,
                short_message=part, data_coding=coding, esm_class=esm_class,
                registered_delivery=receipt))
        return pdus

    def read_until(self, cond, timeout: float = 5.0) -> None:
        """Read and handle PDUs (answering deliver_sm) until ``cond()`` holds."""
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"smpplib: condition not met within {timeout} s "
                                     f"({len(self.responses)} responses, {len(self.delivered)} deliveries)")
            try:
                self.client.read_once(auto_send_enquire_link=False)
            except socket.timeout:
                continue

    def close(self) -> None:
        if self.client._socket is None:  # noqa: SLF001 - smpplib has no public "is connected"
            return
        try:
            if self.client.state in (smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX,
                                     smpplib.consts.SMPP_CLIENT_STATE_BOUND_TX,
                                     smpplib.consts.SMPP_CLIENT_STATE_BOUND_RX):
                self.client.unbind()
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError):
            pass
        finally:
            self.client.disconnect()
