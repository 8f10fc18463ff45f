"""Content templates: syntax, value limits, choice between templates, the index, linear matching."""

import time

import pytest
from hypothesis import given, strategies as st

from hongyan.domain.templates import MAX_VAR_LEN, Template, TemplateMatch, TemplateSet, normalise

OTP = Template("otp", "【公司】您的验证码是{code}，{minutes}分钟内有效")


def values_of(templates, content):
    found = TemplateSet(templates).match(content)
    return None if found is None else found.values


# --- syntax -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["【公司】您的验证码是{code}，{minutes}分钟内有效",
     "【公司】您的验证码是${code}，${minutes}分钟内有效",
     "【公司】您的验证码是{{code}}，{{minutes}}分钟内有效",
     "【公司】您的验证码是${code}，{{minutes}}分钟内有效"],
)
def test_three_variable_forms_mean_the_same(text):
    t = Template(1, text)
    assert t.variables == ("code", "minutes")
    assert t.literals == ("【公司】您的验证码是", "，", "分钟内有效")
    assert values_of([t], "【公司】您的验证码是1234，5分钟内有效") == {"code": "1234", "minutes": "5"}


def test_numbered_and_chinese_names():
    assert Template(1, "【腾讯】验证码{1}，{2}分钟有效").variables == ("1", "2")
    assert Template(1, "{姓名}您好，欢迎光临").variables == ("姓名",)


def test_hash_delimited_text_is_literal():
    t = Template(1, "【微博】#话题#{name}")
    assert t.literals == ("【微博】#话题#", "")


@pytest.mark.parametrize("text", ["{a}{b}", "【公司】{a}${b}", "x{{a}}{b}y"])
def test_adjacent_variables_are_refused(text):
    with pytest.raises(ValueError):
        Template(1, text)


def test_empty_template_is_refused():
    with pytest.raises(ValueError):
        Template(1, " \r\n ")


def test_render():
    assert OTP.render({"code": "1234", "minutes": "5"}) == "【公司】您的验证码是1234，5分钟内有效"
    with pytest.raises(KeyError):
        OTP.render({"code": "1234"})


# --- matching -------------------------------------------------------------------------

def test_surrounding_whitespace_and_line_ends_are_normalised():
    t = Template(1, "  【公司】第一行{x}\r\n第二行  ")
    assert t.text == "【公司】第一行{x}\n第二行"
    assert values_of([t], "\n【公司】第一行A\r\n第二行 ") == {"x": "A"}
    assert values_of([t], "【公司】第一行A\r第二行") == {"x": "A"}
    assert normalise(" a\r\nb ") == "a\nb"


def test_literals_match_exactly():
    assert values_of([OTP], "【公司】您的验证码是1234,5分钟内有效") is None  # half-width comma
    assert values_of([OTP], "【公司】您的验证码是1234，5分钟内有效。") is None
    assert values_of([OTP], "【公司】您的验证码为1234，5分钟内有效") is None


def test_value_length_limits():
    t = Template(1, "【公司】码{code}。")
    assert values_of([t], "【公司】码。") is None
    assert values_of([t], f"【公司】码{'9' * MAX_VAR_LEN}。") == {"code": "9" * MAX_VAR_LEN}
    assert values_of([t], f"【公司】码{'9' * (MAX_VAR_LEN + 1)}。") is None
    assert TemplateSet([t], max_var_len=4).match("【公司】码12345。") is None
    assert TemplateSet([t], max_var_len=4).match("【公司】码1234。").values == {"code": "1234"}
    with pytest.raises(ValueError):
        TemplateSet([t], max_var_len=0)


@pytest.mark.parametrize("value", ["12\n34", "12\r34", "【别家】", "x】"])
def test_values_hold_no_line_break_and_no_signature_bracket(value):
    assert values_of([Template(1, "{name}您好，欢迎光临")], f"{value}您好，欢迎光临") is None


def test_a_repeated_name_needs_the_same_value():
    t = Template(1, "{code}是验证码，再说一遍：{code}")
    assert values_of([t], "42是验证码，再说一遍：42") == {"code": "42"}
    assert values_of([t], "42是验证码，再说一遍：43") is None


