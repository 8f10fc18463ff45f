"""Client of the ``HttpBatchSendSM`` API (dialect ``httpbatch``), for an upstream that speaks it.

A send answers one msgid for all its numbers, and each report pushed back
carries (msgid, mobile): the carrier id is ``"<msgid>:<mobile>"`` on both sides.
Options: ``product`` (the upstream's product code, optional), and
``push_receiver``/``push_pswd``: when set, pushes must carry them as
``receiver``/``pswd`` (give the upstream the push URL with them in its query).
"""
from __future__ import annotations

from datetime import datetime

from hongyan.channels.base import Inbound, Report
from hongyan.channels.upstream import Accepted, Call, DialectClient, PushAnswer, RawPush, Refused
from hongyan.dialects import httpbatch, params
from hongyan.domain.outcomes import Code

# Vendor codes worth trying again later: "提交过快" and "系统忙".
_RETRYABLE = {httpbatch.vendor_code(Code.RATE_LIMITED), httpbatch.vendor_code(Code.SYSTEM_BUSY)}
_OK = httpbatch.vendor_code(Code.OK)


def _minutes(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%y%m%d%H%M")
    except ValueError:
        return None


class HttpBatchClient(DialectClient):
    max_recipients = httpbatch.MAX_RECIPIENTS

    def _login(self) -> dict[str, str]:
        return {"account": self.config.username, "pswd": self.config.password}

    def send_call(self, phones: list[str], text: str, extno: str) -> Call:
        form = {**self._login(), "mobile": ",".join(phones), "msg": text, "needstatus": "true"}
        if self.option("product"):
            form["product"] = self.option("product")
        if extno:
            form["extno"] = extno
        return Call("POST", "/msg/HttpBatchSendSM", data=form)

    def parse_send(self, status: int, body: bytes, phones: list[str]) -> Accepted | Refused:
        lines = body.decode("utf-8", "replace").strip().split("\n")
        head = lines[0].strip().split(",")
        code = head[1].strip() if len(head) > 1 else ""
        if status != 200 or not code:
            return Refused(f"HTTP:{status}", True)
        if code != _OK:
            return Refused(f"HTTPBATCH:{code}", code in _RETRYABLE)
        msgid = lines[1].strip() if len(lines) > 1 else ""
        if not msgid:
            # Accepted but no msgid: reports could never be matched.
            return Refused("HTTPBATCH:NOMSGID", False)
        return Accepted({p: f"{msgid}:{p}" for p in phones})

    def balance_call(self) -> Call:
        return Call("POST", "/msg/QueryBalance", data=self._login())

    def balance_ok(self, status: int, body: bytes) -> bool:
        head = body.decode("utf-8", "replace").split("\n")[0].split(",")
        return status == 200 and len(head) > 1 and head[1].strip() == _OK

    def parse_push(self, kind: str, push: RawPush) -> PushAnswer:
        p = params.parse(push.query, push.body, push.content_type, push.method)
        receiver, pswd = self.option("push_receiver"), self.option("push_pswd")
        if (receiver or pswd) and (p.get("receiver") != receiver or p.get("pswd") != pswd):
            return PushAnswer(b"forbidden", status=403)
        ch = self.config.id
        if kind == "report":
            msgid, mobile, stat = p.get("msgid") or "", p.get("mobile") or "", p.get("status") or ""
            if not (msgid and mobile and stat):
                return PushAnswer(b"missing msgid, mobile or status", status=400)
            return PushAnswer(b"ok", reports=[Report(ch, f"{msgid}:{mobile}", stat, stat == "DELIVRD", mobile,
                                                     _minutes(p.get("reportTime") or ""))])
        mobile, dest = p.get("mobile") or "", p.get("destcode") or ""
        if not mobile or p.get("msg") is None:
            return PushAnswer(b"missing mobile or msg", status=400)
        inbound = Inbound(ch, phone=mobile, dest=dest, text=p.get("msg") or "")
        when = _minutes(p.get("moTime") or "")
        if when is not None:
            inbound.received_at = when
        return PushAnswer(b"ok", inbound=[inbound])

    def busy_answer(self, kind: str) -> PushAnswer:
        # Any non-2xx answer makes the sender push again (httpbatch.PUSH.accepts).
        return PushAnswer(b"busy", status=503)
