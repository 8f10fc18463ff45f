"""The ``HttpBatchSendSM`` vendor API: batch send, per-product balance, report and MO pushes.

Answers are plain text lines separated by a bare ``\\n``: the first line is
``<yyyyMMddHHmmss>,<code>``, the next ones carry the data (the msgid of a send,
a ``product,amount`` line per product of a balance query). One send answers
one msgid for all its numbers, so the msgid is Hongyan's submission id, and
each report pushed for one of those numbers carries it back.

Pushes are GET requests to the customer's URL, one per report or reply, in
the document's parameter order. ``receiver`` and ``pswd`` are the customer's
own check values: they are kept in the callback URL's query string
(``http://host/path?receiver=admin&pswd=12345``) and sent back in their place.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import Response

from hongyan.core.accept import SendRequest
from hongyan.core.accounts import Account, balances_of
from hongyan.core.notify import PushFormat, PushRequest
from hongyan.domain.outcomes import Code, Outcome, fail

from . import params
from .rest import client_ip, runtime

NAME = "httpbatch"
MAX_RECIPIENTS = 50_000
# The parameter table allows 700 characters, error 106 says "> 536": a
# customer sizes its texts by the parameter table, so 700 is the limit.
MAX_LENGTH = 700
# needstatus=false is remembered on the submission (this API has no client
# reference of its own), so that its reports are never pushed.
NO_STATUS = "httpbatch:needstatus=false"

# Every core outcome as this vendor's code and text. The answer carries only
# the code; the text is the document's, for logs and the integrator's guide.
OUTCOMES: dict[Code, tuple[str, str]] = {
    Code.OK: ("0", "提交成功"),
    Code.CONTENT_HELD: ("0", "提交成功"),
    Code.USER_NOT_FOUND: ("101", "无此用户"),
    Code.AUTH_FAILED: ("102", "密码错"),
    Code.RATE_LIMITED: ("103", "提交过快"),
    Code.TOO_MANY_CONCURRENT: ("103", "提交过快"),
    Code.SYSTEM_BUSY: ("104", "系统忙"),
    Code.SYSTEM_ERROR: ("104", "系统忙"),
    Code.CONTENT_BLOCKED: ("105", "敏感短信"),
    Code.CONTENT_EMPTY: ("106", "消息长度错"),
    Code.CONTENT_TOO_LONG: ("106", "消息长度错"),
    Code.RECIPIENTS_EMPTY: ("108", "手机号码个数错"),
    Code.RECIPIENTS_TOO_MANY: ("108", "手机号码个数错"),
    Code.RECIPIENTS_TOO_FEW: ("108", "手机号码个数错"),
    # Invalid numbers are left out of a send (see ``send``); this is the
    # answer only if the core refuses one anyway.
    Code.INVALID_NUMBER: ("108", "手机号码个数错"),
    Code.INSUFFICIENT_BALANCE: ("109", "无发送额度"),
    Code.PRODUCT_BALANCE: ("109", "无发送额度"),
    Code.OUTSIDE_SEND_WINDOW: ("110", "不在发送时间内"),
    Code.QUOTA_EXCEEDED: ("111", "超出该账户当月发送额度限制"),
    Code.PRODUCT_UNAVAILABLE: ("112", "无此产品，用户没有订购该产品"),
    Code.INVALID_EXTNO: ("113", "extno格式错"),
    Code.CONTENT_REJECTED: ("115", "自动审核驳回"),
    Code.SIGNATURE_MISSING: ("116", "签名不合法，未带签名"),
    Code.SIGNATURE_INVALID: ("116", "签名不合法，未带签名"),
    Code.IP_DENIED: ("117", "IP地址认证错"),
    Code.PERMISSION_DENIED: ("118", "用户没有相应的发送权限"),
    # The document has no word for a locked or disabled account: it may not send.
    Code.ACCOUNT_LOCKED: ("118", "用户没有相应的发送权限"),
    Code.ACCOUNT_DISABLED: ("118", "用户没有相应的发送权限"),
    Code.ORG_DISABLED: ("118", "用户没有相应的发送权限"),
    Code.ACCOUNT_EXPIRED: ("119", "用户已过期"),
    Code.NOT_WHITELISTED: ("120", "内容不在白名单中"),
}
# Malformed requests (conflicting repeated parameters, undecodable bytes) have
# no code in the document: 104 is its "cannot process this submission".
DEFAULT = ("104", "系统忙")

router = APIRouter(include_in_schema=False)


def vendor_code(code: Code) -> str:
    return OUTCOMES.get(code, DEFAULT)[0]


def now_text() -> str:
    """The answer's time stamp: server local time, yyyyMMddHHmmss."""
    return datetime.now().strftime("%Y%m%d%H%M%S")


def answer(code: Code, *lines: str) -> Response:
    body = "\n".join((f"{now_text()},{vendor_code(code)}",) + lines)
    return Response(body.encode("utf-8"), media_type="text/plain; charset=utf-8")


def _malformed(p: params.Params) -> Outcome | None:
    repeated = p.repeated()
    if repeated:
        return fail(Code.INVALID_PARAMETER, f"given more than once: {', '.join(repeated)}")
    for name, values in p.values.items():
        if any("\ufffd" in v for v in values):
            return fail(Code.INVALID_PARAMETER, f"{name} is neither UTF-8 nor GBK text")
    return None


