"""The qxt dialect: ``/qxt/smssenderv2`` (send), ``/qxt/surplus`` (balance), and
pushes of replies (``type=1``) and delivery reports (``type=4``).

Answers are one line of GBK text: ``ok:mid:tele,tele``, ``error:<text>`` for a
refused request, ``fail:<code>:tele,tele`` for numbers that could not be taken
(the document's only code is 999, system error). ``mid`` is the submission id:
one per request, and every report of that request carries it back. The balance
answer is ``ok:sms:<n>:mms:<n>``, or ``失败:error:<text>``.

The choices made where the document is silent or contradicts itself are
written down in docs/dialects/qxt.md.
"""
from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hongyan.core.accept import SendRequest
from hongyan.core.accounts import Account, balances_of
from hongyan.core.notify import PushFormat, PushRequest
from hongyan.domain import numbers
from hongyan.domain.outcomes import Code, Outcome, fail

from . import params

NAME = "qxt"
router = APIRouter(prefix="/qxt", include_in_schema=False)

# Core outcome -> (answer kind, text). "error" answers are "error:<text>";
# "fail" answers are "fail:<text>:<the request's numbers>".
OUTCOMES: dict[Code, tuple[str, str]] = {
    Code.OK: ("ok", ""),
    Code.CONTENT_HELD: ("ok", ""),      # accepted and billed, released after review
    Code.MISSING_PARAMETER: ("error", "用户名或密码错误"),          # 1: user (or password) empty
    Code.INVALID_EXTNO: ("error", "扩展号码错误"),                  # 2
    Code.RECIPIENTS_EMPTY: ("error", "mobile"),                      # 3
    Code.INVALID_NUMBER: ("error", "mobile"),
    Code.CONTENT_EMPTY: ("error", "smg"),                            # 4 (sic)
    Code.CONTENT_TOO_LONG: ("error", "smg"),
    Code.USER_NOT_FOUND: ("error", "无此用户或者密码不对1"),         # 6
    Code.AUTH_FAILED: ("error", "无此用户或者密码不对"),             # 7
    # The vendor's login refuses an account that may not send; its only words for that are 7's.
    Code.ACCOUNT_LOCKED: ("error", "无此用户或者密码不对"),
    Code.ACCOUNT_EXPIRED: ("error", "无此用户或者密码不对"),
    Code.ACCOUNT_DISABLED: ("error", "无此用户或者密码不对"),
    Code.ORG_DISABLED: ("error", "无此用户或者密码不对"),
    Code.IP_DENIED: ("error", "无此用户或者密码不对"),
    Code.PERMISSION_DENIED: ("error", "无此用户或者密码不对"),
    Code.RECIPIENTS_TOO_FEW: ("error", "moblie 提交数小于10，请重新提交!"),              # 8 (sic)
    Code.RECIPIENTS_TOO_MANY: ("error", "moblie is null or mobile number too many!"),  # 9 (sic)
    Code.SYSTEM_ERROR: ("fail", "999"),
}
# Everything else (balance, malformed or repeated parameters, busy, ...): the
# numbers were not taken, and 999 is the document's one code for that.
DEFAULT = ("fail", "999")

MAX_RECIPIENTS = 1000
# Error 8 ("fewer than 10 numbers") is an account restriction on the vendor's
# side, not a rule for everyone: its own example sends to one number.
MIN_RECIPIENTS = 1
MAX_LENGTH = 1000
# The extension plus the channel's own number must fit 20 digits.
MAX_SOURCE = 20
MAX_BODY = 256 * 1024
CHARSET = "gb18030"   # GBK on the wire; GB18030 also carries what GBK cannot (emoji)
MEDIA_TYPE = "text/plain; charset=GBK"


def _text(body: str) -> Response:
    return Response(body.encode(CHARSET), media_type=MEDIA_TYPE)


def answer(outcome: Outcome, tele: str = "") -> str:
    kind, text = OUTCOMES.get(outcome.code, DEFAULT)
    if outcome.ok:
        d = outcome.data
        return f"ok:{d['submission_id']}:{','.join(d['phones'])}"
    if kind == "fail":
        return f"fail:{text}:{tele}"
    return f"error:{text}"


def balance_refusal(outcome: Outcome) -> str:
    """The balance query's failure: always "失败:error:<text>", whatever kind the send answer is."""
    return f"失败:error:{OUTCOMES.get(outcome.code, DEFAULT)[1]}"


def _runtime(request: Request):
    return request.app.state.runtime


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _given_numbers(p: params.Params) -> str:
    """The request's numbers as a fail answer repeats them: trimmed, comma-separated."""
    return ",".join(t.strip() for t in (p.get("tele") or "").split(",") if t.strip())


def _login(request: Request, p: params.Params) -> tuple[Account | None, Outcome | None]:
    """The caller, or why not. The password is MD5 hex (either case), as the document demands."""
    repeated = [n for n in ("user", "password") if n in p.repeated()]
    if repeated:
        return None, fail(Code.INVALID_PARAMETER, f"{repeated[0]} given twice")
    missing = p.missing("user", "password")
    if missing:
        return None, fail(Code.MISSING_PARAMETER, missing[0])
    acc, code = _runtime(request).directory.authenticate(
        p.get("user").strip(), p.get("password"), allow_plain=False)
    if acc is None:
        return None, fail(code)
    refusal = acc.refusal(_client_ip(request))
    return (None, fail(refusal)) if refusal else (acc, None)


