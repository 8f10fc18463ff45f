"""A CMPP session as a state machine over bytes, with no I/O of its own.

The caller owns the socket. Bytes read from it go into
:meth:`Connection.receive_data`; :meth:`Connection.next_event` (or
:meth:`Connection.events`) turns them into events. Events to send go through
:meth:`Connection.send`, which returns the bytes to write. The connection
checks every PDU in both directions against the session state table in
``state.py`` and keeps the state current.

Typical client (SP) loop::

    conn = Connection("client")
    sock.sendall(conn.send(Connect(conn.next_sequence(), sp_id, auth, 0x20, ts)))
    while True:
        conn.receive_data(sock.recv(65536))     # b"" at EOF
        for event in conn.events():
            ...
        if conn.state is SessionState.CLOSED:
            break

Nothing here answers requests automatically: the caller replies to an
``ActiveTest`` with an ``ActiveTestResp`` and so on.

``version`` picks the PDU layouts: 0x20 (CMPP 2.0, the default) or 0x30
(CMPP 3.0). A gateway that serves both passes ``version=None``: CONNECT
reads the same in both versions, and the CONNECT that is accepted by the
state table fixes :attr:`Connection.version` with
:func:`~hongyan.protocols.cmpp.wire.negotiate_version`::

    conn = Connection("server", version=None)
    conn.receive_data(data)
    connect = conn.next_event()             # conn.version is now 0x20 or 0x30
    status = 0 if connect.version == conn.version else ConnectStatus.VERSION_TOO_HIGH
    sock.sendall(conn.send(ConnectResp(connect.sequence_id, status, auth, conn.version)))
"""
from __future__ import annotations

from ..framing import CLOSED, NEED_DATA, Framer, _Sentinel
from .constants import DEFAULT_MAX_PDU, HEADER_LENGTH, MAX_SEQUENCE, V20
from .errors import CmppError, CmppProtocolError
from .events import Connect, Event
from .state import CLIENT, CLOSED as _CLOSED_STATE, ERROR, RECEIVE, SEND, SERVER, UNBOUND
from .state import SessionState, next_state
from .wire import HEADER, SUPPORTED_VERSIONS, decode_body, encode, negotiate_version


class Connection:
    """One end of a CMPP session.

    ``role`` is ``"client"`` for the SP and ``"server"`` for the gateway.
    ``version`` selects the PDU layouts: 0x20 (CMPP 2.0) or 0x30 (CMPP 3.0).
    ``None`` leaves it to the CONNECT: :attr:`version` is ``None`` until a
    CONNECT is sent or received, then the version
    :func:`~hongyan.protocols.cmpp.wire.negotiate_version` picks for its
    Version field (again on each new CONNECT after a refused login).
    ``max_pdu`` caps Total_Length: a peer announcing a bigger (or smaller
    than 12) PDU is lying or out of step, and :class:`CmppError` with
    ``fatal=True`` is raised — close that connection.

    Errors in a single well-framed PDU (unknown Command_Id, bad body, a PDU
    not allowed in the current state) raise :class:`CmppError` /
    :class:`CmppProtocolError` with ``fatal=False``: that PDU is skipped and
    reading can continue.
    """

    __slots__ = ("role", "version", "_decoders", "_framer", "_state", "_seq", "_negotiate",
                 "_layout")

    def __init__(self, role: str, version: int | None = V20,
                 max_pdu: int = DEFAULT_MAX_PDU) -> None:
        if role not in (CLIENT, SERVER):
            raise ValueError(f"role must be {CLIENT!r} or {SERVER!r}, not {role!r}")
        if max_pdu < HEADER_LENGTH:
            raise ValueError(f"max_pdu must be at least {HEADER_LENGTH}")
        if version is not None and version not in SUPPORTED_VERSIONS:
            raise ValueError(f"CMPP version 0x{version:02X} is not supported")
        self.role = role
        self.version = version
        self._negotiate = version is None
        # The table PDUs are read and written with. Before a negotiating
        # session's CONNECT only CONNECT is allowed, and it reads the same in
        # every table; anything else is refused by the state table, so which
        # table decodes it only changes the wording of the error.
        self._layout = V20 if version is None else version
        self._state = UNBOUND
        self._framer = Framer(HEADER_LENGTH, max_pdu, "Total_Length", self._fatal)
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

    @property
    def _buf(self) -> bytearray:
        """The framer's receive buffer (read by the compaction test)."""
        return self._framer.buf

    def next_sequence(self) -> int:
        """A fresh Sequence_Id for a request: 1, 2, ... 0x7FFFFFFF, then 1 again."""
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
        data = encode(event, self._layout)     # a CONNECT encodes the same in every table
        self._state = after
        if self._negotiate and type(event) is Connect:
            self._layout = self.version = negotiate_version(event.version)
        return data

    # --- receiving ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the socket; ``b""`` means the peer closed (EOF)."""
        self._framer.feed(data)

    def _fatal(self, message: str, pos: int | None) -> CmppError:
        """Build the fatal error for the framer; ``pos`` is the bad PDU's header offset."""
        ids: dict[str, int] = {}
        if pos is not None:
            _, command_id, sequence_id = HEADER.unpack_from(self._framer.buf, pos)
            ids = dict(command_id=command_id, sequence_id=sequence_id)
        self._state = ERROR
        return CmppError(message, fatal=True, **ids)

    def next_event(self) -> Event | _Sentinel:
        """The next complete event, ``NEED_DATA`` or ``CLOSED``.

        Raises :class:`CmppError` for bytes that are not valid CMPP (see the
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
        _, command_id, sequence_id = HEADER.unpack_from(buf, pos)
        # The framer consumed the PDU before parsing, so a bad one is skipped, not re-read.
        event = decode_body(command_id, sequence_id, buf, pos + HEADER_LENGTH,
                            total - HEADER_LENGTH, self._layout)
        try:
            self._state = next_state(self.role, RECEIVE, self._state, event)
        except CmppProtocolError as exc:
            exc.command_id = command_id
            raise
        if self._negotiate and type(event) is Connect:
            self._layout = self.version = negotiate_version(event.version)
        return event

    def events(self) -> list[Event]:
        """Every complete event now buffered, in order.

        Stops at NEED_DATA or CLOSED (check :attr:`state` for CLOSED). If a
        PDU fails after some events were decoded, those events are returned
        and the error is raised by the next call.
        """
        return self._framer.drain(self.next_event, CmppError)  # type: ignore[return-value]
