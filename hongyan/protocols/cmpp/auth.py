"""The login handshake's authenticators (CMPP 2.0 sections 7.4.1.1 and 7.4.1.2).

The SP proves it knows the shared secret (its password) without sending it:

    AuthenticatorSource = MD5(Source_Addr + 9 zero octets + secret + timestamp)

where timestamp is the CONNECT's Timestamp written as ten ASCII digits
MMDDHHMMSS. The gateway answers with

    AuthenticatorISMG = MD5(Status + AuthenticatorSource + secret)

with Status as one octet in CMPP 2.0 (four, big-endian, in 3.0), so the SP can
check it is talking to the real gateway.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from .constants import V20
from .events import Connect

_NINE_ZEROS = bytes(9)


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def timestamp_now(dt: datetime | None = None) -> int:
    """The CONNECT Timestamp for ``dt`` (default: local now) as the integer MMDDHHMMSS.

    Leading zeros vanish in the integer (January gives a 9-digit number); the
    authenticator always uses the zero-padded 10-digit form.
    """
    dt = dt or datetime.now()
    return (((dt.month * 100 + dt.day) * 100 + dt.hour) * 100 + dt.minute) * 100 + dt.second


def authenticator_source(source_addr: str, secret: str | bytes, timestamp: int) -> bytes:
    """The 16-octet AuthenticatorSource an SP puts in its CONNECT."""
    if not 0 <= timestamp <= 9_999_999_999:
        raise ValueError(f"timestamp {timestamp} is not a 10-digit MMDDHHMMSS value")
    data = b"".join((source_addr.encode("ascii"), _NINE_ZEROS, _secret_bytes(secret),
                     b"%010d" % timestamp))
    return hashlib.md5(data).digest()


def authenticator_ismg(status: int, auth_source: bytes, secret: str | bytes,
                       version: int = V20) -> bytes:
    """The 16-octet AuthenticatorISMG a gateway puts in its CONNECT_RESP."""
    width = 1 if version < 0x30 else 4
    data = b"".join((status.to_bytes(width, "big"), auth_source, _secret_bytes(secret)))
    return hashlib.md5(data).digest()


def verify_connect(connect: Connect, secret: str | bytes) -> bool:
    """True if ``connect`` was made with ``secret`` (for the gateway side)."""
    expected = authenticator_source(connect.source_addr, secret, connect.timestamp)
    # Constant-time comparison so timing does not leak how much matched.
    return hmac.compare_digest(expected, connect.authenticator)
