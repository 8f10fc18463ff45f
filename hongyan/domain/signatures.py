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

from collections.abc import Collection
from typing import Literal, NamedTuple

Where = Literal["start", "end"]
Reason = Literal["missing", "not_approved", "multiple", "empty"]

# Tuples rather than frozen dataclasses: a frozen dataclass sets each field
# through object.__setattr__, and accept builds a verdict for every request.


class Signature(NamedTuple):
    text: str  # without brackets; "" for an empty 【】
    where: Where


class SignatureVerdict(NamedTuple):
    text: str | None  # what to send; None when refused
    signature: Signature | None  # the one found (or added); for "multiple", the first
    reason: Reason | None = None  # why it was refused
    added: bool = False  # the default signature was put in front

    @property
    def ok(self) -> bool:
        return self.reason is None


def _at_start(text: str, pos: int) -> tuple[str, int] | None:
    """The 【…】 at ``pos`` after whitespace: (its text, the index after it)."""
    size = len(text)
    while pos < size and text[pos].isspace():
        pos += 1
    if not text.startswith("【", pos):
        return None
    close = text.find("】", pos + 1)
    if close < 0 or text.find("【", pos + 1, close) >= 0:
        return None
    return text[pos + 1:close], close + 1


def _at_end(text: str, stop: int) -> tuple[str, int] | None:
    """The 【…】 that ends ``text[:stop]`` before whitespace: (its text, its index)."""
    while stop > 0 and text[stop - 1].isspace():
        stop -= 1
    if stop == 0 or text[stop - 1] != "】":
        return None
    opening = text.rfind("【", 0, stop - 1)
    if opening < 0 or text.find("】", opening + 1, stop - 1) >= 0:
        return None
    return text[opening + 1:stop - 1], opening


def _found(text: str) -> list[Signature]:
    """Signatures at the edges of ``text``, start first (more than one is an error).

    Plain string scans from each edge (a regular expression searching for
    the end one tried every position of the text)."""
    found: list[Signature] = []
    start = _at_start(text, 0)
    if start:
        found.append(Signature(start[0].strip(), "start"))
        if second := _at_start(text, start[1]):
            found.append(Signature(second[0].strip(), "start"))
    end = _at_end(text, len(text))
    if end and not (start and end[1] < start[1]):  # not the same 【…】 again
        found.append(Signature(end[0].strip(), "end"))
        if second := _at_end(text, end[1]):
            found.append(Signature(second[0].strip(), "end"))
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
