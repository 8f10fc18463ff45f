"""Exceptions raised by the SMGP codec and connection.

Everything the codec raises for bad input is an :class:`SmgpError`, so a
caller that reads from a socket can wrap one ``except SmgpError`` around the
parsing and close (or answer) just that one connection.
"""
from __future__ import annotations


class SmgpError(Exception):
    """Bytes that are not valid SMGP, or an event that cannot be encoded.

    ``request_id`` and ``sequence_id`` are set when the header of the
    offending PDU was readable, so a server can still answer the request (for
    example a ``SubmitResp`` with status 10, "bad structure").

    ``fatal`` is True when the byte stream can no longer be framed (a lying
    PacketLength, a PDU cut off by EOF): nothing more can be read from that
    connection and it should be closed. A non-fatal error means only that one
    PDU was skipped; the next PDU can still be read.
    """

    def __init__(self, message: str, *, request_id: int | None = None,
                 sequence_id: int | None = None, fatal: bool = False) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.sequence_id = sequence_id
        self.fatal = fatal

    @property
    def command_id(self) -> int | None:
        """The same as ``request_id``, under the name the CMPP codec uses."""
        return self.request_id


class SmgpProtocolError(SmgpError):
    """A well-formed PDU that is not allowed in the current session state.

    For example a ``Submit`` before the ``Login`` handshake succeeded. The
    offending event is kept in ``event``; ``state`` is the session state it
    arrived (or was to be sent) in.
    """

    def __init__(self, message: str, *, state: object = None, event: object = None) -> None:
        super().__init__(message, sequence_id=getattr(event, "sequence_id", None))
        self.state = state
        self.event = event
