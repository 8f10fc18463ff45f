"""The native API, v1: JSON over HTTP with a Bearer API key.

Every refusal is ``{"code": <stable code>, "message": <text>, "detail": ...}``
with the HTTP status of its outcome (``hongyan.domain.outcomes``).
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select

from hongyan.core.accept import SendRequest
from hongyan.core.accounts import Account, balances_of
from hongyan.core.cancel import cancel
from hongyan.core.notify import poll
from hongyan.domain.clock import iso, to_ms
from hongyan.domain.outcomes import HTTP_STATUS, Code, Outcome, fail
from hongyan.store.tables import messages, submissions
from hongyan.web import JSON, read_body

router = APIRouter(prefix="/v1", default_response_class=JSON)


class ApiError(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def error_response(outcome: Outcome) -> JSON:
    return JSON({"code": outcome.code.value, "message": outcome.message,
                           "detail": outcome.detail or None}, status_code=outcome.http_status)


def runtime(request: Request):
    return request.app.state.runtime


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def account(request: Request, authorization: Annotated[str | None, Header()] = None) -> Account:
    rt = runtime(request)
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiError(fail(Code.AUTH_FAILED, "send 'Authorization: Bearer <api key>'"))
    acc = rt.directory.authenticate_bearer(authorization[7:].strip())
    if acc is None:
        raise ApiError(fail(Code.AUTH_FAILED))
    refusal = acc.refusal(client_ip(request))
    if refusal is not None:
        raise ApiError(fail(refusal))
    return acc


Caller = Annotated[Account, Depends(account)]


class SendBody(BaseModel):
    to: str | list[str] = Field(description="One number, a comma-separated list, or an array (≤ 50,000).")
    content: str = Field(description="The text, signature included (e.g. 【公司】...).")
    extno: str = Field("", description="Digits appended to the source number; replies to it come back to you.")
    client_ref: str | None = Field(None, max_length=64, description="Your own id for this submission.")
    product: str | None = Field(None, description="Product code, when the account has products.")
    schedule_at: datetime | int | None = Field(
        None, description="Send later: ISO 8601 time (with offset; without one, server local time) or epoch ms.")
    skip_invalid: bool = Field(False, description="Send to the valid numbers and list the invalid ones, "
                                                  "instead of refusing the whole request.")


class Sent(BaseModel):
    code: str = "ok"
    submission_id: int
    messages: list[dict[str, Any]]
    parts: int
    cost: int
    balance: int
    invalid: list[str]
    scheduled_at: str | None
    replayed: bool


_SEND_BODY = {"content": {"application/json": {"schema": SendBody.model_json_schema(
    ref_template="#/components/schemas/{model}")}}, "required": True}


@router.post("/messages", response_model=Sent, summary="Send one text to one or many numbers",
             openapi_extra={"requestBody": _SEND_BODY, "parameters": [
                 {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                  "description": "Repeat a request safely: the same key is never accepted twice."}]},
             responses={400: {}, 401: {}, 402: {}, 403: {}, 422: {}})
async def send(request: Request):
    # The hot path: the body is parsed and validated by pydantic's core in one
    # step, and the caller is authenticated here, without FastAPI's
    # dependency machinery (which costs more than the rest of the request).
    try:
        caller = await account(request, request.headers.get("authorization"))
    except ApiError as exc:
        return error_response(exc.outcome)
    raw = await read_body(request, MAX_BODY)
    if raw is None:
        return error_response(fail(Code.INVALID_PARAMETER, f"the body is larger than {MAX_BODY} bytes"))
    try:
        body = SendBody.model_validate_json(raw)
    except ValidationError as exc:
        return error_response(validation_outcome(exc.errors()))
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > 128:
        return error_response(fail(Code.INVALID_PARAMETER, "Idempotency-Key: at most 128 characters"))
    schedule = body.schedule_at
    if isinstance(schedule, datetime):
        schedule = to_ms(schedule)
    outcome = await runtime(request).accept.send(SendRequest(
        account=caller, to=body.to, content=body.content, extno=body.extno, client_ref=body.client_ref,
        idempotency_key=key, product=body.product, schedule_at=schedule,
        client_ip=client_ip(request), skip_invalid=body.skip_invalid))
    if not outcome.ok:
        return error_response(outcome)
    d = outcome.data
    # A held submission is accepted and billed but waits for an operator:
    # "content_held" with 202 tells the caller so (which word held it is not said).
    return JSON(status_code=HTTP_STATUS.get(outcome.code, 200), content={
        "code": outcome.code.value, "submission_id": d["submission_id"],
        "messages": [{"id": m, "to": p} for m, p in zip(d["message_ids"], d["phones"])],
        "parts": d["parts"], "cost": d["cost"], "balance": d["balance"], "invalid": d["invalid"],
        "scheduled_at": iso(d["scheduled_at"]), "replayed": d["replayed"]})


# 50,000 numbers with separators and a long text fit well within this.
MAX_BODY = 2 * 1024 * 1024


def validation_outcome(errors: list) -> Outcome:
    """A pydantic/FastAPI validation error as the outcome the caller is told."""
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    if first.get("type") == "json_invalid":
        return fail(Code.INVALID_JSON, first.get("msg", ""))
    code = Code.MISSING_PARAMETER if first.get("type") == "missing" else Code.INVALID_PARAMETER
    return fail(code, f"{where}: {first.get('msg', '')}".strip(": "))


def _message_view(r) -> dict:
    state = r.state
    return {"id": r.id, "submission_id": r.submission_id, "to": r.phone, "carrier": r.carrier,
            "state": state, "carrier_status": r.status, "parts": r.parts, "cost": r.cost,
            "refunded": r.refunded, "attempts": r.attempts, "due_at": iso(r.due_at),
            "submitted_at": iso(r.submitted_at), "done_at": iso(r.done_at), "note": r.note}


async def read_db(request: Request, fn, *args):
    """``fn(conn, *args)`` on the read engine, off the event loop."""
    rt = runtime(request)

    def run():
        with rt.reader.connect() as conn:
            return fn(conn, *args)
    return await asyncio.get_running_loop().run_in_executor(None, run)


@router.get("/messages/{message_id}", summary="One message's state")
async def get_message(message_id: int, request: Request, caller: Caller):
    row = await read_db(request, lambda c: c.execute(select(messages).where(
        messages.c.id == message_id, messages.c.account_id == caller.id)).first())
    if row is None:
        return error_response(fail(Code.INVALID_PARAMETER, f"no message {message_id}"))
    return _message_view(row)


@router.get("/submissions/{submission_id}", summary="A submission, its state counts and its messages")
async def get_submission(submission_id: int, request: Request, caller: Caller,
                         limit: int = Query(1000, ge=1, le=50_000)):
    def load(conn):
        sub = conn.execute(select(submissions).where(submissions.c.id == submission_id,
                                                     submissions.c.account_id == caller.id)).first()
        if sub is None:
            return None, None, None
        counts = dict(conn.execute(select(messages.c.state, func.count()).where(
            messages.c.submission_id == submission_id).group_by(messages.c.state)).all())
        rows = conn.execute(select(messages).where(messages.c.submission_id == submission_id)
                            .order_by(messages.c.id).limit(limit)).all()
        return sub, counts, rows
    sub, counts, rows = await read_db(request, load)
    if sub is None:
        return error_response(fail(Code.INVALID_PARAMETER, f"no submission {submission_id}"))
    return {"id": sub.id, "client_ref": sub.client_ref, "content": sub.content, "extno": sub.extno,
            "recipients": sub.recipients, "parts": sub.parts, "cost": sub.cost, "state": sub.state,
            "scheduled_at": iso(sub.scheduled_at), "created_at": iso(sub.created_at),
            "states": counts, "messages": [_message_view(r) for r in rows]}


@router.post("/submissions/{submission_id}/cancel", summary="Cancel what of a submission has not been sent yet",
             responses={400: {}, 401: {}, 403: {}})
async def cancel_submission(submission_id: int, request: Request, caller: Caller):
    # POST .../cancel rather than DELETE: the submission stays, with its state
    # "cancelled" and a final report for every message it stopped.
    rt = runtime(request)
    outcome = await rt.writer.run(lambda conn, _: cancel(conn, caller.id, submission_id, rt.receiver))
    if not outcome.ok:
        return error_response(outcome)
    if rt.notifier is not None:
        rt.notifier.wake()  # the cancelled messages' reports
    return {"code": "ok", **outcome.data}


@router.get("/balance", summary="The balances that pay for this account's messages")
async def balance(request: Request, caller: Caller):
    rows = await read_db(request, balances_of, caller.owner)
    return {"owner": caller.owner[0], "balances": [
        {"product": r["product"], "amount": r["amount"]} for r in rows]}


@router.get("/reports", summary="Delivery reports after an event id (the pull alternative to pushes)")
async def reports(request: Request, caller: Caller, after: int = Query(0, ge=0),
                  limit: int = Query(100, ge=1, le=1000)):
    items = await read_db(request, poll, caller.id, "report", after, limit)
    return {"items": items, "next": items[-1]["id"] if items else after}


@router.get("/mo", summary="Replies (MO) after an event id")
async def replies(request: Request, caller: Caller, after: int = Query(0, ge=0),
                  limit: int = Query(100, ge=1, le=1000)):
    items = await read_db(request, poll, caller.id, "mo", after, limit)
    return {"items": items, "next": items[-1]["id"] if items else after}


@router.get("/account", summary="Who this key belongs to")
async def whoami(caller: Caller):
    return {"username": caller.username, "org": caller.org_code, "state": caller.state,
            "pay_type": caller.pay_type, "extension": caller.extension, "report_url": caller.report_url,
            "mo_url": caller.mo_url}
