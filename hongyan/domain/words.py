"""Sensitive-word matching for message content.

A ``WordList`` holds two lists: *block* words refuse a message, *review*
words hold it for a person to look at.  ``WordList.match(text)`` reports the
leftmost blocked word if any (the longest one when several start there),
otherwise the leftmost review word the same way, with its span in the
original text.

Evasions.  Text and words are compared in a compact form: every character is
folded to its compatibility form (NFKD, so full-width ＡＢＣ１２３ and circled
① become ABC123 and 1), case-folded, and then everything that is not a letter
or digit (``str.isalnum``: Latin, CJK, kana, ...) is dropped -- spaces,
punctuation, symbols, emoji, and the combining accents NFKD splits off
(NFKD rather than NFKC so that "é" typed precomposed or as "e" plus an
accent folds the same way, to "e").  So
"法 轮", "法*轮", "法🌸轮", "Ｆ.Ａ.Ｌ.Ｕ.Ｎ" and "FaLun" all read as the listed
word.  Traditional and simplified Chinese are not folded into each other:
list both spellings where that matters.

Trade-off.  Dropping separators also drops real word boundaries, so a word
can match across them: with "法轮" listed, "解决办法，轮到你了" matches, and
with "sex" listed, "Essex" matches (there are no word boundaries to honour
in Chinese, so none are honoured in Latin script either).  Nothing beyond
that is loosened: letters and digits are never skipped, so text made only of
characters that occur in no listed word cannot match.  A listed word that
folds to nothing (e.g. "***") can never match and is ignored.

Speed.  The compact form is built with one ``str.translate`` call over a
per-code-point table that fills itself on first sight of a character, and
the automaton runs over its UTF-8 bytes (see ``_bytewise``); the way back to
original positions is only worked out when something matched.  Measured
with 10,000 random two-to-six character Chinese words loaded (9,000 block,
1,000 review; CPython 3.11, pyahocorasick 2.3, best of 5 x 200,000 calls):
about 5-6 µs for a clean 70-character Chinese message, 3 µs for a clean
70-character ASCII one and 14-16 µs for a 70-character message that matches.

Reloading.  ``WordSource`` reads the two files and, on ``load_if_changed()``
(or at most every ``interval`` seconds from ``match``), reloads them when a
file's mtime or size changed.  The new automaton is built off to the side and
swapped in with one assignment, so matching never sees a half-built list; a
reload that fails (a file missing or unreadable mid-edit) keeps the old list.
"""

from __future__ import annotations

import os
import threading
import time
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Literal

import ahocorasick

Kind = Literal["block", "review"]

# Block sorts before review when two listed words compete.
_RANK: dict[Kind, int] = {"block": 0, "review": 1}


@dataclass(frozen=True, slots=True)
class WordMatch:
    word: str  # as listed, not folded
    kind: Kind
    start: int  # span in the original text: text[start:end]
    end: int


# --- folding -----------------------------------------------------------------

def _fold_char(ch: str) -> str:
    folded = unicodedata.normalize("NFKD", ch).casefold()
    return "".join(c for c in folded if c.isalnum())


class _FoldTable(dict[int, str]):
    """Code point -> folded text, for ``str.translate``; fills in on a miss.

    Present keys are looked up in C by ``str.translate``; only a character
    never seen before costs a Python call.  The cap keeps text full of
    unassigned or private-use code points from growing the table without end.
    """

    _CAP = 200_000

    def __missing__(self, cp: int) -> str:
        folded = _fold_char(chr(cp))
        if len(self) < self._CAP:
            self[cp] = folded
        return folded


_TABLE = _FoldTable()


def fold(text: str) -> str:
    """The compact form of ``text`` that words are matched in."""
    return text.translate(_TABLE)


def _bytewise(folded: str) -> str:
    """``folded`` as its UTF-8 bytes, one character per byte.

    pyahocorasick looks a node's children up by a linear scan, and with
    thousands of Chinese words the root has about as many children: matching
    took ~25 µs per 70 characters.  Spelled as UTF-8 bytes, no node has more
    than 256 children and the root only a handful (the lead bytes), which
    makes matching several times faster.  A match of a whole UTF-8 word
    always starts and ends on character boundaries, so nothing else changes.
    """
    return folded.encode("utf-8").decode("latin-1")