def test_a_value_ends_at_the_first_occurrence_of_the_next_literal():
    t = Template(1, "{a}，{b}")
    assert values_of([t], "北京，上海，广州") == {"a": "北京", "b": "上海，广州"}
    # The last value may hold the final literal: the end of the content bounds it.
    assert values_of([Template(1, "{a}元")], "5元3元") == {"a": "5元3"}


def test_templates_without_literal_prefix_or_with_variables_at_both_ends():
    starts = Template("starts", "{name}您好，您的订单已发货")
    both = Template("both", "{a}到{b}")
    s = TemplateSet([starts, both])
    assert s.match("张三您好，您的订单已发货").template is starts
    assert s.match("北京到上海").values == {"a": "北京", "b": "上海"}
    assert s.match("您好") is None


def test_the_most_specific_template_wins_then_the_first():
    loose = Template("loose", "【公司】{text}")
    otp = Template("otp", "【公司】您的验证码是{code}")
    twin = Template("twin", "【公司】您的验证码是${n}")
    s = TemplateSet([loose, otp, twin])
    assert s.match("【公司】您的验证码是1234") == TemplateMatch(otp, {"code": "1234"})
    assert s.match("【公司】明天见").template is loose


def test_a_template_without_variables():
    t = Template(1, "【公司】系统维护通知已发布")
    assert TemplateSet([t]).match("【公司】系统维护通知已发布") == TemplateMatch(t, {})
    assert TemplateSet([t]).match("【公司】系统维护通知已发布了") is None


def test_empty_set_matches_nothing():
    assert TemplateSet([]).match("【公司】hello") is None
    assert len(TemplateSet([OTP, OTP])) == 2


# --- speed ----------------------------------------------------------------------------------

def test_only_templates_whose_literal_ends_fit_are_tried():
    templates = [Template(i, f"【公司】尊敬的客户，您的第{i}号业务{{x}}已办理") for i in range(300)]
    templates += [Template(f"end{i}", f"{{x}}，第{i}号业务已办理") for i in range(300)]
    s = TemplateSet(templates)
    assert s.match("【公司】尊敬的客户，您的第123号业务宽带已办理").template.id == 123
    assert s.match("宽带，第45号业务已办理").template.id == "end45"
    assert len(s._candidates("【公司】尊敬的客户，您的第123号业务宽带已办理")) == 1
    assert len(s._candidates("宽带，第45号业务已办理")) == 1
    assert s._candidates("【公司】不相干的内容") == []


def test_matching_is_linear_in_hostile_content():
    # Short separators and a content made of them: nested backtracking would be 32**5 steps.
    s = TemplateSet([Template(1, "{a}，{b}，{c}，{d}，{e}，{f}完")])
    started = time.perf_counter()
    for _ in range(100):
        assert s.match("，" * 300) is None
        assert s.match("1，" * 40 + "完？") is None
    assert s.match("1，" * 5 + "1完").values["f"] == "1"
    assert time.perf_counter() - started < 1.0


# --- properties --------------------------------------------------------------------------

LITERAL_CHARS = "【】公司您的验证码是分钟内有效，。：订单已发货"
VALUE_CHARS = "0123456789abcXYZ_-+ 是，。分钟有效@"  # overlaps the literals on purpose
OTHER_CHARS = "0123456789abcXYZ_-+@"  # disjoint from LITERAL_CHARS


@st.composite
def template_texts(draw, chars=LITERAL_CHARS, max_vars=4):
    """A template text with up to ``max_vars`` variables between non-empty literal chunks."""
    k = draw(st.integers(0, max_vars))
    names = [f"v{i}" for i in range(k)]
    chunks = [draw(st.text(chars, min_size=0 if i in (0, k) else 1, max_size=8)) for i in range(k + 1)]
    if k == 0 and not chunks[0]:
        chunks = [chars[0]]  # an empty template is refused
    return chunks[0] + "".join(f"{{{n}}}{c}" for n, c in zip(names, chunks[1:]))


