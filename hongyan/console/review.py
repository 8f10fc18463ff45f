"""The operators' review page: held submissions, each with approve and reject buttons."""
from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from hongyan.core import review

from .views import clip, form, notice, num, section, table, tag, text_input, when
from .web import ConsoleRoute, OperatorPost, OperatorUser, User, redirect, runtime

router = APIRouter(prefix="/ops", route_class=ConsoleRoute)

PAGE = 200  # held submissions shown at once, oldest first
DONE = {"approved": "Approved: its messages are queued for sending.",
        "rejected": "Rejected: its messages failed with REJECT, were refunded and reported."}


def _review_page(request: Request, user: User, message=None, status: int = 200):
    with runtime(request).reader.connect() as conn:
        items = review.held(conn, limit=PAGE)
    rows = []
    for i in items:
        sid = i["submission_id"]
        approve = form(f"/console/ops/review/{sid}/approve", user.csrf, submit="Approve", cls="inline")
        reject = form(f"/console/ops/review/{sid}/reject", user.csrf,
                      text_input("reason", "", placeholder="reason", maxlength=500, aria_label="Reason"),
                      submit="Reject", cls="inline", confirm_class="danger")
        rows.append((sid, i["username"] or i["account_id"], when(i["created_at"]),
                     f"{num(i['held'])} / {num(i['recipients'])}", ", ".join(i["words"]) or "—",
                     tag("span", clip(i["content"], 120), title=i["content"], class_="content"),
                     when(i["scheduled_at"]) or "—", tag("div", approve, reject, class_="buttons")))
    body = table(["#", "Account", "Received", "Held / numbers", "Review words", "Text", "Scheduled", ""], rows,
                 empty="Nothing is held for review.")
    hint = tag("p", "Approving queues the held messages (at their scheduled time if it is still ahead, within "
                    "the account's allowed hours). Rejecting fails them with REJECT and refunds them whatever "
                    "the account's refund policy. Each submission is decided once; the decision is kept with "
                    "your name.", class_="muted")
    more = tag("p", f"Showing the oldest {PAGE}.", class_="muted") if len(items) == PAGE else None
    return user.page("Review", message, section("Held submissions", body, more), hint, active="review",
                     status=status)


@router.get("/review")
def review_page(request: Request, user: OperatorUser, done: str = ""):
    return _review_page(request, user, notice(DONE[done], "ok") if done in DONE else None)


async def _decide(request: Request, user: User, fn, *args):
    """One decision as a writer job; a refusal rolls its savepoint back and is shown on the page."""
    def job(conn: Connection, _):
        try:
            with conn.begin_nested():
                return fn(conn, *args)
        except review.ReviewError as exc:
            return exc
    result = await runtime(request).writer.run(job)
    if isinstance(result, review.ReviewError):
        return None, await run_in_threadpool(_review_page, request, user, notice(str(result), "error"), 422)
    return result, None


@router.post("/review/{submission_id}/approve")
async def approve(request: Request, user: OperatorPost, submission_id: int):
    done, page = await _decide(request, user, review.approve, [submission_id], f"console:{user.username}")
    if page is not None:
        return page
    runtime(request).approved(done)
    return redirect("/console/ops/review?done=approved")


@router.post("/review/{submission_id}/reject")
async def reject(request: Request, user: OperatorPost, submission_id: int):
    rt = runtime(request)
    _, page = await _decide(request, user, review.reject, [submission_id], f"console:{user.username}",
                            user.form.get("reason", "")[:500], rt.receiver)
    if page is not None:
        return page
    rt._events()
    return redirect("/console/ops/review?done=rejected")
