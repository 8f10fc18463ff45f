"""快信通 Quick Messenger 1.9 (``qmsg``): ``sendSms.do``, ``getSms.do``, MO and report pushes.

Answers are a status line (``returnflag=text``, the default) or a GBK XML
document (``returnflag=xml``), always with HTTP 200: the vendor's clients read
the status from the body. Choices where the document is silent or circular are
written down in docs/dialects/qmsg.md.
"""
from __future__ import annotations

from urllib.parse import urlencode

import asyncio
from datetime import datetime
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hongyan.core import pull
from hongyan.core.accept import SendRequest
from hongyan.core.accounts import Account, balances_of
from hongyan.core.notify import PushFormat, PushRequest
from hongyan.domain.outcomes import Code, Outcome, fail

from . import params

router = APIRouter(include_in_schema=False)

# Every core outcome as the vendor's status code and text. The document lists
# 0, 1, 2, 5, 8, 9, 10 and 11; what it has no word for falls back to 1.
OUTCOMES: dict[Code, tuple[str, str]] = {
    Code.OK: ("0", "成功"),
    Code.CONTENT_HELD: ("0", "成功提交,等待审核"),
    Code.MISSING_PARAMETER: ("1", "输入参数错误,缺少参数"),
    Code.INVALID_PARAMETER: ("1", "输入参数错误"),
    Code.INVALID_JSON: ("1", "输入参数错误"),
    Code.METHOD_NOT_ALLOWED: ("1", "输入参数错误,不支持的请求方式"),
    Code.UNSUPPORTED_OPERATION: ("1", "输入参数错误,不支持的操作"),
    Code.DUPLICATE_REQUEST: ("1", "输入参数错误,重复的请求"),
    Code.RECIPIENTS_EMPTY: ("1", "输入参数错误,缺少手机号码"),
    Code.RECIPIENTS_TOO_MANY: ("1", "输入参数错误,手机号码个数超过限制"),
    Code.RECIPIENTS_TOO_FEW: ("1", "输入参数错误,手机号码个数不足"),
    Code.INVALID_NUMBER: ("1", "输入参数错误,手机号码格式错误"),
    Code.CONTENT_EMPTY: ("1", "输入参数错误,短信内容为空"),
    Code.CONTENT_TOO_LONG: ("1", "输入参数错误,短信内容超过长度限制"),
    Code.INVALID_EXTNO: ("1", "输入参数错误,扩展号码格式错误"),
    Code.INVALID_SCHEDULE: ("1", "输入参数错误,定时时间错误"),
    Code.INVALID_SEND_WINDOW: ("1", "输入参数错误,发送时段错误"),
    Code.INVALID_TOKEN: ("1", "输入参数错误"),
    Code.PERMISSION_DENIED: ("1", "输入参数错误,getall=yes 仅限机构管理员"),
    Code.PRODUCT_UNAVAILABLE: ("1", "输入参数错误,未开通该产品"),
    Code.SYSTEM_ERROR: ("2", "数据库错误"),
    Code.SYSTEM_BUSY: ("2", "数据库错误,系统繁忙"),
    Code.AUTH_FAILED: ("5", "用户名和密码不匹配"),
    Code.USER_NOT_FOUND: ("5", "用户名和密码不匹配"),
    Code.TIMESTAMP_INVALID: ("5", "用户名和密码不匹配"),
    Code.IP_DENIED: ("5", "IP地址未授权"),
    Code.ACCOUNT_LOCKED: ("8", "账号被锁定"),
    Code.ACCOUNT_DISABLED: ("8", "账号被锁定"),
    Code.ORG_DISABLED: ("8", "账号被锁定,机构已停用"),
    Code.INSUFFICIENT_BALANCE: ("9", "用户余额不足,请联系管理员"),
    Code.PRODUCT_BALANCE: ("9", "用户余额不足,请联系管理员"),
    Code.QUOTA_EXCEEDED: ("9", "用户余额不足,本月额度已用完"),
    Code.ACCOUNT_EXPIRED: ("10", "账号已过期"),
    Code.CONTENT_BLOCKED: ("11", "短信内容包含非法字词"),
    Code.SIGNATURE_MISSING: ("11", "短信内容包含非法字词,缺少签名"),
    Code.SIGNATURE_INVALID: ("11", "短信内容包含非法字词,签名未报备"),
    Code.CONTENT_REJECTED: ("11", "短信内容包含非法字词"),
    Code.NOT_WHITELISTED: ("11", "短信内容包含非法字词,不符合模板"),
}
DEFAULT = ("1", "输入参数错误")

