"""The customer's pages: dashboard, send, messages, replies, API access."""
from __future__ import annotations

import secrets as _secrets

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hongyan.core import accounts as acc
from hongyan.core.accept import SendRequest
from hongyan.core.secrets import bearer_key
from hongyan.domain import numbers, segments
from hongyan.domain.outcomes import Outcome
from hongyan.store.tables import balances

from . import queries
from .views import (MESSAGE_STATES, Safe, badge, cards, clip, field, form, link, message_table, notice, num,
                    pager, pairs, section, select as select_box, table, tag, text_input, textarea, when)
from .web import ConsoleRoute, CustomerPost, CustomerUser, User, redirect, runtime

router = APIRouter(route_class=ConsoleRoute)

SAVED = {"callbacks": "Callback URLs saved."}


def _reading(request: Request):
    return runtime(request).reader.connect()


def _refusal_notice(user: User) -> Safe | None:
    code = user.account.refusal()
    if code is None:
        return None
    return notice(f"Sending is refused for now: {Outcome(code).message}.", "error")


def _page_no(value: str | None) -> int:
    return max(0, int(value)) if value and value.isdigit() else 0


def _phone_filter(raw: str | None) -> str:
    raw = (raw or "").strip()
    return numbers.normalise(raw) or raw if raw else ""


# -- dashboard -----------------------------------------------------------------------

@router.get("/dashboard")
def dashboard(request: Request, user: CustomerUser):
    a = user.account
    with _reading(request) as conn:
        bals = acc.balances_of(conn, a.owner)
        today = queries.counts_since(conn, a.id, queries.start_of_today_ms())
        reports = queries.recent_reports(conn, a.id)
    total = sum(today.values())
    finished = {s: today.get(s, 0) for s in ("delivered", "failed", "expired")}
    pending = total - sum(finished.values())
    summary = cards([(f"Balance · {b['product_name'] or 'general'}", num(b["amount"])) for b in bals]
                    + [("Sent today", num(total)), ("Delivered today", num(finished["delivered"])),
                       ("Failed or expired today", num(finished["failed"] + finished["expired"])),
                       ("Still on the way", num(pending))])
    payer = "the organisation's" if a.pay_type == "org" else "this account's own"
    by_state = table(["State", "Messages"], [(badge(s), num(today[s])) for s in MESSAGE_STATES if s in today],
                     empty="Nothing sent today.", cls="compact")
    report_rows = [(when(r["created_at"]), r.get("to"), badge(r.get("status")), r.get("carrier_status") or "",
                    r.get("parts"), num(r.get("cost")) + (" refunded" if r.get("refunded") else ""),
                    r.get("push_state"), link(f"/console/submissions/{r['submission_id']}",
                                              f"#{r['submission_id']}"))
                   for r in reports]
    return user.page(
        "Dashboard", _refusal_notice(user), summary,
        tag("p", f"Messages are paid from {payer} balance.", class_="muted"),
        section("Today by state", by_state),
        section("Latest delivery reports",
                table(["Received", "To", "Status", "Carrier status", "Parts", "Cost", "Push", "Submission"],
                      report_rows, empty="No delivery reports yet.")),
        active="dashboard")


# -- send ------------------------------------------------------------------------------

def _products(request: Request, user: User) -> list[acc.Product]:
    return [p for p in runtime(request).directory.products().values() if p.id in user.account.product_ids]


def _send_page(request: Request, user: User, values: dict, result: Safe | None = None, status: int = 200):
    products = _products(request, user)
    product_field = None
    if products:
        product_field = field("Product", select_box("product", [("", "General balance")] + [
            (p.code, f"{p.name} ({p.price} per part)") for p in products], values.get("product", "")))
    body = form(
        "/console/send", user.csrf,
        tag("input", type="hidden", name="token", value=_secrets.token_urlsafe(12)),
        field("Numbers", textarea("to", values.get("to", ""), rows=4, required=True,
                                  placeholder="13800138000, 18612345678"),
              "Separate numbers with commas, spaces or new lines."),
        field("Content", textarea("content", values.get("content", ""), rows=5, required=True,
                                  placeholder="【公司】您的验证码是 1234"),
              "Start with your signature, e.g. 【公司】. A long text is sent in parts, each billed."),
        product_field,
        field("Extension", text_input("extno", values.get("extno", ""), inputmode="numeric", maxlength=8),
              "Optional digits appended to the source number; replies to it come back to you."),
        tag("label", tag("input", type="checkbox", name="skip_invalid", value="1",
                         checked=bool(values.get("skip_invalid"))),
            " Skip invalid numbers instead of refusing the whole request", class_="check"),
        tag("div",
            tag("button", "Preview cost", type="submit", name="action", value="preview", class_="secondary"),
            tag("button", "Send", type="submit", name="action", value="send"),
            class_="buttons"),
        submit="", cls="stacked")
    return user.page("Send a message", _refusal_notice(user), result, body, active="send", status=status)


