"""API keys, secret encryption and password hashing.

An API secret is shown to its owner once and kept encrypted (Fernet, key from
config): the vendor dialects authenticate with ``md5(secret + timestamp)`` and
so must recover it. Console passwords are only ever verified, so they are
hashed with argon2.
"""
from __future__ import annotations

import base64
import hmac
import secrets as _secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

KEY_PREFIX = "hy_"
_hasher = PasswordHasher()


def new_fernet_key() -> str:
    return Fernet.generate_key().decode()


class Cipher:
    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("secret_key is not configured (run `hongyan init` or set HONGYAN_SECRET_KEY)")
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            raise ValueError("secret_key must be a Fernet key: 32 bytes, url-safe base64") from exc

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("a stored secret cannot be decrypted with the configured secret_key") from exc


def new_key_id() -> str:
    return _secrets.token_hex(6)


def new_secret() -> str:
    # 24 url-safe characters: short enough to type into a vendor client's password field.
    return base64.urlsafe_b64encode(_secrets.token_bytes(18)).decode().replace("-", "x").replace("_", "y")


def bearer_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}{key_id}_{secret}"


def split_bearer(token: str) -> tuple[str, str] | None:
    if not token.startswith(KEY_PREFIX):
        return None
    rest = token[len(KEY_PREFIX):]
    key_id, sep, secret = rest.partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str | None, password: str) -> bool:
    if not hashed:
        return False
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
