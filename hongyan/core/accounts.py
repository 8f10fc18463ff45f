"""Orgs, accounts, products and balances: who may send, and whose money pays.

``Directory`` answers "who is this?" on the hot path from a short-lived cache,
so authenticating a request costs no database round trip. Administrative
changes made through this module invalidate the cache at once; changes made by
another process are seen within ``ttl`` seconds.
"""
from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from hongyan.domain import source
from hongyan.domain.clock import now_ms
from hongyan.domain.outcomes import Code
from hongyan.store.tables import (account_products, accounts, balances, ledger, orgs,
                                  products)

from . import secrets

ACCOUNT_STATES = ("active", "locked", "expired", "disabled")
# Stands in for the access code of a channel that has none (it is never a digit).
_NO_CODE = "#"
STATE_OUTCOME = {"locked": Code.ACCOUNT_LOCKED, "expired": Code.ACCOUNT_EXPIRED,
                 "disabled": Code.ACCOUNT_DISABLED}


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    code: str
    name: str
    price: int
    channel_id: int | None


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    org_id: int
    org_code: str
    org_state: str
    secret: str
    key_id: str
    state: str
    expires_at: int | None
    ip_networks: tuple
    pay_type: str
    role: str
    extension: str
    report_url: str | None
    mo_url: str | None
    push_dialect: str
    refund_policy: str
    password_hash: str | None
    product_ids: frozenset = field(default_factory=frozenset)
    mo_push_dialect: str | None = None

    def push_dialect_for(self, kind: str) -> str:
        """The format a push of ``kind`` (report | mo) goes out in: each callback URL has its own."""
        if kind == "mo" and self.mo_push_dialect:
            return self.mo_push_dialect
        return self.push_dialect

    @property
    def owner(self) -> tuple[str, int]:
        """Whose balance pays: the org's (payType org) or the account's own."""
        return ("org", self.org_id) if self.pay_type == "org" else ("account", self.id)

    def refusal(self, ip: str | None = None, now: int | None = None) -> Code | None:
        """Why this account may not send now, or None. One place for the state rules."""
        if self.org_state != "active":
            return Code.ORG_DISABLED
        if self.state != "active":
            return STATE_OUTCOME.get(self.state, Code.ACCOUNT_DISABLED)
        if self.expires_at is not None and (now or now_ms()) >= self.expires_at:
            return Code.ACCOUNT_EXPIRED
        if ip and self.ip_networks and not _ip_allowed(ip, self.ip_networks):
            return Code.IP_DENIED
        return None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _ip_allowed(ip: str, networks: tuple) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


def parse_allowlist(text: str) -> tuple:
    nets = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if part:
            nets.append(ipaddress.ip_network(part, strict=False))
    return tuple(nets)