@router.get("/send")
def send_form(request: Request, user: CustomerUser):
    return _send_page(request, user, {})


def _balance(request: Request, balance_id: int) -> int | None:
    with _reading(request) as conn:
        return conn.execute(select(balances.c.amount).where(balances.c.id == balance_id)).scalar()


@router.post("/send")
async def send(request: Request, user: CustomerPost):
    f = user.form
    rt = runtime(request)
    req = SendRequest(account=user.account, to=f.get("to", ""), content=f.get("content", ""),
                      extno=f.get("extno", ""), product=f.get("product") or None,
                      client_ip=request.client.host if request.client else None,
                      skip_invalid=bool(f.get("skip_invalid")), dialect="console",
                      # A double click or a resent form replays the first answer instead of sending twice.
                      idempotency_key=f"console-{f['token']}" if f.get("token") else None)
    if f.get("action") == "preview":
        prepared = await run_in_threadpool(rt.accept.prepare, req)
        if isinstance(prepared, Outcome):
            return await run_in_threadpool(_send_page, request, user, f, notice(prepared.message, "error"), 422)
        balance = await run_in_threadpool(_balance, request, prepared.balance_id)
        text = f.get("content", "")
        lines = [f"{len(prepared.phones)} number(s) × {prepared.parts} part(s) × {prepared.price} per part "
                 f"= cost {num(prepared.cost)}. Balance now {num(balance)}.",
                 f"{segments.length(text)} characters ({segments.encoding_of(text)})."]
        if prepared.invalid:
            lines.append(f"Invalid, would be skipped: {', '.join(prepared.invalid[:20])}")
        return await run_in_threadpool(_send_page, request, user, f, notice([tag("div", t) for t in lines]))
    outcome = await rt.accept.send(req)
    if not outcome.ok:
        return await run_in_threadpool(_send_page, request, user, f,
                                       notice(f"Not sent: {outcome.message}", "error"), 422)
    d = outcome.data
    sid = d["submission_id"]
    lines = [tag("div", "Accepted: ", link(f"/console/submissions/{sid}", f"submission #{sid}"),
                 f", {len(d['message_ids'])} message(s) of {d['parts']} part(s), cost {num(d['cost'])}; "
                 f"balance now {num(d['balance'])}."
                 + (" (This form was already sent: nothing was sent again.)" if d["replayed"] else ""))]
    if d["invalid"]:
        lines.append(tag("div", f"Skipped as invalid: {', '.join(d['invalid'][:20])}"))
    # Keep the text (often sent on to others) but not the numbers, so it is not resent by accident.
    values = {"content": f.get("content", ""), "product": f.get("product", ""), "extno": f.get("extno", "")}
    return await run_in_threadpool(_send_page, request, user, values, notice(lines, "ok"))


# -- messages --------------------------------------------------------------------------

@router.get("/messages")
def message_list(request: Request, user: CustomerUser, phone: str = "", state: str = "", page: str = ""):
    n = _page_no(page)
    state = state if state in MESSAGE_STATES else ""
    wanted = _phone_filter(phone)
    with _reading(request) as conn:
        rows = queries.message_rows(conn, user.id, phone=wanted, state=state, limit=queries.PAGE + 1,
                                    offset=n * queries.PAGE)
    filters = form("/console/messages", "", field("Number", text_input("phone", phone, placeholder="13800138000")),
                   field("State", select_box("state", [("", "All")] + [(s, s) for s in MESSAGE_STATES], state)),
                   submit="Filter", method="get", cls="filters")
    return user.page("Messages", filters, message_table(rows[:queries.PAGE]),
                     pager("/console/messages", {"phone": phone, "state": state}, n, len(rows) > queries.PAGE),
                     active="messages")


@router.get("/submissions/{submission_id}")
def submission_page(request: Request, user: CustomerUser, submission_id: int):
    with _reading(request) as conn:
        sub, counts, rows = queries.submission(conn, user.id, submission_id)
    if sub is None:
        return user.page("Submission not found", notice(f"There is no submission #{submission_id} "
                                                        "in this account.", "error"), active="messages",
                         status=404)
    details = pairs([("Submitted", when(sub.created_at)), ("Content", tag("div", sub.content, class_="content")),
                     ("Recipients", num(sub.recipients)), ("Parts each", sub.parts), ("Cost", num(sub.cost)),
                     ("State", badge(sub.state)), ("Scheduled for", when(sub.scheduled_at)),
                     ("Extension", sub.extno), ("Your reference", sub.client_ref or ""),
                     ("Sent through", sub.dialect)])
    states = " · ".join(f"{s} {num(counts[s])}" for s in MESSAGE_STATES if s in counts)
    more = tag("p", f"Showing the first {len(rows)} of {num(sub.recipients)}.", class_="muted") \
        if sub.recipients > len(rows) else None
    return user.page(f"Submission #{sub.id}", details, section(f"Messages: {states}", more,
                                                              message_table(rows, with_submission=False)),
                     active="messages")


