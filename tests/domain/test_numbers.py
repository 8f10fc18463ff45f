"""Chinese mobile numbers: normalisation, the per-prefix cache, lookup, recipient lists."""

import random
import time

import phonenumbers
import pytest
from hypothesis import given, strategies as st
from phonenumbers import PhoneNumberType, carrier, geocoder

from hongyan.domain import numbers
from hongyan.domain.numbers import (
    CARRIER_NAMES,
    NumberInfo,
    TooManyRecipients,
    lookup,
    normalise,
    parse_recipients,
    split_region,
)


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+86 138 0013 8000",
        "+8613800138000",
        "8613800138000",
        "008613800138000",
        "0086-138-0013-8000",
        "１３８００１３８０００",
        "＋８６　１３８－００１３－８０００",
        "138.0013.8000",
        "138-0013-8000",
        " 13800138000\n",
        "+86 (138) 0013 8000",
    ],
)
def test_normalise_accepts_common_spellings(raw):
    assert normalise(raw) == "13800138000"


@pytest.mark.parametrize(
    "raw",
    [
        "1380013800",  # 10 digits
        "138001380001",  # 12 digits
        "110",
        "01012345678",  # Beijing landline
        "+86 10 1234 5678",  # the same landline, international form
        "1380013800a",
        "abc",
        "",
        "+1 202 555 0123",
        "+8686 13800138000",
        "10000000000",  # 10x is no mobile range
        "14900000000",  # 149 is not a mobile range in the library's data
        "١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic digits: str.isdigit() says yes, we say no
        "13800138000 13900139000",
    ],
)
def test_normalise_rejects(raw):
    assert normalise(raw) is None


@pytest.mark.parametrize(
    "phone, code",
    [
        ("13800138000", "cmcc"),
        ("15000000000", "cmcc"),
        ("17030000000", "cmcc"),  # 1703: MVNO range, hosted by China Mobile
        ("19800000000", "cmcc"),
        ("18600000000", "unicom"),
        ("17040000000", "unicom"),
        ("16700000000", "unicom"),
        ("18900000000", "telecom"),
        ("15300000000", "telecom"),  # the library's 153 overrides its 15 -> China Mobile
        ("17000000000", "telecom"),
        ("19200000000", "cbn"),
        ("16200000000", "unknown"),  # valid, but the library names no carrier
        ("16500000000", "unknown"),
        ("13490000000", "unknown"),
    ],
)
def test_carrier(phone, code):
    assert lookup(phone).carrier == code


@pytest.mark.parametrize(
    "phone, province, city",
    [
        ("13800138000", "北京", "北京"),  # 北京市
        ("15000000000", "上海", "上海"),  # 上海市
        ("13800231234", "重庆", "重庆"),  # 重庆市
        ("17726000000", "天津", "天津"),  # the library writes plain 天津 here
        ("13802201234", "广东", "深圳"),  # 广东省深圳市
        ("13000000000", "山东", "济南"),  # 山东省济南市
        ("13807711234", "广西", "南宁"),  # 广西南宁市
        ("13804711234", "内蒙古", "呼和浩特"),  # 内蒙古呼和浩特市
        ("13800481234", "内蒙古", "兴安盟"),  # 内蒙古兴安盟
        ("13804431234", "吉林", "延边朝鲜族自治州"),
        ("13899301234", "新疆", "吐鲁番"),  # 新疆吐鲁番地区
        ("19200000000", "", ""),  # the library says only 中国
    ],
)
def test_region(phone, province, city):
    info = lookup(phone)
    assert (info.province, info.city) == (province, city)


def test_lookup_returns_normalised_number():
    assert lookup("+86 138-0013-8000") == NumberInfo("13800138000", "cmcc", "北京", "北京")


def test_lookup_rejects_invalid():
    with pytest.raises(ValueError):
        lookup("01012345678")
    with pytest.raises(ValueError):
        lookup("hello")


@pytest.mark.parametrize(
    "description, expected",
    [
        ("广东省深圳市", ("广东", "深圳")),
        ("黑龙江省大兴安岭地区", ("黑龙江", "大兴安岭")),
        ("湖北省神农架林区", ("湖北", "神农架林区")),
        ("广西壮族自治区南宁市", ("广西", "南宁")),
        ("宁夏回族自治区银川市", ("宁夏", "银川")),
        ("新疆维吾尔自治区乌鲁木齐市", ("新疆", "乌鲁木齐")),
        ("西藏拉萨市", ("西藏", "拉萨")),
        ("北京市", ("北京", "北京")),
        ("重庆", ("重庆", "重庆")),
        ("广东省", ("广东", "")),
        ("中国", ("", "")),
        ("", ("", "")),
        ("香港", ("香港", "")),
    ],
)
def test_split_region(description, expected):
    assert split_region(description) == expected


