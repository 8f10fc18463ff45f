"""Chinese mobile numbers: normalisation, carrier and region lookup, recipient lists.

Whether a number is a valid Chinese mobile number, which carrier runs it and
where it was issued all come from the ``phonenumbers`` library.  For Chinese
mobile numbers (11 digits, leading "1") those answers depend only on the
first 7 digits, the 号段: in phonenumbers 9.0 the mobile pattern looks at no
more than 5 digits, the carrier data at no more than 4 and the geocoder data
at no more than 7.  So the library is asked once per 7-digit prefix and its
answer is kept in a dense table with one slot per prefix "1000000".."1999999";
after that a lookup is an index into an array.  ``tests/domain/test_numbers.py``
checks the cached verdict against the library on whole numbers.

Region rule (``NumberInfo.province`` / ``NumberInfo.city``): the geocoder's
Chinese description, e.g. "广东省深圳市", "内蒙古兴安盟" or "北京市", is split
into a province part and a city part.  The province loses its "省" suffix, or
its "自治区" suffix with the ethnic name before it ("广西壮族自治区" → "广西";
the library already writes autonomous regions in that short form).  The
city loses a trailing "市" or "地区" ("深圳市" → "深圳", "吐鲁番地区" → "吐鲁番");
自治州, 盟 and 林区 names are kept whole, because what is left after
stripping them ("延边朝鲜族", "兴安") is not a name anyone uses.  For the
four municipalities province and city are both the municipality ("北京").
When the library knows only the country ("中国") both are "".  Anything else
is taken whole, less a "市"/"地区" suffix, as the province, with city "".
"""

from __future__ import annotations

import re
import threading
from array import array
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from phonenumbers import PhoneNumberType, carrier as _pn_carrier, geocoder as _pn_geocoder

Carrier = Literal["cmcc", "unicom", "telecom", "cbn", "unknown"]

CARRIER_NAMES: dict[str, str] = {
    "cmcc": "中国移动",
    "unicom": "中国联通",
    "telecom": "中国电信",
    "cbn": "中国广电",
    "unknown": "未知",
}


@dataclass(frozen=True, slots=True)
class NumberInfo:
    phone: str
    carrier: Carrier
    province: str
    city: str


@dataclass(frozen=True, slots=True)
class Recipients:
    valid: list[str]
    invalid: list[str]
    duplicates: int


class TooManyRecipients(ValueError):
    """More distinct valid numbers than the caller's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} recipients")
        self.limit = limit


# --- carrier and region mapping -------------------------------------------

# Checked in order; the library names MVNO ranges (170x, 171, 167, ...) after
# their host network, so matching the host's name maps them to the host.
_CARRIER_KEYWORDS: tuple[tuple[str, Carrier], ...] = (
    ("移动", "cmcc"),
    ("联通", "unicom"),
    ("电信", "telecom"),
    ("广电", "cbn"),
    ("china mobile", "cmcc"),
    ("china unicom", "unicom"),
    ("china telecom", "telecom"),
    ("china broadnet", "cbn"),
    ("china broadcast", "cbn"),
)


def _carrier_code(zh_name: str, en_name: str) -> Carrier:
    # The Chinese name is tried first; the English one covers ranges that a
    # future data release names in English only.
    for name in (zh_name, en_name.lower()):
        for keyword, code in _CARRIER_KEYWORDS:
            if keyword in name:
                return code
    return "unknown"


_MUNICIPALITIES = ("北京", "上海", "天津", "重庆")
_PROVINCE = re.compile(
    r"(?P<province>.+?)省(?P<city>.*)"
    r"|(?P<region>内蒙古|广西|宁夏|新疆|西藏)(?:壮族|回族|维吾尔)?(?:自治区)?(?P<rcity>.*)"
)


def _city_name(name: str) -> str:
    for suffix in ("地区", "市"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def split_region(description: str) -> tuple[str, str]:
    """Split a geocoder description into (province, city); see the module docstring."""
    if not description or description == "中国":
        return "", ""
    for municipality in _MUNICIPALITIES:
        if description.startswith(municipality):
            return municipality, municipality
    match = _PROVINCE.fullmatch(description)
    if match is None:
        return _city_name(description), ""
    if match["province"] is not None:
        return match["province"], _city_name(match["city"])
    return match["region"], _city_name(match["rcity"])


# --- the per-prefix table -------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Profile:
    carrier: Carrier
    province: str
    city: str


_FIRST_PREFIX = 1_000_000  # "1000000", the lowest 7-digit prefix of an 11-digit "1..." number
_UNSEEN, _INVALID = 0, 1

# One slot per 7-digit prefix: 0 = not asked yet, 1 = not a mobile range,
# n >= 2 = index into _profiles.  Two bytes a slot, 2 MB in all, so it can
# hold every prefix without eviction; distinct (carrier, region) profiles
# number in the low thousands.
_slots = array("H", bytes(2 * 1_000_000))
_profiles: list[_Profile | None] = [None, None]
_profile_ids: dict[_Profile, int] = {}
_profiles_lock = threading.Lock()


def _ask_library(number: str) -> _Profile | None:
    """The library's verdict on one 11-digit number starting with "1"."""
    try:
        parsed = phonenumbers.parse(number, "CN")
    except phonenumbers.NumberParseException:
        return None
    # parse() strips what looks like a carrier-selection prefix (e.g. 17951);
    # the number is only ours if nothing was stripped.
    if str(parsed.national_number) != number or not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.number_type(parsed) not in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None
    code = _carrier_code(
        _pn_carrier.name_for_number(parsed, "zh"), _pn_carrier.name_for_number(parsed, "en")
    )
    province, city = split_region(_pn_geocoder.description_for_number(parsed, "zh"))
    return _Profile(code, province, city)


