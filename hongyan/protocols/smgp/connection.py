"""An SMGP session as a state machine over bytes, with no I/O of its own.

The caller owns the socket. Bytes read from it go into
:meth:`Connection.receive_data`; :meth:`Connection.next_event` (or
:meth:`Connection.events`) turns them into events. Events to send go through
:meth:`Connection.send`, which returns the bytes to write. The connection
checks every PDU in both directions against the session state table in
``state.py`` and keeps the state current.

Typical client (SP) loop::

    conn = Connection("client")
    auth = authenticator_client(account, secret, ts)
    sock.sendall(conn.send(Login(conn.next_sequence(), account, auth, LoginMode.TRANSMIT, ts)))
    while True:
        conn.receive_data(sock.recv(65536))     # b"" at EOF
        for event in conn.events():
            ...
        if conn.state is SessionState.CLOSED:
            break

Nothing here answers requests automatically: the caller replies to an
``ActiveTest`` with an ``ActiveTestResp`` and so on.
"""
from __future__ import annotations

from ..framing import CLOSED, NEED_DATA, Framer, _Sentinel
from .constants import DEFAULT_MAX_PDU, HEADER_LENGTH, MAX_SEQUENCE, V30
from .errors import SmgpError, SmgpProtocolError
from .events import Event
from .state import CLIENT, CLOSED as _CLOSED_STATE, ERROR, RECEIVE, SEND, SERVER, UNBOUND
from .state import SessionState, next_state
from .wire import HEADER, SUPPORTED_VERSIONS, decode_body, encode


class Connection:
    """One end of an SMGP session.

    ``role`` is ``"client"`` for the SP and ``"server"`` for the gateway (SMGW).
    ``version`` selects the PDU layouts (only 0x30, SMGP 3.0, exists).
    ``max_pdu`` caps PacketLength: a peer announcing a bigger (or smaller
    than 12) PDU is lying or out of step, and :class:`SmgpError` with
    ``fatal=True`` is raised — close that connection.

    Errors in a single well-framed PDU (unknown RequestID, bad body, a PDU
    not allowed in the current state) raise :class:`SmgpError` /
    :class:`SmgpProtocolError` with ``fatal=False``: that PDU is skipped and
    reading can continue.
    """

    __slots__ = ("role", "version", "_framer", "_state", "_seq")

    def __init__(self, role: str, version: int = V30, max_pdu: int = DEFAULT_MAX_PDU) -> None:
        if role not in (CLIENT, SERVER):
            raise ValueError(f"role must be {CLIENT!r} or {SERVER!r}, not {role!r}")
        if max_pdu < HEADER_LENGTH:
            raise ValueError(f"max_pdu must be at least {HEADER_LENGTH}")
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"SMGP version 0x{version:02X} is not supported")
        self.role = role
        self.version = version
        self._state = UNBOUND
        self._framer = Framer(HEADER_LENGTH, max_pdu, "PacketLength", self._fatal)
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
        """A fresh SequenceID for a request: 1, 2, ... 0x7FFFFFFF, then 1 again."""
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
        data = encode(event, self.version)
        self._state = after
        return data

    # --- receiving ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the socket; ``b""`` means the peer closed (EOF)."""
        self._framer.feed(data)

    def _fatal(self, message: str, pos: int | None) -> SmgpError:
        """Build the fatal error for the framer; ``pos`` is the bad PDU's header offset."""
        ids: dict[str, int] = {}
        if pos is not None:
            _, request_id, sequence_id = HEADER.unpack_from(self._framer.buf, pos)
            ids = dict(request_id=request_id, sequence_id=sequence_id)
        self._state = ERROR
        return SmgpError(message, fatal=True, **ids)

    def next_event(self) -> Event | _Sentinel:
        """The next complete event, ``NEED_DATA`` or ``CLOSED``.

        Raises :class:`SmgpError` for bytes that are not valid SMGP (see the
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
        _, request_id, sequence_id = HEADER.unpack_from(buf, pos)
        # The framer consumed the PDU before parsing, so a bad one is skipped, not re-read.
        event = decode_body(request_id, sequence_id, buf, pos + HEADER_LENGTH,
                            total - HEADER_LENGTH, self.version)
        try:
            self._state = next_state(self.role, RECEIVE, self._state, event)
        except SmgpProtocolError as exc:
            exc.request_id = request_id
            raise
        return event

    def events(self) -> list[Event]:
        """Every complete event now buffered, in order.

        Stops at NEED_DATA or CLOSED (check :attr:`state` for CLOSED). If a
        PDU fails after some events were decoded, those events are returned
        and the error is raised by the next call.
        """
        return self._framer.drain(self.next_event, SmgpError)  # type: ignore[return-value]
