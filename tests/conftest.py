"""Shared fixtures: every store-touching test runs on SQLite and, when
HONGYAN_TEST_POSTGRES_URL is set (CI sets it), on PostgreSQL too."""
from __future__ import annotations

import os

import pytest

from hongyan.config import Settings
from hongyan.core.secrets import new_fernet_key

PG_URL = os.environ.get("HONGYAN_TEST_POSTGRES_URL", "")
SECRET_KEY = new_fernet_key()


def _engine_params():
    yield pytest.param("sqlite", id="sqlite")
    yield pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)


@pytest.fixture(params=list(_engine_params()))
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hongyan.db'}"
    if not PG_URL:
        pytest.skip("PostgreSQL tests need HONGYAN_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    from hongyan.store.db import make_engine, reset_postgres_schema
    engine = make_engine(PG_URL)
    reset_postgres_schema(engine)
    engine.dispose()
    return PG_URL


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(database_url=db_url, secret_key=SECRET_KEY, config_path=str(tmp_path / "hongyan.toml"),
                    commit_window_ms=1.0, simulator_report_delay=0.05,
                    # Free ports for the customer CMPP and SMPP servers, so parallel runs never clash.
                    cmpp_server_port=0, smpp_server_port=0)
