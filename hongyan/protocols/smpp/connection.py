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

from ..framing import CLOSED, NEED_DATA, Framer, _Sentinel
from .constants import DEFAULT_MAX_PDU, HEADER_LENGTH, MAX_SEQUENCE, CommandStatus
from .errors import SmppError, SmppProtocolError
from .events import Event
from .state import CLOSED as _CLOSED_STATE, ERROR, ESME, OPEN, RECEIVE, SEND, SMSC
from .state import SessionState, next_state
from .wire import HEADER, decode_body, encode


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

    __slots__ = ("role", "_framer", "_state", "_seq")

    def __init__(self, role: str, max_pdu: int = DEFAULT_MAX_PDU) -> None:
        if role not in (ESME, SMSC):
            raise ValueError(f"role must be {ESME!r} or {SMSC!r}, not {role!r}")
        if max_pdu < HEADER_LENGTH:
            raise ValueError(f"max_pdu must be at least {HEADER_LENGTH}")
        self.role = role
        self._state = OPEN
        self._framer = Framer(HEADER_LENGTH, max_pdu, "command_length", self._fatal)
        self._seq = 0

    # --- state -------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def max_pdu(self) -> int:
        return self._framer.max_length

    @max_pdu.setter
    def max_pdu(self, value: int) -> None:
        self._framer.max_length = value

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return self._framer.buffered

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
        self._framer.feed(data)

    def _fatal(self, message: str, pos: int | None) -> SmppError:
        """Build the fatal error for the framer; ``pos`` is the bad PDU's header offset."""
        ids: dict[str, int] = {}
        if pos is not None:
            _, command_id, _, seq = HEADER.unpack_from(self._framer.buf, pos)
            ids = dict(command_id=command_id, sequence_number=seq)
        self._state = ERROR
        return SmppError(message, fatal=True, status=CommandStatus.ESME_RINVCMDLEN, **ids)

    def next_event(self) -> Event | _Sentinel:
        """The next complete event, ``NEED_DATA`` or ``CLOSED``.

        Raises :class:`SmppError` for bytes that are not valid SMPP (see the
        class docstring for which errors are fatal).
        """
        framer = self._framer
        frame = framer.next_frame()
        if frame is NEED_DATA:
            return frame
        if frame is CLOSED:
            self._state = _CLOSED_STATE
            return frame
        pos, total = frame
        buf = framer.buf
        _, command_id, status, seq = HEADER.unpack_from(buf, pos)
        # The framer consumed the PDU before parsing, so a bad one is skipped, not re-read.
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
        return self._framer.drain(self.next_event, SmppError)  # type: ignore[return-value]
