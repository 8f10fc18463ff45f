"""Client of the Quick Messenger 1.9 API (dialect ``qmsg``), for an upstream that speaks it.

Sends are POSTs to ``/sendSms.do`` (``entid``/``uid``/``pwd``, the password as
its MD5, text answers). The answer ``0`` / sendid / balance gives one sendid
per request and reports carry (sendid, mob), so the carrier id is
``"<sendid>:<mob>"``. The vendor has no balance query of its own:
``getSms.do`` (which answers the balance) is the liveness check, and the
replies it hands over are passed on like pushed ones.

Options: ``entid`` (the upstream account's org code, required by the vendor)
and ``account_ext`` (the upstream account's own extension: a reply's ``ext``
is that extension followed by the one the message was sent with, so the
reply's destination is this channel's access code + the rest of ``ext``).
"""
from __future__ import annotations

import hashlib
from datetime import datetime

from hongyan.channels.base import Inbound, Report
from hongyan.channels.upstream import Accepted, Call, DialectClient, PushAnswer, RawPush, Refused
from hongyan.dialects import params, qmsg
from hongyan.domain.outcomes import Code

_OK = qmsg.code_of(Code.OK)[0]
# "数据库错误" is also the vendor's "系统繁忙": the one answer worth trying again.
_RETRYABLE = {qmsg.code_of(Code.SYSTEM_BUSY)[0]}
# The receiver's answers (2.3.3): 0 when it took the push, anything else when not.
_TAKEN = b"0"
_NOT_TAKEN = qmsg.DEFAULT[0].encode()
_DELIVERED = qmsg.REPORT_STATUS["delivered"]
# A report's status as a carrier word, for the core's records.
_STATUS_WORDS = {qmsg.REPORT_STATUS["delivered"]: "DELIVRD", qmsg.REPORT_STATUS["expired"]: "EXPIRED"}
_FORM_TYPE = "application/x-www-form-urlencoded; charset=UTF-8"


def _decode(body: bytes) -> str:
    # POST answers come in UTF-8; a server that answers GBK anyway is still read.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("gb18030", "replace")


class QmsgClient(DialectClient):
    max_recipients = qmsg.LIMITS["POST"][0]

    def _login(self) -> dict[str, str]:
        return {"entid": self.option("entid"), "uid": self.config.username,
                "pwd": hashlib.md5(self.config.password.encode("utf-8")).hexdigest(), "returnflag": "text"}

    def _dest(self, ext: str) -> str:
        own = self.option("account_ext")
        if own and ext.startswith(own):
            ext = ext[len(own):]
        return self.config.access_code + ext

    def send_call(self, phones: list[str], text: str, extno: str) -> Call:
        form = {**self._login(), "mobs": ",".join(phones), "msg": text}
        if extno:
            form["extno"] = extno
        return Call("POST", "/sendSms.do", data=form, headers={"Content-Type": _FORM_TYPE})

    def parse_send(self, status: int, body: bytes, phones: list[str]) -> Accepted | Refused:
        if status != 200:
            return Refused(f"HTTP:{status}", True)
        lines = [line.strip() for line in _decode(body).strip().split("\n")]
        code = lines[0] if lines else ""
        if code != _OK:
            return Refused(f"QMSG:{code or 'empty'}", code in _RETRYABLE)
        sendid = lines[1] if len(lines) > 1 else ""
        if not sendid:
            return Refused("QMSG:NOSENDID", False)
        return Accepted({p: f"{sendid}:{p}" for p in phones})

    def balance_call(self) -> Call:
        return Call("POST", "/getSms.do", data=self._login(), headers={"Content-Type": _FORM_TYPE})

    def balance_ok(self, status: int, body: bytes) -> bool:
        return status == 200 and _decode(body).strip().split("\n")[0].strip() == _OK

    def pulled(self, status: int, body: bytes) -> list[Inbound]:
        """The replies a getSms.do answer handed over: ``ext,mobile,replytime,msg`` lines."""
        out = []
        for line in _decode(body).split("\n")[1:]:
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split(",", 3)
            if len(fields) < 4:
                continue
            ext, mob, when, msg = fields
            inbound = Inbound(self.config.id, phone=mob.strip(), dest=self._dest(ext.strip()), text=msg)
            try:
                inbound.received_at = datetime.strptime(when.strip(), "%Y-%m-%d %H:%M:%S")
            except ValueError:
                pass
            out.append(inbound)
        return out

    def parse_push(self, kind: str, push: RawPush) -> PushAnswer:
        p = params.parse(push.query, push.body, push.content_type, push.method)
        ch = self.config.id
        entid = self.option("entid")
        if entid and (p.get("entid") or "").strip() not in ("", entid):
            return PushAnswer(_NOT_TAKEN)
        mob = (p.get("mob") or "").strip()
        if kind == "report":
            sendid, status = (p.get("sendid") or "").strip(), (p.get("status") or "").strip()
            if not (sendid and mob and status):
                return PushAnswer(_NOT_TAKEN)
            word = _STATUS_WORDS.get(status, "UNDELIV")
            return PushAnswer(_TAKEN, reports=[Report(ch, f"{sendid}:{mob}", word, status == _DELIVERED, mob)])
        if not mob or p.get("msg") is None:
            return PushAnswer(_NOT_TAKEN)
        inbound = Inbound(ch, phone=mob, dest=self._dest((p.get("ext") or "").strip()), text=p.get("msg") or "")
        try:
            inbound.received_at = datetime.strptime((p.get("replytime") or "").strip(), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            pass
        return PushAnswer(_TAKEN, inbound=[inbound])

    def busy_answer(self, kind: str) -> PushAnswer:
        return PushAnswer(_NOT_TAKEN)
