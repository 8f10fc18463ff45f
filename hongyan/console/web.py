"""Request plumbing shared by the console's pages: who is asking, forms, responses.

A page declares who may see it with a dependency (``CustomerUser``,
``OperatorUser``, or their ``...Post`` forms, which also check the CSRF token).
A dependency that must answer instead of the page (sign in first, forbidden)
raises :class:`Halt`; :class:`ConsoleRoute` turns that into the response, so
those answers are HTML pages and not the API's JSON errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy import select

from hongyan.core.accounts import Account
from hongyan.store.tables import operators
from hongyan.web import read_body

from . import auth, views

MAX_FORM_BYTES = 2 * 1024 * 1024   # room for a send form with 50,000 numbers

# Pages never load scripts, frames or anything from elsewhere: even if some
# text escaped escaping, the browser would not run it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Halt(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class ConsoleRoute(APIRoute):
    def get_route_handler(self):
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Halt as halt:
                return halt.response
        return run


@dataclass(slots=True)
class User:
    kind: str
    id: int
    username: str
    session: auth.Session
    csrf: str
    account: Account | None = None          # a customer's account
    form: dict[str, str] = field(default_factory=dict)

    def page(self, title: str, *body, active: str = "", status: int = 200) -> HTMLResponse:
        label = f"{self.username} · {self.account.org_code}" if self.account else self.username
        return html(views.page(title, *body, user=label, kind=self.kind, active=active, csrf=self.csrf),
                    status)


def runtime(request: Request):
    return request.app.state.runtime


@lru_cache(maxsize=8)
def _key_for(secret_key: str) -> bytes:
    return auth.session_key(secret_key)


def key(request: Request) -> bytes:
    return _key_for(runtime(request).settings.secret_key)


def html(doc: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(doc, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def set_session(request: Request, response: Response, s: auth.Session) -> None:
    response.set_cookie(auth.COOKIE, auth.encode(key(request), s), max_age=auth.SESSION_TTL, path="/console",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")


def clear_session(response: Response) -> None:
    response.delete_cookie(auth.COOKIE, path="/console", httponly=True, samesite="lax")


def read_session(request: Request) -> auth.Session | None:
    return auth.decode(key(request), request.cookies.get(auth.COOKIE))


def load_user(request: Request) -> User | None:
    """The signed-in user, checked against the store: gone, disabled or a changed password sign out."""
    s = read_session(request)
    if s is None or s.kind == auth.ANONYMOUS:
        return None
    rt, k = runtime(request), key(request)
    if s.kind == auth.CUSTOMER:
        acc = rt.directory.by_id(s.uid)
        if acc is None or acc.state == "disabled" or auth.fingerprint(k, acc.password_hash) != s.fp:
            return None
        return User(auth.CUSTOMER, acc.id, acc.username, s, auth.csrf_token(k, s), account=acc)
    with rt.reader.connect() as conn:
        row = conn.execute(select(operators).where(operators.c.id == s.uid)).first()
    if row is None or auth.fingerprint(k, row.password_hash) != s.fp:
        return None
    return User(auth.OPERATOR, row.id, row.username, s, auth.csrf_token(k, s))


def safe_next(target: str | None) -> str | None:
    """Only a console path is followed after signing in (no open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _sign_in_first(request: Request) -> Halt:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Halt(redirect(f"/console/login?next={quote(target)}" if request.method == "GET" else "/console/login"))


def forbidden(user: User, what: str) -> Halt:
    body = views.notice(what, "error"), views.tag("p", views.link("/console/", "Back to your start page"))
    return Halt(user.page("Not allowed", *body, status=403))


def _require(request: Request, kind: str) -> User:
    user = load_user(request)
    if user is None:
        raise _sign_in_first(request)
    if user.kind != kind:
        raise forbidden(user, "This page is for platform operators." if kind == auth.OPERATOR
                        else "This page is for customer accounts.")
    return user


def customer(request: Request) -> User:
    return _require(request, auth.CUSTOMER)


def operator(request: Request) -> User:
    return _require(request, auth.OPERATOR)


async def read_form(request: Request) -> dict[str, str]:
    """An url-encoded form body (the only kind the console's forms send)."""
    body = await read_body(request, MAX_FORM_BYTES)
    if body is None:   # stopped reading: a huge body is not buffered first
        raise Halt(html(views.page("Too large", views.notice("The form is too large.", "error")), 413))
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _checked(request: Request, user: User, form: dict[str, str]) -> User:
    if not auth.csrf_ok(key(request), user.session, form.get("csrf")):
        raise Halt(user.page("Form expired", views.notice(
            "This form was not sent from your current session. Reload the page and try again.", "error"),
            status=403))
    user.form = form
    return user


def customer_post(request: Request, form: Annotated[dict, Depends(read_form)],
                  user: Annotated[User, Depends(customer)]) -> User:
    return _checked(request, user, form)


def operator_post(request: Request, form: Annotated[dict, Depends(read_form)],
                  user: Annotated[User, Depends(operator)]) -> User:
    return _checked(request, user, form)


CustomerUser = Annotated[User, Depends(customer)]
OperatorUser = Annotated[User, Depends(operator)]
CustomerPost = Annotated[User, Depends(customer_post)]
OperatorPost = Annotated[User, Depends(operator_post)]
