"""Sensitive-word matching: folding of evasions, spans, block over review, reloading."""

import os
import threading
import time

import pytest
from hypothesis import given, strategies as st

from hongyan.domain.words import WordList, WordMatch, WordSource, fold, read_words

# --- concrete cases ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "法轮",
        "法 轮",
        "法*轮",
        "法\u3000轮",
        "法🌸轮",
        "法、。，轮",
        "法\n轮",
    ],
)
def test_chinese_word_is_found_through_separators(text):
    m = WordList(["法轮"], []).match(f"你好{text}再见")
    assert m == WordMatch("法轮", "block", 2, 2 + len(text))


@pytest.mark.parametrize("text", ["falun", "FALUN", "FaLuN", "f.a.l.u.n", "ｆａｌｕｎ", "Ｆ-Ａ-Ｌ-Ｕ-Ｎ", "f a l u n"])
def test_latin_word_is_found_through_case_width_and_separators(text):
    m = WordList(["Falun"], []).match(f"say {text}!")
    assert m is not None and m.word == "Falun"
    assert (m.start, m.end) == (4, 4 + len(text))


def test_full_width_digits_and_circled_numbers_fold_to_digits():
    words = WordList(["代开发票138"], [])
    assert words.match("代开发票１３８") is not None
    assert words.match("代开发票①③⑧") is not None


def test_listed_word_is_folded_too():
    # Operators copy words as they saw them, full-width or spaced out.
    words = WordList(["ＶＩＰ 代 开"], [])
    m = words.match("vip代开")
    assert m is not None and m.word == "ＶＩＰ 代 开"


def test_clean_text_does_not_match():
    words = WordList(["法轮", "赌博"], ["贷款"])
    assert words.match("尊敬的客户，您的验证码是123456，5分钟内有效。") is None


def test_boundaries_are_not_honoured_which_is_the_documented_trade_off():
    assert WordList(["法轮"], []).match("解决办法，轮到你了") is not None
    assert WordList(["sex"], []).match("Essex") is not None


def test_block_beats_an_earlier_review_word():
    words = WordList(["赌博"], ["贷款"])
    assert words.match("低息贷款，在线赌博") == WordMatch("赌博", "block", 7, 9)
    assert words.match("低息贷款") == WordMatch("贷款", "review", 2, 4)


def test_leftmost_then_longest():
    words = WordList(["代开", "代开发票", "发票"], [])
    assert words.match("专业代开发票") == WordMatch("代开发票", "block", 2, 6)
    assert words.match("发票代开") == WordMatch("发票", "block", 0, 2)


def test_word_in_both_lists_is_a_block_word():
    assert WordList(["赌博"], ["赌博"]).match("赌博").kind == "block"
    assert WordList(["赌 博"], ["赌博"]).match("赌博") == WordMatch("赌 博", "block", 0, 2)


def test_empty_lists_and_words_that_fold_to_nothing():
    assert WordList([], []).match("任何内容") is None
    words = WordList(["***", "  ", "🌸"], [])
    assert len(words) == 0
    assert words.match("*** 🌸") is None


def test_span_with_a_character_that_folds_to_two():
    # "㎏" folds to "kg": the span is the whole character.
    assert WordList(["kg"], []).match("5㎏") == WordMatch("kg", "block", 1, 2)
    assert WordList(["g"], []).match("5㎏") == WordMatch("g", "block", 1, 2)


def test_fold():
    assert fold("Ａｂ Ｃ，１２３！法 轮🌸") == "abc123法轮"
    assert fold("café") == fold("cafe\u0301") == "cafe"


# --- properties ------------------------------------------------------------------------

WORD_CHARS = "法轮功赌博代开发票abcxyz019"
CLEAN_CHARS = "您好欢迎光临本店回复退订mnpqrs678"
SEPARATORS = [" ", "\u3000", "*", ".", "-", "，", "。", "!", "~", "🌸", "😀", "★", "\n", "_", "|"]
words_st = st.text(alphabet=WORD_CHARS, min_size=2, max_size=6)
clean_st = st.text(alphabet=CLEAN_CHARS + "".join(SEPARATORS), max_size=20)


def _full_width(ch):
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


@st.composite
def disguised(draw, word):
    """``word`` with case changes, full-width letters and separators between characters."""
    out = []
    for i, ch in enumerate(word):
        if i:
            out.append("".join(draw(st.lists(st.sampled_from(SEPARATORS), max_size=3))))
        if draw(st.booleans()):
            ch = ch.upper()
        if draw(st.booleans()):
            ch = _full_width(ch)
        out.append(ch)
    return "".join(out)


@given(st.data(), words_st, clean_st, clean_st)
def test_disguised_word_is_found_and_its_span_covers_it(data, word, before, after):
    hidden = data.draw(disguised(word))
    m = WordList([word], []).match(before + hidden + after)
    assert m == WordMatch(word, "block", len(before), len(before) + len(hidden))