class Directory:
    def __init__(self, engine: Engine, cipher: secrets.Cipher, ttl: float = 3.0) -> None:
        self.engine = engine
        self.cipher = cipher
        self.ttl = ttl
        self._by_id: dict[int, tuple[float, Account | None]] = {}
        self._name_to_id: dict[str, int] = {}
        self._key_to_id: dict[str, int] = {}
        self._balances: dict[tuple[str, int, int], int] = {}
        self._products: tuple[float, dict[str, Product]] = (0.0, {})
        self._ext_cache: tuple[float, dict[str, int]] = (0.0, {})
        self._lock = threading.Lock()

    # -- lookups ------------------------------------------------------------

    def by_id(self, account_id: int) -> Account | None:
        hit = self._by_id.get(account_id)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return self._load(accounts.c.id == account_id, account_id)

    def by_username(self, username: str) -> Account | None:
        aid = self._name_to_id.get(username)
        if aid is not None:
            acc = self.by_id(aid)
            if acc is not None and acc.username == username:
                return acc
        return self._load(accounts.c.username == username)

    def by_key(self, key_id: str) -> Account | None:
        aid = self._key_to_id.get(key_id)
        if aid is not None:
            acc = self.by_id(aid)
            if acc is not None and acc.key_id == key_id:
                return acc
        return self._load(accounts.c.key_id == key_id)

    def authenticate_bearer(self, token: str) -> Account | None:
        parts = secrets.split_bearer(token)
        if parts is None:
            return None
        acc = self.by_key(parts[0])
        if acc is None or not secrets.same(acc.secret, parts[1]):
            return None
        return acc

    def authenticate(self, username: str, password: str, *, salt: str | None = None,
                     allow_plain: bool = True, allow_md5: bool = True) -> tuple[Account | None, Code | None]:
        """Check a vendor-style login; the one place every front door's password rule lives.

        ``password`` may be the API secret itself (``allow_plain``), its MD5 hex in
        either case (``allow_md5``), or, with ``salt``, MD5(secret + salt) — the
        signed-timestamp scheme. Returns the account, or the reason it failed:
        ``USER_NOT_FOUND`` for an unknown name, ``AUTH_FAILED`` for a wrong password.
        """
        if not username:
            return None, Code.AUTH_FAILED
        acc = self.by_username(username)
        if acc is None:
            return None, Code.USER_NOT_FOUND
        given = (password or "").strip()
        if salt is not None:
            ok = secrets.same(_md5(acc.secret + salt), given.lower())
        else:
            ok = (allow_plain and secrets.same(acc.secret, given)) or (
                allow_md5 and secrets.same(_md5(acc.secret), given.lower()))
        return (acc, None) if ok else (None, Code.AUTH_FAILED)

    def product(self, code: str) -> Product | None:
        return self.products().get(code)

    def products(self) -> dict[str, Product]:
        loaded, table = self._products
        if time.monotonic() - loaded >= self.ttl:
            with self.engine.connect() as conn:
                rows = conn.execute(select(products)).all()
            table = {r.code: Product(r.id, r.code, r.name, r.price, r.channel_id) for r in rows}
            self._products = (time.monotonic(), table)
        return table

    def balance_id(self, owner: tuple[str, int], product_id: int = 0) -> int | None:
        key = (owner[0], owner[1], product_id)
        bid = self._balances.get(key)
        if bid is None:
            with self.engine.connect() as conn:
                bid = conn.execute(select(balances.c.id).where(
                    balances.c.owner_type == key[0], balances.c.owner_id == key[1],
                    balances.c.product_id == key[2])).scalar()
            if bid is not None:
                self._balances[key] = bid
        return bid

    def extensions(self) -> dict[str, int]:
        """Account extension → account id (enabled accounts); "" for the one account without one."""
        loaded, table = self._ext_cache
        if time.monotonic() - loaded >= self.ttl:
            with self.engine.connect() as conn:
                rows = conn.execute(select(accounts.c.id, accounts.c.extension)
                                    .where(accounts.c.state != "disabled").order_by(accounts.c.id)).all()
            table, blank = {}, []
            for r in rows:
                if r.extension:
                    table.setdefault(r.extension, r.id)
                else:
                    blank.append(r.id)
            if len(blank) == 1:
                table[""] = blank[0]
            self._ext_cache = (time.monotonic(), table)
        return table

    def route_mo(self, dest: str, access_code: str) -> tuple[Account | None, str]:
        """Which account an MO's destination number belongs to, and the rest of it (the extno).

        The rule is ``hongyan.domain.source.parse_mo_dest``: the channel's access
        code, then the longest account extension, then the request extension;
        the one account without an extension (if exactly one) takes replies to
        no known extension. A destination that does not start with the
        channel's access code belongs to no account.
        """
        table = self.extensions()
        if access_code:
            route = source.parse_mo_dest(dest, (access_code,), table)
        else:
            # A channel without an access code sends from the extensions alone, so
            # its replies' destinations are those: read them after an empty code.
            route = source.parse_mo_dest(_NO_CODE + dest.strip(), (_NO_CODE,), table)
        return (self.by_id(route.account) if route.account is not None else None), route.request_ext

    def invalidate(self, account_id: int | None = None) -> None:
        with self._lock:
            if account_id is None:
                self._by_id.clear()
            else:
                self._by_id.pop(account_id, None)
            self._products = (0.0, {})
            self._ext_cache = (0.0, {})

    def _load(self, where, account_id: int | None = None) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(accounts, orgs.c.code.label("org_code"), orgs.c.state.label("org_state"))
                .join(orgs, orgs.c.id == accounts.c.org_id).where(where)).first()
            subs = frozenset()
            if row is not None:
                subs = frozenset(conn.execute(select(account_products.c.product_id).where(
                    account_products.c.account_id == row.id)).scalars())
        if row is None:
            if account_id is not None:
                self._by_id[account_id] = (time.monotonic(), None)
            return None
        acc = Account(
            id=row.id, username=row.username, org_id=row.org_id, org_code=row.org_code,
            org_state=row.org_state, secret=self.cipher.decrypt(row.secret_enc), key_id=row.key_id,
            state=row.state, expires_at=row.expires_at, ip_networks=parse_allowlist(row.ip_allowlist),
            pay_type=row.pay_type, role=row.role, extension=row.extension,
            report_url=row.report_url, mo_url=row.mo_url, push_dialect=row.push_dialect,
            refund_policy=row.refund_policy, password_hash=row.password_hash, product_ids=subs,
            mo_push_dialect=row.mo_push_dialect)
        with self._lock:
            self._by_id[acc.id] = (time.monotonic(), acc)
            self._name_to_id[acc.username] = acc.id
            self._key_to_id[acc.key_id] = acc.id
        return acc


