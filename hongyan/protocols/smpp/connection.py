"""An SMPP session as a state machine over bytes, with no I/O of its own.

The caller owns the socket. Bytes read from it go into
:meth:`Connection.receive_data`; :meth:`Connection.next_event` (or
:meth:`Connection.events`) turns them into events. Events to send go through
:meth:`Connection.send`, which returns the bytes to write. Every PDU is
checked in both directions against the table in ``state.py``.

Typical ESME loop::

    conn = Connection("esme")
    sock.sendall(conn.send(BindTransceiver(conn.next_sequence(), "user", "secret")))
    while conn.state is not SessionState.CLOSED:
        conn.receive_data(sock.recv(65536))     # b"" at EOF
        try:
            for event in conn.events():
                ...
        except SmppError as exc:
            if exc.fatal:
                break
            sock.sendall(conn.send(exc.generic_nack()))

Nothing is answered automatically: the caller replies to an ``EnquireLink``
with an ``EnquireLinkResp``, to a ``DeliverSm`` with a ``DeliverSmResp``.
"""
from __future__ import annotations

from .constants import DEFAULT_MAX_PDU, HEADER_LENGTH, MAX_SEQUENCE, CommandStatus
from .errors import SmppError, SmppProtocolError
from .events import Event
from .state import CLOSED as _CLOSED_STATE, ERROR, ESME, OPEN, RECEIVE, SEND, SMSC
from .state import SessionState, next_state
from .wire import HEADER, decode_body, encode

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


class Connection:
    """One end of an SMPP 3.4 session.

    ``role`` is ``"esme"`` for the application and ``"smsc"`` for the message
    centre, whichever side opened the TCP connection (after an outbind the
    SMSC did). ``max_pdu`` caps command_length: a peer announcing a bigger
    (or smaller than 16) PDU is lying or out of step, and :class:`SmppError`
    with ``fatal=True`` is raised — close that connection.

    Errors in a single well-framed PDU (unknown command_id, bad body, a PDU
    not allowed in the current state) raise :class:`SmppError` /
    :class:`SmppProtocolError` with ``fatal=False`` and the PDU's command_id
    and sequence_number: that PDU is skipped, it can be answered (see
    :meth:`SmppError.generic_nack`) and reading can continue.
    """

    __slots__ = ("role", "max_pdu", "_state", "_buf", "_pos", "_eof", "_error", "_deferred",
                 "_seq")

    def __init__(self, role: str, max_pdu: int = DEFAULT_MAX_PDU) -> None:
        if role not in (ESME, SMSC):
            raise ValueError(f"role must be {ESME!r} or {SMSC!r}, not {role!r}")
        if max_pdu < HEADER_LENGTH:
            raise ValueError(f"max_pdu must be at least {HEADER_LENGTH}")
        self.role = role
        self.max_pdu = max_pdu
        self._state = OPEN
        self._buf = bytearray()
        self._pos = 0                            # start of the unread bytes in _buf
        self._eof = False
        self._error: SmppError | None = None     # fatal, raised on every later read
        self._deferred: SmppError | None = None  # held back by events(), raised next
        self._seq = 0

    # --- state -------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return len(self._buf) - self._pos

    def next_sequence(self) -> int:
        """A fresh sequence_number for a request: 1, 2, ... 0x7FFFFFFF, then 1 again."""
        seq = self._seq + 1
        if seq > MAX_SEQUENCE:
            seq = 1
        self._seq = seq
        return seq

    # --- sending -----------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Check ``event`` against the state, encode it and return the PDU bytes.

        The state only advances if encoding succeeds.
        """
        after = next_state(self.role, SEND, self._state, event)
        data = encode(event)
        self._state = after
        return data

    # --- receiving ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the socket; ``b""`` means the peer closed (EOF)."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("receive_data after EOF")
        buf = self._buf
        pos = self._pos
        if pos:
            if pos == len(buf):
                buf.clear()
                self._pos = 0
            elif pos >= _COMPACT_AT:
                del buf[:pos]
                self._pos = 0
        buf += data

    def _fatal(self, message: str, **ids: int) -> SmppError:
        err = SmppError(message, fatal=True, status=CommandStatus.ESME_RINVCMDLEN, **ids)
        self._error = err
        self._state = ERROR
        return err

    def next_event(self) -> Event | _Sentinel:
        """The next complete event, ``NEED_DATA`` or ``CLOSED``.

        Raises :class:`SmppError` for bytes that are not valid SMPP (see the
        class docstring for which errors are fatal).
        """
        if self._deferred is not None:
            err, self._deferred = self._deferred, None
            raise err
        if self._error is not None:
            raise self._error
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < HEADER_LENGTH:
            if not self._eof:
                return NEED_DATA
            if available:
                raise self._fatal(f"connection closed inside a PDU header ({available} octets)")
            self._state = _CLOSED_STATE
            return CLOSED
        total, command_id, status, seq = HEADER.unpack_from(buf, pos)
        if total < HEADER_LENGTH or total > self.max_pdu:
            raise self._fatal(f"command_length {total} is outside {HEADER_LENGTH}..{self.max_pdu}",
                              command_id=command_id, sequence_number=seq)
        if available < total:
            if not self._eof:
                return NEED_DATA
            raise self._fatal(f"connection closed inside a {total}-octet PDU "
                              f"({available} octets arrived)",
                              command_id=command_id, sequence_number=seq)
        # Consume the PDU before parsing so a bad one is skipped, not re-read.
        self._pos = pos + total
        event = decode_body(command_id, status, seq, buf, pos + HEADER_LENGTH,
                            total - HEADER_LENGTH)
        try:
            self._state = next_state(self.role, RECEIVE, self._state, event)
        except SmppProtocolError as exc:
            exc.command_id = command_id
            raise
        return event

    def events(self) -> list[Event]:
        """Every complete event now buffered, in order.

        Stops at NEED_DATA or CLOSED (check :attr:`state` for CLOSED). If a
        PDU fails after some events were decoded, those events are returned
        and the error is raised by the next call.
        """
        out: list[Event] = []
        next_event = self.next_event
        while True:
            try:
                event = next_event()
            except SmppError as exc:
                if out:
                    self._deferred = exc
                    return out
                raise
            if event is NEED_DATA or event is CLOSED:
                return out
            out.append(event)