def _profile_id(profile: _Profile | None) -> int:
    if profile is None:
        return _INVALID
    with _profiles_lock:  # append and index must not interleave between threads
        pid = _profile_ids.get(profile)
        if pid is None:
            pid = len(_profiles)
            _profiles.append(profile)
            _profile_ids[profile] = pid
        return pid


def _slot(number: str) -> int:
    """Profile id for an 11-digit ASCII number starting with "1"."""
    index = int(number[:7]) - _FIRST_PREFIX
    pid = _slots[index]
    if pid == _UNSEEN:
        pid = _slots[index] = _profile_id(_ask_library(number))
    return pid


# --- normalisation ----------------------------------------------------------

# Full-width forms U+FF01..U+FF5E map onto ASCII 0x21..0x7E; U+3000 is the
# ideographic space.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FULL_WIDTH[0x3000] = 0x20
_SEPARATORS = re.compile(r"[\s\-.()\u2010-\u2015\u2212]+")


def _national(raw: str) -> str | None:
    """The 11-digit candidate inside ``raw``, not yet checked against the library."""
    if not (raw.isascii() and raw.isdigit()):
        raw = _SEPARATORS.sub("", raw.translate(_FULL_WIDTH))
        if raw.startswith("+"):
            if not raw.startswith("+86"):
                return None
            raw = "0086" + raw[3:]  # one spelling of the country code below
        # isascii() too: isdigit() alone accepts other scripts' digits.
        if not (raw.isascii() and raw.isdigit()):
            return None
    if len(raw) == 13 and raw.startswith("86"):
        raw = raw[2:]
    elif len(raw) == 15 and raw.startswith("0086"):
        raw = raw[4:]
    if len(raw) != 11 or raw[0] != "1":
        return None
    return raw


def normalise(raw: str) -> str | None:
    """The 11-digit national number of a Chinese mobile number, or None."""
    number = _national(raw)
    if number is None or _slot(number) == _INVALID:
        return None
    return number


def lookup(phone: str) -> NumberInfo:
    """Carrier and region of a Chinese mobile number in any form ``normalise`` accepts.

    Raises ValueError when ``phone`` is not a valid Chinese mobile number.
    """
    number = _national(phone)
    profile = None if number is None else _profiles[_slot(number)]
    if profile is None:
        raise ValueError(f"not a Chinese mobile number: {phone!r}")
    return NumberInfo(number, profile.carrier, profile.province, profile.city)


# --- recipient lists --------------------------------------------------------

# "、" is the enumeration comma people type in Chinese lists.
_LIST_SEPARATORS = re.compile(r"[,，;；、\r\n]+")


_MAX_GROUPS = 5  # "+86 138 0013 8000" is four groups


def _joined_groups(words: list[str]):
    """Re-join numbers typed in digit groups ("138 0013 8000") among spaced words.

    From each word on, the shortest run of up to _MAX_GROUPS words that forms
    a valid number is taken as one token; a word that starts no such run is a
    token of its own.
    """
    i = 0
    while i < len(words):
        joined = ""
        for j in range(i, min(i + _MAX_GROUPS, len(words))):
            joined += words[j]
            if normalise(joined) is not None:
                yield joined
                i = j + 1
                break
        else:
            yield words[i]
            i += 1


def _tokens(raw: str | list[str]):
    if not isinstance(raw, str):
        yield from (token.strip() for token in raw)
        return
    for piece in _LIST_SEPARATORS.split(raw):
        words = piece.split()
        if len(words) > 1:
            yield from _joined_groups(words)
        else:
            yield piece.strip()


def parse_recipients(raw: str | list[str], limit: int | None = None) -> Recipients:
    """Split and normalise a recipient list.

    ``raw`` is a list of tokens or one string separated by commas (ASCII or
    full-width), semicolons, "、", whitespace or newlines; empty tokens are
    ignored; a number typed in digit groups ("+86 138 0013 8000") inside a
    whitespace-separated list still counts as one number.  ``valid`` keeps the first occurrence of each number in input
    order, ``duplicates`` counts the repeats dropped (after normalisation,
    so "+8613800138000" repeats "13800138000"), ``invalid`` keeps every
    failing token as written.  When ``limit`` is given, more than ``limit``
    distinct valid numbers raise TooManyRecipients.
    """
    valid: list[str] = []
    invalid: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    for token in _tokens(raw):
        if not token:
            continue
        number = normalise(token)
        if number is None:
            invalid.append(token)
        elif number in seen:
            duplicates += 1
        else:
            if limit is not None and len(valid) >= limit:
                raise TooManyRecipients(limit)
            seen.add(number)
            valid.append(number)
    return Recipients(valid, invalid, duplicates)