# -- administration (runs in its own transaction; not on the hot path) -------

class AdminError(ValueError):
    """A management request that cannot be done, with a message for the operator."""


def create_org(conn: Connection, code: str, name: str | None = None) -> int:
    if conn.execute(select(orgs.c.id).where(orgs.c.code == code)).first():
        raise AdminError(f"org {code!r} already exists")
    oid = conn.execute(insert(orgs).values(code=code, name=name or code, state="active",
                                           created_at=now_ms())).inserted_primary_key[0]
    ensure_balance(conn, ("org", oid))
    return oid


def org_id(conn: Connection, code: str) -> int:
    oid = conn.execute(select(orgs.c.id).where(orgs.c.code == code)).scalar()
    if oid is None:
        raise AdminError(f"no org {code!r}")
    return oid


def create_account(conn: Connection, cipher: secrets.Cipher, *, org_code: str, username: str,
                   secret: str | None = None, password: str | None = None,
                   pay_type: str = "account", role: str = "user", extension: str = "",
                   report_url: str | None = None, mo_url: str | None = None,
                   ip_allowlist: str = "", expires_at: int | None = None) -> tuple[int, str, str]:
    """Create an account; returns (id, secret, bearer key). The secret is shown only now."""
    if pay_type not in ("account", "org"):
        raise AdminError("pay_type must be 'account' or 'org'")
    if conn.execute(select(accounts.c.id).where(accounts.c.username == username)).first():
        raise AdminError(f"account {username!r} already exists")
    if extension and not extension.isdigit():
        raise AdminError("extension must be digits")
    parse_allowlist(ip_allowlist)  # raises ValueError on a bad network
    oid = org_id(conn, org_code)
    secret = secret or secrets.new_secret()
    key_id = secrets.new_key_id()
    aid = conn.execute(insert(accounts).values(
        org_id=oid, username=username, secret_enc=cipher.encrypt(secret), key_id=key_id,
        password_hash=secrets.hash_password(password) if password else None, state="active",
        expires_at=expires_at, ip_allowlist=ip_allowlist, pay_type=pay_type, role=role,
        extension=extension, report_url=report_url, mo_url=mo_url, push_dialect="native",
        refund_policy="failed", created_at=now_ms())).inserted_primary_key[0]
    ensure_balance(conn, ("account", aid))
    return aid, secret, secrets.bearer_key(key_id, secret)


def account_id(conn: Connection, username: str) -> int:
    aid = conn.execute(select(accounts.c.id).where(accounts.c.username == username)).scalar()
    if aid is None:
        raise AdminError(f"no account {username!r}")
    return aid


def rotate_key(conn: Connection, cipher: secrets.Cipher, username: str) -> tuple[str, str]:
    aid = account_id(conn, username)
    secret, key_id = secrets.new_secret(), secrets.new_key_id()
    conn.execute(update(accounts).where(accounts.c.id == aid).values(
        secret_enc=cipher.encrypt(secret), key_id=key_id))
    return secret, secrets.bearer_key(key_id, secret)


UPDATABLE = {"state", "expires_at", "ip_allowlist", "pay_type", "role", "extension",
             "report_url", "mo_url", "push_dialect", "mo_push_dialect", "refund_policy"}


def update_account(conn: Connection, username: str, **values) -> None:
    unknown = set(values) - UPDATABLE
    if unknown:
        raise AdminError(f"cannot change {', '.join(sorted(unknown))}")
    if "state" in values and values["state"] not in ACCOUNT_STATES:
        raise AdminError(f"state must be one of {', '.join(ACCOUNT_STATES)}")
    if "pay_type" in values and values["pay_type"] not in ("account", "org"):
        raise AdminError("pay_type must be 'account' or 'org'")
    if "refund_policy" in values and values["refund_policy"] not in ("failed", "never"):
        raise AdminError("refund_policy must be 'failed' or 'never'")
    if "ip_allowlist" in values:
        parse_allowlist(values["ip_allowlist"] or "")
    aid = account_id(conn, username)
    if "pay_type" in values:
        row = conn.execute(select(accounts.c.org_id).where(accounts.c.id == aid)).one()
        ensure_balance(conn, ("org", row.org_id) if values["pay_type"] == "org" else ("account", aid))
    conn.execute(update(accounts).where(accounts.c.id == aid).values(**values))


def set_org_state(conn: Connection, code: str, state: str) -> None:
    if state not in ("active", "disabled"):
        raise AdminError("org state must be 'active' or 'disabled'")
    conn.execute(update(orgs).where(orgs.c.id == org_id(conn, code)).values(state=state))


