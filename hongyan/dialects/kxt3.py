"""快信通 3 (kxt3): one URL, form fields ``op`` + ``message`` (a JSON object).

``op=login`` checks the credentials and answers the balances; ``op=sendSm``
sends one text to up to 10,000 numbers and answers one ``token`` (Hongyan's
submission id) that the pushed reports carry. Every request is signed with
``pwd = md5(secret + timestamp)``, and a timestamp is accepted once per account.
Answers are compact UTF-8 JSON, always HTTP 200: the outcome is ``stateCode``.

Reports and replies are pushed in batches as a UTF-8 form POST with the fields
``uid``, ``pwd``, ``type`` (report | mo) and ``jsonData`` (a JSON array); the
customer's server answers ``0``.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from starlette.responses import Response

from hongyan.core.accept import SendRequest
from hongyan.core.accounts import Account, balances_of
from hongyan.core.notify import PushFormat, PushRequest
from hongyan.domain import windows
from hongyan.domain.clock import now_ms, to_ms
from hongyan.domain.outcomes import Code, Outcome
from hongyan.store.tables import kxt3_timestamps

from . import params

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

PATH = "/webservice/http/service"
MAX_RECIPIENTS = 10_000          # 3.1: "平台支持每次最多 10000 个号码"
MAX_LENGTH = 1000                # 3.1: "平台支持最多 1000 字"
# 10,000 quoted, percent-encoded numbers and 1,000 characters need well under 1 MiB.
MAX_BODY = 1024 * 1024

# Every core outcome as the vendor's state code and text (6.2). Codes the vendor
# has no word for take DEFAULT, its own catch-all.
OUTCOMES: dict[Code, tuple[int, str]] = {
    Code.OK: (0, "操作成功"),
    Code.CONTENT_HELD: (0, "操作成功"),
    Code.SYSTEM_BUSY: (1, "系统忙（未知错误）"),
    Code.SYSTEM_ERROR: (1, "系统忙（未知错误）"),
    Code.UNSUPPORTED_OPERATION: (100, "不支持的操作"),
    Code.INVALID_JSON: (110, "提交了无效的 JSON 数据"),
    # A field of the wrong type or shape is invalid data inside the JSON message.
    Code.INVALID_PARAMETER: (110, "提交了无效的 JSON 数据"),
    Code.MISSING_PARAMETER: (120, "缺少参数"),
    Code.METHOD_NOT_ALLOWED: (130, "不支持 GET 请求"),
    # 200 "认证错": cid + uid name no account; 240 "认证失败": the password is wrong.
    Code.USER_NOT_FOUND: (200, "认证错"),
    Code.PERMISSION_DENIED: (200, "认证错"),
    Code.RATE_LIMITED: (210, "请求频率过快"),
    Code.TOO_MANY_CONCURRENT: (210, "请求频率过快"),
    Code.IP_DENIED: (220, "无效来源"),
    Code.TIMESTAMP_INVALID: (230, "无效的时间戳"),
    Code.DUPLICATE_REQUEST: (230, "无效的时间戳"),
    Code.AUTH_FAILED: (240, "认证失败"),
    Code.ACCOUNT_DISABLED: (250, "账户已停用"),
    Code.ACCOUNT_LOCKED: (250, "账户已停用"),
    Code.ACCOUNT_EXPIRED: (250, "账户已停用"),
    Code.ORG_DISABLED: (260, "机构已停用"),
    Code.RECIPIENTS_EMPTY: (300, "号码数不正确"),
    Code.RECIPIENTS_TOO_MANY: (300, "号码数不正确"),
    Code.RECIPIENTS_TOO_FEW: (300, "号码数不正确"),
    Code.INVALID_NUMBER: (310, "包含无效号码"),
    Code.CONTENT_EMPTY: (320, "内容长度不正确"),
    Code.CONTENT_TOO_LONG: (320, "内容长度不正确"),
    Code.INVALID_SCHEDULE: (330, "定时时间不正确"),
    Code.INVALID_SEND_WINDOW: (340, "每日限发时段不正确"),
    Code.OUTSIDE_SEND_WINDOW: (340, "每日限发时段不正确"),
    # 350 "提交的 token 数量不正确" has no outcome of its own (no operation of
    # this document takes tokens); an invalid token is 360.
    Code.INVALID_TOKEN: (360, "提交的 token 值不正确"),
    Code.INSUFFICIENT_BALANCE: (400, "余额不足"),
    Code.PRODUCT_BALANCE: (400, "余额不足"),
    Code.QUOTA_EXCEEDED: (400, "余额不足"),
}
DEFAULT = (1, "系统忙（未知错误）")

# ASCII digits only: re's \d would also take full-width and other scripts' digits.
_TIMESTAMP = re.compile(r"[0-9]{18}")
_AT_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_DAILY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
TIMESTAMP_TTL_MS = 24 * 3600 * 1000
PRUNE_EVERY_S = 600.0


def answer(code: Code, **extra) -> Response:
    state, text = OUTCOMES.get(code, DEFAULT)
    body = orjson.dumps({"stateCode": state, "message": text, **extra})
    return Response(body, media_type="application/json;charset=UTF-8")


class Refused(Exception):
    def __init__(self, code: Code) -> None:
        self.code = code


def runtime(request: Request):
    return request.app.state.runtime


# -- the message JSON ----------------------------------------------------------

def _text(doc: dict, name: str) -> str:
    """A required scalar field as text; numbers are taken as written (cid 12345678)."""
    value = doc.get(name)
    if value is None or value == "":
        raise Refused(Code.MISSING_PARAMETER)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Refused(Code.INVALID_PARAMETER)
    return str(value).strip()


def _optional(doc: dict, name: str) -> str:
    value = doc.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Refused(Code.INVALID_PARAMETER)
    return value.strip()


def _mobiles(doc: dict) -> list[str] | str:
    value = doc.get("mobiles")
    if value is None:
        raise Refused(Code.MISSING_PARAMETER)
    if isinstance(value, str):
        return value            # a comma-separated string: looser than the document, harmless
    if not isinstance(value, list):
        raise Refused(Code.INVALID_PARAMETER)
    # An element that is not a string or a number is an invalid number, not a
    # malformed request: the core refuses it with the number in the detail.
    return [str(v) if isinstance(v, (str, int)) and not isinstance(v, bool) else repr(v) for v in value]


def _schedule(at_time: str) -> int | None:
    if not at_time:
        return None
    if not _AT_TIME.fullmatch(at_time):
        raise Refused(Code.INVALID_SCHEDULE)
    try:
        # The vendor's clock is China time; Hongyan reads it as the server's local time.
        return to_ms(datetime.strptime(at_time, "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        raise Refused(Code.INVALID_SCHEDULE) from None


def _daily(begin: str, end: str) -> tuple[int, int] | None:
    """The daily send window (3.1, HH:mm:ss each, either may be left out)."""
    for value in (begin, end):
        if value and not _DAILY.fullmatch(value):
            raise Refused(Code.INVALID_SEND_WINDOW)
    if not begin and not end:
        return None
    try:
        start = windows.clock_seconds(begin) if begin else 0
        # 23:59:59 is the latest end the document allows: the window runs to the end of that second.
        stop = windows.clock_seconds(end) + 1 if end else windows.DAY_S
    except windows.BadWindow:
        raise Refused(Code.INVALID_SEND_WINDOW) from None
    return start, stop  # a begin after the end is a window over midnight


# -- timestamps: each accepted once per account ----------------------------------

# When this process last pruned (monotonic seconds). Jobs run on the writer's
# one thread, so a plain mutable cell is enough.
_last_prune = [float("-inf")]


def use_timestamp(conn: Connection, arg: tuple[int, str]) -> bool:
    """Record an account's request timestamp; False when it was used before."""
    account_id, ts = arg
    now = now_ms()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(kxt3_timestamps).values(account_id=account_id, timestamp=ts, used_at=now)
    # RETURNING rather than rowcount: psycopg reports no rowcount for this statement.
    fresh = conn.execute(stmt.on_conflict_do_nothing().returning(kxt3_timestamps.c.used_at)).first() is not None
    if time.monotonic() - _last_prune[0] > PRUNE_EVERY_S:
        _last_prune[0] = time.monotonic()
        conn.execute(delete(kxt3_timestamps).where(kxt3_timestamps.c.used_at < now - TIMESTAMP_TTL_MS))
    return fresh


