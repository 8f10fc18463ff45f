"""The web console: customers' and operators' pages under /console/, server-rendered."""
from __future__ import annotations


def __getattr__(name: str):
    # The router pulls in FastAPI and every page; the command line imports this
    # package only for its operator commands and should not pay for the pages.
    if name == "router":
        from hongyan.console.routes import router
        return router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
