"""Exceptions raised by the CMPP codec and connection.

Everything the codec raises for bad input is a :class:`CmppError`, so a
caller that reads from a socket can wrap one ``except CmppError`` around the
parsing and close (or answer) just that one connection.
"""
from __future__ import annotations


class CmppError(Exception):
    """Bytes that are not valid CMPP, or an event that cannot be encoded.

    ``command_id`` and ``sequence_id`` are set when the header of the offending
    PDU was readable, so a server can still answer the request (for example a
    ``SubmitResp`` with result 1, "bad structure").

    ``fatal`` is True when the byte stream can no longer be framed (a lying
    Total_Length, a PDU cut off by EOF): nothing more can be read from that
    connection and it should be closed. A non-fatal error means only that one
    PDU was skipped; the next PDU can still be read.
    """

    def __init__(self, message: str, *, command_id: int | None = None,
                 sequence_id: int | None = None, fatal: bool = False) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.sequence_id = sequence_id
        self.fatal = fatal


class CmppProtocolError(CmppError):
    """A well-formed PDU that is not allowed in the current session state.

    For example a ``Submit`` before the ``Connect`` handshake succeeded. The
    offending event is kept in ``event``; ``state`` is the session state it
    arrived (or was to be sent) in.
    """

    def __init__(self, message: str, *, state: object = None, event: object = None) -> None:
        super().__init__(message,
                         command_id=None,
                         sequence_id=getattr(event, "sequence_id", None))
        self.state = state
        self.event = event
