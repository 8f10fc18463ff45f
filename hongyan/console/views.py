"""HTML for the console, built by small functions that escape everything by default.

Text becomes HTML only through :func:`esc`; a fragment that is already HTML is
a :class:`Safe`. :func:`tag` escapes its children and attribute values unless
they are ``Safe``, so a page cannot show user data unescaped by accident.
"""
from __future__ import annotations

import hashlib
import html
from datetime import datetime
from pathlib import Path
from typing import Iterable
from urllib.parse import urlencode

PRODUCT = "鸿雁 Hongyan"
STYLESHEET = (Path(__file__).parent / "static" / "console.css").read_bytes()
# The stylesheet's address changes with its content, so browsers may cache it
# for long and still never show a page with the stylesheet of another version.
STYLESHEET_URL = f"/console/static/console.css?v={hashlib.sha256(STYLESHEET).hexdigest()[:10]}"
VOID = {"input", "br", "meta", "link", "hr"}

CUSTOMER_NAV = [("dashboard", "/console/dashboard", "Dashboard"), ("send", "/console/send", "Send"),
                ("messages", "/console/messages", "Messages"), ("replies", "/console/replies", "Replies"),
                ("api", "/console/api", "API access")]
OPERATOR_NAV = [("overview", "/console/ops/", "Overview"), ("accounts", "/console/ops/accounts", "Orgs & accounts"),
                ("channels", "/console/ops/channels", "Channels"), ("review", "/console/ops/review", "Review"),
                ("ledger", "/console/ops/ledger", "Ledger check")]

MESSAGE_STATES = ("held", "scheduled", "queued", "submitting", "submitted", "delivered", "failed", "expired")


class Safe(str):
    """A string that is HTML already."""


def esc(value) -> Safe:
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("")
    return Safe(html.escape(str(value), quote=True))


def join(*parts) -> Safe:
    return Safe("".join(esc(p) for p in _flatten(parts)))


def _flatten(items) -> Iterable:
    for item in items:
        if isinstance(item, (list, tuple)) or (hasattr(item, "__next__")):
            yield from _flatten(item)
        elif item is not None and item is not False:
            yield item


def _attr(name: str, value) -> str:
    name = name.rstrip("_").replace("_", "-")
    if value is True:
        return f" {name}"
    return f' {name}="{esc(value)}"'


def tag(element: str, /, *children, **attrs) -> Safe:
    """``<element attrs>children</element>``; ``class_`` stands for ``class``, ``a_b`` for ``a-b``."""
    opening = element + "".join(_attr(k, v) for k, v in attrs.items() if v is not None and v is not False)
    if element in VOID:
        return Safe(f"<{opening}>")
    return Safe(f"<{opening}>{join(*children)}</{element}>")


# -- values ----------------------------------------------------------------------

