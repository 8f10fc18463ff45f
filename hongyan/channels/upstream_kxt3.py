"""Client of the 快信通 3 API (dialect ``kxt3``), for an upstream that speaks it.

Every request is a UTF-8 form POST of ``op`` and ``message`` (JSON), signed
with ``pwd = md5(secret + timestamp)``; the upstream takes each timestamp
once, so they are ``yyyyMMddHHmmss`` + a four-digit counter, never repeated
by this process. ``sendSm`` answers one ``token`` per request and reports
carry (token, mobile): the carrier id is ``"<token>:<mobile>"``.

The vendor has no extension field: messages go from the upstream account's
own number, and replies (which name no destination) are taken as sent to
this channel's access code. Options: ``cid`` (the upstream's org code,
required), ``push_uid``/``push_pwd`` (when set, pushes must carry them).
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime

import orjson

from hongyan.channels.base import Inbound, Report
from hongyan.channels.upstream import Accepted, Call, DialectClient, PushAnswer, RawPush, Refused
from hongyan.dialects import kxt3, params
from hongyan.domain.outcomes import Code

_OK = kxt3.OUTCOMES[Code.OK][0]
# Busy, too fast, and a timestamp the upstream saw before: a new request can succeed.
_RETRYABLE = {kxt3.OUTCOMES[Code.SYSTEM_BUSY][0], kxt3.OUTCOMES[Code.RATE_LIMITED][0],
              kxt3.OUTCOMES[Code.TIMESTAMP_INVALID][0]}
# 4.7 / 5.7: the receiver answers the string 0; anything else has the batch pushed again.
_TAKEN = b"0"
_NOT_TAKEN = b"1"
_FORM_TYPE = "application/x-www-form-urlencoded; charset=UTF-8"


class Kxt3Client(DialectClient):
    max_recipients = kxt3.MAX_RECIPIENTS

    def __init__(self, config) -> None:
        super().__init__(config)
        self._second = 0
        self._count = 0

    def _timestamp(self) -> str:
        now = int(time.time())
        if now > self._second:
            self._second, self._count = now, 0
        elif self._count >= 10_000:
            # More than 10,000 requests in a second: borrow the next second's numbers.
            self._second, self._count = self._second + 1, 0
        n = self._count
        self._count += 1
        return datetime.fromtimestamp(self._second).strftime("%Y%m%d%H%M%S") + f"{n:04d}"

    def _signed(self, op: str, **fields) -> Call:
        ts = self._timestamp()
        doc = {"cid": self.option("cid"), "uid": self.config.username,
               "pwd": hashlib.md5((self.config.password + ts).encode("utf-8")).hexdigest(),
               "timestamp": ts, **fields}
        return Call("POST", kxt3.PATH, data={"op": op, "message": orjson.dumps(doc).decode()},
                    headers={"Content-Type": _FORM_TYPE})

    def send_call(self, phones: list[str], text: str, extno: str) -> Call:
        return self._signed("sendSm", mobiles=phones, content=text)

    @staticmethod
    def _state(body: bytes) -> tuple[int | None, dict]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, {}
        if not isinstance(doc, dict) or not isinstance(doc.get("stateCode"), int):
            return None, {}
        return doc["stateCode"], doc

    def parse_send(self, status: int, body: bytes, phones: list[str]) -> Accepted | Refused:
        state, doc = self._state(body)
        if status != 200 or state is None:
            return Refused(f"HTTP:{status}", True)
        if state != _OK:
            return Refused(f"KXT3:{state}", state in _RETRYABLE)
        token = str(doc.get("token") or "")
        if not token:
            return Refused("KXT3:NOTOKEN", False)
        return Accepted({p: f"{token}:{p}" for p in phones})

    def balance_call(self) -> Call:
        return self._signed("login")

    def balance_ok(self, status: int, body: bytes) -> bool:
        return status == 200 and self._state(body)[0] == _OK

    def parse_push(self, kind: str, push: RawPush) -> PushAnswer:
        p = params.parse(push.query, push.body, push.content_type, push.method)
        uid, pwd = self.option("push_uid"), self.option("push_pwd")
        if (uid or pwd) and (p.get("uid") != uid or p.get("pwd") != pwd):
            return PushAnswer(_NOT_TAKEN, status=403)
        try:
            rows = orjson.loads(p.get("jsonData") or "")
        except orjson.JSONDecodeError:
            return PushAnswer(_NOT_TAKEN, status=400)
        kind = (p.get("type") or kind).strip()
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            return PushAnswer(_NOT_TAKEN, status=400)
        ch = self.config.id
        answer = PushAnswer(_TAKEN)
        for r in rows:
            mobile = str(r.get("mobile") or "")
            if kind == "report":
                token = str(r.get("token") or "")
                if not (token and mobile):
                    return PushAnswer(_NOT_TAKEN, status=400)
                delivered = r.get("success") is True
                status = str(r.get("resultCode") or ("DELIVRD" if delivered else "UNDELIV"))
                answer.reports.append(Report(ch, f"{token}:{mobile}", status, delivered, mobile))
            elif kind == "mo":
                if not mobile or not isinstance(r.get("content"), str):
                    return PushAnswer(_NOT_TAKEN, status=400)
                inbound = Inbound(ch, phone=mobile, dest=self.config.access_code, text=r["content"])
                try:
                    inbound.received_at = datetime.strptime(str(r.get("smgRecvDate")), "%Y-%m-%d %H:%M:%S")
                except ValueError:
                    pass
                answer.inbound.append(inbound)
            else:
                return PushAnswer(_NOT_TAKEN, status=400)
        return answer

    def busy_answer(self, kind: str) -> PushAnswer:
        return PushAnswer(_NOT_TAKEN, status=503)
