"""Replies that unsubscribe (退订).

A reply unsubscribes when, once normalised, it *is* one of the keywords --
"TD" or "退订" -- not when it merely contains one: "T" inside "Thanks, got
it" is no request to stop.  Normalisation, applied to the keywords and to
the reply alike:

* NFKC, so full-width "ＴＤ" and "０" read as "TD" and "0";
* case folding, so "td" and "Td" are "TD";
* all whitespace removed ("T D", "退 订"), since phones and people insert it;
* punctuation and symbols at either end removed ("TD。", "【退订】", "T!",
  "退订😡"); inside a reply they stay, so "T.T" is not "TT".

Default keywords (``DEFAULT_KEYWORDS``) are the replies Chinese SMS tell
people to send: "回T退订", "回TD退订", "回N退订", "拒收请回复R" and their
Chinese words (退订, 退, 取消, 拒收, 退出, 取消订阅, 不要再发), "QX" (取消
in pinyin initials), "0000" (the carriers' unsubscribe-all code), and the
English "STOP" and "UNSUBSCRIBE".  An account that asks people to answer
yes/no questions with "N" should configure its own set without it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

DEFAULT_KEYWORDS: tuple[str, ...] = (
    "T", "TD", "N", "R", "QX", "0000", "STOP", "UNSUBSCRIBE",
    "退订", "退", "取消", "拒收", "退出", "取消订阅", "不要再发",
)


def _is_edge_noise(ch: str) -> bool:
    # P*: punctuation (。！【】“”…), S*: symbols and emoji, Z*/C*: separators, controls.
    return unicodedata.category(ch)[0] in "PSZC"


def normalise(text: str) -> str:
    """The form replies and keywords are compared in (see the module docstring)."""
    text = "".join(unicodedata.normalize("NFKC", text).casefold().split())
    start, end = 0, len(text)
    while start < end and _is_edge_noise(text[start]):
        start += 1
    while end > start and _is_edge_noise(text[end - 1]):
        end -= 1
    return text[start:end]


@dataclass(frozen=True, slots=True)
class OptOut:
    keywords: tuple[str, ...] = DEFAULT_KEYWORDS
    _normalised: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keywords = tuple(self.keywords)  # any iterable of strings is accepted
        normalised = frozenset(map(normalise, keywords))
        # A keyword of only punctuation would normalise to "" and match empty replies.
        if "" in normalised:
            raise ValueError(f"keywords must have a letter, digit or character: {keywords!r}")
        object.__setattr__(self, "keywords", keywords)
        object.__setattr__(self, "_normalised", normalised)

    def is_optout(self, text: str) -> bool:
        return normalise(text) in self._normalised


_DEFAULT = OptOut()


def is_optout(text: str) -> bool:
    """Whether ``text`` unsubscribes, with the default keywords."""
    return _DEFAULT.is_optout(text)