def timestamp_used(conn: Connection, account_id: int, ts: str) -> bool:
    return conn.execute(select(kxt3_timestamps.c.used_at).where(
        kxt3_timestamps.c.account_id == account_id, kxt3_timestamps.c.timestamp == ts)).first() is not None


async def _caller(request: Request, doc: dict) -> Account:
    """The signed caller, its timestamp now spent; raises Refused."""
    cid, uid, pwd, ts = (_text(doc, n) for n in ("cid", "uid", "pwd", "timestamp"))
    if not _TIMESTAMP.fullmatch(ts):
        raise Refused(Code.TIMESTAMP_INVALID)
    rt = runtime(request)
    acc, code = rt.directory.authenticate(uid, pwd, salt=ts)
    if code is not None:
        raise Refused(code)
    if acc.org_code != cid:
        # The user exists but not in this organisation: as unknown as a wrong name.
        raise Refused(Code.USER_NOT_FOUND)
    refusal = acc.refusal(request.client.host if request.client else None)
    if refusal is not None:
        raise Refused(refusal)
    if not await rt.writer.run(use_timestamp, (acc.id, ts)):
        raise Refused(Code.TIMESTAMP_INVALID)
    return acc


# -- operations ------------------------------------------------------------------

async def login(request: Request, doc: dict) -> Response:
    acc = await _caller(request, doc)
    rt = runtime(request)

    def read():
        with rt.reader.connect() as conn:
            return balances_of(conn, acc.owner)
    rows = await asyncio.get_running_loop().run_in_executor(None, read)
    # smBalance is the balance plain sends are paid from; Hongyan sends no MMS.
    sm = next((r["amount"] for r in rows if r["product"] is None), 0)
    return answer(Code.OK, smBalance=sm, mmBalance=0)


