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


def iso(ms: int | None) -> str | None:
    """ISO 8601 with the server's UTC offset, as the native API shows times."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).astimezone().isoformat(timespec="milliseconds")
