"""Request parameters as the vendor interfaces receive them, whatever the client sent.

Customer code written for these vendors is looser than their documents: GBK or
UTF-8 on GET and POST alike, a ``charset`` in the Content-Type or none, form
bodies that are not percent-encoded at all, raw UTF-8 bytes in a query string,
parameters split between the query string and the body. This module turns all
of that into one set of decoded parameters, deciding the encoding once per
request:

1. a ``charset`` parameter in the Content-Type, when it names one we know;
2. otherwise UTF-8 when every value decodes as strict UTF-8 (GBK text almost
   never does), else GB18030 (a superset of GBK and GB2312);
3. pure-ASCII requests decode the same either way.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from hongyan.web import read_body

_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gb18030", "gb2312": "gb18030",
             "gb18030": "gb18030", "cp936": "gb18030"}
_CHARSET_RE = re.compile(rb"charset\s*=\s*\"?([A-Za-z0-9_\-]+)", re.I)
MAX_BODY = 4 * 1024 * 1024


class BodyTooLarge(ValueError):
    pass


@dataclass
class Params:
    values: dict[str, list[str]] = field(default_factory=dict)
    encoding: str = "utf-8"
    method: str = "GET"
    body: bytes = b""          # the raw body, for interfaces that post JSON or text

    def get(self, name: str, default: str | None = None) -> str | None:
        vals = self.values.get(name)
        return vals[0] if vals else default

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def repeated(self) -> list[str]:
        """Names given more than once with different values (ambiguous requests)."""
        return [k for k, v in self.values.items() if len(set(v)) > 1]

    def missing(self, *names: str) -> list[str]:
        return [n for n in names if not (self.get(n) or "").strip()]


def _pairs(raw: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        # '+' is a space in forms; a literal '+' arrives as %2B. A value with
        # raw non-ASCII bytes was not form-encoded at all, so its '+' is literal.
        if value.isascii():
            value = value.replace(b"+", b" ")
        out.append((unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value)))
    return out


def choose_encoding(pairs: list[tuple[bytes, bytes]], content_type: bytes = b"") -> str:
    m = _CHARSET_RE.search(content_type or b"")
    if m:
        known = _CHARSETS.get(m.group(1).decode("ascii", "replace").lower())
        if known:
            return known
    for name, value in pairs:
        for part in (name, value):
            if not part.isascii():
                try:
                    part.decode("utf-8")
                except UnicodeDecodeError:
                    return "gb18030"
    return "utf-8"


def parse(query: bytes, body: bytes, content_type: bytes = b"", method: str = "GET") -> Params:
    """Decode query string and form body into one ``Params`` (query first, then body)."""
    ctype = (content_type or b"").split(b";")[0].strip().lower()
    form_body = body and ctype in (b"", b"application/x-www-form-urlencoded", b"text/plain",
                                   b"application/octet-stream")
    pairs = _pairs(query) + (_pairs(body) if form_body else [])
    encoding = choose_encoding(pairs, content_type)
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.decode(encoding, "replace").strip()
        values.setdefault(key, []).append(value.decode(encoding, "replace"))
    return Params(values, encoding, method, body)


async def read(request: Request, limit: int = MAX_BODY) -> Params:
    """The request's parameters; raises BodyTooLarge past ``limit`` bytes."""
    body = await read_body(request, limit)
    if body is None:
        raise BodyTooLarge(f"more than {limit} bytes")
    content_type = request.headers.get("content-type", "").encode("latin-1", "replace")
    return parse(request.scope.get("query_string", b""), body, content_type, request.method)


def truthy(value: str | None) -> bool:
    """Booleans as clients send them: true, True, TRUE, 1, yes."""
    return (value or "").strip().lower() in ("1", "true", "yes", "y", "on")