async def send_sm(request: Request, doc: dict) -> Response:
    acc = await _caller(request, doc)
    mobiles = _mobiles(doc)
    if "content" not in doc or doc["content"] is None:
        raise Refused(Code.MISSING_PARAMETER)
    content = doc["content"]
    if not isinstance(content, str):
        raise Refused(Code.INVALID_PARAMETER)
    schedule = _schedule(_optional(doc, "atTime"))
    daily = _daily(_optional(doc, "dailyBeginTime"), _optional(doc, "dailyEndTime"))
    outcome: Outcome = await runtime(request).accept.send(SendRequest(
        account=acc, to=mobiles, content=content, schedule_at=schedule, daily_window=daily, dialect="kxt3",
        client_ip=request.client.host if request.client else None,
        max_recipients=MAX_RECIPIENTS, max_length=MAX_LENGTH))
    if not outcome.ok:
        return answer(outcome.code)
    return answer(Code.OK, token=outcome.data["submission_id"], fee=outcome.data["cost"])


OPERATIONS = {"login": login, "sendSm": send_sm}


@router.api_route(PATH, methods=["GET", "POST"])
async def service(request: Request) -> Response:
    if request.method != "POST":
        return answer(Code.METHOD_NOT_ALLOWED)
    try:
        p = await params.read(request, MAX_BODY)
    except params.BodyTooLarge:
        return answer(Code.INVALID_PARAMETER)
    try:
        return await _dispatch(p, request)
    except Refused as exc:
        return answer(exc.code)
    except Exception:  # noqa: BLE001 - the caller gets the vendor's "system busy", never a trace
        log.exception("kxt3 %s failed", p.get("op"))
        return answer(Code.SYSTEM_BUSY)


async def _dispatch(p: params.Params, request: Request) -> Response:
    if p.missing("op", "message"):
        return answer(Code.MISSING_PARAMETER)
    if "op" in p.repeated():
        return answer(Code.UNSUPPORTED_OPERATION)
    if "message" in p.repeated():
        return answer(Code.INVALID_JSON)
    operation = OPERATIONS.get(p.get("op").strip())
    if operation is None:
        return answer(Code.UNSUPPORTED_OPERATION)
    try:
        doc = orjson.loads(p.get("message"))
    except orjson.JSONDecodeError:
        return answer(Code.INVALID_JSON)
    if not isinstance(doc, dict):
        return answer(Code.INVALID_JSON)
    return await operation(request, doc)


# -- pushes ----------------------------------------------------------------------

_FALLBACK_RESULT = {"delivered": "DELIVRD", "failed": "UNDELIV", "expired": "EXPIRED"}
PUSH_CHUNK = 500


def _local(iso_time: str | None) -> str:
    """An ISO 8601 time as the vendor writes it: yyyy-MM-dd HH:mm:ss, server local time."""
    if not iso_time:
        return datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    return datetime.fromisoformat(iso_time).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def push_credentials(account: Account, kind: str) -> tuple[str, str]:
    """The push account and password the customer chose (4.4: "由客户提交、设置").

    The operator writes them into the callback URL's query string
    (``…/receive?uid=abc&pwd=123``); without them the push carries the
    Hongyan account name and an empty password, never the API secret.
    """
    url = (account.report_url if kind == "report" else (account.mo_url or account.report_url)) or ""
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    return (query.get("uid") or [account.username])[0], (query.get("pwd") or [""])[0]


class Kxt3Push(PushFormat):
    name = "kxt3"

    def requests(self, account: Account, kind: str, items: list[dict]) -> list[PushRequest]:
        uid, pwd = push_credentials(account, kind)
        item = _report if kind == "report" else _mo
        out = []
        for i in range(0, len(items), PUSH_CHUNK):
            chunk = items[i:i + PUSH_CHUNK]
            data = orjson.dumps([item(x) for x in chunk]).decode()
            body = urlencode({"uid": uid, "pwd": pwd, "type": kind, "jsonData": data}).encode()
            out.append(PushRequest([x["id"] for x in chunk], body,
                                   "application/x-www-form-urlencoded; charset=UTF-8"))
        return out

    def accepts(self, status: int, body: bytes) -> bool:
        # 4.7 / 5.7: the customer answers the string 0.
        return 200 <= status < 300 and body.strip() == b"0"


def _report(x: dict) -> dict:
    # resultCode is the carrier's status as the gateway gave it (4.5: "具体值由网关决定").
    return {"token": x["submission_id"], "mobile": x["to"],
            "resultCode": x.get("carrier_status") or _FALLBACK_RESULT.get(x["status"], x["status"]),
            "success": x["status"] == "delivered"}


def _mo(x: dict) -> dict:
    return {"mobile": x["from"], "content": x["content"], "smgRecvDate": _local(x.get("received_at"))}


PUSH = Kxt3Push()