def _max_extno(request: Request, acc: Account) -> int:
    # The source number is channel access code + account extension + extno;
    # the channel is chosen later, so the longest access code is assumed.
    codes = [len(ch.config.access_code or "") for ch in _runtime(request).router.channels()]
    return max(0, MAX_SOURCE - len(acc.extension or "") - max(codes, default=0))


async def _read(request: Request) -> params.Params | None:
    try:
        return await params.read(request, MAX_BODY)
    except params.BodyTooLarge:
        return None


@router.api_route("/smssenderv2", methods=["GET", "POST"])
async def send(request: Request) -> Response:
    p = await _read(request)
    if p is None:
        return _text(answer(fail(Code.INVALID_PARAMETER, "body too large")))
    tele = _given_numbers(p)
    acc, refusal = _login(request, p)
    if refusal is not None:
        return _text(answer(refusal, tele))
    for name in ("tele", "msg", "extno", "addseqno"):
        if name in p.repeated():
            return _text(answer(fail(Code.INVALID_PARAMETER, f"{name} given twice"), tele))
    msg = p.get("msg") or ""
    if "\ufffd" in msg:
        # Bytes that are neither GBK nor UTF-8: sending them would garble the text.
        return _text(answer(fail(Code.INVALID_PARAMETER, "msg is not GBK or UTF-8"), tele))
    # addseqno asks for numbered pieces only "when the channel does not support
    # long SMS"; every Hongyan channel sends long SMS as one concatenated
    # message, so the text always goes whole (billed per part, as any long SMS).
    outcome = await _runtime(request).accept.send(SendRequest(
        account=acc, to=p.get("tele") or "", content=msg, extno=(p.get("extno") or "").strip(),
        dialect=NAME, client_ip=_client_ip(request), max_recipients=MAX_RECIPIENTS,
        min_recipients=MIN_RECIPIENTS, max_length=MAX_LENGTH, max_extno=_max_extno(request, acc),
        skip_invalid=True))
    return _text(answer(outcome, tele))


@router.api_route("/surplus", methods=["GET", "POST"])
async def surplus(request: Request) -> Response:
    p = await _read(request)
    if p is None:
        return _text(balance_refusal(fail(Code.INVALID_PARAMETER, "body too large")))
    acc, refusal = _login(request, p)
    if refusal is not None:
        return _text(balance_refusal(refusal))
    rt = _runtime(request)

    def read():
        with rt.reader.connect() as conn:
            return balances_of(conn, acc.owner)
    rows = await asyncio.get_running_loop().run_in_executor(None, read)
    # qxt sends name no product, so the account's plain balance is what pays
    # for them; Hongyan sends no MMS.
    sms = sum(r["amount"] for r in rows if r["product"] is None)
    return _text(f"ok:sms:{sms}:mms:0")


# --- pushes -----------------------------------------------------------------

# What a report's ``msg`` says when the carrier gave no status of its own.
_STATUS_WORD = {"delivered": "DELIVRD", "expired": "EXPIRED", "failed": "UNDELIV"}


def _region(phone: str) -> tuple[str, str]:
    try:
        info = numbers.lookup(phone)
    except ValueError:
        return "", ""
    return info.province, info.city


def _form(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{k}={quote(v.encode(CHARSET), safe='')}" for k, v in pairs).encode("ascii")


class QxtPush(PushFormat):
    """One GET per item, the query string GBK percent-encoded, fields in the order of the
    document's examples (appended to the customer's URL, after its own query if it has one)."""
    name = NAME

    def requests(self, account: Account, kind: str, items: list[dict]) -> list[PushRequest]:
        # No body; the content type only names the query's charset for receivers that look.
        return [PushRequest([i["id"]], method="GET", query=self.query(kind, i),
                            content_type="application/x-www-form-urlencoded; charset=GBK") for i in items]

    def query(self, kind: str, item: dict) -> bytes:
        if kind == "mo":
            area, city = _region(item["from"])
            return _form([("mid", str(item["mo_id"])), ("type", "1"), ("msg", item.get("content") or ""),
                          ("mobile", item["from"]), ("port", item.get("to") or ""),
                          ("area", area), ("city", city)])
        area, city = _region(item["to"])
        status = item.get("carrier_status") or _STATUS_WORD.get(item.get("status"), "UNDELIV")
        if item.get("status") == "delivered":
            status = "DELIVRD"
        # A report's port would be the number the message went out from, which
        # the report does not carry: it is sent empty.
        return _form([("type", "4"), ("msg", status), ("mobile", item["to"]),
                      ("mid", str(item["submission_id"])), ("port", ""), ("area", area), ("city", city)])

    def accepts(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300 and body.strip().lower() == b"ok"


PUSH = QxtPush()
