"""Front doors: the native REST API (``rest``) and the vendor dialects, one module each.

A dialect module is found by name: it offers ``router`` (its HTTP endpoints at
the vendor's own paths) and, when its customers receive pushes, ``PUSH`` (a
``hongyan.core.notify.PushFormat``). Adding a dialect is adding a module.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

# Modules here that are helpers, not dialects.
_NOT_DIALECTS = {"rest", "params", "common"}


def modules() -> list[ModuleType]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _NOT_DIALECTS:
            continue
        found.append(importlib.import_module(f"{__name__}.{info.name}"))
    return found


def names() -> list[str]:
    return [m.__name__.rsplit(".", 1)[1] for m in modules()]


def push_formats() -> dict:
    return {m.__name__.rsplit(".", 1)[1]: m.PUSH for m in modules() if hasattr(m, "PUSH")}
