"""Console sign-in: signed session cookies, CSRF tokens, operators and password checks.

A session is a small JSON payload signed with HMAC-SHA256, kept in an HttpOnly
cookie: the server stores nothing per session, so any process of a cluster can
serve any page. The payload carries a fingerprint of the user's password hash,
so changing a password ends every session that was opened with the old one.

A CSRF token is derived from the session's random nonce; a new nonce is drawn
at each sign-in, so a token seen before signing in is useless after it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as _secrets
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select, update

from hongyan.core.accounts import AdminError
from hongyan.core.secrets import hash_password, verify_password
from hongyan.domain.clock import now_ms
from hongyan.store.tables import accounts, operators

COOKIE = "hy_console"
SESSION_TTL = 12 * 3600
CUSTOMER, OPERATOR, ANONYMOUS = "customer", "operator", "anonymous"

_dummy_hash: str | None = None


def session_key(secret_key: str) -> bytes:
    """The signing key: derived, so the Fernet key itself never signs anything public."""
    return hmac.new(secret_key.encode(), b"console-session", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Session:
    kind: str          # customer | operator | anonymous (before signing in, for the login form's CSRF)
    uid: int
    fp: str            # fingerprint of the password hash it was opened with
    nonce: str
    exp: int           # epoch seconds

    @classmethod
    def new(cls, kind: str, uid: int = 0, fp: str = "") -> Session:
        return cls(kind, uid, fp, _secrets.token_urlsafe(16), int(time.time()) + SESSION_TTL)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(key: bytes, s: Session) -> str:
    body = _b64(json.dumps([s.kind, s.uid, s.fp, s.nonce, s.exp], separators=(",", ":")).encode())
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def decode(key: bytes, cookie: str | None) -> Session | None:
    """The session in a cookie, or None if it is missing, forged, malformed or expired."""
    if not cookie or "." not in cookie:
        return None
    body, _, sig = cookie.partition(".")
    want = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(want, sig):
        return None
    try:
        kind, uid, fp, nonce, exp = json.loads(_unb64(body))
        s = Session(str(kind), int(uid), str(fp), str(nonce), int(exp))
    except (ValueError, TypeError):
        return None
    if s.exp <= time.time() or s.kind not in (CUSTOMER, OPERATOR, ANONYMOUS):
        return None
    return s


def fingerprint(key: bytes, password_hash: str | None) -> str:
    return hmac.new(key, b"pw:" + (password_hash or "").encode(), hashlib.sha256).hexdigest()[:16]


def csrf_token(key: bytes, s: Session) -> str:
    return hmac.new(key, b"csrf:" + s.nonce.encode(), hashlib.sha256).hexdigest()[:32]


def csrf_ok(key: bytes, s: Session | None, token: str | None) -> bool:
    return s is not None and bool(token) and hmac.compare_digest(csrf_token(key, s), token)


# -- checking a password --------------------------------------------------------

def _dummy() -> str:
    # Verified against when a username is unknown, so that a wrong username
    # takes as long as a wrong password and the answer reveals neither.
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(_secrets.token_urlsafe(16))
    return _dummy_hash


def check_login(engine: Engine, username: str, password: str) -> tuple[str, int, str] | None:
    """(kind, id, password hash) of whom these credentials sign in, or None.

    Operators and customer accounts are separate namespaces: both are always
    checked (two argon2 verifications whatever exists), an operator winning a tie.
    """
    username = username.strip()
    with engine.connect() as conn:
        op = conn.execute(select(operators.c.id, operators.c.password_hash)
                          .where(operators.c.username == username)).first() if username else None
        acc = conn.execute(select(accounts.c.id, accounts.c.password_hash, accounts.c.state)
                           .where(accounts.c.username == username)).first() if username else None
    op_ok = verify_password(op.password_hash if op else _dummy(), password) and op is not None
    acc_ok = (verify_password(acc.password_hash if acc and acc.password_hash else _dummy(), password)
              and acc is not None and bool(acc.password_hash))
    if op_ok:
        return OPERATOR, op.id, op.password_hash
    if acc_ok and acc.state != "disabled":
        return CUSTOMER, acc.id, acc.password_hash
    return None


# -- operators ------------------------------------------------------------------

def _check_username(username: str) -> str:
    username = username.strip()
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise AdminError("an operator username is 1 to 64 characters without spaces")
    return username


def _check_password(password: str) -> None:
    if not password:
        raise AdminError("the password must not be empty")


def create_operator(conn: Connection, username: str, password: str) -> int:
    username = _check_username(username)
    _check_password(password)
    if conn.execute(select(operators.c.id).where(operators.c.username == username)).first():
        raise AdminError(f"operator {username!r} already exists")
    return conn.execute(insert(operators).values(username=username, password_hash=hash_password(password),
                                                 created_at=now_ms())).inserted_primary_key[0]


def set_operator_password(conn: Connection, username: str, password: str) -> None:
    _check_password(password)
    n = conn.execute(update(operators).where(operators.c.username == username)
                     .values(password_hash=hash_password(password))).rowcount
    if not n:
        raise AdminError(f"no operator {username!r}")


def ensure_demo_operator(conn: Connection) -> bool:
    """Create operator "admin" with password "admin" when there is no operator yet."""
    if conn.execute(select(operators.c.id).limit(1)).first():
        return False
    create_operator(conn, "admin", "admin")
    return True
