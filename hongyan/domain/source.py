"""Source numbers: composing the sender number of an MT, routing an MO by its destination.

A source number is the channel's access code (接入号, e.g. "1069000"), then
the account's extension (the digits that identify a customer account behind
that access code), then the request extension (digits the customer chose for
one message, so that replies can be told apart).  Carriers cap the whole at
21 digits (the size of CMPP's Src_Id), and some channels at fewer.

Cutting rule when the three do not fit ``max_len``:

* the request extension loses digits from its end, keeping the leading ones,
  since a reply is routed by reading the number left to right;
* when even access code + account extension do not fit, the account
  extension is dropped whole -- and the request extension with it -- rather
  than shortened: a shortened account extension could be another account's
  extension, and that account would then receive this account's replies.
  A bare access code routes replies to no account, which is the safe failure;
* the access code is never cut: an access code longer than ``max_len`` is a
  configuration error (ValueError).

Routing rule (``parse_mo_dest``): the longest access code that starts the
destination, then the longest account extension that follows it, and the
rest is the request extension.  Without a matching account extension the
account is None and the whole rest is the request extension.  Without a
matching access code the access code is None too and the whole destination is
the request extension.  If the account extensions are prefix-free (no one is
the start of another) and nothing was cut, ``parse_mo_dest`` undoes
``compose``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_LEN = 21  # CMPP Src_Id / SMGP SrcTermID


def _check_digits(name: str, value: str) -> None:
    # str.isdigit alone accepts "²" and Arabic-Indic digits, which no carrier does.
    if value and not (value.isascii() and value.isdigit()):
        raise ValueError(f"{name} must be digits only, got {value!r}")


@dataclass(frozen=True, slots=True)
class Composed:
    number: str
    cut: bool  # True when the request or account extension lost digits


def max_request_ext(access_code: str, account_ext: str = "", max_len: int = MAX_LEN) -> int:
    """How many request-extension digits fit after ``access_code + account_ext`` (0 if none)."""
    return max(0, max_len - len(access_code) - len(account_ext))


def compose(access_code: str, account_ext: str = "", request_ext: str = "",
            max_len: int = MAX_LEN) -> Composed:
    """The source number, cut to ``max_len`` as the module docstring describes."""
    for name, value in (("access_code", access_code), ("account_ext", account_ext),
                        ("request_ext", request_ext)):
        _check_digits(name, value)
    if len(access_code) > max_len:
        raise ValueError(f"access code {access_code!r} is longer than {max_len} digits")
    if len(access_code) + len(account_ext) > max_len:
        return Composed(access_code, bool(account_ext or request_ext))
    room = max_request_ext(access_code, account_ext, max_len)
    return Composed(access_code + account_ext + request_ext[:room], len(request_ext) > room)


def request_ext(source: str, account_ext: str = "") -> str | None:
    """The request extension a session customer chose by its source address.

    Over CMPP and SMPP a customer writes its source as the account's extension
    followed by the digits it adds (the channel's access code comes in front at
    dispatch). None when the source is not that: not digits, or not starting with
    the account's extension. An empty source, or the extension alone, adds nothing.
    """
    source = (source or "").strip()
    if not source or source == account_ext:
        return ""
    if not source.isdigit() or not source.startswith(account_ext):
        return None
    return source[len(account_ext):]


@dataclass(frozen=True, slots=True)
class MoRoute(Generic[T]):
    access_code: str | None
    account_ext: str
    account: T | None
    request_ext: str


def parse_mo_dest(dest: str, access_codes: Iterable[str], extensions: Mapping[str, T]) -> MoRoute[T]:
    """Split an MO's destination into access code, account extension and request extension.

    ``extensions`` maps an account extension to its account.  An entry for
    "" catches replies to the bare access code (and to unknown extensions).
    """
    dest = dest.strip()
    code = max((c for c in access_codes if c and dest.startswith(c)), key=len, default=None)
    if code is None:
        return MoRoute(None, "", None, dest)
    rest = dest[len(code):]
    # Longest first; one dict lookup per length keeps this cheap however many accounts.
    for n in range(len(rest), -1, -1):
        ext = rest[:n]
        if ext in extensions:
            return MoRoute(code, ext, extensions[ext], rest[n:])
    return MoRoute(code, "", None, rest)