def create_product(conn: Connection, code: str, name: str, price: int = 1,
                   channel_id: int | None = None) -> int:
    if price < 0:
        raise AdminError("price must not be negative")
    return conn.execute(insert(products).values(code=code, name=name, price=price,
                                                channel_id=channel_id)).inserted_primary_key[0]


def subscribe(conn: Connection, username: str, product_code: str) -> None:
    aid = account_id(conn, username)
    pid = conn.execute(select(products.c.id).where(products.c.code == product_code)).scalar()
    if pid is None:
        raise AdminError(f"no product {product_code!r}")
    if not conn.execute(select(account_products).where(account_products.c.account_id == aid,
                                                       account_products.c.product_id == pid)).first():
        conn.execute(insert(account_products).values(account_id=aid, product_id=pid))
    row = conn.execute(select(accounts.c.pay_type, accounts.c.org_id).where(accounts.c.id == aid)).one()
    ensure_balance(conn, ("org", row.org_id) if row.pay_type == "org" else ("account", aid), pid)


def ensure_balance(conn: Connection, owner: tuple[str, int], product_id: int = 0) -> int:
    where = and_(balances.c.owner_type == owner[0], balances.c.owner_id == owner[1],
                 balances.c.product_id == product_id)
    bid = conn.execute(select(balances.c.id).where(where)).scalar()
    if bid is None:
        bid = conn.execute(insert(balances).values(owner_type=owner[0], owner_id=owner[1],
                                                   product_id=product_id, amount=0)).inserted_primary_key[0]
    return bid


def owner_of(conn: Connection, username: str | None = None, org_code: str | None = None,
             use_org: bool = False) -> tuple[str, int]:
    if org_code and not username:
        return ("org", org_id(conn, org_code))
    row = conn.execute(select(accounts.c.id, accounts.c.org_id, accounts.c.pay_type).where(
        accounts.c.username == username)).first()
    if row is None:
        raise AdminError(f"no account {username!r}")
    if use_org or row.pay_type == "org":
        return ("org", row.org_id)
    return ("account", row.id)


def topup(conn: Connection, owner: tuple[str, int], amount: int, product_code: str | None = None,
          note: str = "") -> int:
    """Add (or with a negative amount, take back) money; returns the new balance."""
    if amount == 0:
        raise AdminError("amount must not be zero")
    pid = 0
    if product_code:
        pid = conn.execute(select(products.c.id).where(products.c.code == product_code)).scalar()
        if pid is None:
            raise AdminError(f"no product {product_code!r}")
    bid = ensure_balance(conn, owner, pid)
    new = conn.execute(update(balances).where(balances.c.id == bid)
                       .values(amount=balances.c.amount + amount).returning(balances.c.amount)).scalar()
    if new < 0:
        raise AdminError("the balance would become negative")
    conn.execute(insert(ledger).values(balance_id=bid, kind="topup" if amount > 0 else "adjust",
                                       amount=amount, note=note, created_at=now_ms()))
    return new


def balances_of(conn: Connection, owner: tuple[str, int]) -> list[dict]:
    rows = conn.execute(
        select(balances.c.id, balances.c.product_id, balances.c.amount, products.c.code, products.c.name)
        .outerjoin(products, products.c.id == balances.c.product_id)
        .where(balances.c.owner_type == owner[0], balances.c.owner_id == owner[1])
        .order_by(balances.c.product_id)).all()
    return [{"balance_id": r.id, "product": r.code, "product_name": r.name, "amount": r.amount}
            for r in rows]


def ledger_mismatches(conn: Connection) -> list[tuple[int, int, int]]:
    """Balances that do not equal the sum of their ledger: (balance_id, amount, ledger sum)."""
    sums = dict(conn.execute(select(ledger.c.balance_id, func.sum(ledger.c.amount))
                             .group_by(ledger.c.balance_id)).all())
    out = []
    for bid, amount in conn.execute(select(balances.c.id, balances.c.amount)).all():
        total = int(sums.get(bid) or 0)
        if total != amount:
            out.append((bid, amount, total))
    return out


def list_accounts(conn: Connection) -> list[dict]:
    rows = conn.execute(
        select(accounts.c.id, accounts.c.username, accounts.c.state, accounts.c.pay_type,
               accounts.c.role, accounts.c.extension, accounts.c.report_url, accounts.c.key_id,
               orgs.c.code.label("org"))
        .join(orgs, orgs.c.id == accounts.c.org_id).order_by(accounts.c.id)).all()
    out = []
    for r in rows:
        owner = ("org", conn.execute(select(accounts.c.org_id).where(accounts.c.id == r.id)).scalar()) \
            if r.pay_type == "org" else ("account", r.id)
        out.append({**r._asdict(), "balances": balances_of(conn, owner)})
    return out