def _original_span(text: str, start: int, stop: int) -> tuple[int, int]:
    """Span in ``text`` of the folded characters ``start:stop`` (stop > start)."""
    # folded_end[i] is the length of fold(text[:i + 1]); built with C-level
    # iterators because this runs for every match.
    folded_end = list(accumulate(map(len, map(_TABLE.__getitem__, map(ord, text)))))
    return bisect_right(folded_end, start), bisect_right(folded_end, stop - 1) + 1


# --- the word list -------------------------------------------------------------

class WordList:
    def __init__(self, block: Iterable[str], review: Iterable[str] = ()) -> None:
        # One automaton for both kinds: one pass over the text finds both,
        # and a word listed in both places is kept as a block word.
        best: dict[str, tuple[int, str]] = {}
        for kind, words in (("block", block), ("review", review)):
            for word in words:
                key = fold(word)
                if key and key not in best:
                    best[key] = (_RANK[kind], word)
        self._size = len(best)
        self._automaton: ahocorasick.Automaton | None = None
        if best:
            automaton = ahocorasick.Automaton()
            for key, (rank, word) in best.items():
                automaton.add_word(_bytewise(key), (rank, len(key.encode("utf-8")), len(key), word))
            automaton.make_automaton()
            self._automaton = automaton

    def __len__(self) -> int:
        """How many distinct folded words are listed."""
        return self._size

    @classmethod
    def from_files(cls, block_path: str | os.PathLike[str], review_path: str | os.PathLike[str] | None = None) -> WordList:
        return cls(read_words(block_path), read_words(review_path) if review_path is not None else ())

    def match(self, text: str) -> WordMatch | None:
        if self._automaton is None:
            return None
        keyed = _bytewise(fold(text))
        # (rank, byte start, -byte length, char length, word): the smallest
        # is the leftmost-longest match of the strongest kind.
        best: tuple[int, int, int, int, str] | None = None
        for end, (rank, size, length, word) in self._automaton.iter(keyed):
            candidate = (rank, end - size + 1, -size, length, word)
            if best is None or candidate < best:
                best = candidate
        if best is None:
            return None
        rank, byte_start, _, length, word = best
        start = len(keyed[:byte_start].encode("latin-1").decode("utf-8"))
        span = _original_span(text, start, start + length)
        return WordMatch(word, "block" if rank == 0 else "review", *span)


def read_words(path: str | os.PathLike[str]) -> list[str]:
    """Words of a list file: one a line, blank lines and ``#`` lines ignored.

    UTF-8, with or without a byte-order mark (Windows editors add one).
    Only whole-line comments: "#" may itself be part of a listed word.
    """
    words = []
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        word = line.strip()
        if word and not word.startswith("#"):
            words.append(word)
    return words


# --- reloading -----------------------------------------------------------------

class WordSource:
    """A ``WordList`` read from files, reloaded when a file changes."""

    def __init__(
        self,
        block_path: str | os.PathLike[str],
        review_path: str | os.PathLike[str] | None = None,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = [Path(block_path)] + ([Path(review_path)] if review_path is not None else [])
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # The first load is allowed to raise: starting without a word list is
        # a configuration error, not something to paper over.
        self._stamp = self._stamps()
        self._words = WordList.from_files(*self._paths)
        self._checked = clock()

    @property
    def words(self) -> WordList:
        return self._words

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        # Size as well as mtime: two saves within the file system's mtime
        # granularity usually still differ in size.
        return tuple((s.st_mtime_ns, s.st_size) for s in (p.stat() for p in self._paths))

    def load_if_changed(self) -> bool:
        """Reload when a file changed since the last load; True if it did.

        A failed reload keeps the current list and is tried again next time.
        """
        with self._lock:  # one reload at a time; matching does not wait on it
            self._checked = self._clock()
            try:
                stamp = self._stamps()
                if stamp == self._stamp:
                    return False
                words = WordList.from_files(*self._paths)
            except (OSError, UnicodeDecodeError):
                return False
            self._words, self._stamp = words, stamp
            return True

    def match(self, text: str) -> WordMatch | None:
        """``words.match(text)``, first checking the files if ``interval`` passed."""
        if self._clock() - self._checked >= self._interval:
            self.load_if_changed()
        return self._words.match(text)
