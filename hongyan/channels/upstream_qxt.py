"""Client of the qxt ``smssenderv2`` API (dialect ``qxt``), for an upstream that speaks it.

Requests are GBK forms, the password the MD5 hex of the secret, as the
vendor's customers send them. ``ok:<mid>:<tele,...>`` answers one mid for
the request and lists the numbers taken; reports (``type=4``) carry
(mid, mobile), so the carrier id is ``"<mid>:<mobile>"`` on both sides.
``fail:999`` is the vendor's system error and is tried again; ``error:…``
answers are final. Pushes of both kinds may come to either push URL: the
``type`` parameter says which it is.
"""
from __future__ import annotations

import hashlib
from urllib.parse import quote

from hongyan.channels.base import Inbound, Report
from hongyan.channels.upstream import Accepted, Call, DialectClient, PushAnswer, RawPush, Refused
from hongyan.dialects import params, qxt

_FORM_TYPE = "application/x-www-form-urlencoded; charset=GBK"
_OK = b"ok"
# What the vendor's push receivers answer when they cannot take a push.
_ERROR = b"error"


def _form(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{k}={quote(v.encode(qxt.CHARSET), safe='')}" for k, v in pairs).encode("ascii")


class QxtClient(DialectClient):
    max_recipients = qxt.MAX_RECIPIENTS

    def _login(self) -> list[tuple[str, str]]:
        return [("user", self.config.username),
                ("password", hashlib.md5(self.config.password.encode("utf-8")).hexdigest())]

    def send_call(self, phones: list[str], text: str, extno: str) -> Call:
        pairs = self._login() + [("tele", ",".join(phones)), ("msg", text)]
        if extno:
            pairs.append(("extno", extno))
        return Call("POST", "/qxt/smssenderv2", content=_form(pairs), headers={"Content-Type": _FORM_TYPE})

    def parse_send(self, status: int, body: bytes, phones: list[str]) -> Accepted | Refused:
        text = body.decode(qxt.CHARSET, "replace").strip()
        kind, _, rest = text.partition(":")
        if status != 200:
            return Refused(f"HTTP:{status}", True)
        if kind == "ok":
            mid, _, tele = rest.partition(":")
            taken = {t.strip() for t in tele.split(",") if t.strip()}
            if not mid:
                return Refused("QXT:NOMID", False)
            return Accepted({p: f"{mid}:{p}" for p in phones if p in taken})
        if kind == "fail":
            return Refused(f"QXT:{rest.partition(':')[0] or 'fail'}", True)
        # "error:<text>": the request as a whole is refused; the text is the reason.
        return Refused(f"QXT:{rest[:19] or 'error'}", False)

    def balance_call(self) -> Call:
        return Call("POST", "/qxt/surplus", content=_form(self._login()), headers={"Content-Type": _FORM_TYPE})

    def balance_ok(self, status: int, body: bytes) -> bool:
        return status == 200 and body.strip().startswith(b"ok:")

    def parse_push(self, kind: str, push: RawPush) -> PushAnswer:
        p = params.parse(push.query, push.body, push.content_type, push.method)
        ch = self.config.id
        kind_of = p.get("type")
        mobile, msg = (p.get("mobile") or "").strip(), p.get("msg")
        if kind_of == "4":
            mid = (p.get("mid") or "").strip()
            if not (mid and mobile and msg):
                return PushAnswer(_ERROR, status=400)
            status = msg.strip()
            return PushAnswer(_OK, reports=[Report(ch, f"{mid}:{mobile}", status, status == "DELIVRD", mobile)])
        if kind_of == "1":
            if not mobile or msg is None:
                return PushAnswer(_ERROR, status=400)
            return PushAnswer(_OK, inbound=[Inbound(ch, phone=mobile, dest=(p.get("port") or "").strip(),
                                                    text=msg)])
        return PushAnswer(_ERROR, status=400)

    def busy_answer(self, kind: str) -> PushAnswer:
        return PushAnswer(_ERROR, status=503)