def when(ms: int | None) -> str:
    """Epoch milliseconds in the server's local time."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def when_after(ms: int | None, ref_ms: int | None) -> Safe:
    """A time that follows ``ref_ms``: only the clock when it is the same day, the full time on hover."""
    if ms is None:
        return Safe("")
    full = when(ms)
    if ref_ms is not None and full[:10] == when(ref_ms)[:10]:
        return tag("span", full[11:], title=full)
    return esc(full)


def num(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def badge(state: str | None) -> Safe:
    if not state:
        return Safe("")
    return tag("span", state, class_=f"badge st-{state}")


def link(href: str, text) -> Safe:
    return tag("a", text, href=href)


def clip(text: str | None, n: int = 40) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[:n - 1] + "…"


# -- building blocks -------------------------------------------------------------

def table(headers: list[str], rows: Iterable[Iterable], empty: str = "Nothing here yet.", cls: str = "") -> Safe:
    rows = list(rows)
    if not rows:
        return tag("p", empty, class_="empty")
    head = tag("thead", tag("tr", [tag("th", h) for h in headers]))
    body = tag("tbody", [tag("tr", [tag("td", c) for c in row]) for row in rows])
    return tag("div", tag("table", head, body), class_=f"scroll {cls}".strip())


def pairs(items: Iterable[tuple[str, object]]) -> Safe:
    """A two-column table of label → value."""
    return tag("table", tag("tbody", [tag("tr", tag("th", k), tag("td", v)) for k, v in items]), class_="pairs")


def cards(items: Iterable[tuple[str, object]]) -> Safe:
    return tag("div", [tag("div", tag("div", v, class_="value"), tag("div", k, class_="label"), class_="card")
                       for k, v in items], class_="cards")


def section(title: str, *body) -> Safe:
    return tag("section", tag("h2", title), *body)


def notice(text, kind: str = "info") -> Safe:
    return tag("div", text, class_=f"notice {kind}", role="alert" if kind == "error" else None)


def form(action: str, csrf: str, *fields, submit: str = "Save", method: str = "post", cls: str = "",
         confirm_class: str = "") -> Safe:
    hidden = tag("input", type="hidden", name="csrf", value=csrf) if method == "post" else None
    button = tag("button", submit, type="submit", class_=confirm_class or None) if submit else None
    return tag("form", hidden, *fields, button, action=action, method=method, class_=cls or None)


def field(label: str, control: Safe, hint: str = "") -> Safe:
    return tag("label", tag("span", label), control, tag("small", hint) if hint else None, class_="field")


def text_input(name: str, value="", **attrs) -> Safe:
    return tag("input", type=attrs.pop("type", "text"), name=name, value=value, **attrs)


def textarea(name: str, value="", rows: int = 4, **attrs) -> Safe:
    return tag("textarea", value, name=name, rows=rows, **attrs)


def select(name: str, options: Iterable[tuple[str, str]], selected: str = "") -> Safe:
    return tag("select", [tag("option", label, value=v, selected=(v == selected)) for v, label in options],
               name=name)


# -- the page ------------------------------------------------------------------------

def page(title: str, *body, user: str = "", kind: str = "", active: str = "", csrf: str = "",
         heading: bool = True) -> Safe:
    nav = CUSTOMER_NAV if kind == "customer" else OPERATOR_NAV if kind == "operator" else []
    links = [tag("a", label, href=href, class_="active" if key == active else None) for key, href, label in nav]
    who = None
    if user:
        who = tag("div",
                  tag("span", user, class_="user"),
                  tag("span", "operator", class_="role") if kind == "operator" else None,
                  form("/console/logout", csrf, submit="Log out", cls="inline"),
                  class_="who")
    brand = tag("a", tag("span", "鸿雁", class_="mark"), " Hongyan", href="/console/", class_="brand")
    top = tag("header", brand, tag("nav", links), who, class_="top")
    doc = join(
        Safe("<!doctype html>"),
        tag("html",
            tag("head",
                tag("meta", charset="utf-8"),
                tag("meta", name="viewport", content="width=device-width, initial-scale=1"),
                tag("title", f"{title} · {PRODUCT}"),
                tag("link", rel="stylesheet", href=STYLESHEET_URL)),
            tag("body", top, tag("main", tag("h1", title) if heading else None, *body)),
            lang="en"))
    return doc


def message_table(rows, *, with_submission: bool = True, empty: str = "No messages yet.") -> Safe:
    """Messages as the customer and the operator both see them."""
    headers = ["Sent", "To", "Carrier", "State", "Carrier status", "Parts", "Cost", "Submitted", "Done"]
    if with_submission:
        headers += ["Content", "Submission"]
    out = []
    for r in rows:
        sent = getattr(r, "created_at", None) or r.due_at
        cells = [when(sent), r.phone, r.carrier, badge(r.state),
                 r.status or "", r.parts, num(r.cost) + (" refunded" if r.refunded else ""),
                 when_after(r.submitted_at, sent), when_after(r.done_at, sent)]
        if with_submission:
            cells += [tag("div", clip(getattr(r, "content", "")), title=getattr(r, "content", ""), class_="content"),
                      link(f"/console/submissions/{r.submission_id}", f"#{r.submission_id}")]
        out.append(cells)
    return table(headers, out, empty=empty)


def pager(base: str, params: dict, page_no: int, more: bool) -> Safe:
    """Newer / older links that keep the page's filters."""
    def href(n: int) -> str:
        q = {k: v for k, v in params.items() if v}
        if n:
            q["page"] = n
        return f"{base}?{urlencode(q)}" if q else base
    items = [link(href(page_no - 1), "← Newer") if page_no > 0 else None,
             link(href(page_no + 1), "Older →") if more else None]
    return tag("p", items, class_="pager") if any(items) else Safe("")
