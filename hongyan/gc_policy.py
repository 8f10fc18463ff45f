"""Garbage-collector settings for the long-running processes (``serve``, ``simulate``).

With CPython's defaults (a young collection every 700 allocations, a full one
whenever a quarter more objects have survived) the collector took about a
third of the server's CPU under load (docs/benchmarks.md): every request
leaves a few hundred objects alive for a moment, enough to be promoted, and
every full collection walked the number-plan tables the carrier lookup loads
at import (two million references) again. So, once at startup:

* ``freeze`` what is loaded by then (modules, the number plan): it is never
  garbage and is no longer walked;
* collect the young generation every ``YOUNG`` allocations, so what a request
  holds has usually been let go before a collection looks at it. Reference
  cycles are still found, only later: the young generation holds at most a
  few megabytes.
"""
from __future__ import annotations

import gc

YOUNG = 50_000
MIDDLE = 20
OLD = 10


def settle() -> None:
    """Freeze what startup loaded and set the thresholds (once, before serving)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
