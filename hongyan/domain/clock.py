"""Time as the store keeps it: integer epoch milliseconds."""
from __future__ import annotations

import time
from datetime import datetime, timezone


def now_ms() -> int:
    return int(time.time() * 1000)


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.astimezone()  # a naive time is the server's local time
    return int(dt.timestamp() * 1000)


_ISO_SECONDS: dict[int, tuple[str, str]] = {}


def iso(ms: int | None) -> str | None:
    """ISO 8601 with the server's UTC offset, as the native API shows times.

    Reports are formatted by the thousand per second, so the part up to the
    second (and the offset) is kept for the seconds most recently seen.
    """
    if ms is None:
        return None
    sec, milli = divmod(ms, 1000)
    cached = _ISO_SECONDS.get(sec)
    if cached is None:
        text = datetime.fromtimestamp(sec, tz=timezone.utc).astimezone().isoformat(timespec="seconds")
        cached = (text[:19], text[19:])
        if len(_ISO_SECONDS) > 4096:
            _ISO_SECONDS.clear()
        _ISO_SECONDS[sec] = cached
    return f"{cached[0]}.{milli:03d}{cached[1]}"
