"""Interop tests: Hongyan's codecs, simulators and servers against SMPP and
CMPP implementations nobody on the team wrote (PyPI and npm packages).

A peer that is not installed skips its tests with the reason; the ``test``
extra in pyproject.toml installs the PyPI peers, and ``node_peer`` installs
the npm ones into a cache directory on first use.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.interop.node_peer import install_node_modules


async def until(cond, timeout: float = 5.0, what: str = "condition") -> None:
    """Wait, without blocking the loop, until ``cond()`` is true."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """node_modules with the pinned npm peers (skips when Node.js is absent)."""
    return install_node_modules()


@pytest.fixture
def db_url(tmp_path) -> str:
    """The interop tests are about the wire, so one database (SQLite) is enough."""
    return f"sqlite:///{tmp_path / 'hongyan.db'}"
