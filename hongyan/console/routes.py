"""The console's router: sign in and out, the start page, the stylesheet, and every page."""
from __future__ import annotations

import asyncio
import random

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from . import auth, customer, operator, review, views
from .web import (ConsoleRoute, clear_session, html, key, load_user, read_form, read_session, redirect, runtime,
                  safe_next, set_session)

# Failed sign-ins wait this long (plus jitter) so that guessing passwords is slow.
FAILURE_DELAY = (0.6, 1.0)

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def _home(kind: str) -> str:
    return "/console/ops/" if kind == auth.OPERATOR else "/console/dashboard"


def _login_page(request: Request, session: auth.Session, *, username: str = "", next_url: str = "",
                error: str = "", status: int = 200) -> Response:
    body = views.form(
        "/console/login", auth.csrf_token(key(request), session),
        views.tag("input", type="hidden", name="next", value=next_url) if next_url else None,
        views.field("Username", views.text_input("username", username, autocomplete="username", required=True,
                                                 autofocus=not username)),
        views.field("Password", views.text_input("password", "", type="password", autocomplete="current-password",
                                                 required=True, autofocus=bool(username))),
        submit="Sign in", cls="stacked")
    card = views.tag("div", views.tag("h1", "Sign in"),
                     views.tag("p", "Customers sign in with their account username and console password; "
                                    "platform operators with their operator login.", class_="muted"),
                     views.notice(error, "error") if error else None, body, class_="login")
    response = html(views.page("Sign in", card, heading=False), status)
    set_session(request, response, session)
    return response


@router.get("/")
def home(request: Request):
    user = load_user(request)
    return redirect(_home(user.kind) if user else "/console/login")


@router.get("/login")
def login_form(request: Request, next: str = ""):
    user = load_user(request)
    if user is not None:
        return redirect(safe_next(next) or _home(user.kind))
    # A session before signing in carries the nonce the login form's CSRF token comes from.
    session = read_session(request)
    if session is None or session.kind != auth.ANONYMOUS:
        session = auth.Session.new(auth.ANONYMOUS)
    return _login_page(request, session, next_url=safe_next(next) or "")


@router.post("/login")
async def login(request: Request):
    form = await read_form(request)
    session = read_session(request)
    username, next_url = form.get("username", "").strip(), safe_next(form.get("next")) or ""
    if not auth.csrf_ok(key(request), session, form.get("csrf")):
        return _login_page(request, auth.Session.new(auth.ANONYMOUS), username=username, next_url=next_url,
                           error="The sign-in form expired. Please sign in again.", status=403)
    who = await run_in_threadpool(auth.check_login, runtime(request).reader, username, form.get("password", ""))
    if who is None:
        await asyncio.sleep(random.uniform(*FAILURE_DELAY))
        return _login_page(request, session, username=username, next_url=next_url,
                           error="Wrong username or password.", status=401)
    kind, uid, password_hash = who
    # A fresh nonce at sign-in: nothing learnt before it (a token, the cookie) is worth anything after.
    response = redirect(next_url or _home(kind))
    set_session(request, response, auth.Session.new(kind, uid, auth.fingerprint(key(request), password_hash)))
    return response


@router.post("/logout")
async def logout(request: Request):
    form = await read_form(request)
    session = read_session(request)
    if session is not None and session.kind != auth.ANONYMOUS and not auth.csrf_ok(key(request), session,
                                                                                   form.get("csrf")):
        # Someone else's page may not sign a user out.
        return html(views.page("Form expired", views.notice(
            "This form was not sent from your current session. Reload the page and try again.", "error")), 403)
    response = redirect("/console/login")
    clear_session(response)
    return response


@router.get("/static/console.css")
def stylesheet():
    return Response(views.STYLESHEET, media_type="text/css; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=604800"})


router.include_router(customer.router)
router.include_router(operator.router)
router.include_router(review.router)


@router.get("/{rest:path}")
def not_found(request: Request, rest: str):
    # Last, so it only answers addresses no page claims: with a page, not the API's JSON.
    user = load_user(request)
    body = views.notice("There is no such page.", "error"), views.tag("p", views.link("/console/", "Start page"))
    if user is None:
        return html(views.page("Not found", *body), 404)
    return user.page("Not found", *body, status=404)
