"""Message signatures: the 【…】 brand at the start or the end of the content.

Chinese carriers attribute a message to a sender by its signature and only
pass signatures registered with them (签名报备), so a platform checks the
signature before sending.  The rules here:

* A signature is 【…】 at the start or at the end of the text, ignoring
  whitespace around the text (a trailing newline is common).  Its text is
  what is between the brackets, less surrounding whitespace, and contains
  neither bracket.  The text sent is never rewritten except for adding the
  default signature.
* Only the full-width brackets count.  ASCII "[…]" is what content uses for
  other things ("[图片]", "[1/2]", template placeholders), and carriers do not
  read it as a signature either, so treating it as one would let through
  messages a carrier then rejects.  A text with only "[…]" has no signature.
* 【…】 anywhere else is content ("您好，【重要】通知…" has no signature).
* Two signatures -- one at each end, or two in a row at one end -- are
  refused as "multiple": the carrier would pick one, and which brand the
  message is sent under must not be a guess.  A text that is nothing but
  one 【…】 has one signature.
* An empty 【】 (or 【  】) at an edge is refused as "empty" whatever the
  other settings: it is a signature slot left blank, which carriers reject,
  and adding a default next to it would send two.
* A signature found must be approved, whether or not one is required:
  ``required`` only says whether a text without one may go.
* A text without a signature gets the default signature at its start when
  there is one (required or not); otherwise it is refused as "missing" when
  a signature is required and sent as it is when not.  The default is the
  operator's choice and is not checked against ``approved``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

Where = Literal["start", "end"]
Reason = Literal["missing", "not_approved", "multiple", "empty"]

_START = re.compile(r"\s*【([^【】]*)】")
_END = re.compile(r"【([^【】]*)】\s*\Z")


@dataclass(frozen=True, slots=True)
class Signature:
    text: str  # without brackets; "" for an empty 【】
    where: Where


@dataclass(frozen=True, slots=True)
class SignatureVerdict:
    text: str | None  # what to send; None when refused
    signature: Signature | None  # the one found (or added); for "multiple", the first
    reason: Reason | None = None  # why it was refused
    added: bool = False  # the default signature was put in front

    @property
    def ok(self) -> bool:
        return self.reason is None


def _found(text: str) -> list[Signature]:
    """Signatures at the edges of ``text``, start first (more than one is an error)."""
    found: list[Signature] = []
    start = _START.match(text)
    if start:
        found.append(Signature(start[1].strip(), "start"))
        if second := _START.match(text, start.end()):
            found.append(Signature(second[1].strip(), "start"))
    end = _END.search(text)
    if end and not (start and end.start() < start.end()):  # not the same 【…】 again
        found.append(Signature(end[1].strip(), "end"))
        if second := _END.search(text, 0, end.start()):
            found.append(Signature(second[1].strip(), "end"))
    return found


def extract(text: str) -> Signature | None:
    """The signature of ``text``: the one at the start, else the one at the end."""
    found = _found(text)
    return found[0] if found else None


def check(text: str, *, required: bool, approved: Collection[str], default: str | None) -> SignatureVerdict:
    """Whether ``text`` may be sent as far as its signature goes; see the module docstring."""
    found = _found(text)
    if not found:
        if default and (default := default.strip().removeprefix("【").removesuffix("】").strip()):
            return SignatureVerdict(f"【{default}】{text}", Signature(default, "start"), added=True)
        if required:
            return SignatureVerdict(None, None, "missing")
        return SignatureVerdict(text, None)
    signature = found[0]
    if len(found) > 1:
        return SignatureVerdict(None, signature, "multiple")
    if not signature.text:
        return SignatureVerdict(None, signature, "empty")
    if signature.text not in approved:
        return SignatureVerdict(None, signature, "not_approved")
    return SignatureVerdict(text, signature)