VERSION = "1.9"
# The document's limits, by method: numbers per request and content bytes.
# The bytes are GBK bytes ("300 个字节，即 150 个汉字"), so POST's UTF-8 text is
# measured in GBK too; GB18030 gives emoji their 4 bytes.
LIMITS = {"GET": (50, 300), "POST": (300, 1000)}
MAX_BODY = 64 * 1024
MAX_SENDID = 64
PULL_BATCH = 500
REPORT_STATUS = {"delivered": "0", "failed": "1", "expired": "2"}
# getall: the document's yes/no, and the booleans clients also send.
_GETALL = {"yes": True, "no": False, "true": True, "false": False, "1": True, "0": False, "": False}


def code_of(outcome: Outcome | Code) -> tuple[str, str]:
    code = outcome if isinstance(outcome, Code) else outcome.code
    return OUTCOMES.get(code, DEFAULT)


# -- answers -------------------------------------------------------------------

def _declared_charset(request: Request) -> str | None:
    ctype = request.headers.get("content-type", "").encode("latin-1", "replace")
    m = params._CHARSET_RE.search(ctype)
    return params._CHARSETS.get(m.group(1).decode("ascii", "replace").lower()) if m else None


def _text_charset(request: Request, p: params.Params | None) -> str:
    """Text answers come back in the request's own encoding when it showed one, else the
    method's documented one (GET GBK, POST UTF-8)."""
    declared = _declared_charset(request)
    if declared:
        return declared
    if p is not None and any(not v.isascii() for vals in p.values.values() for v in vals):
        return p.encoding
    return "gb18030" if request.method == "GET" else "utf-8"


def text_answer(request: Request, p: params.Params | None, lines: list[str]) -> Response:
    charset = _text_charset(request, p)
    label = "GBK" if charset == "gb18030" else "UTF-8"
    return Response("\n".join(lines).encode(charset), media_type=f"text/plain; charset={label}")


def xml_answer(fields: list[tuple[str, str | None]], extra: str = "") -> Response:
    """The ``<qmsg>`` document, two-space indented, GBK; characters GBK lacks become references."""
    out = ['<?xml version="1.0" encoding="GBK" ?>', "<qmsg>"]
    for name, value in fields:
        out.append(f"  <{name} />" if value in (None, "") else f"  <{name}>{escape(value)}</{name}>")
    if extra:
        out.append(extra)
    out.append("</qmsg>")
    return Response("\n".join(out).encode("gbk", "xmlcharrefreplace"),
                    media_type="text/xml; charset=GBK")


def _pay_type(acc: Account | None) -> str:
    return "1" if acc is not None and acc.pay_type == "org" else "0"


async def _balance(request: Request, acc: Account | None) -> int:
    """The amount the account's messages are paid from (the product-free balance)."""
    if acc is None:
        return 0
    rt = request.app.state.runtime

    def read():
        with rt.reader.connect() as conn:
            return balances_of(conn, acc.owner)
    rows = await asyncio.get_running_loop().run_in_executor(None, read)
    return next((r["amount"] for r in rows if r["product"] is None), 0)


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _returnflag(p: params.Params | None) -> str | None:
    """``text`` or ``xml``; None for a value the document does not name."""
    value = ((p.get("returnflag") if p else None) or "text").strip().lower()
    return value if value in ("text", "xml") else None


async def _read(request: Request) -> tuple[params.Params | None, Outcome | None]:
    try:
        p = await params.read(request, MAX_BODY)
    except params.BodyTooLarge:
        return None, fail(Code.INVALID_PARAMETER, "body too large")
    repeated = p.repeated()
    if repeated:
        return p, fail(Code.INVALID_PARAMETER, f"{repeated[0]} given twice")
    # U+FFFD only appears when the bytes were not in the encoding they claimed.
    if any("\ufffd" in v for vals in p.values.values() for v in vals):
        return p, fail(Code.INVALID_PARAMETER, "undecodable bytes")
    if _returnflag(p) is None:
        return p, fail(Code.INVALID_PARAMETER, "returnflag")
    return p, None


