"""口信 1680 (k1680): the HTTP interface of the 1680 enterprise SMS platform, V8 (2017-04-08).

Endpoints (GET and POST each; the document recommends POST for the two dynamic ones):

- ``/sendXSms.do``    one text to up to 1,000 numbers; answers ``1,<id>`` or a code;
- ``/sendDIYSms.do``  a template with ``{PHONE}``, ``{A}``…``{E}`` and up to 1,000 parameter
  groups ``phone,a,b,c,d,e;phone,...``;
- ``/sendPackSms.do`` up to 1,000 ``phone|text`` items joined by ``$``;
- ``/balance.do``     the remaining messages of a product.

Every answer is one line of ASCII (``8,<word>`` carries the word in UTF-8), no newline.
Reports (``msgid``, ``mobile``, ``status``) and MO (``mobile``, ``content``, ``xh``) are pushed
one per GET request to the customer's URLs. The choices made where the document is silent
or contradicts itself are listed in docs/dialects/k1680.md.
"""
from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from fastapi import APIRouter, Request
from starlette.responses import Response

from hongyan.core.accept import SendRequest
from hongyan.core.accounts import Account, balances_of
from hongyan.core.notify import PushFormat, PushRequest
from hongyan.domain import numbers
from hongyan.domain.outcomes import Code, Outcome, fail

from . import params as P
from .rest import client_ip, runtime

log = logging.getLogger(__name__)

DIALECT = "k1680"
MAX_NUMBERS = 1000          # 2.1: mobile, at most 1,000 numbers
MAX_GROUPS = 1000           # 2.2: at most 1,000 parameter groups; 2.3: at most 1,000 items


class VendorCode(NamedTuple):
    send: str        # sendXSms.do (table 2.1)
    dynamic: str     # sendDIYSms.do and sendPackSms.do (tables 2.2 and 2.3)
    balance: str     # balance.do (table 2.4)
    text: str        # the document's description


# Every core outcome as the three answer tables of the document say it. The
# dynamic interfaces have no word for the account's state or a product's
# missing balance; balance.do knows only -1, -2 (失败), -5, -9 and -14.
OUTCOMES: dict[Code, VendorCode] = {
    Code.OK: VendorCode("1", "1", "", "发送短信成功"),
    Code.AUTH_FAILED: VendorCode("-1", "-1", "-1", "登陆名称或者登陆密码不正确"),
    Code.USER_NOT_FOUND: VendorCode("-1", "-1", "-1", "登陆名称或者登陆密码不正确"),
    Code.ACCOUNT_LOCKED: VendorCode("-11", "0", "-2", "用户信息异常"),
    Code.ACCOUNT_EXPIRED: VendorCode("-11", "0", "-2", "用户信息异常"),
    Code.ACCOUNT_DISABLED: VendorCode("-11", "0", "-2", "用户信息异常"),
    Code.ORG_DISABLED: VendorCode("-11", "0", "-2", "用户信息异常"),
    Code.IP_DENIED: VendorCode("-14", "-14", "-14", "IP 认证异常"),
    Code.PERMISSION_DENIED: VendorCode("9", "-9", "-9", "没有 url 提交权限"),
    Code.MISSING_PARAMETER: VendorCode("12", "-12", "-2", "必填参数异常"),
    Code.INVALID_PARAMETER: VendorCode("12", "-4", "-2", "参数异常 / 变量参数出现异常"),
    Code.INVALID_EXTNO: VendorCode("12", "-12", "-2", "参数异常"),
    Code.INVALID_SCHEDULE: VendorCode("12", "-12", "-2", "参数异常"),
    Code.CONTENT_TOO_LONG: VendorCode("12", "-12", "-2", "参数异常"),
    Code.RECIPIENTS_EMPTY: VendorCode("6", "-6", "-2", "有效号码为空"),
    Code.INVALID_NUMBER: VendorCode("6", "-6", "-2", "有效号码为空"),
    Code.RECIPIENTS_TOO_MANY: VendorCode("10", "-10", "-2", "发送号码过多"),
    Code.CONTENT_EMPTY: VendorCode("7", "-7", "-2", "短信内容为空"),
    Code.INSUFFICIENT_BALANCE: VendorCode("2", "-2", "-2", "余额不够"),
    Code.QUOTA_EXCEEDED: VendorCode("2", "-2", "-2", "余额不够"),
    Code.PRODUCT_UNAVAILABLE: VendorCode("11", "-11", "-2", "产品 ID 异常"),
    Code.PRODUCT_BALANCE: VendorCode("13", "-2", "-2", "产品余额异常"),
    Code.CONTENT_HELD: VendorCode("3", "-3", "-2", "黑词审核中"),
    Code.CONTENT_BLOCKED: VendorCode("8", "-8", "-2", "一级黑词"),
    Code.SIGNATURE_MISSING: VendorCode("-15", "-15", "-2", "签名内容为空"),
    Code.SIGNATURE_INVALID: VendorCode("-15", "-15", "-2", "签名内容为空"),
    Code.RATE_LIMITED: VendorCode("5", "-5", "-5", "提交频率太快"),
    Code.TOO_MANY_CONCURRENT: VendorCode("5", "-5", "-5", "提交频率太快"),
    Code.SYSTEM_ERROR: VendorCode("4", "0", "-2", "出现异常，人工处理中"),
    # The document names no "busy" code: a store or counter that cannot be reached is its exception.
    Code.SYSTEM_BUSY: VendorCode("4", "0", "-2", "出现异常，人工处理中"),
}
DEFAULT = VendorCode("0", "0", "-2", "失败")


