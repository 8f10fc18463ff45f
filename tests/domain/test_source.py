"""Source numbers: composing with the cutting rule, and routing MO destinations."""

import pytest
from hypothesis import given, strategies as st

from hongyan.domain.source import Composed, MoRoute, compose, max_request_ext, parse_mo_dest, request_ext

digits = st.text(alphabet="0123456789", max_size=8)


# --- compose -------------------------------------------------------------------

def test_compose_joins_the_three_parts():
    assert compose("1069000", "12", "345") == Composed("106900012345", False)
    assert compose("1069000") == Composed("1069000", False)


def test_request_extension_is_cut_first_from_its_end():
    assert compose("1069000", "12", "3456", max_len=12) == Composed("106900012345", True)
    assert compose("1069000", "12", "3456", max_len=9) == Composed("106900012", True)


def test_account_extension_is_dropped_whole_with_the_request_extension():
    assert compose("1069000", "1234", "5", max_len=10) == Composed("1069000", True)
    assert compose("1069000", "1234", "", max_len=10) == Composed("1069000", True)


def test_exact_fit_is_not_a_cut():
    assert compose("1069000", "12", "34", max_len=11) == Composed("10690001234", False)
    assert compose("1" * 21, "", "") == Composed("1" * 21, False)


@pytest.mark.parametrize("args", [("10690a",), ("1069000", "1２"), ("1069000", "", "+1"), ("1069000", "", "²")])
def test_compose_rejects_anything_but_ascii_digits(args):
    with pytest.raises(ValueError):
        compose(*args)


def test_compose_rejects_an_access_code_that_cannot_fit():
    with pytest.raises(ValueError):
        compose("1069000", max_len=6)


def test_max_request_ext():
    assert max_request_ext("1069000", "12") == 12
    assert max_request_ext("1069000", "12", max_len=9) == 0
    assert max_request_ext("1069000", "1234", max_len=10) == 0


@given(digits.filter(bool), digits, digits, st.integers(1, 25))
def test_compose_never_exceeds_max_len_and_keeps_a_prefix(a, e, x, max_len):
    if len(a) > max_len:
        return
    got = compose(a, e, x, max_len)
    assert len(got.number) <= max_len
    assert (a + e + x).startswith(got.number)
    assert got.cut == (got.number != a + e + x)
    assert got.number.startswith(a + e) or got.number == a  # account ext whole or absent


# --- parse_mo_dest ----------------------------------------------------------------

ACCOUNTS = {"12": "acme", "123": "globex", "7": "initech"}


def test_longest_access_code_then_longest_extension():
    route = parse_mo_dest("10690001234", ["1069", "1069000"], ACCOUNTS)
    assert route == MoRoute("1069000", "123", "globex", "4")


def test_unknown_extension_gives_no_account_and_the_whole_rest():
    assert parse_mo_dest("10690009999", ["1069000"], ACCOUNTS) == MoRoute("1069000", "", None, "9999")
    assert parse_mo_dest("1069000", ["1069000"], ACCOUNTS) == MoRoute("1069000", "", None, "")


def test_empty_extension_entry_catches_the_rest():
    route = parse_mo_dest("10690009999", ["1069000"], {**ACCOUNTS, "": "default"})
    assert route == MoRoute("1069000", "", "default", "9999")


def test_unknown_access_code():
    assert parse_mo_dest(" 95555 ", ["1069000"], ACCOUNTS) == MoRoute(None, "", None, "95555")
    assert parse_mo_dest("10690007", [""], ACCOUNTS).access_code is None


def prefix_free(exts):
    """Keep the extensions no other one starts."""
    return {e for e in exts if not any(o != e and e.startswith(o) for o in exts)}


@given(
    digits.filter(bool),
    st.sets(st.text(alphabet="0123456789", min_size=1, max_size=5), min_size=1, max_size=20),
    st.data(),
)
def test_parse_undoes_compose(a, exts, data):
    exts = prefix_free(exts)
    e = data.draw(st.sampled_from(sorted(exts)))
    x = data.draw(digits)
    composed = compose(a, e, x)
    if composed.cut:
        return
    accounts = {ext: f"account-{ext}" for ext in exts}
    assert parse_mo_dest(composed.number, [a], accounts) == MoRoute(a, e, f"account-{e}", x)


@pytest.mark.parametrize("source, ext, extno", [
    ("", "12", ""), ("12", "12", ""), ("1234", "12", "34"), ("34", "", "34"), (" 1234 ", "12", "34"),
    ("1334", "12", None), ("12a", "12", None), ("abc", "", None),
])
def test_a_session_customers_source_address_is_its_extension_then_its_own_digits(source, ext, extno):
    assert request_ext(source, ext) == extno
