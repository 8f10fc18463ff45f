"""What every carrier channel is, whatever protocol it speaks.

Modelled on Kannel's ``smscconn.h``: a channel is started, is handed messages,
and reports back through a small set of callbacks. The core never asks which
protocol a channel speaks.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Protocol


@dataclass(slots=True)
class Outbound:
    """One message for one number, as the dispatcher hands it to a channel."""
    message_id: int
    phone: str                # normalised national number, e.g. 13800138000
    text: str
    source: str = ""          # full source number: channel access code + extensions
    parts: int = 1            # the part count that was billed (domain.segments)
    need_report: bool = True
    attempt: int = 1


@dataclass(slots=True)
class Report:
    """A delivery report for one submitted part, as the carrier sent it."""
    channel_id: int
    carrier_id: str           # the carrier's id for the part (CMPP Msg_Id as decimal)
    status: str               # carrier status text: DELIVRD, UNDELIV, MA:0001, ...
    delivered: bool
    phone: str = ""
    done_at: datetime | None = None
    # Set by the channel: answers the carrier. The core calls it once the report
    # is committed, so a crash before then makes the carrier send it again.
    ack: Callable[[], None] | None = None


@dataclass(slots=True)
class Inbound:
    """An MO (reply) as the carrier delivered it; long-SMS parts already joined."""
    channel_id: int
    phone: str                # the sender's mobile number
    dest: str                 # the number it was sent to (access code + extensions)
    text: str
    received_at: datetime = field(default_factory=datetime.now)
    ack: Callable[[], None] | None = None   # as for Report


class ChannelEvents(Protocol):
    """Callbacks a channel makes. They must not block; the core batches behind them."""

    def sent(self, message_id: int, carrier_ids: list[str]) -> None:
        """Every part of the message was accepted; carrier_ids in part order."""

    def failed(self, message_id: int, status: str, retryable: bool) -> None:
        """The carrier refused the message (or a part of it) or it could not be sent.

        ``retryable`` True (flow control, link lost before an answer) means the
        dispatcher should queue it again; False is a final refusal.
        """

    def report(self, report: Report) -> None:
        """A delivery report. If the channel set ``report.ack``, it must hold the
        carrier's answer (DELIVER_RESP) until the core calls ``ack``."""

    def mo(self, inbound: Inbound) -> None:
        """An MO; ``inbound.ack`` as for reports."""


@dataclass(slots=True)
class ChannelConfig:
    id: int
    name: str
    protocol: str             # cmpp2, cmpp3, smpp, sgip, smgp, simulator, http dialect name
    host: str = "127.0.0.1"
    port: int = 7890
    username: str = ""        # CMPP: SP id (Source_Addr)
    password: str = ""
    access_code: str = ""     # source number prefix (SP access code, 106...)
    service_id: str = ""
    mps: int = 100            # messages (PDUs) per second, all connections together
    window: int = 16          # unanswered submits per connection
    connections: int = 1
    options: dict = field(default_factory=dict)

    # Options every channel has, whatever its protocol (``config.options``):
    # ``supports_long`` (true): false for a carrier that takes no concatenated
    # SMS; a long text then goes as separate SMS numbered "1/3)", "2/3)", ...
    # ``source_max_len`` (21, CMPP's Src_Id): the longest source number the
    # carrier takes; hongyan.domain.source cuts longer compositions.
    @property
    def seqno_split(self) -> bool:
        value = self.options.get("supports_long", True)
        if isinstance(value, str) and value.strip().lower() in _FLAGS:
            value = _FLAGS[value.strip().lower()]
        if not isinstance(value, bool):
            raise ValueError(f"channel {self.name!r}: supports_long must be true or false, not {value!r}")
        return not value

    @property
    def source_max_len(self) -> int:
        value = self.options.get("source_max_len", 21)
        try:
            n = int(value)
        except (TypeError, ValueError):
            n = 0
        if isinstance(value, bool) or not 1 <= n <= 21:
            raise ValueError(f"channel {self.name!r}: source_max_len must be a whole number 1..21, not {value!r}")
        return n


_FLAGS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


class Channel(abc.ABC):
    def __init__(self, config: ChannelConfig, events: ChannelEvents) -> None:
        self.config = config
        self.events = events

    @property
    def id(self) -> int:
        return self.config.id

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin connecting; returns at once. Reconnects by itself until stopped."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop taking messages, wait briefly for the window to drain, close.

        Messages still queued or unanswered are reported ``failed(retryable=True)``.
        """

    @abc.abstractmethod
    def send(self, messages: list[Outbound]) -> None:
        """Queue messages for sending. Never blocks; results come by the callbacks."""

    @abc.abstractmethod
    def queued(self) -> int:
        """Messages taken but not yet answered by the carrier."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    def room(self) -> int:
        """How many more messages the dispatcher should hand over now."""
        return max(0, self.config.mps * 2 - self.queued())
