"""Exceptions raised by the SMPP codec and connection.

Everything the codec raises for bad input is an :class:`SmppError`, so a
caller reading from a socket wraps one ``except SmppError`` around parsing
and either closes that connection (``fatal``) or answers the one bad PDU.
"""
from __future__ import annotations

from .constants import CommandStatus


class SmppError(Exception):
    """Bytes that are not valid SMPP, or an event that cannot be encoded.

    ``command_id`` and ``sequence_number`` are set whenever the header of the
    offending PDU was readable, so the request can still be answered.
    ``status`` is the command_status to answer with (ESME_RINVCMDID for an
    unknown command, ESME_RINVCMDLEN for a body that does not match its
    layout, ...); :meth:`generic_nack` builds that answer.

    ``fatal`` is True when the byte stream can no longer be framed (a lying
    command_length, a PDU cut off by EOF): close the connection. A non-fatal
    error means only that one PDU was skipped.
    """

    def __init__(self, message: str, *, command_id: int | None = None,
                 sequence_number: int | None = None, fatal: bool = False,
                 status: int = CommandStatus.ESME_RUNKNOWNERR) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.fatal = fatal
        self.status = status

    def generic_nack(self):
        """A ``GenericNack`` answering the offending PDU with :attr:`status`.

        Section 4.3: an unknown or unparsable PDU is answered with
        generic_nack echoing its sequence_number (0 when even that was lost).
        """
        from .events import GenericNack
        return GenericNack(self.sequence_number or 0, int(self.status))


class SmppProtocolError(SmppError):
    """A well-formed PDU that is not allowed in the current session state.

    For example a submit_sm before a bind succeeded (answer it with
    ESME_RINVBNDSTS, the default ``status``). The offending event is kept in
    ``event``; ``state`` is the session state it arrived (or was to be sent) in.
    """

    def __init__(self, message: str, *, state: object = None, event: object = None) -> None:
        super().__init__(message, sequence_number=getattr(event, "sequence_number", None),
                         status=CommandStatus.ESME_RINVBNDSTS)
        self.state = state
        self.event = event