def test_carrier_names():
    assert CARRIER_NAMES["cmcc"] == "中国移动"
    assert CARRIER_NAMES["unicom"] == "中国联通"
    assert CARRIER_NAMES["telecom"] == "中国电信"
    assert CARRIER_NAMES["cbn"] == "中国广电"
    assert set(CARRIER_NAMES) == {"cmcc", "unicom", "telecom", "cbn", "unknown"}


# --- the per-prefix cache agrees with the library on whole numbers -----------

def _library_says(number):
    """The library's own answers for one full number, asked directly."""
    try:
        parsed = phonenumbers.parse(number, "CN")
    except phonenumbers.NumberParseException:  # e.g. "1xx00..." reads as an IDD prefix
        return None
    valid = phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )
    if not valid:
        return None
    return (
        carrier.name_for_number(parsed, "zh"),
        carrier.name_for_number(parsed, "en"),
        geocoder.description_for_number(parsed, "zh"),
    )


def _sample_prefixes():
    rng = random.Random(20240601)
    prefixes = [f"{block}{rng.randrange(10_000):04d}" for block in range(100, 200) for _ in range(25)]
    # Ranges where the library's patterns look past the first three digits.
    prefixes += [f"{start}{last}" for start in ("174000", "174010", "134900", "161000", "170300") for last in range(10)]
    return prefixes


def test_prefix_cache_matches_library():
    rng = random.Random(7)
    for prefix in _sample_prefixes():
        first, *others = (f"{prefix}{rng.randrange(10_000):04d}" for _ in range(4))
        normalise(first)  # fills the prefix's slot from this number only
        for number in others:
            said = _library_says(number)
            assert (normalise(number) is not None) == (said is not None), number
            if said is None:
                continue
            zh_name, en_name, description = said
            province, city = split_region(description)
            expected = NumberInfo(number, numbers._carrier_code(zh_name, en_name), province, city)
            assert lookup(number) == expected, number


def test_normalise_is_fast_on_a_warm_cache():
    batch = [f"1{block}{i:08d}"[:11] for block in range(30, 100) for i in range(1500)]
    for number in batch:  # warm the cache
        normalise(number)
    start = time.perf_counter()
    for number in batch:
        normalise(number)
    elapsed = time.perf_counter() - start
    # Over 100,000 numbers; asking the library each time would take seconds.
    assert elapsed < 1.0


# --- properties --------------------------------------------------------------

valid_numbers = st.sampled_from(["138", "186", "189", "150", "177", "199"]).flatmap(
    lambda head: st.integers(0, 10**8 - 1).map(lambda rest: f"{head}{rest:08d}")
)


def _full_width(text):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@given(
    valid_numbers,
    st.sampled_from(["", "+86", "86", "0086", "+86 ", "0086-"]),
    st.sampled_from(["", " ", "-", "."]),
    st.booleans(),
)
def test_decorated_numbers_normalise_back(number, country, sep, wide):
    raw = country + sep.join([number[:3], number[3:7], number[7:]])
    if wide:
        raw = _full_width(raw)
    assert normalise(raw) == number


@given(st.text(max_size=30))
def test_normalise_never_raises_and_is_idempotent(raw):
    result = normalise(raw)
    assert result is None or (len(result) == 11 and result.isdigit())
    if result is not None:
        assert normalise(result) == result


# --- recipient lists ------------------------------------------------------------

def test_parse_recipients_separators_and_duplicates():
    raw = "13800138000，18600000000; 18900000000\n19200000000,,  ；13800138000 +8613800138000、abc 110"
    result = parse_recipients(raw)
    assert result.valid == ["13800138000", "18600000000", "18900000000", "19200000000"]
    assert result.invalid == ["abc", "110"]
    assert result.duplicates == 2


def test_parse_recipients_grouped_digits_in_a_spaced_list():
    result = parse_recipients("+86 138 0013 8000 139 0013 9000 18600000000\n138 13700137000")
    assert result.valid == ["13800138000", "13900139000", "18600000000", "13700137000"]
    assert result.invalid == ["138"]


def test_parse_recipients_list_tokens_are_not_split():
    result = parse_recipients(["+86 138 0013 8000", "", "  ", "x y", "13800138000"])
    assert result.valid == ["13800138000"]
    assert result.invalid == ["x y"]
    assert result.duplicates == 1


def test_parse_recipients_empty():
    assert parse_recipients("") == numbers.Recipients([], [], 0)
    assert parse_recipients(" ,，;\n") == numbers.Recipients([], [], 0)


def test_parse_recipients_limit():
    assert parse_recipients("13800138000,13800138000,18600000000", limit=2).valid == [
        "13800138000",
        "18600000000",
    ]
    with pytest.raises(TooManyRecipients) as error:
        parse_recipients("13800138000,18600000000,18900000000", limit=2)
    assert error.value.limit == 2