@st.composite
def rendered(draw, template, value_chars=VALUE_CHARS):
    """Values within the limits for ``template``, none holding the literal that follows it."""
    values = {}
    last = len(template.variables) - 1
    for i, name in enumerate(template.variables):
        value = draw(st.text(value_chars, min_size=1, max_size=MAX_VAR_LEN).filter(lambda v: v.strip() == v))
        after = template.literals[i + 1]
        if i != last and (value + after).find(after) != len(value):
            # Without the literal's first character, the literal cannot start inside the value.
            value = value.replace(after[0], "0" if after[0] != "0" else "1")
        values[name] = value
    return values


@given(st.data(), template_texts())
def test_a_rendered_template_matches_and_gives_its_values_back(data, text):
    template = Template("t", text)
    values = data.draw(rendered(template))
    found = TemplateSet([template]).match(template.render(values))
    assert found == TemplateMatch(template, values)


@st.composite
def same_literal_length_sets(draw):
    """Templates whose literal text is always ``n`` characters, from LITERAL_CHARS."""
    n = draw(st.integers(1, 12))
    texts = []
    for _ in range(draw(st.integers(1, 6))):
        literal = draw(st.text(LITERAL_CHARS, min_size=n, max_size=n))
        cuts = sorted(draw(st.sets(st.integers(0, n), max_size=3)))
        chunks = [literal[a:b] for a, b in zip([0, *cuts], [*cuts, n])]
        texts.append(chunks[0] + "".join(f"{{v{i}}}{c}" for i, c in enumerate(chunks[1:])))
    return texts


@given(st.data(), same_literal_length_sets())
def test_a_text_that_differs_in_a_literal_character_matches_no_template(data, texts):
    # Every template needs n literal characters, all from LITERAL_CHARS; values are drawn
    # from other characters, so after one literal character is replaced only n - 1 are left.
    templates = [Template(i, text) for i, text in enumerate(texts)]
    template = data.draw(st.sampled_from(templates))
    values = data.draw(rendered(template, OTHER_CHARS))
    pieces = [(template.literals[0], True)]
    for name, chunk in zip(template.variables, template.literals[1:]):
        pieces += [(values[name], False), (chunk, True)]
    literal_at = [is_literal for piece, is_literal in pieces for _ in piece]
    text = "".join(piece for piece, _ in pieces)
    at = data.draw(st.sampled_from([i for i, is_literal in enumerate(literal_at) if is_literal]))
    other = data.draw(st.sampled_from(OTHER_CHARS))
    assert TemplateSet(templates).match(text) is not None
    assert TemplateSet(templates).match(text[:at] + other + text[at + 1:]) is None


@given(st.data(), st.lists(template_texts(max_vars=3), min_size=1, max_size=12))
def test_the_index_finds_what_trying_every_template_finds(data, texts):
    templates = [Template(i, text) for i, text in enumerate(texts)]
    template = data.draw(st.sampled_from(templates))
    content = template.render(data.draw(rendered(template)))
    if data.draw(st.booleans()) and content:
        at = data.draw(st.integers(0, len(content) - 1))
        content = content[:at] + data.draw(st.sampled_from(VALUE_CHARS + LITERAL_CHARS)) + content[at + 1:]
    one_by_one = [(t, TemplateSet([t]).match(content)) for t in templates]
    matching = [(i, t, m) for i, (t, m) in enumerate(one_by_one) if m is not None]
    expected = min(matching, key=lambda x: (-x[1].literal_length, x[0]))[2] if matching else None
    assert TemplateSet(templates).match(content) == expected


_SET = TemplateSet([Template(1, "【店】验证码{code}，{m}分钟有效"), Template(2, "{name}您好，订单{no}已发货"),
                    Template(3, "【店】欢迎光临")])


@given(st.sampled_from(["【店】验证码", "【店】欢迎光临", "您好，订单", "已发货", "，", "分钟有效", ""]),
       st.text(alphabet="0123456789abc您好【】\n ", max_size=12),
       st.sampled_from(["，5分钟有效", "已发货", "", "订单12已发货"]))
def test_fits_says_what_match_says(head, middle, tail):
    content = head + middle + tail
    assert _SET.fits(content) == (_SET.match(content) is not None)
