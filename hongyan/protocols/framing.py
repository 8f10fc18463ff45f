"""Length-prefixed PDU framing over a byte stream, shared by the sans-I/O codecs.

CMPP, SMGP, SGIP and SMPP all frame PDUs the same way: a fixed-size header
whose first field is the PDU's total length. :class:`Framer` buffers the bytes
read from the socket and hands out one complete PDU at a time as an offset into
its buffer (no copies); decoding the header fields and body is the codec's job.

Fatal framing errors (a length outside the limits, EOF inside a PDU) are built
by a callable the codec passes in, so each codec keeps its own error class; the
framer raises that error and raises it again on every later read.
"""
from __future__ import annotations

import struct
from typing import Callable

# Consumed bytes are dropped from the front of the receive buffer once this
# many have piled up, so the buffer is compacted rarely rather than per PDU.
_COMPACT_AT = 64 * 1024


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")
"""Returned by next_event when no complete PDU is buffered yet."""

CLOSED = _Sentinel("CLOSED")
"""Returned by next_event once the peer has closed TCP and the buffer is empty."""


class Framer:
    """Receive buffer that cuts a byte stream into length-prefixed PDUs.

    ``header_length`` is the fixed header size; the PDU's total length (header
    included), called ``length_name`` in error messages, is read with
    ``length_format`` at ``length_offset`` within the header and must lie in
    ``min_length``..``max_length`` (``min_length`` defaults to
    ``header_length``). ``fatal(message, pos)`` builds the codec's
    fatal error; ``pos`` is the offset of the PDU's header in :attr:`buf`, or
    ``None`` when not even a whole header arrived.
    """

    __slots__ = ("buf", "pos", "eof", "error", "deferred", "header_length", "min_length",
                 "max_length", "length_name", "_length_offset", "_unpack_length", "_fatal")

    def __init__(self, header_length: int, max_length: int, length_name: str,
                 fatal: Callable[[str, int | None], Exception], *,
                 length_format: str = ">I", length_offset: int = 0,
                 min_length: int | None = None) -> None:
        self.buf = bytearray()
        self.pos = 0                              # start of the unread bytes in buf
        self.eof = False
        self.error: Exception | None = None       # fatal, raised on every later read
        self.deferred: Exception | None = None    # held back by drain(), raised next
        self.header_length = header_length
        self.min_length = header_length if min_length is None else min_length
        self.max_length = max_length
        self.length_name = length_name
        self._length_offset = length_offset
        self._unpack_length = struct.Struct(length_format).unpack_from
        self._fatal = fatal

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out as frames."""
        return len(self.buf) - self.pos

    def feed(self, data: bytes) -> None:
        """Buffer bytes read from the socket; ``b""`` means the peer closed (EOF)."""
        if not data:
            self.eof = True
            return
        if self.eof:
            raise RuntimeError("receive_data after EOF")
        buf = self.buf
        pos = self.pos
        if pos:
            if pos == len(buf):
                buf.clear()
                self.pos = 0
            elif pos >= _COMPACT_AT:
                del buf[:pos]
                self.pos = 0
        buf += data

    def _raise_fatal(self, message: str, pos: int | None) -> None:
        err = self._fatal(message, pos)
        self.error = err
        raise err

    def next_frame(self) -> tuple[int, int] | _Sentinel:
        """``(offset, total_length)`` of the next complete PDU in :attr:`buf`,
        ``NEED_DATA`` or ``CLOSED``.

        The PDU is consumed before it is returned, so one that fails to decode
        is skipped, not re-read. An error deferred by :meth:`drain` is raised
        first, then any earlier fatal error.
        """
        if self.deferred is not None:
            err, self.deferred = self.deferred, None
            raise err
        if self.error is not None:
            raise self.error
        buf = self.buf
        pos = self.pos
        available = len(buf) - pos
        if available < self.header_length:
            if not self.eof:
                return NEED_DATA
            if available:
                self._raise_fatal(f"connection closed inside a PDU header ({available} octets)",
                                  None)
            return CLOSED
        (total,) = self._unpack_length(buf, pos + self._length_offset)
        if total < self.min_length or total > self.max_length:
            self._raise_fatal(f"{self.length_name} {total} is outside "
                              f"{self.min_length}..{self.max_length}", pos)
        if available < total:
            if not self.eof:
                return NEED_DATA
            self._raise_fatal(f"connection closed inside a {total}-octet PDU "
                              f"({available} octets arrived)", pos)
        self.pos = pos + total
        return pos, total

    def drain(self, next_event: Callable[[], object],
              error_type: type[Exception]) -> list:
        """Every event ``next_event`` yields until NEED_DATA or CLOSED, in order.

        If ``error_type`` is raised after some events were decoded, those
        events are returned and the error is raised by the next read.
        """
        out: list = []
        while True:
            try:
                event = next_event()
            except error_type as exc:
                if out:
                    self.deferred = exc
                    return out
                raise
            if event is NEED_DATA or event is CLOSED:
                return out
            out.append(event)


def pump(conn, data: bytes, error_type: type[Exception], *, is_open: Callable[[], bool],
         handle: Callable[[object], None], on_bad: Callable[[Exception], None]) -> None:
    """Feed ``data`` to a sans-I/O connection and hand every event to ``handle``.

    The read loop every session and link runs. A PDU the stream survives
    (``error_type``, not fatal: malformed, unknown, out of place) goes to
    ``on_bad`` and reading goes on; a fatal one (the stream can no longer be
    framed) is raised for the caller to close that one connection. Reading
    stops as soon as ``is_open()`` is false: a handler closed the connection.
    """
    conn.receive_data(data)
    while is_open():
        try:
            events = conn.events()
        except error_type as e:
            if e.fatal:
                raise
            on_bad(e)
            continue
        if not events:
            return
        for ev in events:
            if not is_open():
                return
            handle(ev)
