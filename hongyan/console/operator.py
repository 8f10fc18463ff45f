"""The operators' pages: overview, orgs and accounts, one account, channels, ledger check."""
from __future__ import annotations

from fastapi import APIRouter, Request

from hongyan.core import accounts as acc

from . import queries
from .views import (MESSAGE_STATES, badge, cards, field, form, link, message_table, notice, num, pairs,
                    section, select as select_box, table, tag, text_input, when)
from .web import ConsoleRoute, OperatorPost, OperatorUser, User, redirect, runtime

router = APIRouter(prefix="/ops", route_class=ConsoleRoute)

STATES = ("active", "locked", "disabled")
DONE = {"state": "Account state changed.", "topup": "Balance changed and written to the ledger."}


def _reading(request: Request):
    conn = runtime(request).reader.connect()
    if not runtime(request).settings.is_sqlite:
        # One snapshot for every query of a page, so sums and rows agree while traffic flows.
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _balances_text(bals: list[dict]) -> str:
    return " · ".join(f"{b['product'] or 'general'} {num(b['amount'])}" for b in bals) or "—"


def _channel_live(request: Request) -> dict[int, dict]:
    return {c["id"]: c for c in runtime(request).stats()["channels"]}


def _connected(live: dict | None):
    if live is None:
        return tag("span", "not run by this process", class_="muted")
    return badge("connected") if live["connected"] else badge("down")


@router.get("/")
def overview(request: Request, user: OperatorUser):
    stats = runtime(request).stats()
    with _reading(request) as conn:
        counts = queries.platform_counts(conn, queries.hour_ago_ms())
        totals = queries.totals(conn)
    chans = stats["channels"]
    summary = cards([("Orgs", num(totals["orgs"])), ("Accounts", num(totals["accounts"])),
                     ("Channels connected", f"{sum(c['connected'] for c in chans)} / {len(chans)}"),
                     ("Queued on channels", num(sum(c["queued"] for c in chans))),
                     ("Writer commits", num(stats["writer"]["commits"])),
                     ("Writer jobs", num(stats["writer"]["jobs"])),
                     ("Pushes sent", num(stats["pushed"])), ("Push failures", num(stats["push_failures"]))])
    channel_rows = [(c["name"], c["protocol"], _connected(c), num(c["queued"])) for c in chans]
    worker = pairs([("Node", stats["node"]), ("Claimed for dispatch", num(stats["dispatch"]["claimed"])),
                    ("Submits recorded", num(stats["recorded"]["sent"])),
                    ("Reports recorded", num(stats["recorded"]["reports"])),
                    ("Events waiting to be recorded", num(stats["recorded"]["backlog"]))])
    return user.page(
        "Overview", summary,
        section("Messages due in the last hour",
                table(["State", "Messages"], [(badge(s), num(counts[s])) for s in MESSAGE_STATES if s in counts],
                      empty="No messages in the last hour.", cls="compact")),
        section("Channels", table(["Channel", "Protocol", "Connection", "Queued"], channel_rows,
                                  empty="This process runs no channels.")),
        section("This process", worker), active="overview")


@router.get("/accounts")
def account_list(request: Request, user: OperatorUser):
    with _reading(request) as conn:
        orgs = queries.orgs_overview(conn)
        accounts = acc.list_accounts(conn)
    org_table = table(["Code", "Name", "State", "Accounts", "Org balance"],
                      [(o["code"], o["name"], badge(o["state"]), o["accounts"], _balances_text(o["balances"]))
                       for o in orgs], empty="No orgs yet.")
    acc_table = table(["Username", "Org", "State", "Pays from", "Extension", "Balance", "Report URL"],
                      [(link(f"/console/ops/accounts/{a['id']}", a["username"]), a["org"], badge(a["state"]),
                        a["pay_type"], a["extension"], _balances_text(a["balances"]), a["report_url"] or "")
                       for a in accounts], empty="No accounts yet.")
    return user.page("Orgs & accounts", section("Orgs", org_table), section("Accounts", acc_table),
                     active="accounts")