async def _caller(request: Request) -> tuple[params.Params | None, Account | None, Outcome | None]:
    """The request's parameters and its authenticated, allowed account, or the refusal."""
    try:
        p = await params.read(request)
    except params.BodyTooLarge:
        # Only a number list far past 50,000 numbers makes a body this large.
        return None, None, fail(Code.RECIPIENTS_TOO_MANY, "the body is too large")
    bad = _malformed(p)
    if bad:
        return p, None, bad
    rt = runtime(request)
    # The document's pswd is the password itself; no MD5 form is defined.
    acc, code = rt.directory.authenticate(p.get("account") or "", p.get("pswd") or "", allow_md5=False)
    if acc is None:
        return p, None, fail(code or Code.AUTH_FAILED)
    refusal = acc.refusal(client_ip(request))
    if refusal is not None:
        return p, None, fail(refusal)
    return p, acc, None


@router.api_route("/msg/HttpBatchSendSM", methods=["GET", "POST"])
async def send(request: Request) -> Response:
    p, acc, refusal = await _caller(request)
    if refusal is not None:
        return answer(refusal.code)
    need_status = params.truthy(p.get("needstatus"))
    outcome = await runtime(request).accept.send(SendRequest(
        account=acc, to=p.get("mobile") or "", content=p.get("msg") or "", extno=p.get("extno") or "",
        client_ref=None if need_status else NO_STATUS, product=p.get("product") or None,
        dialect=NAME, client_ip=client_ip(request), max_recipients=MAX_RECIPIENTS,
        max_length=MAX_LENGTH,
        # The answer has no place to list bad numbers: the valid ones are sent
        # (and billed), the others left out; none valid is error 108.
        skip_invalid=True))
    if not outcome.ok:
        return answer(outcome.code)
    # The document: no msgid line when needstatus is not true.
    return answer(outcome.code, str(outcome.data["submission_id"])) if need_status else answer(outcome.code)


@router.api_route("/msg/QueryBalance", methods=["GET", "POST"])
async def query_balance(request: Request) -> Response:
    p, acc, refusal = await _caller(request)
    if refusal is not None:
        return answer(refusal.code)
    rt = runtime(request)

    def read():
        with rt.reader.connect() as conn:
            return balances_of(conn, acc.owner)
    rows = await asyncio.get_running_loop().run_in_executor(None, read)
    known = rt.directory.products()
    # An org's balances may include products of its other accounts: show this account's.
    products = [r for r in rows if r["product"] in known and known[r["product"]].id in acc.product_ids]
    general = [r for r in rows if not r["product"]]
    # The balance tied to no product pays sends without ``product`` (the
    # document's "default product"): it is shown as product 0 when it holds
    # something or is the account's only balance.
    lines = [f"0,{r['amount']}" for r in general if r["amount"] or not products]
    lines += [f"{r['product']},{r['amount']}" for r in products]
    return answer(Code.OK, *lines)


# -- pushes ------------------------------------------------------------------

def _minutes(iso_time: str | None) -> str:
    """YYMMDDhhmm, in the offset the time was written with (the server's)."""
    when = datetime.fromisoformat(iso_time) if iso_time else datetime.now()
    return when.strftime("%y%m%d%H%M")


def _receiver_params(url: str | None) -> dict[str, str]:
    """``receiver`` and ``pswd``, empty, when the callback URL does not carry them.

    The push client keeps the URL's own query first (where the operator puts the
    customer's receiver and pswd) and appends the push's parameters after it.
    """
    query = dict(parse_qsl(urlsplit(url or "").query, keep_blank_values=True))
    return {k: "" for k in ("receiver", "pswd") if k not in query}


def _status(item: dict) -> str:
    if item.get("carrier_status"):
        return item["carrier_status"]
    return {"delivered": "DELIVRD", "expired": "EXPIRED"}.get(item.get("status"), "UNDELIV")


class HttpBatchPush(PushFormat):
    name = NAME

    def requests(self, account: Account, kind: str, items: list[dict]) -> list[PushRequest]:
        if kind == "report":
            base = _receiver_params(account.report_url)
            out, silent = [], []
            for item in items:
                if item.get("client_ref") == NO_STATUS:
                    silent.append(item["id"])
                    continue
                out.append(PushRequest([item["id"]], method="GET", content_type="text/plain", params={
                    **base, "msgid": str(item["submission_id"]), "reportTime": _minutes(item.get("done_at")),
                    "mobile": item["to"], "status": _status(item)}))
            if silent:
                # Reports the customer asked not to receive (needstatus=false).
                out.append(PushRequest(silent, silent=True))
            return out
        base = _receiver_params(account.mo_url or account.report_url)
        # Long replies arrive already joined, so each is pushed whole as an
        # ordinary message: no isems/emshead.
        return [PushRequest([item["id"]], method="GET", content_type="text/plain", params={
            **base, "moTime": _minutes(item.get("received_at")), "destcode": item["to"],
            "mobile": item["from"], "msg": item["content"]}) for item in items]

    def accepts(self, status: int, body: bytes) -> bool:
        # The document defines no answer for the receiver: any 2xx means "got it".
        return 200 <= status < 300


PUSH = HttpBatchPush()

