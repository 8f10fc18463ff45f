"""The native API's rule endpoints: rules, sensitive words, blacklists, manual review.

A customer's key reads its own effective rules and keeps its own blacklist.
An admin account's key (role ``admin``) manages the platform: any account's
rules and the platform defaults, the block and review word lists, every
blacklist, and the held submissions waiting for review.

Changes go through the writer (one transaction each, inside a savepoint so a
refused change leaves nothing behind) and take effect in this process at once
and in other processes within the seconds their caches keep rules, words and
blacklists (``hongyan.core.rules.RuleBook``, ``hongyan.core.blacklist.Blacklist``).
Refusals use the native error shape of ``hongyan.dialects.rest``.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy import Connection, func, select

from hongyan.core import blacklist as bl
from hongyan.core import review
from hongyan.core.accounts import Account, AdminError
from hongyan.core.rules import add_words, get_rules, remove_words, set_rules
from hongyan.core.rules_admin import (MAX_WORD, BadNumbers, check_words, normalise_phones, rule_sources,
                                      unset_rules)
from hongyan.domain.clock import iso
from hongyan.domain.outcomes import Code, fail
from hongyan.store.tables import accounts, blacklist, words
from hongyan.web import JSON, read_body

from .rest import ApiError, Caller, account, read_db, runtime, validation_outcome

router = APIRouter(prefix="/v1", default_response_class=JSON)

PLATFORM = "platform"
MAX_ITEMS = 50_000      # words or numbers in one request
# Bodies are read up to this size and no further (50,000 numbers take about 1 MB).
MAX_BODY = 4 * 1024 * 1024


def account_id_of(conn: Connection, target: str) -> int:
    """The account a path names, or 0 for ``platform``."""
    if target == PLATFORM:
        return 0
    aid = conn.execute(select(accounts.c.id).where(accounts.c.username == target)).scalar()
    if aid is None:
        raise AdminError(f"no account {target!r}")
    return aid


# -- plumbing ---------------------------------------------------------------------------

async def admin_account(request: Request, authorization: Annotated[str | None, Header()] = None) -> Account:
    caller = await account(request, authorization)
    if caller.role != "admin":
        raise ApiError(fail(Code.PERMISSION_DENIED, "admin accounts only"))
    return caller


Admin = Annotated[Account, Depends(admin_account)]


async def run_read(request: Request, fn, *args):
    """``rest.read_db``, with an AdminError (a name that does not exist) as the answer."""
    def guarded(conn: Connection, *a):
        try:
            return fn(conn, *a)
        except AdminError as exc:
            raise ApiError(fail(Code.INVALID_PARAMETER, str(exc))) from None
    return await read_db(request, guarded, *args)


async def run_write(request: Request, fn, *args):
    """Run ``fn(conn, *args)`` as a writer job; an AdminError rolls back its savepoint and is the answer."""
    def job(conn: Connection, _):
        try:
            with conn.begin_nested():
                return True, fn(conn, *args)
        except AdminError as exc:
            return False, exc
    rt = runtime(request)
    done, value = await rt.writer.run(job)
    if not done:
        # As for cancelling: a submission in the wrong state is an unsupported
        # operation, anything else named wrongly an invalid parameter.
        code = Code.UNSUPPORTED_OPERATION if isinstance(value, review.NotReviewable) else Code.INVALID_PARAMETER
        raise ApiError(fail(code, str(value)))
    # This process's caches see the change at once; other processes within their poll interval.
    rt.accept.rulebook.invalidate()
    rt.accept.blacklist.invalidate()
    rt.router.invalidate()
    return value


def _rules_view(conn: Connection, target: str) -> dict:
    aid = account_id_of(conn, target)
    rows = rule_sources(conn, aid)
    return {"account": None if aid == 0 else target, "rules": {k: v for k, v, _ in rows},
            "sources": {k: s for k, _, s in rows}}


def _entries(conn: Connection, account_id: int, after: int, limit: int) -> dict:
    rows = conn.execute(select(blacklist).where(blacklist.c.account_id == account_id, blacklist.c.id > after)
                        .order_by(blacklist.c.id).limit(limit)).all()
    total = conn.execute(select(func.count()).select_from(blacklist)
                         .where(blacklist.c.account_id == account_id)).scalar()
    return {"items": [{"id": r.id, "phone": r.phone, "reason": r.reason, "note": r.note,
                       "created_at": iso(r.created_at)} for r in rows],
            "total": total, "next": rows[-1].id if rows else after}


class Phones(BaseModel):
    phones: str | list[str] = Field(description="Numbers: an array, or one string separated by commas or spaces.")
    note: str = Field("", max_length=200, description="Why (kept with the entry).")


class PhonesOut(BaseModel):
    phones: str | list[str] = Field(description="Numbers: an array, or one string separated by commas or spaces.")


class Words(BaseModel):
    words: list[str] = Field(description=f"Words or phrases, at most {MAX_WORD} characters each.")


class Reject(BaseModel):
    reason: str = Field("", max_length=500, description="Why: kept in the review record and the messages' note.")


async def _body(request: Request, adapter: TypeAdapter, *, optional: bool = False):
    """The JSON body, validated; read no further than ``MAX_BODY`` bytes."""
    raw = await read_body(request, MAX_BODY)
    if raw is None:
        raise ApiError(fail(Code.INVALID_PARAMETER, f"the body is larger than {MAX_BODY} bytes"))
    if optional and not raw.strip():
        raw = b"{}"
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        raise ApiError(validation_outcome(exc.errors())) from None


def _documented(model: type[BaseModel] | None, description: str = "", required: bool = True) -> dict:
    schema = model.model_json_schema() if model else {"type": "object", "additionalProperties": True}
    if description:
        schema["description"] = description
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


PHONES, PHONES_OUT, WORDS, REJECT = (TypeAdapter(m) for m in (Phones, PhonesOut, Words, Reject))
RULES = TypeAdapter(dict[str, Any])


def _too_many(items) -> None:
    if len(items) > MAX_ITEMS:
        raise ApiError(fail(Code.INVALID_PARAMETER, f"at most {MAX_ITEMS} items in one request"))


def _phones(raw: str | list[str]) -> list[str]:
    if isinstance(raw, list):
        _too_many(raw)
    try:
        phones = normalise_phones(raw, MAX_ITEMS)
    except BadNumbers as exc:
        raise ApiError(fail(Code.INVALID_NUMBER, exc.shown)) from None
    except AdminError as exc:
        raise ApiError(fail(Code.INVALID_PARAMETER, str(exc))) from None
    if not phones:
        raise ApiError(fail(Code.MISSING_PARAMETER, "phones: no number given"))
    return phones


# -- customers: their own account ---------------------------------------------------------

@router.get("/rules", summary="The rules this account's messages meet (its own, else the platform's, else defaults)")
async def my_rules(request: Request, caller: Caller):
    rules = await run_read(request, get_rules, caller.id)
    return {"rules": rules.to_dict()}


@router.get("/blacklist", summary="This account's blacklist: numbers it never sends to")
async def my_blacklist(request: Request, caller: Caller, after: int = Query(0, ge=0),
                       limit: int = Query(1000, ge=1, le=10_000)):
    return await run_read(request, _entries, caller.id, after, limit)


@router.post("/blacklist", summary="Add numbers to this account's blacklist", openapi_extra=_documented(Phones))
async def my_blacklist_add(request: Request, caller: Caller):
    body = await _body(request, PHONES)
    phones = _phones(body.phones)
    added = await run_write(request, bl.add, caller.id, phones, "manual", body.note)
    return {"added": added, "phones": phones}


@router.delete("/blacklist", summary="Remove numbers from this account's blacklist",
               openapi_extra=_documented(PhonesOut))
async def my_blacklist_remove(request: Request, caller: Caller):
    phones = _phones((await _body(request, PHONES_OUT)).phones)
    return {"removed": await run_write(request, bl.remove, caller.id, phones)}


# -- admins: the platform -------------------------------------------------------------------

TargetPath = Annotated[str, Path(description="An account's username, or `platform` for the platform defaults.")]
ListPath = Annotated[Literal["block", "review"], Path(description="`block` refuses a message, `review` holds it.")]


@router.get("/admin/rules/{target}", summary="An account's or the platform's rules, and where each value comes from")
async def admin_rules(request: Request, caller: Admin, target: TargetPath):
    return await run_read(request, _rules_view, target)


@router.put("/admin/rules/{target}",
            summary="Set rules of an account or the platform (keys named change; null falls back)",
            openapi_extra=_documented(None, "Rule keys and values, e.g. {\"mps\": 50, \"signatures\": [\"鸿雁\"]}; "
                                            "null removes the setting (the platform's or the default applies)."))
async def admin_rules_set(request: Request, caller: Admin, target: TargetPath):
    body = await _body(request, RULES)
    if not body:
        raise ApiError(fail(Code.MISSING_PARAMETER, "name at least one rule key"))

    def change(conn: Connection) -> dict:
        aid = account_id_of(conn, target)
        drop = [k for k, v in body.items() if v is None]
        values = {k: v for k, v in body.items() if v is not None}
        if values:
            set_rules(conn, aid, **values)
        if drop:
            unset_rules(conn, aid, drop)
        return _rules_view(conn, target)
    return await run_write(request, change)


@router.get("/admin/words/{kind}", summary="The block or review word list")
async def admin_words(request: Request, caller: Admin, kind: ListPath, after: int = Query(0, ge=0),
                      limit: int = Query(1000, ge=1, le=10_000)):
    def load(conn: Connection) -> dict:
        rows = conn.execute(select(words).where(words.c.list == kind, words.c.id > after)
                            .order_by(words.c.id).limit(limit)).all()
        total = conn.execute(select(func.count()).select_from(words).where(words.c.list == kind)).scalar()
        return {"list": kind, "items": [{"id": r.id, "word": r.word, "created_at": iso(r.created_at)}
                                        for r in rows], "total": total, "next": rows[-1].id if rows else after}
    return await run_read(request, load)


@router.post("/admin/words/{kind}", summary="Add words to the block or review list", openapi_extra=_documented(Words))
async def admin_words_add(request: Request, caller: Admin, kind: ListPath):
    body = await _body(request, WORDS)
    _too_many(body.words)
    try:
        items = check_words(body.words)
    except AdminError as exc:
        raise ApiError(fail(Code.INVALID_PARAMETER, str(exc))) from None
    if not items:
        raise ApiError(fail(Code.MISSING_PARAMETER, "words: no word given"))
    return {"list": kind, "added": await run_write(request, add_words, kind, items)}


@router.delete("/admin/words/{kind}", summary="Remove words from the block or review list",
               openapi_extra=_documented(Words))
async def admin_words_remove(request: Request, caller: Admin, kind: ListPath):
    body = await _body(request, WORDS)
    _too_many(body.words)
    items = [w.strip() for w in body.words if w.strip()]
    if not items:
        raise ApiError(fail(Code.MISSING_PARAMETER, "words: no word given"))
    return {"list": kind, "removed": await run_write(request, remove_words, kind, items)}


@router.get("/admin/blacklist/{target}", summary="An account's or the platform-wide blacklist")
async def admin_blacklist(request: Request, caller: Admin, target: TargetPath, after: int = Query(0, ge=0),
                          limit: int = Query(1000, ge=1, le=10_000)):
    return await run_read(request, lambda conn: _entries(conn, account_id_of(conn, target), after, limit))


@router.post("/admin/blacklist/{target}", summary="Add numbers to an account's or the platform-wide blacklist",
             openapi_extra=_documented(Phones))
async def admin_blacklist_add(request: Request, caller: Admin, target: TargetPath):
    body = await _body(request, PHONES)
    phones = _phones(body.phones)
    added = await run_write(request, lambda conn: bl.add(conn, account_id_of(conn, target), phones, "manual",
                                                      body.note))
    return {"added": added, "phones": phones}


@router.delete("/admin/blacklist/{target}", summary="Remove numbers from an account's or the platform-wide blacklist",
               openapi_extra=_documented(PhonesOut))
async def admin_blacklist_remove(request: Request, caller: Admin, target: TargetPath):
    phones = _phones((await _body(request, PHONES_OUT)).phones)
    return {"removed": await run_write(request, lambda conn: bl.remove(conn, account_id_of(conn, target), phones))}


def _held_view(item: dict) -> dict:
    return {**item, "scheduled_at": iso(item["scheduled_at"]), "created_at": iso(item["created_at"])}


def _decision_view(d: review.Decision) -> dict:
    return {"submission_id": d.submission_id, "decision": d.decision, "state": d.state,
            "messages": d.messages, "refunded": d.refunded, "due_at": iso(d.due_at)}


@router.get("/admin/review", summary="Held submissions waiting for review, oldest first")
async def admin_review(request: Request, caller: Admin, account: str | None = Query(None, description="Username."),
                       after: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)):
    def load(conn: Connection) -> dict:
        aid = account_id_of(conn, account) if account else None
        items = review.held(conn, aid, after=after, limit=limit)
        return {"items": [_held_view(i) for i in items], "next": items[-1]["submission_id"] if items else after}
    return await run_read(request, load)


@router.post("/admin/review/{submission_id}/approve", summary="Approve a held submission: its messages are sent")
async def admin_approve(request: Request, caller: Admin, submission_id: int):
    (d,) = await run_write(request, review.approve, [submission_id], f"api:{caller.username}")
    runtime(request).approved([d])
    return _decision_view(d)


@router.post("/admin/review/{submission_id}/reject",
             summary="Reject a held submission: its messages fail with REJECT and are refunded",
             openapi_extra=_documented(Reject, required=False))
async def admin_reject(request: Request, caller: Admin, submission_id: int):
    body = await _body(request, REJECT, optional=True)
    rt = runtime(request)
    (d,) = await run_write(request, review.reject, [submission_id], f"api:{caller.username}", body.reason,
                        rt.receiver)
    rt._events()
    return _decision_view(d)
