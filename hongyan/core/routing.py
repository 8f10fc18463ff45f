"""Routes: which channel a message goes out on.

A route says "messages of this account, this product, to numbers of this
carrier go out on this channel, with this weight, at this priority"; an empty
account, product or carrier matches any.  For one message:

1. The routes that match it are tried most specific first: the more of
   account, product and carrier a route names, the earlier it comes; among
   routes naming as many, account counts before product before carrier.  So
   account+product+carrier, then account+product, account+carrier,
   product+carrier, then account, product, carrier, then the catch-all.
2. Within one specificity, lower ``priority`` first.  Routes of the same
   specificity and priority form a group; the group chooses among its
   channels by smooth weighted round-robin (nginx's): deterministic, and
   every run of ``sum(weights)`` messages is spread exactly by weight, evenly
   interleaved rather than in bursts.
3. A channel is skipped while it is disconnected, while it is suspended
   (``suspend_after`` retryable submit failures in a row while it is
   connected suspend it for ``suspend_s``, doubling each time it is
   suspended again before it has a submit accepted, up to ``suspend_max_s``;
   one accepted submit ends it), and, for a message that failed retryably on
   it, on that message's next attempt.  The next group is then tried.  When every candidate is skipped
   that way, the suspended and the already-tried channels are used after all
   (a connected channel that might fail beats one that is down), still in
   route order.
4. A message no route matches takes the fallback that predates routes: its
   product's channel, else the default channel, else any connected channel.
   A message that matches routes stays on them: if none of their channels is
   connected it waits (add a catch-all route to widen the failover).

Routes naming a channel this process does not run (disabled, or not yet
started) are left out, as if they did not exist.

``Router`` keeps the ``routes`` table (and the products' channels) in memory
and reloads them when they change, checked at most once per ``poll_s``.  The
table is small, so the check reads it whole: that catches every edit,
including ``enabled`` flips, which a max(id)/count mark would miss.  Route
choices are pure memory work, one dict lookup and a few comparisons per
message, so a claimed batch is routed without a database round trip.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, update

from hongyan.channels.base import Channel
from hongyan.core.accounts import AdminError
from hongyan.domain.clock import now_ms
from hongyan.store.tables import accounts, channels, products, routes

log = logging.getLogger(__name__)

# The codes hongyan.domain.numbers.lookup gives, which messages.carrier holds.
CARRIERS = ("cmcc", "unicom", "telecom", "cbn", "unknown")
_CARRIER_WORDS = {
    "移动": "cmcc", "中国移动": "cmcc", "mobile": "cmcc", "chinamobile": "cmcc",
    "联通": "unicom", "中国联通": "unicom", "chinaunicom": "unicom",
    "电信": "telecom", "中国电信": "telecom", "chinatelecom": "telecom",
    "广电": "cbn", "中国广电": "cbn", "broadnet": "cbn",
    "未知": "unknown",
}


def carrier_code(value: str) -> str:
    """A carrier code from what an operator types: cmcc/unicom/telecom/cbn/unknown or 移动/联通/电信/广电."""
    v = value.strip()
    if v.lower() in CARRIERS:
        return v.lower()
    key = v.lower().replace(" ", "").replace("_", "")
    if key in _CARRIER_WORDS:
        return _CARRIER_WORDS[key]
    raise ValueError(f"unknown carrier {value!r} (use {', '.join(CARRIERS)} or 移动, 联通, 电信, 广电)")


@dataclass(frozen=True, slots=True)
class Route:
    id: int
    channel_id: int
    account_id: int | None = None
    product_id: int | None = None
    carrier: str | None = None
    weight: int = 1
    priority: int = 0
    enabled: bool = True

    def matches(self, account_id: int | None, product_id: int | None, carrier: str) -> bool:
        return ((self.account_id is None or self.account_id == account_id)
                and (self.product_id is None or self.product_id == product_id)
                and (self.carrier is None or self.carrier == carrier))

    @property
    def specificity(self) -> tuple[int, bool, bool, bool]:
        """Greater is more specific: how many fields are named, then account, product, carrier."""
        a, p, c = self.account_id is not None, self.product_id is not None, self.carrier is not None
        return (a + p + c, a, p, c)


class _Group:
    """Routes with the same selector and priority: smooth weighted round-robin over their channels."""

    __slots__ = ("channel_ids", "weights", "current")

    def __init__(self, weighted: dict[int, int]) -> None:
        self.channel_ids = list(weighted)
        self.weights = [weighted[c] for c in self.channel_ids]
        self.current = [0] * len(self.channel_ids)

    def pick(self, usable: frozenset[int]) -> int | None:
        best, total = -1, 0
        ids, weights, current = self.channel_ids, self.weights, self.current
        for i, cid in enumerate(ids):
            if cid not in usable:
                continue
            current[i] += weights[i]
            total += weights[i]
            if best < 0 or current[i] > current[best]:
                best = i
        if best < 0:
            return None
        current[best] -= total
        return ids[best]


class _Table:
    """One loaded state of the routes table, replaced whole on reload (only its plan cache grows)."""

    __slots__ = ("routes", "groups", "plans")

    def __init__(self, rows: Iterable[Route], running: set[int]) -> None:
        self.routes = tuple(r for r in rows if r.enabled and r.channel_id in running)
        # Routes with the same selector and priority share one group (their
        # weights add up if two name the same channel), most specific first.
        by_key: dict[tuple, dict[int, int]] = {}
        for r in sorted(self.routes, key=lambda r: (tuple(-x for x in r.specificity), r.priority, r.id)):
            weighted = by_key.setdefault((r.account_id, r.product_id, r.carrier, r.priority), {})
            weighted[r.channel_id] = weighted.get(r.channel_id, 0) + r.weight
        self.groups = [(Route(0, 0, a, p, c), _Group(w)) for (a, p, c, _), w in by_key.items()]
        # (account, product, carrier) -> the groups that apply, in order; filled on first use.
        self.plans: dict[tuple, tuple[_Group, ...]] = {}

    def plan(self, account_id: int | None, product_id: int | None, carrier: str) -> tuple[_Group, ...]:
        key = (account_id, product_id, carrier)
        found = self.plans.get(key)
        if found is None:
            if len(self.plans) > 100_000:
                self.plans.clear()  # many accounts x products x carriers: bound the memory
            found = self.plans[key] = tuple(g for sel, g in self.groups
                                            if sel.matches(account_id, product_id, carrier))
        return found


class Router:
    def __init__(self, reader: Engine | None = None, *, poll_s: float = 1.0, suspend_after: int = 3,
                 suspend_s: float = 5.0, suspend_max_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reader = reader
        self.poll_s = poll_s
        self.suspend_after = suspend_after
        self.suspend_s = suspend_s
        self.suspend_max_s = suspend_max_s
        self.clock = clock
        self._channels: dict[int, Channel] = {}
        self._product_channel: dict[int, int] = {}
        self.default_id: int | None = None
        self._rows: tuple[Route, ...] = ()
        self._table = _Table((), set())
        self._loaded: tuple | None = None
        self._checked = float("-inf")
        self._failures: dict[int, int] = {}       # channel -> retryable failures in a row
        self._episodes: dict[int, int] = {}       # channel -> suspensions since its last accepted submit
        self._suspended: dict[int, float] = {}    # channel -> clock time it may be used again

    # -- channels -----------------------------------------------------------
    def add(self, channel: Channel, *, default: bool = False) -> None:
        self._channels[channel.id] = channel
        if default or self.default_id is None:
            self.default_id = channel.id
        self._table = _Table(self._rows, set(self._channels))

    def set_product_channels(self, mapping: dict[int, int]) -> None:
        self._product_channel = dict(mapping)

    def set_routes(self, rows: Iterable[Route]) -> None:
        self._rows = tuple(rows)
        self._table = _Table(self._rows, set(self._channels))

    def routes(self) -> tuple[Route, ...]:
        """The routes in use: enabled, on channels this process runs."""
        return self._table.routes

    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    def channel(self, channel_id: int) -> Channel:
        return self._channels[channel_id]

    def any_connected(self) -> bool:
        return any(ch.connected for ch in self._channels.values())

    def room(self) -> int:
        return sum(ch.room() for ch in self._channels.values() if ch.connected)

    # -- the routes table -----------------------------------------------------
    def refresh_due(self) -> bool:
        return self.reader is not None and self.clock() - self._checked >= self.poll_s

    def invalidate(self) -> None:
        """Reload at the next chance (this process changed the table)."""
        self._checked = float("-inf")

    def refresh(self) -> bool:
        """Reload routes and products' channels if they changed. Blocking: run it off the event loop."""
        if self.reader is None:
            return False
        self._checked = self.clock()
        with self.reader.connect() as conn:
            rows, mapping = load(conn)
        state = (rows, tuple(sorted(mapping.items())))
        if state == self._loaded:
            return False
        # Each assignment replaces a whole object, so a route() running on the
        # event loop sees either the old state or the new one, never a mix.
        self._product_channel = mapping
        self.set_routes(rows)
        if self._loaded is not None:
            log.info("routes reloaded: %d in use of %d", len(self._table.routes), len(rows))
        self._loaded = state
        return True

    # -- health ---------------------------------------------------------------
    def note_sent(self, channel_id: int) -> None:
        if channel_id in self._failures or channel_id in self._episodes:
            self._failures.pop(channel_id, None)
            self._episodes.pop(channel_id, None)
            self._suspended.pop(channel_id, None)

    def note_failed(self, channel_id: int, retryable: bool) -> None:
        """A submit failed; only retryable failures of a connected channel that is not suspended count.

        A final refusal is about the message, not the channel. A channel that is
        down is skipped anyway, and what fails as its links go is no sign of how
        it will do once back. Failures while suspended are of submits made
        before the pause: counting them would stretch the pause for one burst.
        """
        if not retryable:
            return
        ch = self._channels.get(channel_id)
        if (ch is not None and not ch.connected) or self.suspended(channel_id):
            return
        n = self._failures.get(channel_id, 0) + 1
        if n < self.suspend_after:
            self._failures[channel_id] = n
            return
        self._failures[channel_id] = 0
        episode = self._episodes.get(channel_id, 0)
        self._episodes[channel_id] = episode + 1
        pause = min(self.suspend_s * 2 ** min(episode, 16), self.suspend_max_s)
        self._suspended[channel_id] = self.clock() + pause
        log.warning("channel %s suspended for %.0f s after %d retryable failures in a row",
                    ch.config.name if ch is not None else channel_id, pause, n)

    def suspended(self, channel_id: int) -> bool:
        until = self._suspended.get(channel_id)
        return until is not None and self.clock() < until

    # -- choosing ------------------------------------------------------------
    def chooser(self) -> Callable[..., Channel | None]:
        """``route`` for one batch: which channels are up is read once, up front.

        Nothing can change a channel's state between calls made in one stretch
        of code without an ``await`` (channels change it from the event loop),
        so a batch routed that way sees exactly what per-call checks would.
        """
        channels = self._channels
        suspended = self._suspended
        if suspended:
            now = self.clock()
            for cid in [c for c, until in suspended.items() if until <= now]:
                del suspended[cid]  # the pause is over: try it again
        up = frozenset(cid for cid, ch in channels.items() if ch.connected)
        good_base = up.difference(suspended) if suspended else up
        table = self._table
        fallback = self._fallback

        def choose(carrier: str, product_id: int | None, account_id: int | None = None,
                   avoid: Iterable[int] = ()) -> Channel | None:
            good = good_base.difference(avoid) if avoid else good_base
            if table.routes:
                groups = table.plan(account_id, product_id, carrier)
                if groups:
                    for usable in (good, up):
                        for group in groups:
                            cid = group.pick(usable)
                            if cid is not None:
                                return channels[cid]
                    return None
            return fallback(product_id, good) or fallback(product_id, up)
        return choose

    def route(self, carrier: str, product_id: int | None, account_id: int | None = None,
              avoid: Iterable[int] = ()) -> Channel | None:
        """The channel for one message, or None when no channel can take it now.

        ``avoid``: channels the message already failed on; used only if nothing else is.
        """
        return self.chooser()(carrier, product_id, account_id, avoid)

    def _fallback(self, product_id: int | None, usable: frozenset[int]) -> Channel | None:
        if not usable:
            return None
        if product_id is not None:
            cid = self._product_channel.get(product_id)
            if cid in usable:
                return self._channels[cid]
        if self.default_id in usable:
            return self._channels[self.default_id]
        for cid in self._channels:
            if cid in usable:
                return self._channels[cid]
        return None