@given(st.lists(words_st, min_size=1, max_size=20), st.data())
def test_text_of_characters_in_no_listed_word_never_matches(words, data):
    used = set(fold("".join(words)))
    alien = st.characters(codec="utf-8").filter(lambda c: not used & set(fold(c)))
    text = data.draw(st.text(alphabet=alien, max_size=80))
    assert WordList(words[::2], words[1::2]).match(text) is None


@given(words_st, words_st, clean_st, clean_st, st.booleans())
def test_block_wins_over_review(blocked, reviewed, gap, tail, review_first):
    parts = [reviewed, gap, blocked] if review_first else [blocked, gap, reviewed]
    m = WordList([blocked], [reviewed]).match("".join(parts) + tail)
    assert m is not None and m.kind == "block" and m.word == blocked


@given(st.lists(words_st, min_size=1, max_size=10), st.text(alphabet=WORD_CHARS + CLEAN_CHARS + "".join(SEPARATORS) + "ＡＢＣ㎏", max_size=40))
def test_match_agrees_with_substring_search_on_the_folded_text(words, text):
    m = WordList(words, []).match(text)
    present = [w for w in words if fold(w) in fold(text)]
    assert (m is not None) == bool(present)
    if m is not None:
        assert fold(m.word) in fold(text[m.start:m.end])
        # Nothing listed starts earlier in the folded text than the match.
        folded_start = len(fold(text[:m.start]))
        assert all(fold(text).find(fold(w)) >= folded_start for w in present)


# --- files and reloading -----------------------------------------------------------------


def _write(path, text, mtime=None):
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_read_words_skips_comments_blank_lines_and_a_bom(tmp_path):
    path = tmp_path / "block.txt"
    path.write_bytes("\ufeff# 违禁词\n法轮\n\n  赌博  \n#C\nC#\n".encode())
    assert read_words(path) == ["法轮", "赌博", "C#"]


def test_from_files(tmp_path):
    _write(tmp_path / "block.txt", "赌博\n")
    _write(tmp_path / "review.txt", "# 需审核\n贷款\n")
    words = WordList.from_files(tmp_path / "block.txt", tmp_path / "review.txt")
    assert words.match("贷款") == WordMatch("贷款", "review", 0, 2)
    assert words.match("赌博") == WordMatch("赌博", "block", 0, 2)
    assert WordList.from_files(tmp_path / "block.txt").match("贷款") is None


def test_source_reloads_when_a_file_changes(tmp_path):
    block, review = tmp_path / "block.txt", tmp_path / "review.txt"
    _write(block, "赌博\n", mtime=1_000_000)
    _write(review, "", mtime=1_000_000)
    source = WordSource(block, review)
    assert source.match("贷款") is None
    assert source.load_if_changed() is False

    _write(review, "贷款\n", mtime=1_000_100)
    assert source.load_if_changed() is True
    assert source.words.match("贷款").kind == "review"
    assert source.load_if_changed() is False


def test_failed_reload_keeps_the_current_list(tmp_path):
    block = tmp_path / "block.txt"
    _write(block, "赌博\n", mtime=1_000_000)
    source = WordSource(block)
    block.unlink()
    assert source.load_if_changed() is False
    assert source.match("赌博") is not None
    block.write_bytes(b"\xff\xfe bad utf-8")
    assert source.load_if_changed() is False
    assert source.match("赌博") is not None
    _write(block, "贷款\n", mtime=1_000_200)
    assert source.load_if_changed() is True
    assert source.match("赌博") is None


def test_first_load_of_a_missing_file_raises(tmp_path):
    with pytest.raises(OSError):
        WordSource(tmp_path / "nope.txt")


def test_match_checks_the_files_at_most_every_interval(tmp_path):
    now = [0.0]
    block = tmp_path / "block.txt"
    _write(block, "赌博\n", mtime=1_000_000)
    source = WordSource(block, interval=5.0, clock=lambda: now[0])
    _write(block, "贷款\n", mtime=1_000_100)
    now[0] = 4.9
    assert source.match("贷款") is None  # not looked at yet
    now[0] = 5.0
    assert source.match("贷款") is not None


def test_matching_during_reloads_always_sees_a_whole_list(tmp_path):
    block = tmp_path / "block.txt"
    lists = ["赌博\n代开\n", "代开\n赌博\n发票\n"]
    _write(block, lists[0], mtime=1_000_000)
    source = WordSource(block)
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            m = source.words.match("代开赌博")
            if m is None or m.word != "代开":
                errors.append(m)
            time.sleep(0)  # let the reloading thread run

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(20):
        _write(block, lists[i % 2], mtime=1_000_001 + i)
        source.load_if_changed()
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