async def _login(request: Request, p: params.Params) -> tuple[Account | None, Outcome | None]:
    missing = p.missing("entid", "uid", "pwd")
    if missing:
        return None, fail(Code.MISSING_PARAMETER, missing[0])
    rt = request.app.state.runtime
    acc, code = rt.directory.authenticate(p.get("uid").strip(), p.get("pwd"))
    if acc is None:
        return None, fail(code)
    # The user must belong to the org it names: a wrong entid is a failed login.
    if p.get("entid").strip() != acc.org_code:
        return None, fail(Code.AUTH_FAILED, "entid")
    return acc, None


# -- sendSms.do ----------------------------------------------------------------

@router.api_route("/sendSms.do", methods=["GET", "POST"])
async def send_sms(request: Request):
    p, refusal = await _read(request)
    acc = None
    if refusal is None:
        acc, refusal = await _login(request, p)
    if refusal is None:
        outcome = await _send(request, p, acc)
    else:
        outcome = refusal
    return await _send_answer(request, p, acc, outcome)


async def _send(request: Request, p: params.Params, acc: Account) -> Outcome:
    sendid = (p.get("sendid") or "").strip() or None
    if sendid is not None and len(sendid) > MAX_SENDID:
        return fail(Code.INVALID_PARAMETER, "sendid")
    content = p.get("msg") or ""
    max_numbers, max_bytes = LIMITS.get(request.method, LIMITS["POST"])
    try:
        return await request.app.state.runtime.accept.send(SendRequest(
            account=acc, to=p.get("mobs") or "", content=content, extno=p.get("extno") or "",
            client_ref=sendid, dialect="qmsg", client_ip=_client_ip(request),
            max_recipients=max_numbers, max_length=_chars_within(content, max_bytes)))
    except Exception:  # noqa: BLE001 - the vendor's clients expect status 2, never a 500
        return fail(Code.SYSTEM_ERROR)


def _chars_within(text: str, max_bytes: int) -> int:
    """How many leading characters of ``text`` fit in ``max_bytes`` GBK bytes: the byte
    limit as the character limit the core checks."""
    used = 0
    for i, ch in enumerate(text):
        used += len(ch.encode("gb18030"))
        if used > max_bytes:
            return i
    return len(text)


def sendid_of(client_ref: str | None, submission_id: int) -> str:
    """The caller's sendid when it chose one, else the submission id (send answer and reports)."""
    return client_ref or str(submission_id)


async def _send_answer(request: Request, p: params.Params | None, acc: Account | None,
                       outcome: Outcome) -> Response:
    code, text = code_of(outcome)
    if outcome.ok:
        d = outcome.data
        sendid = sendid_of((p.get("sendid") or "").strip() or None, d["submission_id"])
        balance = d["balance"]
    else:
        sendid, balance = None, await _balance(request, acc)
    if _returnflag(p) != "xml":
        return text_answer(request, p, [code, sendid, str(balance)] if outcome.ok else [code])
    fields = [("version", VERSION), ("statCode", code), ("statMsg", text)]
    if sendid is not None:
        fields.append(("sendId", sendid))
    fields += [("payType", _pay_type(acc)), ("balance", str(balance))]
    return xml_answer(fields)


# -- getSms.do -----------------------------------------------------------------

