"""The 64-bit CMPP Msg_Id (CMPP 2.0 section 7.4.3.2).

The gateway gives every accepted message an id built from, high bit first:

    month 4 | day 5 | hour 5 | minute 6 | second 6 | gateway code 22 | sequence 16

The time is when the gateway accepted the message, the gateway code
identifies the gateway, and the sequence counts up (wrapping at 65536) so ids
minted in the same second differ. Status reports carry the same id, which is
how a report is matched to its submit. Elsewhere in the platform ids are
stored as their decimal string (:func:`to_str`).
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

_GATEWAY_MAX = (1 << 22) - 1
_SEQUENCE_SPAN = 1 << 16


class MsgIdParts(NamedTuple):
    month: int
    day: int
    hour: int
    minute: int
    second: int
    gateway: int
    sequence: int


# (name, width in bits) from the most significant end.
_FIELDS = (("month", 4), ("day", 5), ("hour", 5), ("minute", 6), ("second", 6),
           ("gateway", 22), ("sequence", 16))


def pack(month: int, day: int, hour: int, minute: int, second: int,
         gateway: int, seq: int) -> int:
    """Combine the parts into a Msg_Id; each must fit its bit width."""
    value = 0
    for (name, width), part in zip(_FIELDS, (month, day, hour, minute, second, gateway, seq)):
        if not 0 <= part < (1 << width):
            raise ValueError(f"Msg_Id {name}={part} does not fit {width} bits")
        value = (value << width) | part
    return value


def unpack(msg_id: int) -> MsgIdParts:
    """Split a Msg_Id into its parts."""
    if not 0 <= msg_id < (1 << 64):
        raise ValueError(f"Msg_Id {msg_id} is not a 64-bit unsigned integer")
    return MsgIdParts(
        month=msg_id >> 60,
        day=(msg_id >> 55) & 0x1F,
        hour=(msg_id >> 50) & 0x1F,
        minute=(msg_id >> 44) & 0x3F,
        second=(msg_id >> 38) & 0x3F,
        gateway=(msg_id >> 16) & _GATEWAY_MAX,
        sequence=msg_id & 0xFFFF,
    )


def to_str(msg_id: int) -> str:
    """The decimal string form used to store carrier ids."""
    return str(msg_id)


def from_str(text: str) -> int:
    """Inverse of :func:`to_str`."""
    value = int(text)
    if not 0 <= value < (1 << 64):
        raise ValueError(f"{text!r} is not a 64-bit Msg_Id")
    return value


class MsgIdGenerator:
    """Mints unique Msg_Ids, as a gateway (or a gateway simulator) does.

    The sequence increases by one per id and wraps at 65536, as the
    specification asks. At most 65536 ids share one second: when a second's
    budget is spent the generator moves its notion of "now" one second ahead
    rather than repeat an id, and it never moves backwards if the clock does.
    Ids repeat only after a year (the time fields hold no year). Not
    thread-safe; use one generator per thread or event loop.
    """

    def __init__(self, gateway_code: int, clock: Callable[[], float] = time.time) -> None:
        if not 0 <= gateway_code <= _GATEWAY_MAX:
            raise ValueError(f"gateway code {gateway_code} does not fit 22 bits")
        self.gateway_code = gateway_code
        self._clock = clock
        self._second = -1          # the (possibly advanced) second ids are minted in
        self._issued = 0           # ids minted in that second
        self._sequence = -1

    def __iter__(self) -> MsgIdGenerator:
        return self

    def __next__(self) -> int:
        return self.next()

    def next(self) -> int:
        now = int(self._clock())
        if now > self._second:
            self._second, self._issued = now, 0
        elif self._issued >= _SEQUENCE_SPAN:
            # The sequence would wrap onto an id already minted this second.
            self._second, self._issued = self._second + 1, 0
        self._issued += 1
        self._sequence = (self._sequence + 1) % _SEQUENCE_SPAN
        t = time.localtime(self._second)
        return pack(t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                    self.gateway_code, self._sequence)