def vendor_code(code: Code) -> VendorCode:
    return OUTCOMES.get(code, DEFAULT)


def _answer(text: str) -> Response:
    return Response(text.encode("utf-8"), media_type="text/plain;charset=UTF-8")


def _send_answer(outcome: Outcome, column: str) -> Response:
    code = getattr(vendor_code(outcome.code), column)
    if outcome.code is Code.OK:
        return _answer(f"{code},{outcome.data['submission_id']}")
    if outcome.code is Code.CONTENT_BLOCKED and column == "send" and outcome.detail:
        # 2.1: "8,xxxxxxx 一级黑词, 逗号后面为具体黑词内容"
        return _answer(f"{code},{outcome.detail}")
    return _answer(code)


# -- parameters ---------------------------------------------------------------

async def _params(request: Request) -> P.Params | Outcome:
    try:
        p = await P.read(request)
    except P.BodyTooLarge:
        return fail(Code.INVALID_PARAMETER, "body too large")
    repeated = p.repeated()
    if repeated:
        return fail(Code.INVALID_PARAMETER, f"given more than once: {', '.join(repeated)}")
    for name, values in p.values.items():
        # Bytes that are neither UTF-8 nor GBK: refuse rather than send mojibake.
        if any("\ufffd" in v for v in values):
            return fail(Code.INVALID_PARAMETER, f"{name}: undecodable bytes")
    return p


def _login(request: Request, p: P.Params, *required: str) -> Account | Outcome:
    missing = p.missing("username", "password", *required)
    if missing:
        return fail(Code.MISSING_PARAMETER, ", ".join(missing))
    # password: the secret itself or its MD5 (32 hex digits, either case).
    acc, code = runtime(request).directory.authenticate(p.get("username").strip(), p.get("password").strip())
    return acc if acc is not None else fail(code)


# 2.1 dstime is "yyyy-MM-dd HH:mm:ss" as the vendor's customers write it: Beijing time.
_BEIJING = timezone(timedelta(hours=8))


def _schedule(text: str | None) -> int | None | Outcome:
    text = (text or "").strip()
    if not text:
        return None
    try:
        when = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_BEIJING)
    except ValueError:
        return fail(Code.INVALID_SCHEDULE, text)
    return int(when.timestamp() * 1000)


def _request(request: Request, acc: Account, p: P.Params, to, content: str, when: int | None) -> SendRequest:
    return SendRequest(account=acc, to=to, content=content, extno=(p.get("xh") or "").strip(),
                       product=(p.get("productid") or "").strip() or None, schedule_at=when,
                       dialect=DIALECT, client_ip=client_ip(request), max_recipients=MAX_NUMBERS,
                       skip_invalid=True)


