"""Signatures: where they are found, and the verdict for an account's settings."""

import re

import pytest
from hypothesis import given, settings, strategies as st

from hongyan.domain.signatures import Signature, SignatureVerdict, _found, check, extract

APPROVED = {"鸿雁", "鸿雁科技"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("【鸿雁】您的验证码是1234", Signature("鸿雁", "start")),
        ("您的验证码是1234【鸿雁】", Signature("鸿雁", "end")),
        ("  【鸿雁】验证码1234", Signature("鸿雁", "start")),
        ("验证码1234【鸿雁】\n", Signature("鸿雁", "end")),
        ("【 鸿雁 】验证码", Signature("鸿雁", "start")),
        ("【鸿雁】", Signature("鸿雁", "start")),
        ("【】验证码", Signature("", "start")),
        ("您好，【重要】通知", None),
        ("[鸿雁]验证码1234", None),
        ("验证码1234[鸿雁]", None),
        ("【鸿雁验证码1234", None),
        ("【鸿【雁】验证码", None),
        ("", None),
    ],
)
def test_extract(text, expected):
    assert extract(text) == expected


def test_extract_prefers_the_start():
    assert extract("【鸿雁】验证码【别家】") == Signature("鸿雁", "start")


def _check(text, required=True, default=None):
    return check(text, required=required, approved=APPROVED, default=default)


def test_approved_signature_passes_unchanged():
    for text in ("【鸿雁】验证码1234", "验证码1234【鸿雁科技】", "验证码 【鸿雁】 "):
        v = _check(text)
        assert v.ok and v.text == text and not v.added


def test_unapproved_signature_is_refused_even_when_none_is_required():
    for required in (True, False):
        v = _check("【别家】验证码", required=required, default="鸿雁")
        assert v == SignatureVerdict(None, Signature("别家", "start"), "not_approved")
        assert not v.ok


def test_missing_signature():
    assert _check("验证码1234") == SignatureVerdict(None, None, "missing")
    assert _check("验证码1234", required=False) == SignatureVerdict("验证码1234", None)


@pytest.mark.parametrize("default", ["鸿雁", "【鸿雁】", " 鸿雁 "])
def test_default_is_added_at_the_start_when_missing(default):
    for required in (True, False):
        v = _check("验证码1234", required=required, default=default)
        assert v == SignatureVerdict("【鸿雁】验证码1234", Signature("鸿雁", "start"), added=True)


def test_blank_default_counts_as_none():
    assert _check("验证码1234", default="  ").reason == "missing"
    assert _check("验证码1234", default="【】").reason == "missing"


def test_middle_brackets_and_ascii_brackets_are_content():
    assert _check("您好，【重要】通知", default="鸿雁").text == "【鸿雁】您好，【重要】通知"
    assert _check("[鸿雁]验证码").reason == "missing"


@pytest.mark.parametrize("text", ["【鸿雁】验证码【鸿雁】", "【鸿雁】【鸿雁科技】验证码", "验证码【鸿雁】 【鸿雁科技】", "【鸿雁】【别家】"])
def test_two_signatures_are_refused(text):
    v = _check(text, default="鸿雁")
    assert v.reason == "multiple" and v.text is None
    assert v.signature == extract(text)


@pytest.mark.parametrize("text", ["【】验证码", "验证码【 】", "【】"])
def test_empty_signature_is_refused_even_with_a_default(text):
    for required in (True, False):
        assert _check(text, required=required, default="鸿雁").reason == "empty"


# --- properties ---------------------------------------------------------------------------

names = st.text(alphabet="鸿雁科技别家abc1 ", min_size=1, max_size=8).filter(str.strip)
bodies = st.text(alphabet="您的验证码是1234，。[]【重要】 \n", max_size=30)


@given(names, bodies, st.sampled_from(["start", "end"]))
def test_a_single_signature_is_found_where_it_was_put(name, body, where):
    # A body that itself starts or ends with 【…】 would make two.
    body = body.strip().strip("【】").replace("【", "").replace("】", "")
    text = f"【{name}】{body}" if where == "start" else f"{body}【{name}】"
    expected = Signature(name.strip(), where if body else "start")
    assert extract(text) == expected
    v = check(text, required=True, approved={name.strip()}, default=None)
    assert v.ok and v.text == text


@given(bodies, names, st.booleans())
def test_verdict_text_always_has_an_approved_signature_when_required(body, default, required):
    approved = {default.strip()}
    v = check(body, required=required, approved=approved, default=default)
    if v.ok and (required or v.added):
        assert extract(v.text).text in approved
    if not v.ok:
        assert v.text is None and v.reason in ("missing", "not_approved", "multiple", "empty")


# The edge rules written as regular expressions (how they read in the module
# docstring); the scans in signatures._found must find exactly what these find.
_START = re.compile(r"\s*【([^【】]*)】")
_END = re.compile(r"【([^【】]*)】\s*\Z")


def _found_by_regex(text: str) -> list[Signature]:
    found = []
    start = _START.match(text)
    if start:
        found.append(Signature(start[1].strip(), "start"))
        if second := _START.match(text, start.end()):
            found.append(Signature(second[1].strip(), "start"))
    end = _END.search(text)
    if end and not (start and end.start() < start.end()):
        found.append(Signature(end[1].strip(), "end"))
        if second := _END.search(text, 0, end.start()):
            found.append(Signature(second[1].strip(), "end"))
    return found


@settings(max_examples=500)
@given(st.text(alphabet="鸿雁a1 \n\u3000\t【】[]", max_size=24))
def test_edge_scans_find_what_the_rules_as_regexes_find(text):
    assert _found(text) == _found_by_regex(text)
