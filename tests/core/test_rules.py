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
    m = settled(book, "法 轮")     # built on a thread after the next check
    assert m is not None and m.word == "法轮" and m.kind == "block"


def settled(book, text: str, timeout: float = 10.0):
    """The match once the word list built in the background has been swapped in."""
    import time as _time
    deadline = _time.monotonic() + timeout
    while (m := book.words().match(text)) is None and _time.monotonic() < deadline:
        _time.sleep(0.01)
    return m


async def test_a_word_change_made_elsewhere_is_built_on_a_thread_while_the_old_list_serves(settings):
    from hongyan.core.rules import RuleBook, add_words
    from hongyan.store.db import make_engine, migrate
    import time as _time

    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            add_words(conn, "block", ["赌博"])
        book = RuleBook(engine, word_check=0.0)
        assert book.words().match("网上赌博").word == "赌博"      # the first list: built at once
        with engine.begin() as conn:
            add_words(conn, "block", ["发票"])
        first = book.words()                                       # sees the change, starts a thread
        deadline = _time.monotonic() + 10
        while book.words().match("代开发票") is None:
            assert _time.monotonic() < deadline, "the new list was never swapped in"
            _time.sleep(0.01)
        assert first.match("网上赌博") is not None                 # the old list kept serving meanwhile
        # A change this process made (invalidate) is built before the next answer.
        with engine.begin() as conn:
            add_words(conn, "review", ["贷款"])
        book.invalidate()
        assert book.words().match("低息贷款").kind == "review"
    finally:
        engine.dispose()