def _account_page(request: Request, user: User, account_id: int, message=None, status: int = 200):
    with _reading(request) as conn:
        row = queries.account_row(conn, account_id)
        if row is None:
            return user.page("No such account", notice(f"There is no account {account_id}.", "error"),
                             active="accounts", status=404)
        owner = queries.owner_of_row(row)
        bals = acc.balances_of(conn, owner)
        ledger = queries.ledger_rows(conn, [b["balance_id"] for b in bals])
        recent = queries.message_rows(conn, account_id, limit=20)
        products = queries.product_codes(conn)
    details = pairs([("Username", row.username), ("Org", f"{row.org_code} · {row.org_name}"),
                     ("State", badge(row.state)), ("Org state", badge(row.org_state)),
                     ("Pays from", "the org's balance" if row.pay_type == "org" else "its own balance"),
                     ("Extension", row.extension or "—"), ("Role", row.role),
                     ("IP allowlist", row.ip_allowlist or "any address"),
                     ("Expires", when(row.expires_at) or "never"), ("Report URL", row.report_url or ""),
                     ("MO URL", row.mo_url or ""), ("Console password", "set" if row.password_hash else "not set"),
                     ("Created", when(row.created_at))])
    state_form = form(f"/console/ops/accounts/{row.id}/state", user.csrf,
                      field("State", select_box("state", [(s, s) for s in STATES], row.state)),
                      submit="Change state", cls="stacked")
    topup_form = form(f"/console/ops/accounts/{row.id}/topup", user.csrf,
                      field("Amount", text_input("amount", "", inputmode="numeric", required=True,
                                                 pattern="-?[0-9]+"),
                            "Units to add; a negative amount takes back."),
                      field("Balance", select_box("product", [("", "general")] + [(p, p) for p in products])),
                      field("Note", text_input("note", "", required=True, maxlength=200,
                                               placeholder="contract 2026-031, invoice …"),
                            "Kept in the ledger with your name."),
                      submit="Change balance", cls="stacked")
    ledger_table = table(["#", "Time", "Kind", "Amount", "Balance", "Submission", "Message", "Note"],
                         [(r.id, when(r.created_at), r.kind, num(r.amount), r.product or "general",
                           r.submission_id or "", r.message_id or "", r.note) for r in ledger],
                         empty="No ledger rows.")
    return user.page(
        f"Account {row.username}", message, tag("div", section("Details", details),
                                                tag("div", section("Balances", table(
                                                    ["Balance", "Amount"],
                                                    [(b["product"] or "general", num(b["amount"])) for b in bals],
                                                    cls="compact")),
                                                    section("State", state_form), section("Top up", topup_form)),
                                                class_="columns"),
        section("Ledger (latest 50)", ledger_table),
        section("Recent messages", message_table(recent, with_submission=False)),
        active="accounts", status=status)


@router.get("/accounts/{account_id}")
def account_page(request: Request, user: OperatorUser, account_id: int, done: str = ""):
    return _account_page(request, user, account_id, notice(DONE[done], "ok") if done in DONE else None)


def _change(request: Request, user: User, account_id: int, what: str, fn):
    """Run an administrative change in its own transaction, then show the account again."""
    rt = runtime(request)
    try:
        with rt.engine.begin() as conn:
            row = queries.account_row(conn, account_id)
            if row is None:
                raise acc.AdminError(f"there is no account {account_id}")
            fn(conn, row)
    except (acc.AdminError, ValueError) as exc:
        return _account_page(request, user, account_id, notice(str(exc), "error"), status=422)
    rt.directory.invalidate(account_id)
    return redirect(f"/console/ops/accounts/{account_id}?done={what}")


@router.post("/accounts/{account_id}/state")
def change_state(request: Request, user: OperatorPost, account_id: int):
    state = user.form.get("state", "")
    if state not in STATES:
        return _account_page(request, user, account_id, notice(f"state must be one of {', '.join(STATES)}",
                                                                "error"), status=422)
    return _change(request, user, account_id, "state",
                   lambda conn, row: acc.update_account(conn, row.username, state=state))


@router.post("/accounts/{account_id}/topup")
def topup(request: Request, user: OperatorPost, account_id: int):
    raw, note = user.form.get("amount", "").strip(), user.form.get("note", "").strip()
    try:
        amount = int(raw)
    except ValueError:
        return _account_page(request, user, account_id, notice("The amount must be a whole number.", "error"),
                             status=422)
    if not note:
        return _account_page(request, user, account_id, notice("Say why in the note.", "error"), status=422)
    # The ledger has no column for who did it, so the note says.
    note = f"{note} [operator {user.username}]"
    return _change(request, user, account_id, "topup", lambda conn, row: acc.topup(
        conn, queries.owner_of_row(row), amount, user.form.get("product") or None, note=note))


@router.get("/channels")
def channel_list(request: Request, user: OperatorUser):
    live = _channel_live(request)
    with _reading(request) as conn:
        rows = queries.channel_rows(conn)
    body = table(["#", "Name", "Protocol", "Address", "Login", "Access code", "Rate", "Window × conns",
                  "Enabled", "Default", "Connection", "Queued"],
                 [(r.id, r.name, r.protocol, f"{r.host}:{r.port}", r.username, r.access_code or "—",
                   f"{num(r.mps)}/s", f"{r.window} × {r.connections}", "yes" if r.enabled else "no",
                   "yes" if r.is_default else "", _connected(live.get(r.id)),
                   num(live[r.id]["queued"]) if r.id in live else "")
                  for r in rows], empty="No channels are configured.")
    return user.page("Channels", body, tag("p", "Channels are added with ", tag("code", "hongyan channel add"),
                                           " and changed with ", tag("code", "hongyan channel set"),
                                           "; changes take effect when the server restarts.", class_="muted"),
                     active="channels")


@router.get("/ledger")
def ledger_check(request: Request, user: OperatorUser):
    with _reading(request) as conn:
        bad = acc.ledger_mismatches(conn)
        owners = queries.balance_owners(conn, [b for b, _, _ in bad])
    if not bad:
        result = notice("Every balance equals the sum of its ledger.", "ok")
    else:
        result = (notice(f"{len(bad)} balance(s) differ from their ledger.", "error"),
                  table(["Balance", "Owner", "Amount", "Ledger sum", "Difference"],
                        [(bid, owners.get(bid, ""), num(amount), num(total), num(amount - total))
                         for bid, amount, total in bad]))
    return user.page("Ledger check", result, active="ledger")
