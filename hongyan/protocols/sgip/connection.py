"""An SGIP session as a state machine over bytes, with no I/O of its own.

The caller owns the socket. Bytes read from it go into
:meth:`Connection.receive_data`; :meth:`Connection.next_event` (or
:meth:`Connection.events`) turns them into events. Events to send go through
:meth:`Connection.send`, which returns the bytes to write. The connection
checks every PDU in both directions against the tables in ``state.py``.

An SP submitting to the gateway::

    conn = Connection("sp", node_id=3075512345)
    sock.sendall(conn.send(Bind(conn.next_sequence(), LoginType.SP_TO_SMG, name, pw)))
    while True:
        conn.receive_data(sock.recv(65536))     # b"" at EOF
        for event in conn.events():
            ...

The same class on the SP's listening socket (``Connection("sp")`` for each
accepted TCP connection) receives the gateway's Bind with Login Type 2 and
then its Deliver and Report requests. Nothing here answers requests
automatically: the caller replies to a ``Deliver`` with a ``DeliverResp``.
"""
from __future__ import annotations

import threading
from datetime import datetime
from typing import Callable

from ..framing import CLOSED, NEED_DATA, Framer, _Sentinel
from .constants import DEFAULT_MAX_PDU, HEADER_LENGTH, UINT32_MAX
from .errors import SgipError, SgipProtocolError
from .events import Event, SequenceNumber
from .state import CLOSED as _CLOSED_STATE, ERROR, RECEIVE, SEND, SMG, SP, UNBOUND
from .state import SessionState, next_state
from .wire import HEADER, SUPPORTED_VERSIONS, V12, decode_body, encode

def timestamp(moment: datetime) -> int:
    """The Sequence Number's time word: MMDDHHMMSS read as a decimal number."""
    return (((moment.month * 100 + moment.day) * 100 + moment.hour) * 100
            + moment.minute) * 100 + moment.second


class SequenceGenerator:
    """Unique (node id, MMDDHHMMSS, counter) triples for outgoing requests.

    The counter runs 1 .. 0xFFFFFFFF and then starts at 1 again, and it
    never resets when the clock ticks, so a triple can only repeat after
    four billion requests from this generator — even if the clock stands
    still or steps back. Safe to share between threads.
    """

    __slots__ = ("node_id", "_clock", "_counter", "_lock")

    def __init__(self, node_id: int, clock: Callable[[], datetime] = datetime.now,
                 start: int = 0) -> None:
        if not 0 <= node_id <= UINT32_MAX:
            raise ValueError(f"node_id must fit 4 octets, not {node_id}")
        if not 0 <= start <= UINT32_MAX:
            raise ValueError(f"start must fit 4 octets, not {start}")
        self.node_id = node_id
        self._clock = clock
        self._counter = start
        self._lock = threading.Lock()

    def __iter__(self) -> SequenceGenerator:
        return self

    def __next__(self) -> SequenceNumber:
        with self._lock:
            number = self._counter + 1
            if number > UINT32_MAX:
                number = 1
            self._counter = number
        return SequenceNumber(self.node_id, timestamp(self._clock()), number)


class Connection:
    """One end of an SGIP session.

    ``role`` is ``"sp"`` or ``"smg"``: which party this end is. Whether the
    link is SP- or SMG-initiated (or a test link) follows from the Bind's
    Login Type (1, 2 or 11), whichever side sends it; see :attr:`link`.

    ``node_id`` (and ``clock``) feed :meth:`next_sequence`. ``max_pdu`` caps
    Message Length: a peer announcing a bigger (or smaller than 20) PDU is
    lying or out of step, and :class:`SgipError` with ``fatal=True`` is
    raised — close that connection.

    Errors in a single well-framed PDU (unknown Command ID, bad body, a PDU
    not allowed in the current state) raise :class:`SgipError` /
    :class:`SgipProtocolError` with ``fatal=False`` and ``command_id`` and
    ``sequence_number`` set, so the caller can answer it; reading continues.
    """

    __slots__ = ("role", "version", "_framer", "_state", "_link", "_sequence")

    def __init__(self, role: str, *, node_id: int = 0, version: int = V12,
                 max_pdu: int = DEFAULT_MAX_PDU,
                 clock: Callable[[], datetime] = datetime.now) -> None:
        if role not in (SP, SMG):
            raise ValueError(f"role must be {SP!r} or {SMG!r}, not {role!r}")
        if max_pdu < HEADER_LENGTH:
            raise ValueError(f"max_pdu must be at least {HEADER_LENGTH}")
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"SGIP version 0x{version:02X} is not supported")
        self.role = role
        self.version = version
        self._state = UNBOUND
        self._link: str | None = None
        self._framer = Framer(HEADER_LENGTH, max_pdu, "Message Length", self._fatal)
        self._sequence = SequenceGenerator(node_id, clock)

    # --- state -------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def link(self) -> str | None:
        """``SP_LINK``, ``SMG_LINK``, ``TEST_LINK``, or None before a Bind went through."""
        return self._link

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

    def next_sequence(self) -> SequenceNumber:
        """A fresh Sequence Number for a request (see :class:`SequenceGenerator`)."""
        return next(self._sequence)

    # --- sending -----------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Check ``event`` against the state, encode it and return the PDU bytes.

        The state only advances if encoding succeeds.
        """
        after, link = next_state(self.role, SEND, self._link, self._state, event)
        data = encode(event, self.version)
        self._state, self._link = after, link
        return data

    # --- receiving ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the socket; ``b""`` means the peer closed (EOF)."""
        self._framer.feed(data)

    def _fatal(self, message: str, pos: int | None) -> SgipError:
        """Build the fatal error for the framer; ``pos`` is the bad PDU's header offset."""
        ids: dict[str, object] = {}
        if pos is not None:
            _, command_id, node_id, stamp, number = HEADER.unpack_from(self._framer.buf, pos)
            ids = dict(command_id=command_id,
                       sequence_number=SequenceNumber(node_id, stamp, number))
        self._state = ERROR
        return SgipError(message, fatal=True, **ids)

    def next_event(self) -> Event | _Sentinel:
        """The next complete event, ``NEED_DATA`` or ``CLOSED``.

        Raises :class:`SgipError` for bytes that are not valid SGIP (see the
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
        _, command_id, node_id, stamp, number = HEADER.unpack_from(buf, pos)
        seq = SequenceNumber(node_id, stamp, number)
        # The framer consumed the PDU before parsing, so a bad one is skipped, not re-read.
        event = decode_body(command_id, seq, buf, pos + HEADER_LENGTH, total - HEADER_LENGTH,
                            self.version)
        try:
            self._state, self._link = next_state(self.role, RECEIVE, self._link, self._state,
                                                 event)
        except SgipProtocolError as exc:
            exc.command_id = command_id
            raise
        return event

    def events(self) -> list[Event]:
        """Every complete event now buffered, in order.

        Stops at NEED_DATA or CLOSED (check :attr:`state` for CLOSED). If a
        PDU fails after some events were decoded, those events are returned
        and the error is raised by the next call.
        """
        return self._framer.drain(self.next_event, SgipError)  # type: ignore[return-value]