def load(conn: Connection) -> tuple[tuple[Route, ...], dict[int, int]]:
    """Every route row (disabled ones too), and each product's channel."""
    rows = tuple(Route(id=r.id, channel_id=r.channel_id, account_id=r.account_id, product_id=r.product_id,
                       carrier=r.carrier, weight=r.weight, priority=r.priority, enabled=bool(r.enabled))
                 for r in conn.execute(select(routes).order_by(routes.c.id)).all())
    mapping = {p.id: p.channel_id for p in conn.execute(
        select(products.c.id, products.c.channel_id).where(products.c.channel_id.is_not(None))).all()}
    return rows, mapping


# -- administration (CLI and admin API) ------------------------------------------

def _ref_id(conn: Connection, table, column, value: str | int, what: str) -> int:
    """The id of a channel, account or product given by its name/code or by its id."""
    text = str(value).strip()
    found = conn.execute(select(table.c.id).where(column == text)).scalar()
    if found is None and text.isdigit():
        found = conn.execute(select(table.c.id).where(table.c.id == int(text))).scalar()
    if found is None:
        raise AdminError(f"no {what} {text!r}")
    return found


def add_route(conn: Connection, *, channel: str | int, carrier: str | None = None, product: str | int | None = None,
              account: str | int | None = None, weight: int = 1, priority: int = 0, enabled: bool = True) -> int:
    """Add a route; channel, account and product by name/code (or id). Returns the route id."""
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise AdminError(f"weight must be a whole number >= 1, not {weight!r}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise AdminError(f"priority must be a whole number, not {priority!r}")
    try:
        code = carrier_code(carrier) if carrier not in (None, "") else None
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    values = {
        "channel_id": _ref_id(conn, channels, channels.c.name, channel, "channel"),
        "account_id": (_ref_id(conn, accounts, accounts.c.username, account, "account")
                       if account not in (None, "") else None),
        "product_id": (_ref_id(conn, products, products.c.code, product, "product")
                       if product not in (None, "") else None),
        "carrier": code, "weight": weight, "priority": priority, "enabled": bool(enabled),
        "created_at": now_ms(),
    }
    return conn.execute(insert(routes).values(**values)).inserted_primary_key[0]


def remove_route(conn: Connection, route_id: int) -> None:
    if not conn.execute(delete(routes).where(routes.c.id == route_id)).rowcount:
        raise AdminError(f"no route {route_id}")


def set_route_enabled(conn: Connection, route_id: int, enabled: bool) -> None:
    if not conn.execute(update(routes).where(routes.c.id == route_id).values(enabled=bool(enabled))).rowcount:
        raise AdminError(f"no route {route_id}")


def list_routes(conn: Connection) -> list[dict]:
    """Every route with its channel's name, account's username and product's code, in the order tried."""
    rows = conn.execute(
        select(routes, channels.c.name.label("channel"), accounts.c.username.label("account"),
               products.c.code.label("product"))
        .select_from(routes.join(channels, channels.c.id == routes.c.channel_id)
                     .outerjoin(accounts, accounts.c.id == routes.c.account_id)
                     .outerjoin(products, products.c.id == routes.c.product_id))).all()
    out = [{"id": r.id, "channel": r.channel, "channel_id": r.channel_id, "account": r.account,
            "account_id": r.account_id, "product": r.product, "product_id": r.product_id,
            "carrier": r.carrier, "weight": r.weight, "priority": r.priority, "enabled": bool(r.enabled),
            "created_at": r.created_at} for r in rows]
    order = {r.id: i for i, r in enumerate(sorted(
        (Route(d["id"], d["channel_id"], d["account_id"], d["product_id"], d["carrier"], d["weight"],
               d["priority"]) for d in out),
        key=lambda r: (tuple(-x for x in r.specificity), r.priority, r.id)))}
    return sorted(out, key=lambda d: order[d["id"]])
