"""Number policy: the blacklist table and its in-memory cache."""
from __future__ import annotations

from hongyan.core import blacklist as bl
from hongyan.store.db import migrate
from tests.helpers import engines


def test_add_remove_list_and_cache(settings):
    url = settings.resolved_database_url()
    migrate(url)
    engine, reader = engines(url)
    try:
        cache = bl.Blacklist(reader)
        cache.refresh()
        assert cache.empty and not cache.blocked(1, "13800138000")
        with engine.begin() as conn:
            assert bl.add(conn, 1, ["13800138000", "13800138000"], "manual", "x") == 1
            assert bl.add(conn, 1, ["13800138000"]) == 0
            assert bl.add(conn, 0, ["13900139000"]) == 1
        cache.invalidate()
        cache.refresh()
        assert cache.blocked(1, "13800138000") and not cache.blocked(2, "13800138000")
        assert cache.blocked(2, "13900139000")
        with engine.begin() as conn:
            assert [r["phone"] for r in bl.list_(conn, 1)] == ["13800138000"]
            assert bl.remove(conn, 1, ["13800138000"]) == 1
        cache.invalidate()
        cache.refresh()
        assert not cache.blocked(1, "13800138000")
    finally:
        engine.dispose()
        reader.dispose()