@router.api_route("/getSms.do", methods=["GET", "POST"])
async def get_sms(request: Request):
    p, refusal = await _read(request)
    acc, items = None, []
    if refusal is None:
        acc, refusal = await _login(request, p)
    if refusal is None:
        code = acc.refusal(_client_ip(request))
        refusal = fail(code) if code else None
    if refusal is None:
        getall = (p.get("getall") or "no").strip().lower()
        if getall not in _GETALL:
            refusal = fail(Code.INVALID_PARAMETER, "getall")
        elif _GETALL[getall] and acc.role != "admin":
            refusal = fail(Code.PERMISSION_DENIED, "getall")
        else:
            org = acc.org_id if _GETALL[getall] else None
            try:
                items = await request.app.state.runtime.writer.run(
                    lambda conn, _: pull.pull_mo(conn, acc.id, org, PULL_BATCH))
            except Exception:  # noqa: BLE001 - answered as the vendor's database error
                refusal = fail(Code.SYSTEM_ERROR)
    outcome = refusal or Outcome(Code.OK)
    balance = await _balance(request, acc) if acc is not None else 0
    code, text = code_of(outcome)
    directory = request.app.state.runtime.directory
    mos = [_mo_view(directory, acc, item) for item in items]
    if _returnflag(p) != "xml":
        if not outcome.ok:
            return text_answer(request, p, [code])
        whose = "机构账户余额是(The organization's balance is)" if acc.pay_type == "org" \
            else "个人账户余额是(The personal balance is)"
        lines = [code, f"# {whose}:{balance}", "# extno,mobile,replytime,msg"]
        # One MO a line: a line break inside the text would split it, so it becomes a space.
        lines += [f"{m['ext']},{m['mob']},{m['time']},{' '.join(m['msg'].splitlines())}" for m in mos]
        return text_answer(request, p, lines)
    fields = [("version", VERSION), ("statCode", code), ("statMsg", None if outcome.ok else text),
              ("remark", None), ("payType", _pay_type(acc)), ("balance", str(balance))]
    extra = "\n".join(
        "  <MO>\n"
        f"    <entId>{escape(m['entid'])}</entId>\n"
        f"    <srcId>{escape(m['mob'])}</srcId>\n"
        f"    <destId>{escape(m['ext'])}</destId>\n"
        f"    <msgContent>{escape(m['msg'])}</msgContent>\n"
        f"    <replyTime>{m['time']}</replyTime>\n"
        "  </MO>" for m in mos)
    return xml_answer(fields, extra)


def _mo_view(directory, caller: Account, item: dict) -> dict:
    owner = caller if item.get("account_id", caller.id) == caller.id else directory.by_id(item["account_id"])
    return {"entid": owner.org_code if owner else caller.org_code, "mob": item["from"],
            "ext": ext_of(owner, item), "time": local_time(item["received_at"]),
            "msg": item["content"]}


def ext_of(account: Account | None, item: dict) -> str:
    """The document's extension: the account's sub-number followed by the one the sender chose."""
    return ((account.extension if account else "") or "") + (item.get("extno") or "")


def local_time(iso_text: str | None) -> str:
    """``2007-12-07 18:23:08``: the server's local time, as the document shows times."""
    if not iso_text:
        return ""
    return datetime.fromisoformat(iso_text).astimezone().strftime("%Y-%m-%d %H:%M:%S")


# -- pushes --------------------------------------------------------------------

class QmsgPush(PushFormat):
    """One GET a report or an MO, the parameters in the query, as the document's prototypes.

    The receiver answers ``0`` when it took the push (2.3.3); reports are
    treated the same, the document giving them no answer of their own.
    """
    name = "qmsg"

    def requests(self, account: Account, kind: str, items: list[dict]) -> list[PushRequest]:
        build = self._report if kind == "report" else self._mo
        # The document's GET interfaces speak GBK; GB18030 is GBK that can also carry emoji.
        return [PushRequest([item["id"]], method="GET", content_type="text/plain",
                            query=urlencode(build(account, item), encoding="gb18030").encode("ascii"))
                for item in items]

    def _report(self, account: Account, item: dict) -> dict[str, str]:
        return {"mob": item["to"], "sendid": sendid_of(item.get("client_ref"), item["submission_id"]),
                "status": REPORT_STATUS.get(item["status"], "1"), "appid": str(account.id),
                "entid": account.org_code}

    def _mo(self, account: Account, item: dict) -> dict[str, str]:
        return {"mob": item["from"], "msg": item["content"], "entid": account.org_code,
                "replytime": local_time(item["received_at"]), "ext": ext_of(account, item),
                "appid": str(account.id)}

    def accepts(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300 and body.strip().lstrip(b"\xef\xbb\xbf").strip() == b"0"


PUSH = QmsgPush()
