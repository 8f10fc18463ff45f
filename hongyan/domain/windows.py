"""Daily time windows: when in the day sending is allowed.

A window is a start and an end in seconds after local midnight, end
exclusive. An end before the start wraps past midnight ("21:00-08:00" is the
night). A window whose start equals its end is the whole day. Times are the
server's local time, as the vendor documents' times are their (China) local
time.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

DAY_S = 24 * 3600

_HOURS = re.compile(r"\s*(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*")


class BadWindow(ValueError):
    pass


def _seconds(h: str, m: str | None, s: str | None, *, end: bool) -> int:
    hh, mm, ss = int(h), int(m or 0), int(s or 0)
    if end and hh == 24 and mm == 0 and ss == 0:
        return DAY_S
    if hh > 23 or mm > 59 or ss > 59:
        raise BadWindow("hours are 0-23, minutes and seconds 0-59")
    return hh * 3600 + mm * 60 + ss


def parse_hours(text: str) -> tuple[int, int]:
    """``"08-21"``, ``"08:30-21:00"`` or ``"08:30:00-21:00:00"`` -> (start, end) seconds."""
    m = _HOURS.fullmatch(text)
    if not m:
        raise BadWindow(f"a window is written like 08-21 or 08:30-21:00, not {text!r}")
    return _seconds(*m.group(1, 2, 3), end=False), _seconds(*m.group(4, 5, 6), end=True)


def clock_seconds(text: str) -> int:
    """``"HH:mm:ss"`` (the kxt3 daily window fields) -> seconds after midnight."""
    h, m, s = text.split(":")
    return _seconds(h, m, s, end=False)


def is_open(window: tuple[int, int], at: datetime) -> bool:
    return _holds(window, at.hour * 3600 + at.minute * 60 + at.second)


# The minute last asked about (epoch minute) and its local time of day in
# seconds, replaced as one tuple so a reader never sees half of an update.
_minute: tuple[int, int] = (-1, 0)


def is_open_at(window: tuple[int, int], ms: int) -> bool:
    """``is_open`` at epoch milliseconds ``ms``, local time.

    Asked for every request: the local time of day is worked out once a
    minute (a UTC offset is whole minutes), not per call."""
    global _minute
    minute, second = divmod(ms // 1000, 60)
    cached = _minute
    if cached[0] != minute:
        at = datetime.fromtimestamp(minute * 60)
        cached = _minute = (minute, at.hour * 3600 + at.minute * 60)
    return _holds(window, cached[1] + second)


def _holds(window: tuple[int, int], t: int) -> bool:
    start, end = window
    if start == end:
        return True
    if start < end:
        return start <= t < end
    return t >= start or t < end


def next_open(window: tuple[int, int], at: datetime) -> datetime:
    """``at`` itself when the window is open then, else the next time it opens."""
    if is_open(window, at):
        return at
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    opens = midnight + timedelta(seconds=window[0])
    return opens if opens > at else opens + timedelta(days=1)
