"""Helpers for driving the PyPI CMPP clients (pycmpp: CMPP 2.0; cmppy: CMPP 3.0).

Neither package reads CMPP_DELIVER, so the tests read it with ``read_deliver``,
written from the CMPP 2.0 / 3.0 specifications' layouts (not from Hongyan's
codec), and answer it with ``deliver_resp`` built the same way. Everything
else on the wire is the peer's own code. Blocking calls are meant for
``asyncio.to_thread`` while Hongyan runs in the test's loop.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

CMPP_CONNECT_RESP = 0x80000001
CMPP_SUBMIT_RESP = 0x80000004
CMPP_DELIVER = 0x00000005
CMPP_DELIVER_RESP = 0x80000005
CMPP_ACTIVE_TEST = 0x00000008
CMPP_ACTIVE_TEST_RESP = 0x80000008
CMPP_TERMINATE_RESP = 0x80000002


class Wire:
    """A blocking CMPP byte stream: write PDUs the peer built, read whole PDUs back."""

    def __init__(self, port: int, timeout: float = 5.0, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"closed by the gateway after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def read(self) -> tuple[int, int, bytes]:
        """(Command_Id, Sequence_Id, the whole PDU)."""
        head = self._exact(12)
        length, command, seq = struct.unpack(">III", head)
        return command, seq, head + self._exact(length - 12)

    def read_until(self, command: int, skip=(CMPP_ACTIVE_TEST,)) -> bytes:
        while True:
            got, seq, pdu = self.read()
            if got == command:
                return pdu
            if got == CMPP_ACTIVE_TEST and CMPP_ACTIVE_TEST in skip:
                # Answered by the spec (Reserved, one octet), not by pycmpp: see test_pycmpp_*.
                self.send(struct.pack(">IIIB", 13, CMPP_ACTIVE_TEST_RESP, seq, 0))
                continue
            raise AssertionError(f"expected 0x{command:08X}, got 0x{got:08X}: {pdu.hex()}")

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self) -> None:
        self.sock.close()


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii")


@dataclass
class Delivered:
    sequence_id: int
    msg_id: int
    dest_id: str
    service_id: str
    tp_udhi: int
    msg_fmt: int
    src_terminal_id: str
    registered_delivery: int
    content: bytes
    # Status report fields (registered_delivery == 1)
    report_msg_id: int | None = None
    stat: str = ""
    submit_time: str = ""
    done_time: str = ""
    dest_terminal_id: str = ""


def read_deliver(pdu: bytes, version: int = 0x20) -> Delivered:
    """CMPP_DELIVER by the spec: 2.0 has 21-octet terminal ids and Reserved 8;
    3.0 has 32-octet ids, a Src_terminal_type octet and LinkID 20."""
    length, command, seq = struct.unpack(">III", pdu[:12])
    assert command == CMPP_DELIVER and length == len(pdu)
    b = pdu[12:]
    term = 21 if version == 0x20 else 32
    msg_id, = struct.unpack(">Q", b[0:8])
    dest_id, service_id = cstr(b[8:29]), cstr(b[29:39])
    tp_udhi, msg_fmt = b[40], b[41]
    at = 42
    src = cstr(b[at:at + term])
    at += term + (1 if version == 0x30 else 0)
    registered, msg_len = b[at], b[at + 1]
    content = b[at + 2:at + 2 + msg_len]
    tail = 8 if version == 0x20 else 20
    assert len(b) == at + 2 + msg_len + tail, "DELIVER length does not match its Msg_Length"
    d = Delivered(seq, msg_id, dest_id, service_id, tp_udhi, msg_fmt, src, registered, content)
    if registered == 1:
        assert msg_len == 8 + 7 + 10 + 10 + term + 4, f"report content of {msg_len} octets"
        d.report_msg_id, = struct.unpack(">Q", content[0:8])
        d.stat = content[8:15].decode("ascii")
        d.submit_time, d.done_time = content[15:25].decode("ascii"), content[25:35].decode("ascii")
        d.dest_terminal_id = cstr(content[35:35 + term])
    return d


def deliver_resp(d: Delivered, result: int = 0, version: int = 0x20) -> bytes:
    """CMPP_DELIVER_RESP: Msg_Id and Result (one octet in 2.0, four in 3.0)."""
    body = struct.pack(">QB" if version == 0x20 else ">QI", d.msg_id, result)
    return struct.pack(">III", 12 + len(body), CMPP_DELIVER_RESP, d.sequence_id) + body


def concat_parts(contents: list[bytes]) -> tuple[int, list[tuple[int, int]], bytes]:
    """(ref, [(total, seq)...], joined user data) of UDH parts 05 00 03 ref total seq."""
    refs, order, data = set(), [], []
    for c in contents:
        assert c[:3] == b"\x05\x00\x03", f"no 8-bit concatenation UDH: {c[:6].hex()}"
        refs.add(c[3])
        order.append((c[4], c[5]))
        data.append((c[5], c[6:]))
    assert len(refs) == 1
    return refs.pop(), order, b"".join(d for _, d in sorted(data))
