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

from .constants import DEFAULT_MAX_PDU, HEADER_LENGTH, MAX_SEQUENCE, V30
from .errors import SmgpError, SmgpProtocolError
from .events import Event
from .state import CLIENT, CLOSED as _CLOSED_STATE, ERROR, RECEIVE, SEND, SERVER, UNBOUND
from .state import SessionState, next_state
from .wire import HEADER, SUPPORTED_VERSIONS, decode_body, encode

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

    __slots__ = ("role", "version", "max_pdu", "_state", "_buf", "_pos",
                 "_eof", "_error", "_deferred", "_seq")

    def __init__(self, role: str, version: int = V30, max_pdu: int = DEFAULT_MAX_PDU) -> None:
        if role not in (CLIENT, SERVER):
            raise ValueError(f"role must be {CLIENT!r} or {SERVER!r}, not {role!r}")
        if max_pdu < HEADER_LENGTH:
            raise ValueError(f"max_pdu must be at least {HEADER_LENGTH}")
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"SMGP version 0x{version:02X} is not supported")
        self.role = role
        self.version = version
        self.max_pdu = max_pdu
        self._state = UNBOUND
        self._buf = bytearray()
        self._pos = 0                          # start of the unread bytes in _buf
        self._eof = False
        self._error: SmgpError | None = None   # fatal, raised on every later read
        self._deferred: SmgpError | None = None  # held back by events(), raised next
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

    def _fatal(self, message: str, **ids: int) -> SmgpError:
        err = SmgpError(message, fatal=True, **ids)
        self._error = err
        self._state = ERROR
        return err

    def next_event(self) -> Event | _Sentinel:
        """The next complete event, ``NEED_DATA`` or ``CLOSED``.

        Raises :class:`SmgpError` for bytes that are not valid SMGP (see the
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
        total, request_id, sequence_id = HEADER.unpack_from(buf, pos)
        if total < HEADER_LENGTH or total > self.max_pdu:
            raise self._fatal(f"PacketLength {total} is outside {HEADER_LENGTH}..{self.max_pdu}",
                              request_id=request_id, sequence_id=sequence_id)
        if available < total:
            if not self._eof:
                return NEED_DATA
            raise self._fatal(f"connection closed inside a {total}-octet PDU "
                              f"({available} octets arrived)",
                              request_id=request_id, sequence_id=sequence_id)
        # Consume the PDU before parsing so a bad one is skipped, not re-read.
        self._pos = pos + total
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
        out: list[Event] = []
        next_event = self.next_event
        while True:
            try:
                event = next_event()
            except SmgpError as exc:
                if out:
                    self._deferred = exc
                    return out
                raise
            if event is NEED_DATA or event is CLOSED:
                return out
            out.append(event)