# -- replies ---------------------------------------------------------------------------

@router.get("/replies")
def reply_list(request: Request, user: CustomerUser, phone: str = "", page: str = ""):
    n = _page_no(page)
    with _reading(request) as conn:
        rows = queries.replies(conn, user.id, phone=_phone_filter(phone), limit=queries.PAGE + 1,
                               offset=n * queries.PAGE)
    filters = form("/console/replies", "", field("Number", text_input("phone", phone)),
                   submit="Filter", method="get", cls="filters")
    body = table(["Received", "From", "To", "Extension", "Content"],
                 [(when(r.received_at), r.phone, r.dest, r.extno, tag("div", r.content, class_="content"))
                  for r in rows[:queries.PAGE]], empty="No replies yet.")
    return user.page("Replies", filters, body, pager("/console/replies", {"phone": phone}, n,
                                                    len(rows) > queries.PAGE), active="replies")


# -- API access ------------------------------------------------------------------------

def _api_page(request: Request, user: User, *, secret: str | None = None, key: str | None = None,
              message: Safe | None = None, values: dict | None = None, status: int = 200):
    a = user.account
    base = str(request.base_url).rstrip("/")
    hidden = tag("span", "•••••••• (hidden)", class_="muted")
    details = pairs([("Username", a.username), ("Organisation", a.org_code), ("State", badge(a.state)),
                     ("Key id", tag("code", a.key_id)),
                     ("Bearer key", tag("code", key, class_="secret") if key else hidden),
                     ("API secret", tag("code", secret, class_="secret") if secret else hidden),
                     ("Extension", a.extension or "—"),
                     ("Send endpoint", tag("code", f"POST {base}/v1/messages")),
                     ("Reference", link("/docs", "API documentation"))])
    example = None
    if key:
        example = section("Try it", tag("pre", (
            f"curl -s {base}/v1/messages -H 'Authorization: Bearer {key}' \\\n"
            "     -H 'Content-Type: application/json' \\\n"
            "     -d '{\"to\": \"13800138000\", \"content\": \"【公司】您的验证码是 1234\"}'")))
    actions = tag("div",
                  form("/console/api/reveal", user.csrf, submit="Show key and secret", cls="inline")
                  if not key else None,
                  form("/console/api/rotate", user.csrf, submit="Rotate key", cls="inline", confirm_class="danger"),
                  class_="buttons")
    v = values if values is not None else {"report_url": a.report_url or "", "mo_url": a.mo_url or ""}
    callbacks = form("/console/api/callbacks", user.csrf,
                     field("Delivery report URL", text_input("report_url", v.get("report_url", ""), type="url",
                                                             placeholder="https://example.com/sms/reports"),
                           "Reports are POSTed here as JSON, signed with your API secret. Empty: poll /v1/reports."),
                     field("Reply (MO) URL", text_input("mo_url", v.get("mo_url", ""), type="url",
                                                        placeholder="https://example.com/sms/replies"),
                           "Replies are POSTed here. Empty: poll /v1/mo."),
                     submit="Save callback URLs", cls="stacked")
    return user.page("API access", message, details, actions,
                     tag("p", "Rotating makes a new key and secret at once; the old ones stop working.",
                         class_="muted"),
                     example, section("Callbacks", callbacks), active="api", status=status)


@router.get("/api")
def api_access(request: Request, user: CustomerUser, saved: str = ""):
    return _api_page(request, user, message=notice(SAVED[saved], "ok") if saved in SAVED else None)


@router.post("/api/reveal")
def api_reveal(request: Request, user: CustomerPost):
    a = user.account
    return _api_page(request, user, secret=a.secret, key=bearer_key(a.key_id, a.secret))


@router.post("/api/rotate")
def api_rotate(request: Request, user: CustomerPost):
    rt = runtime(request)
    with rt.engine.begin() as conn:
        secret, key = acc.rotate_key(conn, rt.cipher, user.username)
    rt.directory.invalidate(user.id)
    user.account = rt.directory.by_id(user.id) or user.account
    return _api_page(request, user, secret=secret, key=key, message=notice(
        "A new key and secret were made: the old ones no longer work. Update your systems now.", "ok"))


def _callback_url(raw: str | None) -> str | None:
    url = (raw or "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")) or len(url) > 2000 or any(c.isspace() for c in url):
        raise acc.AdminError(f"not an http(s) URL: {clip(url, 80)}")
    return url


@router.post("/api/callbacks")
def api_callbacks(request: Request, user: CustomerPost):
    rt = runtime(request)
    try:
        values = {"report_url": _callback_url(user.form.get("report_url")),
                  "mo_url": _callback_url(user.form.get("mo_url"))}
        with rt.engine.begin() as conn:
            acc.update_account(conn, user.username, **values)
    except acc.AdminError as exc:
        return _api_page(request, user, message=notice(str(exc), "error"), values=user.form, status=422)
    rt.directory.invalidate(user.id)
    return redirect("/console/api?saved=callbacks")
