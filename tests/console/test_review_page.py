"""The operators' review page over a real server: held submissions approved and rejected by button."""
from __future__ import annotations

import httpx
from sqlalchemy import select

from hongyan.core import accounts as acc
from hongyan.core.rules import add_words
from hongyan.store import tables
from tests.console.test_console import PASSWORD, add_operator, client_for, csrf_of, login, set_console_password
from tests.e2e.conftest import stack  # noqa: F401  (the fixture)
from tests.helpers import until

TEXT = "【鸿雁】本周特价 <b>限时</b>"


async def held(stack, to: list[str]) -> int:
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers) as api:
        r = await api.post("/v1/messages", json={"to": to, "content": TEXT})
        assert r.status_code == 202 and r.json()["code"] == "content_held", r.text
        return r.json()["submission_id"]


async def test_operator_approves_and_rejects_held_submissions(stack):  # noqa: F811
    with stack.runtime.engine.begin() as conn:
        add_words(conn, "review", ["特价"])
    a = await held(stack, ["13800138000", "18612345678"])
    b = await held(stack, ["13900139000"])
    add_operator(stack)
    async with client_for(stack) as ops:
        assert (await login(ops, "ops", "ops-pass")).status_code == 303
        page = await ops.get("/console/ops/review")
        assert page.status_code == 200
        text = page.text
        assert f'action="/console/ops/review/{a}/approve"' in text and f"/console/ops/review/{b}/reject" in text
        assert "特价" in text and "2 / 2" in text and 'href="/console/ops/review" class="active"' in text
        assert "<b>限时</b>" not in text and "&lt;b&gt;限时&lt;/b&gt;" in text  # the text is escaped
        csrf = csrf_of(text)

        r = await ops.post(f"/console/ops/review/{a}/approve", data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/console/ops/review?done=approved"
        await until(lambda: len([x for x in stack.callbacks.reports() if x["submission_id"] == a]) == 2,
                    what="the approved messages' reports")
        again = await ops.post(f"/console/ops/review/{a}/approve", data={"csrf": csrf})
        assert again.status_code == 422 and "already approved by console:ops" in again.text

        r = await ops.post(f"/console/ops/review/{b}/reject", data={"csrf": csrf, "reason": "misleading"})
        assert r.status_code == 303 and r.headers["location"] == "/console/ops/review?done=rejected"
        done = await ops.get(r.headers["location"])
        assert "Rejected" in done.text and "Nothing is held for review." in done.text
        no_csrf = await ops.post(f"/console/ops/review/{b}/approve", data={})
        assert no_csrf.status_code == 403

    await until(lambda: any(x["submission_id"] == b for x in stack.callbacks.reports()), what="the REJECT report")
    rep = next(x for x in stack.callbacks.reports() if x["submission_id"] == b)
    assert rep["carrier_status"] == "REJECT" and rep["refunded"] is True
    with stack.runtime.engine.connect() as conn:
        audit = {r.submission_id: r for r in conn.execute(select(tables.reviews))}
        assert acc.ledger_mismatches(conn) == []
        assert acc.balances_of(conn, acc.owner_of(conn, "alice"))[0]["amount"] == 10_000 - 2
    assert audit[a].operator == "console:ops" and audit[b].reason == "misleading"


async def test_customers_cannot_open_the_review_page(stack):  # noqa: F811
    set_console_password(stack, "alice", PASSWORD)
    async with client_for(stack) as customer:
        assert (await login(customer, "alice", PASSWORD)).status_code == 303
        assert (await customer.get("/console/ops/review")).status_code == 403
    async with client_for(stack) as nobody:
        r = await nobody.get("/console/ops/review")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
