"""Splitting message text into SMS parts, and joining received parts back.

Encoding rule.  A text goes in the GSM 7-bit class ("gsm7") only when every
character is an ASCII character that also exists in the GSM 03.38 default
alphabet or its extension table, so that the same text can travel as ASCII
over CMPP (Msg_Fmt=0) and as GSM-7 over SMPP.  Every other text goes as UCS2.
Consequences worth knowing:

* the ASCII characters with no GSM equivalent -- the backtick ` and control
  characters other than LF, CR and FF -- force UCS2;
* GSM characters that are not ASCII (é, £, €, ...) force UCS2 as well, since
  they cannot be sent as ASCII;
* the extension characters ^ { } \\ [ ~ ] | and form feed are sent as an
  escape plus a code, so they count 2 septets.

Length is counted in septets for gsm7 and in UTF-16 code units for UCS2 (an
emoji outside the BMP counts 2).  A text fits one part up to 160 septets or
70 units; a longer text is split into parts of at most 153 septets or 67
units, the room left by a 6-byte concatenation UDH.  Parts are filled
greedily, and a part never ends between the two halves of a surrogate pair or
between an escape and its extension character.  The empty text has no parts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]

GSM7_SINGLE, GSM7_LONG = 160, 153
UCS2_SINGLE, UCS2_LONG = 70, 67

# ASCII characters outside both GSM tables: controls other than LF, FF, CR,
# the backtick and DEL.  Everything else in ASCII is a GSM character.
_NON_GSM_ASCII = re.compile(r"[\x00-\x09\x0b\x0e-\x1f`\x7f]")
_GSM_EXTENSION = "^{}\\[~]|\f"
_GSM_EXTENSION_SET = frozenset(_GSM_EXTENSION)


def _is_gsm7(text: str) -> bool:
    return text.isascii() and _NON_GSM_ASCII.search(text) is None


def encoding_of(text: str) -> Encoding:
    return "gsm7" if _is_gsm7(text) else "ucs2"


def _gsm7_weight(ch: str) -> int:
    return 2 if ch in _GSM_EXTENSION_SET else 1


def _ucs2_weight(ch: str) -> int:
    return 2 if ch > "\uffff" else 1


def _heavy_count(text: str, encoding: Encoding) -> int:
    """How many characters of ``text`` weigh 2 (extension chars, or non-BMP chars)."""
    if encoding == "gsm7":
        return sum(map(text.count, _GSM_EXTENSION))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)


def _rules(encoding: Encoding) -> tuple[Callable[[str], int], int, int]:
    if encoding == "gsm7":
        return _gsm7_weight, GSM7_SINGLE, GSM7_LONG
    return _ucs2_weight, UCS2_SINGLE, UCS2_LONG


def length(text: str) -> int:
    """Length of ``text`` in septets (gsm7) or UTF-16 code units (UCS2)."""
    return len(text) + _heavy_count(text, encoding_of(text))


def _cuts(text: str, weight: Callable[[str], int], capacity: Callable[[int], int]) -> Iterator[int]:
    """End index of each part when ``text`` is packed greedily.

    ``capacity(i)`` is the room in part i (from 0).  Characters are never
    split, which is what keeps surrogate pairs and escapes whole.
    """
    part, used, room = 0, 0, capacity(0)
    for i, ch in enumerate(text):
        w = weight(ch)
        if used + w > room and used:
            yield i
            part, used, room = part + 1, 0, capacity(part + 1)
        if w > room:
            raise ValueError(f"a part of {room} cannot hold one character")
        used += w
    if text:
        yield len(text)


def _slices(text: str, cuts: Iterator[int]) -> list[str]:
    return [text[a:b] for a, b in pairwise([0, *cuts])]


@dataclass(frozen=True, slots=True)
class Plan:
    encoding: Encoding
    chunks: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.chunks)


def plan(text: str) -> Plan:
    """Encoding and parts of ``text``; see the module docstring for the rule."""
    encoding = encoding_of(text)
    weight, single, long = _rules(encoding)
    if not text:
        return Plan(encoding, ())
    if len(text) + _heavy_count(text, encoding) <= single:
        return Plan(encoding, (text,))
    return Plan(encoding, tuple(_slices(text, _cuts(text, weight, lambda _: long))))


def count_parts(text: str) -> int:
    """``plan(text).count``, without building the parts when it can be helped."""
    if not text:
        return 0
    encoding = "gsm7" if _is_gsm7(text) else "ucs2"
    heavy = _heavy_count(text, encoding)
    weight, single, long = _rules(encoding)
    if len(text) + heavy <= single:
        return 1
    if not heavy:  # every character weighs 1: plain arithmetic
        return -(-len(text) // long)
    return sum(1 for _ in _cuts(text, weight, lambda _: long))


def split_with_seqno(text: str, per_part: int | None = None) -> list[str]:
    """Split ``text`` into separate plain SMS numbered "1/3)", "2/3)", ...

    For channels without long-SMS support.  ``per_part`` is the room in one
    SMS in the text's own unit (septets or UTF-16 units), 160 or 70 by
    default; the prefix counts toward it.  A text that fits one SMS is
    returned unchanged, without a prefix.
    """
    encoding = encoding_of(text)
    weight, single, _ = _rules(encoding)
    per_part = single if per_part is None else per_part
    if not text:
        return []
    if len(text) + _heavy_count(text, encoding) <= per_part:
        return [text]
    # The prefix length depends on how many digits the total has; try one
    # digit, then two, ... until the number of parts fits the guess.
    digits = 1
    while True:

        def room(i: int, digits: int = digits) -> int:
            return per_part - len(f"{i + 1}/)") - digits

        cuts = list(_cuts(text, weight, room))
        if len(str(len(cuts))) <= digits:
            break
        digits += 1
    total = len(cuts)
    return [f"{seq}/{total}){chunk}" for seq, chunk in enumerate(_slices(text, iter(cuts)), 1)]


# --- bytes on the wire ------------------------------------------------------

def encode_chunk(chunk: str, encoding: Encoding) -> bytes:
    """Payload bytes of one part for the 8-bit transports (CMPP, SGIP, SMGP)."""
    if encoding == "gsm7":
        return chunk.encode("ascii")
    return chunk.encode("utf-16-be", "surrogatepass")


# CMPP Msg_Fmt values (SMPP data_coding agrees on these): 0 ASCII, 1 IA5,
# 2/4 binary, 3 Latin-1 (CMPP: SIM write, bytes either way), 8 UCS2, 15 GBK.
_MSG_FMT = {0: "ascii", 1: "ascii", 2: "latin-1", 3: "latin-1", 4: "latin-1", 8: "ucs2", 15: "gbk"}


def _alphabet(msg_fmt: int) -> str:
    if msg_fmt in _MSG_FMT:
        return _MSG_FMT[msg_fmt]
    # Anything else is read as a GSM 03.38 data coding scheme, which is what
    # some gateways copy into Msg_Fmt of MO messages (e.g. 0x18: UCS2, class 0).
    if msg_fmt & 0x80 == 0:  # general coding groups 00xx and 01xx
        if msg_fmt & 0x20:  # compressed: nothing to decode
            return "latin-1"
        return ("ascii", "latin-1", "ucs2", "latin-1")[(msg_fmt >> 2) & 3]
    group = msg_fmt & 0xF0
    if group in (0xC0, 0xD0):  # message waiting indication, default alphabet
        return "ascii"
    if group == 0xE0:  # message waiting indication, UCS2
        return "ucs2"
    if group == 0xF0:
        return "latin-1" if msg_fmt & 0x04 else "ascii"
    return "latin-1"


def _decode_ucs2(data: bytes, keep_surrogates: bool) -> str:
    even = len(data) & ~1
    text = data[:even].decode("utf-16-be", "surrogatepass" if keep_surrogates else "replace")
    return text + "\ufffd" if even != len(data) else text


def decode_payload(data: bytes, msg_fmt: int, *, part: bool = False) -> str:
    """Text of a payload with CMPP-style data coding ``msg_fmt``; never raises.

    Undecodable bytes become U+FFFD.  ASCII-coded payloads that are not ASCII
    are read as GB18030 (a superset of GBK), the likely encoding of Chinese
    text sent with the wrong Msg_Fmt; GBK payloads are read as GB18030 too.
    Pass ``part=True`` for one part of a long message that goes to a
    Reassembler: a surrogate pair a phone split across two UCS2 parts is then
    kept as two lone halves, which the Reassembler rejoins.
    """
    alphabet = _alphabet(msg_fmt)
    if alphabet == "ucs2":
        return _decode_ucs2(data, part)
    if alphabet == "ascii" and data.isascii():
        return data.decode("ascii")
    if alphabet in ("ascii", "gbk"):
        return data.decode("gb18030", "replace")
    return data.decode("latin-1")


# --- user data header -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConcatInfo:
    ref: int
    total: int
    seq: int


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """6-byte UDH with the 8-bit-reference concatenation IE (IEI 00)."""
    if not 0 <= ref <= 0xFF:
        raise ValueError(f"ref {ref} does not fit 8 bits")
    if not 1 <= seq <= total <= 0xFF:
        raise ValueError(f"bad part {seq} of {total}")
    return bytes((5, 0x00, 3, ref, total, seq))


def split_udh(payload: bytes) -> tuple[ConcatInfo | None, bytes]:
    """Read the UDH at the start of ``payload``: (concatenation info, text bytes).

    Knows IE 00 (8-bit reference) and IE 08 (16-bit reference) and skips any
    other IE.  A header that overruns the payload gives (None, payload); a
    well-formed header whose concatenation IE is absent or inconsistent
    (total 0, seq outside 1..total) gives (None, body).  When a header holds
    several concatenation IEs the last one counts, as 3GPP TS 23.040 says.
    """
    if not payload or payload[0] + 1 > len(payload):
        return None, payload
    end = payload[0] + 1
    info: ConcatInfo | None = None
    i = 1
    while i < end:
        if i + 2 > end or i + 2 + payload[i + 1] > end:
            return None, payload
        iei, size = payload[i], payload[i + 1]
        data = payload[i + 2 : i + 2 + size]
        if iei == 0x00 and size == 3:
            info = ConcatInfo(data[0], data[1], data[2])
        elif iei == 0x08 and size == 4:
            info = ConcatInfo(data[0] << 8 | data[1], data[2], data[3])
        i += 2 + size
    if info is not None and not 1 <= info.seq <= info.total:
        info = None
    return info, payload[end:]


# --- reassembly of received long messages -------------------------------------

def _mend_surrogates(text: str) -> str:
    """Pair up surrogate halves left apart by part boundaries; lone ones become U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


