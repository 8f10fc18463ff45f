"""Every answer the core can give to a request, as one typed value.

A front door (native API, a vendor dialect, the CMPP server) never decides what
went wrong: it receives an :class:`Outcome` and looks its code up in its own
table. The list covers every distinct error the five vendor documents name, so
each dialect's table can map each of its codes to exactly one outcome here.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Code(str, enum.Enum):
    # The value is the stable machine-readable code of the native API.
    OK = "ok"
    # who is asking
    AUTH_FAILED = "auth_failed"                  # unknown user or wrong password / key
    USER_NOT_FOUND = "user_not_found"            # some dialects tell "no such user" apart
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_EXPIRED = "account_expired"
    ACCOUNT_DISABLED = "account_disabled"
    ORG_DISABLED = "org_disabled"
    IP_DENIED = "ip_denied"
    TIMESTAMP_INVALID = "timestamp_invalid"      # malformed or replayed (kxt3 230)
    PERMISSION_DENIED = "permission_denied"      # no right to this interface / operation
    # the request itself
    MISSING_PARAMETER = "missing_parameter"
    INVALID_PARAMETER = "invalid_parameter"
    INVALID_JSON = "invalid_json"
    METHOD_NOT_ALLOWED = "method_not_allowed"    # kxt3 130: GET not supported
    UNSUPPORTED_OPERATION = "unsupported_operation"
    DUPLICATE_REQUEST = "duplicate_request"      # idempotency key already used (answered with the first result)
    RECIPIENTS_EMPTY = "recipients_empty"
    RECIPIENTS_TOO_MANY = "recipients_too_many"
    RECIPIENTS_TOO_FEW = "recipients_too_few"    # qxt error 8
    INVALID_NUMBER = "invalid_number"
    CONTENT_EMPTY = "content_empty"
    CONTENT_TOO_LONG = "content_too_long"
    INVALID_EXTNO = "invalid_extno"
    INVALID_SCHEDULE = "invalid_schedule"        # atTime / dstime malformed or in the past
    INVALID_SEND_WINDOW = "invalid_send_window"  # dailyBeginTime / dailyEndTime malformed
    INVALID_TOKEN = "invalid_token"              # kxt3 350/360
    # money and quotas
    INSUFFICIENT_BALANCE = "insufficient_balance"
    PRODUCT_UNAVAILABLE = "product_unavailable"  # no such product, or not subscribed
    PRODUCT_BALANCE = "product_balance"          # k1680 13: the product's balance is wrong
    QUOTA_EXCEEDED = "quota_exceeded"            # monthly quota
    # content policy
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_INVALID = "signature_invalid"
    CONTENT_BLOCKED = "content_blocked"          # detail: the word
    CONTENT_HELD = "content_held"                # accepted, waiting for review (k1680 3)
    CONTENT_REJECTED = "content_rejected"        # automatic review refused it (httpbatch 115)
    NOT_WHITELISTED = "not_whitelisted"          # content matches no approved template
    # traffic
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONCURRENT = "too_many_concurrent"
    OUTSIDE_SEND_WINDOW = "outside_send_window"
    SYSTEM_BUSY = "system_busy"
    SYSTEM_ERROR = "system_error"


# The HTTP status the native API answers each outcome with.
HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.AUTH_FAILED: 401, Code.USER_NOT_FOUND: 401,
    Code.ACCOUNT_LOCKED: 403, Code.ACCOUNT_EXPIRED: 403, Code.ACCOUNT_DISABLED: 403,
    Code.ORG_DISABLED: 403, Code.IP_DENIED: 403, Code.TIMESTAMP_INVALID: 401,
    Code.PERMISSION_DENIED: 403,
    Code.MISSING_PARAMETER: 400, Code.INVALID_PARAMETER: 400, Code.INVALID_JSON: 400,
    Code.METHOD_NOT_ALLOWED: 405, Code.UNSUPPORTED_OPERATION: 400,
    Code.DUPLICATE_REQUEST: 409,
    Code.RECIPIENTS_EMPTY: 422, Code.RECIPIENTS_TOO_MANY: 422, Code.RECIPIENTS_TOO_FEW: 422,
    Code.INVALID_NUMBER: 422, Code.CONTENT_EMPTY: 422, Code.CONTENT_TOO_LONG: 422,
    Code.INVALID_EXTNO: 422, Code.INVALID_SCHEDULE: 422, Code.INVALID_SEND_WINDOW: 422,
    Code.INVALID_TOKEN: 422,
    Code.INSUFFICIENT_BALANCE: 402, Code.PRODUCT_UNAVAILABLE: 403, Code.PRODUCT_BALANCE: 402,
    Code.QUOTA_EXCEEDED: 429,
    Code.SIGNATURE_MISSING: 422, Code.SIGNATURE_INVALID: 422, Code.CONTENT_BLOCKED: 422,
    Code.CONTENT_HELD: 202, Code.CONTENT_REJECTED: 422, Code.NOT_WHITELISTED: 422,
    Code.RATE_LIMITED: 429, Code.TOO_MANY_CONCURRENT: 429, Code.OUTSIDE_SEND_WINDOW: 422,
    Code.SYSTEM_BUSY: 503, Code.SYSTEM_ERROR: 500,
}

# Human-readable default texts (dialects use their own).
MESSAGES: dict[Code, str] = {
    Code.OK: "accepted",
    Code.AUTH_FAILED: "unknown user or wrong credentials",
    Code.USER_NOT_FOUND: "no such user",
    Code.ACCOUNT_LOCKED: "the account is locked",
    Code.ACCOUNT_EXPIRED: "the account has expired",
    Code.ACCOUNT_DISABLED: "the account is disabled",
    Code.ORG_DISABLED: "the organisation is disabled",
    Code.IP_DENIED: "requests from this address are not allowed for the account",
    Code.TIMESTAMP_INVALID: "the timestamp is malformed or was already used",
    Code.PERMISSION_DENIED: "the account may not use this interface",
    Code.MISSING_PARAMETER: "a required parameter is missing",
    Code.INVALID_PARAMETER: "a parameter has an invalid value",
    Code.INVALID_JSON: "the body is not valid JSON",
    Code.METHOD_NOT_ALLOWED: "this HTTP method is not supported here",
    Code.UNSUPPORTED_OPERATION: "unsupported operation",
    Code.DUPLICATE_REQUEST: "this idempotency key was already used with a different request",
    Code.RECIPIENTS_EMPTY: "no recipient",
    Code.RECIPIENTS_TOO_MANY: "too many recipients in one request",
    Code.RECIPIENTS_TOO_FEW: "too few recipients in one request",
    Code.INVALID_NUMBER: "invalid mobile number",
    Code.CONTENT_EMPTY: "the content is empty",
    Code.CONTENT_TOO_LONG: "the content is too long",
    Code.INVALID_EXTNO: "the extension number is not digits or too long",
    Code.INVALID_SCHEDULE: "the scheduled time is malformed or in the past",
    Code.INVALID_SEND_WINDOW: "the daily send window is malformed",
    Code.INVALID_TOKEN: "invalid token",
    Code.INSUFFICIENT_BALANCE: "insufficient balance",
    Code.PRODUCT_UNAVAILABLE: "no such product, or the account has not subscribed to it",
    Code.PRODUCT_BALANCE: "the product has no balance",
    Code.QUOTA_EXCEEDED: "the monthly quota is used up",
    Code.SIGNATURE_MISSING: "the content carries no signature",
    Code.SIGNATURE_INVALID: "the signature is not approved for the account",
    Code.CONTENT_BLOCKED: "the content contains a blocked word",
    Code.CONTENT_HELD: "accepted and held for review",
    Code.CONTENT_REJECTED: "the content was rejected by review",
    Code.NOT_WHITELISTED: "the content matches no approved template",
    Code.RATE_LIMITED: "too many messages per second",
    Code.TOO_MANY_CONCURRENT: "too many concurrent requests",
    Code.OUTSIDE_SEND_WINDOW: "outside the allowed sending hours",
    Code.SYSTEM_BUSY: "the system is busy, try again",
    Code.SYSTEM_ERROR: "internal error",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    code: Code
    detail: str = ""                 # e.g. the blocked word, the missing parameter's name
    data: dict[str, Any] = field(default_factory=dict)  # what an "ok" carries back

    @property
    def ok(self) -> bool:
        # A held message was accepted (and billed): for the caller it is a success
        # whose answer says it waits for review.
        return self.code in (Code.OK, Code.CONTENT_HELD)

    @property
    def message(self) -> str:
        text = MESSAGES[self.code]
        return f"{text}: {self.detail}" if self.detail else text

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


def ok(**data: Any) -> Outcome:
    return Outcome(Code.OK, data=data)


def fail(code: Code, detail: str = "") -> Outcome:
    return Outcome(code, detail)
