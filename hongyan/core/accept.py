"""Accept: every rule a send request meets, then one durable commit, then the answer.

The rules that need no database (who, from where, what, to whom, how much, the
account's content and number policy) run on the event loop against cached
account data, rules, word lists and blacklists. The traffic limits (concurrent
requests, messages a second, per-number frequency) are counters in this
process or in Redis. What needs the database (the idempotency key, the
balance, the monthly quota, the inserts) runs in a batched writer job, so a
burst of requests shares one transaction and one commit. A request is answered
"ok" only after that commit.

Numbers a rule bars (blacklisted: ``MBBLACK``; over a frequency limit:
``DISTURB``) do not refuse the request: they are written in the same commit
already failed, with their report, and cost nothing. Content that hits a
review word is accepted but held (``CONTENT_HELD``) until an operator
approves or rejects it (``core.review``).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy import Connection, func, select, tuple_

from hongyan.domain import numbers, segments, signatures, windows
from hongyan.domain.clock import now_ms, to_ms
from hongyan.domain.outcomes import Code, Outcome, fail, ok
from hongyan.store.bulk import insert_rows, select_rows, update_rows
from hongyan.store.ids import IdBlocks
from hongyan.store.tables import account_usage, balances, ledger, messages, reviews, submissions
from hongyan.store.writer import Writer, batched

from .accounts import Account, Directory
from .blacklist import Blacklist
from .limits import Limits, LimitsUnavailable, LocalLimits
from .notify import SESSION_DIALECTS
from .receive import Final, Receiver
from .rules import RuleBook, RuleSettings

log = logging.getLogger(__name__)

SUBMISSION_COLUMNS = ("id", "account_id", "idempotency_key", "request_hash", "client_ref", "dialect", "content",
                      "extno", "product_id", "balance_id", "recipients", "parts", "cost", "state",
                      "scheduled_at", "window_start", "window_end", "created_at")
LEDGER_COLUMNS = ("balance_id", "kind", "amount", "submission_id", "note", "created_at")
MESSAGE_COLUMNS = ("id", "submission_id", "account_id", "phone", "carrier", "parts", "cost", "state",
                   "due_at", "attempts", "parts_done", "refunded")
MAX_SCHEDULE_AHEAD_MS = 366 * 24 * 3600 * 1000
# A scheduled time a little in the past (clock skew, slow client) means "now".
SCHEDULE_GRACE_MS = 5 * 60 * 1000
BLACKLISTED = "MBBLACK"
DISTURB = "DISTURB"
_SIGNATURE_REFUSAL = {"missing": Code.SIGNATURE_MISSING}
_SIGNATURE_DETAIL = {"missing": "the text has no 【signature】", "not_approved": "signature not approved: 【{}】",
                     "multiple": "more than one signature", "empty": "empty signature 【】"}


class _Anything:
    """The approved signatures when the account has no list: any signature may go."""

    def __contains__(self, item: object) -> bool:
        return True


@dataclass(slots=True)
class SendRequest:
    account: Account
    to: str | list[str]
    content: str
    extno: str = ""
    client_ref: str | None = None
    idempotency_key: str | None = None
    product: str | None = None
    schedule_at: int | None = None          # epoch ms
    dialect: str = "native"
    client_ip: str | None = None
    # Limits belong to the interface the request came through (each vendor
    # document states its own), so the front door passes them in.
    max_recipients: int = 50_000
    min_recipients: int = 1
    max_length: int = 1000
    max_extno: int = 8
    skip_invalid: bool = False
    # A daily window (seconds after local midnight, see domain.windows) the
    # request asked for (kxt3 dailyBeginTime / dailyEndTime): outside it the
    # messages wait for the next opening.
    daily_window: tuple[int, int] | None = None


@dataclass(slots=True)
class _Prepared:
    account_id: int
    balance_id: int
    product_id: int | None
    price: int
    parts: int
    phones: list[str]
    carriers: list[str]
    content: str
    extno: str
    client_ref: str | None
    idempotency_key: str | None
    request_hash: str | None
    due_at: int
    scheduled: bool
    dialect: str
    rules: RuleSettings
    invalid: list[str] = field(default_factory=list)
    # Per phone: None to send, else the status it ends with unsent (MBBLACK, DISTURB).
    barred: list[str | None] | None = None
    held: str | None = None           # the review word that holds the submission
    window: tuple[int, int] | None = None   # the request's daily send window
    # What this request took of the traffic allowances, to give back if it is not accepted.
    took: int = 0                     # from the messages-a-second bucket
    counted: bool = False             # sendable() was counted by the frequency limits

    @property
    def billed(self) -> int:
        if self.barred is None:
            return len(self.phones)
        return self.barred.count(None)

    @property
    def cost(self) -> int:
        return self.billed * self.parts * self.price

    def sendable(self) -> list[str]:
        if self.barred is None:
            return self.phones
        return [p for p, b in zip(self.phones, self.barred) if b is None]

    def bar(self, phones: set[str], status: str) -> None:
        if self.barred is None:
            self.barred = [None] * len(self.phones)
        for i, p in enumerate(self.phones):
            if self.barred[i] is None and p in phones:
                self.barred[i] = status


def _request_hash(req: SendRequest, phones: list[str]) -> str:
    h = hashlib.sha256()
    for piece in (",".join(phones), req.content, req.extno, req.product or "", str(req.schedule_at or "")):
        h.update(piece.encode())
        h.update(b"\0")
    return h.hexdigest()


class AcceptService:
    def __init__(self, directory: Directory, writer: Writer, *,
                 on_accepted: Callable[..., None] | None = None,
                 on_events: Callable[[], None] | None = None,
                 rulebook: RuleBook | None = None, blacklist: Blacklist | None = None,
                 limits: Limits | None = None, receiver: Receiver | None = None) -> None:
        """``on_accepted(submission_id, content, extno, product_id, waiting, window)`` is told
        of every committed submission (the dispatcher keeps the content at hand;
        ``waiting`` when its messages are not due yet: scheduled or held; ``window``
        the request's daily send window or None).
        ``on_events`` is told when a commit wrote report events (barred numbers)."""
        self.directory = directory
        self.writer = writer
        # One rule cache for accept and the receiver (opt-out words), invalidated in one place.
        self.rulebook = rulebook or (receiver.rulebook if receiver else RuleBook(directory.engine))
        # A removal's whole-table read runs on a thread, off the event loop.
        self.blacklist = blacklist or Blacklist(directory.engine, background=True)
        self.limits = limits or LocalLimits()
        self.receiver = receiver or Receiver(directory, self.rulebook)
        self.on_events = on_events
        self.submission_ids = IdBlocks("submission", 1000)
        self.message_ids = IdBlocks("message", 20_000)
        writer.on_rollback.extend([self.submission_ids.forget, self.message_ids.forget])
        self.on_accepted = on_accepted

    def prepare(self, req: SendRequest) -> Outcome | _Prepared:
        """Every rule that needs no database. Returns a refusal or the work to commit."""
        acc = req.account
        refusal = acc.refusal(req.client_ip)
        if refusal:
            return fail(refusal)
        content = req.content or ""
        if not content.strip():
            return fail(Code.CONTENT_EMPTY)
        if len(content) > req.max_length:
            return fail(Code.CONTENT_TOO_LONG, f"{len(content)} > {req.max_length} characters")
        rules = self.rulebook.rules(acc.id)
        checked = self._content_policy(rules, content)
        if isinstance(checked, Outcome):
            return checked
        content, held = checked
        extno = (req.extno or "").strip()
        if extno and (not extno.isdigit() or len(extno) > req.max_extno):
            return fail(Code.INVALID_EXTNO, extno)
        try:
            parsed = numbers.parse_recipients(req.to, limit=req.max_recipients)
        except numbers.TooManyRecipients:
            return fail(Code.RECIPIENTS_TOO_MANY, f"more than {req.max_recipients}")
        if not parsed.valid and not parsed.invalid:
            return fail(Code.RECIPIENTS_EMPTY)
        if parsed.invalid and not req.skip_invalid:
            return fail(Code.INVALID_NUMBER, parsed.invalid[0])
        phones = parsed.valid
        if not phones:
            return fail(Code.RECIPIENTS_EMPTY, "no valid number")
        if len(phones) < req.min_recipients:
            return fail(Code.RECIPIENTS_TOO_FEW, f"{len(phones)} < {req.min_recipients}")
        now = now_ms()
        due_at, scheduled = now, False
        if req.schedule_at is not None:
            if req.schedule_at < now - SCHEDULE_GRACE_MS or req.schedule_at > now + MAX_SCHEDULE_AHEAD_MS:
                return fail(Code.INVALID_SCHEDULE)
            if req.schedule_at > now:
                due_at, scheduled = req.schedule_at, True
        if req.daily_window is not None:
            at = datetime.fromtimestamp(due_at / 1000)
            opens = windows.next_open(req.daily_window, at)
            if opens != at:
                due_at, scheduled = to_ms(opens), True
        # The account's hours are checked at the time the messages become due,
        # after the request's own daily window has moved it.
        hours = self.rulebook.hours(rules)
        if hours is not None and not windows.is_open_at(hours, due_at):
            return fail(Code.OUTSIDE_SEND_WINDOW, f"this account sends only {rules.allowed_hours}")
        product_id, price = None, 1
        if req.product:
            product = self.directory.product(req.product)
            if product is None or product.id not in acc.product_ids:
                return fail(Code.PRODUCT_UNAVAILABLE, req.product)
            product_id, price = product.id, product.price
        balance_id = self.directory.balance_id(acc.owner, product_id or 0)
        if balance_id is None:
            return fail(Code.PRODUCT_BALANCE if product_id else Code.INSUFFICIENT_BALANCE)
        prepared = _Prepared(
            account_id=acc.id, balance_id=balance_id, product_id=product_id, price=price,
            parts=segments.count_parts(content), phones=phones,
            carriers=[numbers.lookup(p).carrier for p in phones], content=content, extno=extno,
            client_ref=req.client_ref, idempotency_key=req.idempotency_key,
            request_hash=_request_hash(req, phones) if req.idempotency_key else None,
            due_at=due_at, scheduled=scheduled, dialect=req.dialect, rules=rules,
            invalid=parsed.invalid, held=held, window=req.daily_window)
        self.blacklist.refresh()
        if not self.blacklist.empty:
            barred = {p for p in phones if self.blacklist.blocked(acc.id, p)}
            if barred:
                prepared.bar(barred, BLACKLISTED)
        return prepared

    def _content_policy(self, rules: RuleSettings, content: str) -> Outcome | tuple[str, str | None]:
        """Signature, templates, sensitive words: the text to send and the review word
        that holds it, or the refusal."""
        if rules.signature_required or rules.default_signature or rules.signatures:
            verdict = signatures.check(content, required=rules.signature_required,
                                       approved=rules.signatures or _Anything(),
                                       default=rules.default_signature)
            if not verdict.ok:
                found = verdict.signature.text if verdict.signature else ""
                return fail(_SIGNATURE_REFUSAL.get(verdict.reason, Code.SIGNATURE_INVALID),
                            _SIGNATURE_DETAIL[verdict.reason].format(found))
            signed = verdict.text or content
        else:
            signed = content
        if rules.templates_only:
            approved = self.rulebook.templates(rules)
            if not approved.fits(signed) and (signed == content or not approved.fits(content)):
                return fail(Code.NOT_WHITELISTED, "the text matches none of the account's templates")
        hit = self.rulebook.words().match(signed)
        if hit is not None:
            if hit.kind == "block":
                return fail(Code.CONTENT_BLOCKED, hit.word)
            return signed, hit.word
        return signed, None

    async def _traffic(self, p: _Prepared) -> Outcome | None:
        """Messages a second and per-number frequency (the counters may live in Redis)."""
        rules = p.rules
        if rules.mps:
            amount = p.billed * p.parts
            if amount > rules.mps:
                return fail(Code.RATE_LIMITED, f"{amount} messages in one request, limit {rules.mps} a second")
            if not await self.limits.take(p.account_id, amount, rules.mps):
                return fail(Code.RATE_LIMITED, f"more than {rules.mps} messages a second")
            p.took = amount
        if rules.per_number_daily or rules.same_content_minutes:
            over = await self.limits.frequency(p.account_id, p.sendable(), p.content,
                                               per_day=rules.per_number_daily,
                                               same_minutes=rules.same_content_minutes)
            p.counted = True
            if over:
                p.bar(over, DISTURB)
                if p.took:
                    # Numbers barred here are never sent: they use none of the second's allowance.
                    back = p.took - p.billed * p.parts
                    await self.limits.put_back(p.account_id, back, rules.mps)
                    p.took -= back
        return None

    async def _give_back(self, preps: list[_Prepared]) -> None:
        """Return what refused requests took of the rate and frequency allowances."""
        for p in preps:
            try:
                if p.took:
                    await self.limits.put_back(p.account_id, p.took, p.rules.mps)
                    p.took = 0
                if p.counted and p.sendable():
                    await self.limits.uncount(p.account_id, p.sendable(), p.content,
                                              per_day=p.rules.per_number_daily,
                                              same_minutes=p.rules.same_content_minutes)
                p.counted = False
            except LimitsUnavailable as exc:
                # The request is refused either way; the counts expire by themselves.
                log.warning("could not give back the traffic counts of account %d: %s", p.account_id, exc)

    async def _limited(self, preps: list[_Prepared], dialect: str, job, arg) -> Outcome:
        """Run the commit ``job`` inside the account's traffic limits.

        The concurrency slot is given back however the request ends (refused,
        failed, or its caller gone). What the request took of the rate and
        frequency allowances is given back when it is not accepted: refused
        by a limit, the balance or the quota, a replay of an earlier request,
        or a commit that failed. When the counters cannot be reached the
        request is refused ``SYSTEM_BUSY``: the limits are never waived.
        """
        account_id = preps[0].account_id
        # A session's window bounds its requests in flight; the concurrency
        # rule is for HTTP callers.
        limit = 0 if dialect in SESSION_DIALECTS else preps[0].rules.concurrency
        ticket = None
        give_back = True
        try:
            if limit:
                ticket = await self.limits.enter(account_id, limit)
                if ticket is None:
                    return fail(Code.TOO_MANY_CONCURRENT, f"more than {limit} requests at once")
            for p in preps:
                refusal = await self._traffic(p)
                if refusal is not None:
                    return refusal
            try:
                outcome = await self.writer.run(job, arg)
            except asyncio.CancelledError:
                # The caller went away, but the writer commits the job all the
                # same: what it took stays taken.
                give_back = False
                raise
            give_back = not outcome.ok or bool(outcome.data.get("replayed"))
            return outcome
        except LimitsUnavailable as exc:
            log.warning("traffic limits unavailable, refusing a request of account %d: %s", account_id, exc)
            return fail(Code.SYSTEM_BUSY, "the traffic limits cannot be checked now")
        finally:
            if give_back:
                await self._give_back(preps)
            if ticket is not None:
                try:
                    await self.limits.leave(account_id, ticket)
                except LimitsUnavailable as exc:
                    # The request's own answer stands; the slot's lease frees it.
                    log.warning("could not give back a concurrency slot of account %d: %s", account_id, exc)

    def _told(self, outcome: Outcome, p: _Prepared, submission_id: int) -> None:
        if self.on_accepted is not None:
            self.on_accepted(submission_id, p.content, p.extno, p.product_id, p.scheduled or p.held is not None,
                             p.window)
        if p.barred is not None and self.on_events is not None:
            self.on_events()

    async def send(self, req: SendRequest) -> Outcome:
        prepared = self.prepare(req)
        if isinstance(prepared, Outcome):
            return await self._or_earlier(req, prepared)
        outcome = await self._limited([prepared], req.dialect, self._commit, prepared)
        if outcome.ok and not outcome.data["replayed"]:
            self._told(outcome, prepared, outcome.data["submission_id"])
        if outcome.code in _BEFORE_COMMIT:
            # Refused before the commit looked the key up.
            return await self._or_earlier(req, outcome)
        return outcome

    async def _or_earlier(self, req: SendRequest, refusal: Outcome) -> Outcome:
        """The first answer, when a refused request repeats an accepted one's idempotency key.

        A retry must get the first answer even if a rule would refuse the
        request now (a word listed since, the allowed hours closed, the second's
        allowance used): otherwise a client that lost the first answer is told
        that messages already on their way were refused.
        """
        if not req.idempotency_key or refusal.code is Code.DUPLICATE_REQUEST:
            return refusal
        if req.account.refusal(req.client_ip):
            return refusal  # the account may not send (or not from there): it is told nothing more
        earlier = await asyncio.get_running_loop().run_in_executor(None, self._find_earlier, req)
        return refusal if earlier is None else earlier

    def _find_earlier(self, req: SendRequest) -> Outcome | None:
        try:
            parsed = numbers.parse_recipients(req.to, limit=req.max_recipients)
        except numbers.TooManyRecipients:
            return None
        with self.directory.engine.connect() as conn:
            row = conn.execute(_EARLIER.where(submissions.c.account_id == req.account.id,
                                              submissions.c.idempotency_key == req.idempotency_key)).first()
            if row is None:
                return None
            if row.request_hash != _request_hash(req, parsed.valid):
                return fail(Code.DUPLICATE_REQUEST, req.idempotency_key)
            return _replayed(conn, row, parsed.invalid, "")

    async def send_together(self, reqs: list[SendRequest]) -> Outcome:
        """Accept several submissions (one request with several texts) all or none.

        The first submission's id is the request's id; the others carry it as
        their ``client_ref``, so every report of the request names it. The data
        of the answer adds ``submission_ids``.
        """
        if len(reqs) == 1:
            return await self.send(reqs[0])
        preps = []
        for req in reqs:
            prepared = self.prepare(req)
            if isinstance(prepared, Outcome):
                return prepared
            preps.append(prepared)
        outcome = await self._limited(preps, reqs[0].dialect, self._commit_together, preps)
        if outcome.ok:
            for p, sid in zip(preps, outcome.data["submission_ids"]):
                self._told(outcome, p, sid)
        return outcome

    def _commit_together(self, conn: Connection, preps: list[_Prepared]) -> Outcome:
        # Check the total against the balances first (locked on PostgreSQL), so a
        # request whose later texts the money would not cover is refused whole.
        need: dict[int, int] = {}
        for p in preps:
            need[p.balance_id] = need.get(p.balance_id, 0) + p.cost
        have = dict(conn.execute(select(balances.c.id, balances.c.amount)
                                 .where(balances.c.id.in_(list(need))).with_for_update()).all())
        for bid, cost in need.items():
            if have.get(bid, 0) < cost:
                return fail(Code.INSUFFICIENT_BALANCE, f"needs {cost}, has {have.get(bid, 0)}")
        # The same for the monthly quota (its rows locked too): each text alone
        # may fit while all of them together do not.
        _, used = _month_usage(conn, preps)
        volume: dict[int, int] = {}
        for p in preps:
            if p.rules.monthly_quota:
                volume[p.account_id] = volume.get(p.account_id, 0) + p.billed * p.parts
        for p in preps:
            quota, n = p.rules.monthly_quota, volume.get(p.account_id, 0)
            if quota and used.get(p.account_id, 0) + n > quota:
                return fail(Code.QUOTA_EXCEEDED,
                            f"{used.get(p.account_id, 0)} of {quota} used this month, this needs {n}")
        first = self._commit(conn, preps[:1])[0]
        if not first.ok:
            return first
        request_id = first.data["submission_id"]
        for p in preps[1:]:
            p.client_ref = str(request_id)
        rest = self._commit(conn, preps[1:])
        if not all(o.ok for o in rest):
            # The balance was checked and locked above: roll everything back.
            raise RuntimeError(f"a joint submission was refused: {[o.code for o in rest if not o.ok]}")
        done = [first, *rest]
        held = next((o for o in done if o.code == Code.CONTENT_HELD), None)
        return Outcome(held.code if held else Code.OK, held.detail if held else "", dict(submission_id=request_id, submission_ids=[o.data["submission_id"] for o in done],
                  message_ids=[m for o in done for m in o.data["message_ids"]],
                  phones=[ph for o in done for ph in o.data["phones"]], parts=first.data["parts"],
                  cost=sum(o.data["cost"] for o in done), balance=rest[-1].data["balance"],
                  invalid=[i for o in done for i in o.data["invalid"]], scheduled_at=first.data["scheduled_at"],
                  replayed=False))

    @batched
    def _commit(self, conn: Connection, preps: list[_Prepared]) -> list[Outcome]:
        results: list[Outcome | None] = [None] * len(preps)
        todo, same_as = self._idempotency(conn, preps, results)
        self._accept(conn, preps, todo, results)
        for i, first in same_as:
            # The same key twice in one batch: the repeat gets the first one's answer.
            prev = results[first]
            if preps[i].request_hash != preps[first].request_hash:
                results[i] = fail(Code.DUPLICATE_REQUEST, preps[i].idempotency_key or "")
            elif prev is not None and prev.ok:
                results[i] = Outcome(prev.code, prev.detail, {**prev.data, "replayed": True})
            else:
                results[i] = prev
        return results  # type: ignore[return-value]

    def _accept(self, conn: Connection, preps: list[_Prepared], todo: list[int], results: list) -> None:

        # Balances: read each once (locked on PostgreSQL), decide in order, write each once.
        amounts = dict(conn.execute(
            select(balances.c.id, balances.c.amount)
            .where(balances.c.id.in_({preps[i].balance_id for i in todo})).with_for_update()).all()) if todo else {}
        period, used = _month_usage(conn, [preps[i] for i in todo])
        start_used = dict(used)
        accepted: list[int] = []
        for i in todo:
            p = preps[i]
            have = amounts.get(p.balance_id, 0)
            if have < p.cost:
                results[i] = fail(Code.INSUFFICIENT_BALANCE, f"needs {p.cost}, has {have}")
                continue
            quota = p.rules.monthly_quota
            if quota:
                volume = p.billed * p.parts
                if used.get(p.account_id, 0) + volume > quota:
                    results[i] = fail(Code.QUOTA_EXCEEDED,
                                      f"{used.get(p.account_id, 0)} of {quota} used this month, this needs {volume}")
                    continue
                used[p.account_id] = used.get(p.account_id, 0) + volume
            amounts[p.balance_id] = have - p.cost
            accepted.append(i)
        if not accepted:
            return
        touched = {preps[i].balance_id for i in accepted}
        update_rows(conn, balances, ("amount",), "id = ?", [(amounts[b], b) for b in touched])
        if used != start_used:
            update_rows(conn, account_usage, ("used",), "account_id = ? AND period = ?",
                        [(n, a, period) for a, n in used.items() if n != start_used[a]])

        now = now_ms()
        sub_ids = self.submission_ids.take(conn, len(accepted))
        msg_ids = self.message_ids.take(conn, sum(len(preps[i].phones) for i in accepted))
        sub_rows, ledger_rows, msg_rows = [], [], []
        finals: list[Final] = []
        cursor = 0
        for sid, i in zip(sub_ids, accepted):
            p = preps[i]
            n = len(p.phones)
            ids = msg_ids[cursor:cursor + n]
            cursor += n
            state = "held" if p.held is not None else "scheduled" if p.scheduled else "accepted"
            sub_rows.append((sid, p.account_id, p.idempotency_key, p.request_hash, p.client_ref, p.dialect,
                             p.content, p.extno, p.product_id, p.balance_id, n, p.parts, p.cost, state,
                             p.due_at if p.scheduled else None, *(p.window or (None, None)), now))
            ledger_rows.append((p.balance_id, "debit", -p.cost, sid, "", now))
            per = p.parts * p.price
            mstate = "held" if p.held is not None else "queued"
            if p.barred is None:
                msg_rows.extend((mid, sid, p.account_id, ph, ca, p.parts, per, mstate, p.due_at, 0, 0, False)
                                for mid, ph, ca in zip(ids, p.phones, p.carriers))
            else:
                # Barred numbers cost nothing and end at once; finalize writes their reports.
                for mid, ph, ca, bar in zip(ids, p.phones, p.carriers, p.barred):
                    msg_rows.append((mid, sid, p.account_id, ph, ca, p.parts, 0 if bar else per,
                                     "queued" if bar else mstate, p.due_at, 0, 0, False))
                    if bar:
                        finals.append(Final(mid, "failed", bar))
            data = dict(submission_id=sid, message_ids=ids, phones=p.phones, parts=p.parts,
                        cost=p.cost, balance=amounts[p.balance_id], invalid=p.invalid,
                        scheduled_at=p.due_at if p.scheduled else None, replayed=False)
            results[i] = ok(**data) if p.held is None else Outcome(Code.CONTENT_HELD, p.held, data)
        insert_rows(conn, submissions, SUBMISSION_COLUMNS, sub_rows)
        insert_rows(conn, ledger, LEDGER_COLUMNS, ledger_rows)
        insert_rows(conn, messages, MESSAGE_COLUMNS, msg_rows)
        if finals:
            self.receiver.finalize(conn, finals, now)


    def _idempotency(self, conn: Connection, preps: list[_Prepared],
                     results: list) -> tuple[list[int], list[tuple[int, int]]]:
        """Answer repeats of an earlier request with its first result; return the rest."""
        keyed = [(i, p) for i, p in enumerate(preps) if p.idempotency_key]
        if not keyed:
            return list(range(len(preps))), []
        found = {(r.account_id, r.idempotency_key): r for r in conn.execute(
            _EARLIER.where(tuple_(submissions.c.account_id, submissions.c.idempotency_key).in_(
                [(p.account_id, p.idempotency_key) for _, p in keyed]))).all()}
        seen: dict[tuple, int] = {}
        todo, same_as = [], []
        for i, p in enumerate(preps):
            key = (p.account_id, p.idempotency_key)
            if p.idempotency_key and key in found:
                results[i] = self._replay(conn, p, found[key])
            elif p.idempotency_key and key in seen:
                same_as.append((i, seen[key]))
            else:
                if p.idempotency_key:
                    seen[key] = i
                todo.append(i)
        return todo, same_as

    def _replay(self, conn: Connection, p: _Prepared, row) -> Outcome:
        if row.request_hash != p.request_hash:
            return fail(Code.DUPLICATE_REQUEST, p.idempotency_key or "")
        return _replayed(conn, row, p.invalid, p.held or "")


# The refusals of the traffic limits, which come before the commit's idempotency check.
_BEFORE_COMMIT = frozenset({Code.RATE_LIMITED, Code.TOO_MANY_CONCURRENT, Code.SYSTEM_BUSY})
# What a repeated idempotency key is answered from.
_EARLIER = select(submissions.c.id, submissions.c.account_id, submissions.c.idempotency_key,
                  submissions.c.request_hash, submissions.c.parts, submissions.c.cost,
                  submissions.c.scheduled_at, submissions.c.state, submissions.c.balance_id)


def _replayed(conn: Connection, row, invalid: list[str], held_word: str) -> Outcome:
    """The answer to a repeat of the submission ``row`` (an ``_EARLIER`` row)."""
    rows = conn.execute(select(messages.c.id, messages.c.phone)
                        .where(messages.c.submission_id == row.id).order_by(messages.c.id)).all()
    bal = conn.execute(select(balances.c.amount).where(balances.c.id == row.balance_id)).scalar()
    data = dict(submission_id=row.id, message_ids=[r.id for r in rows], phones=[r.phone for r in rows],
                parts=row.parts, cost=row.cost, balance=bal, invalid=invalid,
                scheduled_at=row.scheduled_at, replayed=True)
    # A replay answers as the first request was answered: a submission held
    # for review said so then (and a caller must not take it for sent),
    # whatever an operator has decided since.
    was_held = row.state == "held" or conn.execute(
        select(reviews.c.id).where(reviews.c.submission_id == row.id)).first() is not None
    return Outcome(Code.CONTENT_HELD, held_word, data) if was_held else ok(**data)


def _month_usage(conn: Connection, preps: list[_Prepared]) -> tuple[str, dict[int, int]]:
    """This month and what each account with a monthly quota has used of it (rows locked).

    The running count lives in ``account_usage``: one row read per account and
    batch. An account's first request of the month (or since its quota was
    set) counts the month's messages once to start the row, as the running
    count counts them: every message billed at accept (a number barred then
    is not; one cancelled or rejected later still is).
    """
    now = datetime.now()
    period = now.strftime("%Y%m")
    ids = {p.account_id for p in preps if p.rules.monthly_quota}
    if not ids:
        return period, {}
    # Once per commit on the hot path: straight to the driver (a Core select costs
    # ~100 µs here, several times the rest of the quota check).
    order = sorted(ids)
    used = dict(select_rows(
        conn, f"SELECT account_id, used FROM account_usage WHERE period = ? AND account_id IN "
              f"({', '.join('?' * len(order))})", [period, *order], lock=True))
    missing = ids - set(used)
    if missing:
        start = to_ms(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
        # Barred at accept: ended MBBLACK or DISTURB without being sent. (A
        # carrier's own MBBLACK comes back for a message that was sent.)
        barred = func.coalesce(messages.c.status, "").in_((BLACKLISTED, DISTURB)) & messages.c.submitted_at.is_(None)
        volume = func.coalesce(func.sum(messages.c.parts), 0)
        counted = dict(conn.execute(
            select(submissions.c.account_id, volume)
            .select_from(submissions.join(messages, messages.c.submission_id == submissions.c.id))
            .where(submissions.c.account_id.in_(missing), submissions.c.created_at >= start, ~barred)
            .group_by(submissions.c.account_id)).all())
        rows = [{"account_id": a, "period": period, "used": int(counted.get(a, 0))} for a in missing]
        conn.execute(account_usage.insert(), rows)
        used.update({r["account_id"]: r["used"] for r in rows})
    return period, used