@dataclass(slots=True)
class _Partial:
    total: int
    started: float
    parts: dict[int, str] = field(default_factory=dict)

    def joined(self) -> str:
        return _mend_surrogates("".join(self.parts[seq] for seq in sorted(self.parts)))


class Reassembler:
    """Joins the parts of received long messages.

    A key names one message, e.g. (channel, phone, ref, total).  At most
    ``max_open`` messages wait at once; opening one more flushes the oldest,
    incomplete, to the next ``expire`` result, as does waiting longer than
    ``timeout`` seconds since its first part, so no text is ever dropped.
    ``now`` must not go backwards (time.monotonic()).  Not thread-safe.
    """

    def __init__(self, timeout: float = 300, max_open: int = 10_000) -> None:
        self.timeout = timeout
        self.max_open = max_open
        self._open: dict[Hashable, _Partial] = {}  # insertion order = age order
        self._flushed: list[tuple[Hashable, str]] = []

    def __len__(self) -> int:
        return len(self._open)

    def add(self, key: Hashable, total: int, seq: int, text: str, now: float) -> str | None:
        """Store one part; return the whole text once the last part is in.

        A part that cannot belong to a long message (total < 2, seq outside
        1..total, or a total differing from the earlier parts') is returned
        as it is, as a message of its own.  Repeated parts are ignored.
        """
        if total < 2 or not 1 <= seq <= total:
            return _mend_surrogates(text)
        partial = self._open.get(key)
        if partial is None:
            if len(self._open) >= self.max_open:
                oldest = next(iter(self._open))
                self._flushed.append((oldest, self._open.pop(oldest).joined()))
            partial = self._open[key] = _Partial(total, now)
        elif partial.total != total:
            return _mend_surrogates(text)
        partial.parts.setdefault(seq, text)
        if len(partial.parts) < total:
            return None
        del self._open[key]
        return partial.joined()

    def expire(self, now: float) -> list[tuple[Hashable, str]]:
        """Messages flushed for room, and those open ``timeout`` seconds or more, joined as they are."""
        out, self._flushed = self._flushed, []
        while self._open:
            key, partial = next(iter(self._open.items()))
            if now - partial.started < self.timeout:
                break
            del self._open[key]
            out.append((key, partial.joined()))
        return out