async def _submit(request: Request, reqs: list[SendRequest]) -> Outcome:
    # Several texts in one request are accepted all or none (the core's rule).
    return await runtime(request).accept.send_together(reqs)


def _by_text(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """(phone, text) pairs grouped by text, in order: one submission per distinct text."""
    texts: dict[str, list[str]] = {}
    for phone, text in pairs:
        texts.setdefault(text, []).append(phone)
    return texts


# -- 2.2 templates ------------------------------------------------------------

_VARIABLE = re.compile(r"\{(PHONE|A|B|C|D|E)\}")
_POSITION = {"PHONE": 0, "A": 1, "B": 2, "C": 3, "D": 4, "E": 5}


def render_groups(template: str, groups: str) -> tuple[list[tuple[str, str]], Outcome | None]:
    """The (phone, text) of every well-formed group; malformed groups are dropped (2.2 注).

    A group is malformed when it has more than six fields, its first field is
    not a mobile number, or it lacks a variable the template uses.
    """
    raw = [g for g in groups.split(";") if g.strip()]
    if len(raw) > MAX_GROUPS:
        return [], fail(Code.RECIPIENTS_TOO_MANY, f"more than {MAX_GROUPS} groups")
    used = max((_POSITION[name] for name in _VARIABLE.findall(template)), default=0)
    pairs, any_number = [], False
    for group in raw:
        fields = [f.strip() for f in group.split(",")]
        if numbers.normalise(fields[0]) is None:
            continue
        any_number = True
        if len(fields) > 6 or len(fields) <= used:
            continue
        text = _VARIABLE.sub(lambda m: fields[_POSITION[m.group(1)]], template)
        pairs.append((fields[0], text))
    if not pairs:
        return [], fail(Code.INVALID_PARAMETER if any_number else Code.RECIPIENTS_EMPTY, "no usable group")
    return pairs, None


# -- 2.3 packs ----------------------------------------------------------------

def split_pack(content: str) -> tuple[list[tuple[str, str]], Outcome | None]:
    """The (phone, text) of every ``phone|text`` item; items without a valid number are dropped."""
    raw = [item for item in content.split("$") if item.strip()]
    if len(raw) > MAX_GROUPS:
        return [], fail(Code.RECIPIENTS_TOO_MANY, f"more than {MAX_GROUPS} items")
    pairs = []
    for item in raw:
        phone, sep, text = item.partition("|")
        if sep and numbers.normalise(phone.strip()) is not None:
            pairs.append((phone.strip(), text.strip()))
    if not pairs:
        return [], fail(Code.RECIPIENTS_EMPTY, "no item with a valid number")
    return pairs, None


# -- endpoints ----------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def _guarded(column: str):
    """An endpoint that answers in its table's codes whatever happens, never a 500."""
    def wrap(fn):
        async def endpoint(request: Request):
            try:
                result = await fn(request)
            except Exception:  # noqa: BLE001 - the caller gets the vendor's "exception" code
                log.exception("k1680 %s failed", request.url.path)
                result = fail(Code.SYSTEM_ERROR)
            if isinstance(result, Response):   # balance.do's count
                return result
            if column == "balance":
                return _answer(vendor_code(result.code).balance)
            return _send_answer(result, column)
        endpoint.__name__ = fn.__name__
        return endpoint
    return wrap


@router.api_route("/sendXSms.do", methods=["GET", "POST"])
@_guarded("send")
async def send_x(request: Request):
    p = await _params(request)
    if isinstance(p, Outcome):
        return p
    acc = _login(request, p, "productid")
    if isinstance(acc, Outcome):
        return acc
    when = _schedule(p.get("dstime"))
    if isinstance(when, Outcome):
        return when
    return await runtime(request).accept.send(
        _request(request, acc, p, p.get("mobile") or "", p.get("content") or "", when))


async def _send_pairs(request: Request, acc: Account, p: P.Params, pairs: list[tuple[str, str]],
                      when: int | None) -> Outcome:
    return await _submit(request, [_request(request, acc, p, phones, text, when)
                                   for text, phones in _by_text(pairs).items()])


@router.api_route("/sendDIYSms.do", methods=["GET", "POST"])
@_guarded("dynamic")
async def send_diy(request: Request):
    p = await _params(request)
    if isinstance(p, Outcome):
        return p
    acc = _login(request, p, "params")
    if isinstance(acc, Outcome):
        return acc
    when = _schedule(p.get("dstime"))
    if isinstance(when, Outcome):
        return when
    template = p.get("content") or ""
    if not template.strip():
        return fail(Code.CONTENT_EMPTY)
    pairs, refusal = render_groups(template, p.get("params"))
    if refusal is not None:
        return refusal
    return await _send_pairs(request, acc, p, pairs, when)


@router.api_route("/sendPackSms.do", methods=["GET", "POST"])
@_guarded("dynamic")
async def send_pack(request: Request):
    p = await _params(request)
    if isinstance(p, Outcome):
        return p
    acc = _login(request, p)
    if isinstance(acc, Outcome):
        return acc
    when = _schedule(p.get("dstime"))
    if isinstance(when, Outcome):
        return when
    content = p.get("content") or ""
    if not content.strip():
        return fail(Code.CONTENT_EMPTY)
    pairs, refusal = split_pack(content)
    if refusal is not None:
        return refusal
    return await _send_pairs(request, acc, p, pairs, when)


@router.api_route("/balance.do", methods=["GET", "POST"])
@_guarded("balance")
async def balance(request: Request):
    p = await _params(request)
    if isinstance(p, Outcome):
        return p
    acc = _login(request, p)
    if isinstance(acc, Outcome):
        return acc
    refusal = acc.refusal(client_ip(request))
    if refusal is not None:
        return fail(refusal)
    code = (p.get("productid") or "").strip()
    product_id, price = 0, 1
    if code:
        product = runtime(request).directory.product(code)
        if product is None or product.id not in acc.product_ids:
            return fail(Code.PRODUCT_UNAVAILABLE, code)
        product_id, price = product.id, product.price
    rt = runtime(request)

    def read(owner):
        with rt.reader.connect() as conn:
            return balances_of(conn, owner)
    rows = await asyncio.get_running_loop().run_in_executor(None, read, acc.owner)
    row = next((r for r in rows if (r["product"] is None and not product_id) or r["product"] == code), None)
    if row is None:
        return fail(Code.PRODUCT_BALANCE, code)
    # 2.4: "该产品的剩余条数" — messages left, at the product's price per message.
    return _answer(str(row["amount"] // price if price > 0 else row["amount"]))


# -- pushes (2.5, 2.6, 4.5) -----------------------------------------------------

# Failures that happened here or at the carrier's submit, before any delivery
# report existed: 4.5 calls them "KX:1000 代表下行提交失败".
_SUBMIT_FAILURE = re.compile(r"^(CMPP:\d+|ENCODE|LINK|STOPPED)$")


# Statuses the platform itself gives, in the document's own words (4.5).
_OWN_STATUS = {"DISTURB": "KX:4000"}   # "同样内容，特定时间段下行次数限制"


def report_status(item: dict) -> str:
    """2.5: "0 代表成功，非 0 代表失败": 0, the carrier's own status, or KX:1000."""
    if item.get("status") == "delivered":
        return "0"
    carrier = item.get("carrier_status") or ""
    if not carrier or _SUBMIT_FAILURE.match(carrier):
        return "KX:1000"
    return _OWN_STATUS.get(carrier, carrier)


class K1680Push(PushFormat):
    """One GET per report or MO ("我平台每次只返回一组内容"); the values are URL-encoded UTF-8."""
    name = DIALECT

    def requests(self, account: Account, kind: str, items: list[dict]) -> list[PushRequest]:
        out = []
        for item in items:
            if kind == "report":
                # msgid is the id the send answer gave: the request's submission id.
                query = {"msgid": str(item.get("client_ref") or item["submission_id"]),
                         "mobile": item["to"], "status": report_status(item)}
            else:
                query = {"mobile": item["from"], "content": item["content"], "xh": item.get("extno") or ""}
            out.append(PushRequest([item["id"]], method="GET", params=query, content_type="text/plain"))
        return out

    def accepts(self, status: int, body: bytes) -> bool:
        # The document asks nothing of the receiver's answer: any 2xx means it took it.
        return 200 <= status < 300


PUSH = K1680Push()
