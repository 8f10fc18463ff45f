"""Unsubscribe replies: keyword matching after normalisation, and configurable keywords."""

import pytest
from hypothesis import given, strategies as st

from hongyan.domain.optout import DEFAULT_KEYWORDS, OptOut, is_optout, normalise


@pytest.mark.parametrize(
    "reply",
    ["T", "t", "TD", "td", "Td", " TD\n", "ＴＤ", "ｔｄ", "TD。", "“TD”", "【退订】", "退订", "退订！",
     "退 订", "T D", "N", "R", "0000", "００００", "取消", "退", "QX", "stop", "Stop!", "退订😡"],
)
def test_keyword_replies_unsubscribe(reply):
    assert is_optout(reply)


@pytest.mark.parametrize(
    "reply",
    ["", "   ", "。", "Thanks", "TDD", "T.T", "OK T", "Tomorrow", "退订了吗？我想问一下", "不退订",
     "我要退订", "好的", "1234", "000", "ND", "YES"],
)
def test_other_replies_do_not(reply):
    assert not is_optout(reply)


def test_keywords_are_configurable():
    optout = OptOut(["QX", "取消", "ＢＹＥ"])  # keywords are normalised like replies
    assert optout.is_optout("qx") and optout.is_optout("bye!") and optout.is_optout("取消。")
    assert not optout.is_optout("T") and not optout.is_optout("TD")
    assert optout.keywords == ("QX", "取消", "ＢＹＥ")


def test_a_keyword_of_only_punctuation_is_refused():
    with pytest.raises(ValueError):
        OptOut(["TD", "!!"])


def test_normalise():
    assert normalise(" 【ＴＤ】 ") == "td"
    assert normalise("T.T") == "t.t"


def full_width(text):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


edge = st.text(alphabet=" \t\n。，！？!?.,【】「」“”\"'~…😀", max_size=4)


@given(st.sampled_from(DEFAULT_KEYWORDS), edge, edge, st.booleans(), st.booleans())
def test_any_keyword_however_dressed_unsubscribes(keyword, before, after, lower, wide):
    reply = keyword.lower() if lower else keyword
    reply = full_width(reply) if wide else reply
    assert is_optout(before + reply + after)


filler = st.text(alphabet="好的谢收到明天见ab", min_size=1, max_size=6)


@given(st.sampled_from(DEFAULT_KEYWORDS), filler, st.booleans())
def test_a_message_that_merely_contains_a_keyword_does_not(keyword, words, words_first):
    reply = words + keyword if words_first else keyword + words
    assert not is_optout(reply)
    assert not is_optout(f"{reply}。")
