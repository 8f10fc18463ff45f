"""Client of the 1680 V8 API (dialect ``k1680``), for an upstream that speaks it.

Sends use ``/sendXSms.do`` (one text, up to 1,000 numbers) as a UTF-8 form
with the password as its MD5; ``productid`` (option, required by the vendor)
names the product that pays. The answer ``1,<id>`` gives one id per request
and reports carry (msgid, mobile), so the carrier id is ``"<id>:<mobile>"``.
A reply's ``xh`` is the extension after the upstream account's own number,
so its destination is this channel's access code followed by ``xh``.
"""
from __future__ import annotations

import hashlib

from hongyan.channels.base import Inbound, Report
from hongyan.channels.upstream import Accepted, Call, DialectClient, PushAnswer, RawPush, Refused
from hongyan.dialects import k1680, params
from hongyan.domain.outcomes import Code

_OK = k1680.vendor_code(Code.OK).send
# Worth trying again: "提交频率太快", "出现异常，人工处理中", and the bare "失败"
# the vendor answers for an unnamed failure such as being busy.
_RETRYABLE = {k1680.vendor_code(Code.RATE_LIMITED).send, k1680.vendor_code(Code.SYSTEM_ERROR).send,
              k1680.DEFAULT.send}
_DELIVERED = "0"   # 2.5: "0 代表成功，非 0 代表失败"


class K1680Client(DialectClient):
    max_recipients = k1680.MAX_NUMBERS

    def _login(self) -> dict[str, str]:
        form = {"username": self.config.username,
                "password": hashlib.md5(self.config.password.encode("utf-8")).hexdigest()}
        if self.option("productid"):
            form["productid"] = self.option("productid")
        return form

    def send_call(self, phones: list[str], text: str, extno: str) -> Call:
        form = {**self._login(), "mobile": ",".join(phones), "content": text, "dstime": ""}
        if extno:
            form["xh"] = extno
        return Call("POST", "/sendXSms.do", data=form)

    def parse_send(self, status: int, body: bytes, phones: list[str]) -> Accepted | Refused:
        if status != 200:
            return Refused(f"HTTP:{status}", True)
        code, _, msgid = body.decode("utf-8", "replace").strip().partition(",")
        code = code.strip()
        if code == _OK and msgid.strip():
            return Accepted({p: f"{msgid.strip()}:{p}" for p in phones})
        return Refused(f"K1680:{code or 'empty'}", code in _RETRYABLE)

    def balance_call(self) -> Call:
        return Call("POST", "/balance.do", data=self._login())

    def balance_ok(self, status: int, body: bytes) -> bool:
        # The count left, or a negative code.
        return status == 200 and body.strip().isdigit()

    def parse_push(self, kind: str, push: RawPush) -> PushAnswer:
        p = params.parse(push.query, push.body, push.content_type, push.method)
        ch = self.config.id
        mobile = (p.get("mobile") or "").strip()
        if kind == "report":
            msgid, status = (p.get("msgid") or "").strip(), (p.get("status") or "").strip()
            if not (msgid and mobile and status):
                return PushAnswer(b"error", status=400)
            # Hongyan keeps the carrier's own words: a success is DELIVRD, as from CMPP.
            delivered = status == _DELIVERED
            return PushAnswer(b"ok", reports=[Report(ch, f"{msgid}:{mobile}", "DELIVRD" if delivered else status,
                                                     delivered, mobile)])
        if not mobile or p.get("content") is None:
            return PushAnswer(b"error", status=400)
        dest = self.config.access_code + (p.get("xh") or "").strip()
        return PushAnswer(b"ok", inbound=[Inbound(ch, phone=mobile, dest=dest, text=p.get("content") or "")])

    def busy_answer(self, kind: str) -> PushAnswer:
        # Any non-2xx answer makes the sender push again (k1680.PUSH.accepts).
        return PushAnswer(b"busy", status=503)
