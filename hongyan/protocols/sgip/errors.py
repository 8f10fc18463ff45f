"""Exceptions raised by the SGIP codec and connection.

Everything the codec raises for bad input is an :class:`SgipError`, so a
caller reading from a socket can wrap one ``except SgipError`` around the
parsing and close (or answer) just that one connection.
"""
from __future__ import annotations


class SgipError(Exception):
    """Bytes that are not valid SGIP, or an event that cannot be encoded.

    ``command_id`` and ``sequence_number`` are set when the header of the
    offending PDU was readable, so the receiver can still answer the request
    (for example a ``SubmitResp`` with result 5, "bad parameter format").

    ``fatal`` is True when the byte stream can no longer be framed (a lying
    Message Length, a PDU cut off by EOF): nothing more can be read from that
    connection and it should be closed. A non-fatal error means only that one
    PDU was skipped; the next PDU can still be read.
    """

    def __init__(self, message: str, *, command_id: int | None = None,
                 sequence_number: object = None, fatal: bool = False) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.fatal = fatal


class SgipProtocolError(SgipError):
    """A well-formed PDU that is not allowed in the current session state.

    For example a ``Submit`` before the ``Bind`` succeeded, or a ``Deliver``
    on a connection the SP opened. The offending event is kept in ``event``;
    ``state`` is the session state it arrived (or was to be sent) in.
    """

    def __init__(self, message: str, *, state: object = None, event: object = None) -> None:
        super().__init__(message, sequence_number=getattr(event, "sequence_number", None))
        self.state = state
        self.event = event
