"""Per-account rule settings and the cached word list."""
from __future__ import annotations

import pytest

from hongyan.core.accounts import AdminError
from hongyan.core.rules import RuleBook, RuleSettings, add_words, get_rules, set_rules
from hongyan.store.db import make_engine, migrate


@pytest.fixture
def engine(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_defaults_platform_then_account(engine):
    with engine.begin() as conn:
        assert get_rules(conn, 7) == RuleSettings()
        set_rules(conn, 0, signature_required="true", concurrency=3)
        rules = set_rules(conn, 7, signatures="公司,【测试】", concurrency="9")
        assert rules.signature_required and rules.concurrency == 9
        assert rules.signatures == ("公司", "测试")
        assert get_rules(conn, 8).concurrency == 3


def test_invalid_setting_is_a_clear_error(engine):
    with engine.begin() as conn:
        with pytest.raises(AdminError, match="concurrency must be a whole number"):
            set_rules(conn, 1, concurrency="lots")
        with pytest.raises(AdminError, match="unknown rule setting colour"):
            set_rules(conn, 1, colour="red")
        assert get_rules(conn, 1) == RuleSettings()


def test_word_list_reloads_without_restart(engine):
    t = [0.0]
    book = RuleBook(engine, clock=lambda: t[0])
    assert book.words().match("法轮") is None
    with engine.begin() as conn:
        add_words(conn, "block", ["法轮"])
    t[0] += 1.5
    m = book.words().match("法 轮")
    assert m is not None and m.word == "法轮" and m.kind == "block"


def test_a_word_another_process_lists_stops_the_first_text_after_the_check(engine):
    t = [0.0]
    book = RuleBook(engine, clock=lambda: t[0])
    assert book.words().match("网上赌博") is None
    with engine.begin() as conn:          # as `hongyan words add` in another process
        add_words(conn, "block", ["赌博"])
    t[0] += 1.5                           # the check interval has passed
    m = book.words().match("网上赌 博")   # the very next text: no grace period
    assert m is not None and m.word == "赌博"
