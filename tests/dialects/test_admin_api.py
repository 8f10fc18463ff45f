"""The native API's rule endpoints: customers' own rules and blacklist, admins' platform management."""
from __future__ import annotations

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from hongyan.app import create_app
from hongyan.core import accounts as acc
from hongyan.core.secrets import Cipher
from hongyan.dialects import admin
from hongyan.domain.clock import now_ms
from hongyan.runtime import Runtime
from hongyan.store import tables
from hongyan.store.db import make_engine, migrate
from tests.helpers import seed


class Env:
    def __init__(self, runtime, client, user, admin) -> None:
        self.runtime, self.client = runtime, client
        self.user = {"Authorization": f"Bearer {user['key']}"}
        self.admin = {"Authorization": f"Bearer {admin}"}


@pytest.fixture
async def env(settings):
    settings.roles = ["api"]   # no carrier, no pushes: the rows are what the tests read
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    cipher = Cipher(settings.secret_key)
    user = seed(engine, cipher, balance=100)
    with engine.begin() as conn:
        _, _, admin_key = acc.create_account(conn, cipher, org_code="200001", username="root", role="admin")
    engine.dispose()
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    await runtime.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hongyan") as client:
        yield Env(runtime, client, user, admin_key)
    await runtime.stop()


def error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["message"], body
    return body


async def test_customer_reads_effective_rules_and_cannot_reach_admin_endpoints(env):
    c = env.client
    r = await c.get("/v1/rules", headers=env.user)
    assert r.status_code == 200 and r.json()["rules"]["concurrency"] == 5
    for method, path in (("GET", "/v1/admin/rules/platform"), ("PUT", "/v1/admin/rules/alice"),
                         ("GET", "/v1/admin/words/block"), ("POST", "/v1/admin/words/review"),
                         ("GET", "/v1/admin/blacklist/platform"), ("GET", "/v1/admin/review"),
                         ("POST", "/v1/admin/review/1/approve"), ("POST", "/v1/admin/review/1/reject")):
        r = await c.request(method, path, headers=env.user, json={"mps": 1} if method == "PUT" else None)
        error(r, 403, "permission_denied")
    error(await c.get("/v1/admin/review"), 401, "auth_failed")
    error(await c.get("/v1/rules", headers={"Authorization": "Bearer hy_nope_nope"}), 401, "auth_failed")


async def test_admin_sets_platform_and_account_rules_with_sources(env):
    c = env.client
    r = await c.put("/v1/admin/rules/platform", headers=env.admin, json={"mps": 50, "signatures": ["鸿雁"]})
    assert r.status_code == 200, r.text
    assert r.json()["rules"]["mps"] == 50 and r.json()["sources"]["mps"] == "platform"
    r = await c.put("/v1/admin/rules/alice", headers=env.admin, json={"mps": 10, "signature_required": True})
    body = r.json()
    assert body["account"] == "alice" and body["rules"]["mps"] == 10 and body["sources"]["mps"] == "account"
    assert body["rules"]["signatures"] == ["鸿雁"] and body["sources"]["signatures"] == "platform"
    assert body["sources"]["concurrency"] == "default"
    assert (await c.get("/v1/rules", headers=env.user)).json()["rules"]["mps"] == 10
    # null drops the account's own value: the platform's applies again.
    r = await c.put("/v1/admin/rules/alice", headers=env.admin, json={"mps": None})
    assert r.json()["rules"]["mps"] == 50 and r.json()["sources"]["mps"] == "platform"
    got = (await c.get("/v1/admin/rules/alice", headers=env.admin)).json()
    assert got["sources"]["signature_required"] == "account" and got["rules"]["signature_required"] is True


async def test_rule_validation_errors_change_nothing(env):
    c = env.client
    before = (await c.get("/v1/admin/rules/alice", headers=env.admin)).json()
    body = error(await c.put("/v1/admin/rules/alice", headers=env.admin, json={"mps": 5, "concurrency": -1}),
                 400, "invalid_parameter")
    assert "concurrency must be a whole number" in body["detail"]
    body = error(await c.put("/v1/admin/rules/alice", headers=env.admin, json={"colour": "red"}),
                 400, "invalid_parameter")
    assert "unknown rule setting colour" in body["detail"]
    error(await c.put("/v1/admin/rules/nobody", headers=env.admin, json={"mps": 1}), 400, "invalid_parameter")
    error(await c.put("/v1/admin/rules/alice", headers=env.admin, json={}), 400, "missing_parameter")
    error(await c.put("/v1/admin/rules/alice", headers=env.admin, json=[1, 2]), 400, "invalid_parameter")
    r = await c.put("/v1/admin/rules/alice", headers={**env.admin, "Content-Type": "application/json"},
                    content=b"{nope")
    error(r, 400, "invalid_json")
    assert (await c.get("/v1/admin/rules/alice", headers=env.admin)).json() == before


async def test_word_lists(env):
    c = env.client
    r = await c.post("/v1/admin/words/block", headers=env.admin, json={"words": ["法轮", " 赌博 ", "法轮"]})
    assert r.json() == {"list": "block", "added": 2}
    r = await c.post("/v1/admin/words/review", headers=env.admin, json={"words": ["贷款"]})
    assert r.json()["added"] == 1
    listed = (await c.get("/v1/admin/words/block", headers=env.admin)).json()
    assert [i["word"] for i in listed["items"]] == ["法轮", "赌博"] and listed["total"] == 2
    page = (await c.get("/v1/admin/words/block?limit=1", headers=env.admin)).json()
    assert [i["word"] for i in page["items"]] == ["法轮"]
    rest = (await c.get(f"/v1/admin/words/block?after={page['next']}", headers=env.admin)).json()
    assert [i["word"] for i in rest["items"]] == ["赌博"]
    r = await c.request("DELETE", "/v1/admin/words/block", headers=env.admin, json={"words": ["赌博", "无"]})
    assert r.json() == {"list": "block", "removed": 1}
    error(await c.get("/v1/admin/words/grey", headers=env.admin), 400, "invalid_parameter")
    error(await c.post("/v1/admin/words/block", headers=env.admin, json={"words": ["长" * 65]}),
          400, "invalid_parameter")
    error(await c.post("/v1/admin/words/block", headers=env.admin, json={"words": [" "]}), 400, "missing_parameter")
    error(await c.post("/v1/admin/words/block", headers=env.admin, json={"words": "法轮"}), 400, "invalid_parameter")
    with env.runtime.engine.connect() as conn:
        assert [w for (w,) in conn.execute(select(tables.words.c.word).order_by(tables.words.c.id))] == \
            ["法轮", "贷款"]


async def test_changes_apply_to_the_next_request_at_once(env):
    c = env.client
    send = {"to": "13800138000", "content": "【鸿雁】赌博网站"}
    assert (await c.post("/v1/messages", headers=env.user, json=send)).status_code == 200
    await c.post("/v1/admin/words/block", headers=env.admin, json={"words": ["赌博"]})
    body = error(await c.post("/v1/messages", headers=env.user, json=send), 422, "content_blocked")
    assert body["detail"] == "赌博"
    await c.put("/v1/admin/rules/alice", headers=env.admin, json={"allowed_hours": "00:00:00-00:00:01"})
    error(await c.post("/v1/messages", headers=env.user, json={**send, "content": "【鸿雁】你好"}),
          422, "outside_send_window")
    await c.put("/v1/admin/rules/alice", headers=env.admin, json={"allowed_hours": None})
    await c.post("/v1/admin/blacklist/platform", headers=env.admin, json={"phones": ["13900139000"]})
    r = await c.post("/v1/messages", headers=env.user, json={"to": "13900139000", "content": "【鸿雁】你好"})
    m = (await c.get(f"/v1/messages/{r.json()['messages'][0]['id']}", headers=env.user)).json()
    assert m["state"] == "failed" and m["carrier_status"] == "MBBLACK"


async def test_customer_keeps_its_own_blacklist(env):
    c = env.client
    r = await c.post("/v1/blacklist", headers=env.user, json={"phones": "+86 138 0013 8000, 13900139000",
                                                              "note": "asked us to stop"})
    assert r.status_code == 200 and r.json() == {"added": 2, "phones": ["13800138000", "13900139000"]}
    r = await c.post("/v1/blacklist", headers=env.user, json={"phones": ["8613800138000"]})
    assert r.json()["added"] == 0
    listed = (await c.get("/v1/blacklist", headers=env.user)).json()
    assert [(i["phone"], i["note"]) for i in listed["items"]] == [("13800138000", "asked us to stop"),
                                                                   ("13900139000", "asked us to stop")]
    body = error(await c.post("/v1/blacklist", headers=env.user, json={"phones": ["13800138001", "12345"]}),
                 422, "invalid_number")
    assert body["detail"] == "12345"
    error(await c.post("/v1/blacklist", headers=env.user, json={}), 400, "missing_parameter")
    error(await c.post("/v1/blacklist", headers=env.user, json={"phones": 13800138000}), 400, "invalid_parameter")
    huge = {"phones": ["13800138000"] * 400_000}   # ~6 MB: refused before it is parsed
    body = error(await c.post("/v1/blacklist", headers=env.user, json=huge), 400, "invalid_parameter")
    assert "larger than" in body["detail"]
    r = await c.request("DELETE", "/v1/blacklist", headers=env.user, json={"phones": ["13900139000"]})
    assert r.json() == {"removed": 1}
    # Its list is its own: the platform-wide list is the admins'.
    assert (await c.get("/v1/admin/blacklist/platform", headers=env.admin)).json()["items"] == []
    alice = (await c.get("/v1/admin/blacklist/alice", headers=env.admin)).json()
    assert [i["phone"] for i in alice["items"]] == ["13800138000"]


async def test_admin_blacklists(env):
    c = env.client
    r = await c.post("/v1/admin/blacklist/platform", headers=env.admin, json={"phones": ["13700137000"]})
    assert r.json()["added"] == 1
    r = await c.post("/v1/admin/blacklist/alice", headers=env.admin, json={"phones": ["13600136000"]})
    assert r.json()["added"] == 1
    assert [i["phone"] for i in (await c.get("/v1/blacklist", headers=env.user)).json()["items"]] == \
        ["13600136000"]
    r = await c.request("DELETE", "/v1/admin/blacklist/platform", headers=env.admin,
                        json={"phones": "13700137000"})
    assert r.json() == {"removed": 1}
    error(await c.post("/v1/admin/blacklist/nobody", headers=env.admin, json={"phones": ["13700137000"]}),
          400, "invalid_parameter")


def _held(env, to: list[str], content: str = "【鸿雁】本周特价") -> int:
    """A held submission as accept leaves one: billed, its messages held."""
    async def send():
        r = await env.client.post("/v1/messages", headers=env.user, json={
            "to": to, "content": content, "schedule_at": now_ms() + 3_600_000})
        assert r.status_code == 202 and r.json()["code"] == "content_held", r.text
        return r.json()["submission_id"]
    return send()


def _hold(env, sid: int) -> None:
    with env.runtime.engine.begin() as conn:
        conn.execute(update(tables.submissions).where(tables.submissions.c.id == sid)
                     .values(state="held", scheduled_at=None))
        conn.execute(update(tables.messages).where(tables.messages.c.submission_id == sid).values(state="held"))


async def test_review_list_approve_and_reject(env):
    c = env.client
    await c.post("/v1/admin/words/review", headers=env.admin, json={"words": ["特价"]})
    a = await _held(env, ["13800138000", "13900139000"])
    b = await _held(env, ["13700137000"])
    _hold(env, a)
    _hold(env, b)
    listed = (await c.get("/v1/admin/review", headers=env.admin)).json()
    assert [(i["submission_id"], i["held"], i["words"], i["username"]) for i in listed["items"]] == [
        (a, 2, ["特价"], "alice"), (b, 1, ["特价"], "alice")]
    assert (await c.get("/v1/admin/review?account=root", headers=env.admin)).json()["items"] == []
    r = await c.post(f"/v1/admin/review/{a}/approve", headers=env.admin)
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "approved" and r.json()["state"] == "accepted" and r.json()["messages"] == 2
    body = error(await c.post(f"/v1/admin/review/{a}/approve", headers=env.admin), 400, "unsupported_operation")
    assert "already approved by api:root" in body["detail"]
    r = await c.post(f"/v1/admin/review/{b}/reject", headers=env.admin, json={"reason": "spam"})
    assert r.json()["decision"] == "rejected" and r.json()["refunded"] == 1
    error(await c.post(f"/v1/admin/review/{b}/reject", headers=env.admin), 400, "unsupported_operation")
    body = error(await c.post("/v1/admin/review/987654/approve", headers=env.admin), 400, "invalid_parameter")
    assert "there is no submission 987654" in body["detail"]
    m = (await c.get(f"/v1/submissions/{b}", headers=env.user)).json()
    assert m["state"] == "rejected" and m["messages"][0]["carrier_status"] == "REJECT"
    assert m["messages"][0]["refunded"] is True
    assert (await c.get("/v1/balance", headers=env.user)).json()["balances"][0]["amount"] == 100 - 2
    reports = (await c.get("/v1/reports", headers=env.user)).json()["items"]
    assert [i["carrier_status"] for i in reports] == ["REJECT"]
    with env.runtime.engine.connect() as conn:
        audit = conn.execute(select(tables.reviews).order_by(tables.reviews.c.id)).all()
        assert acc.ledger_mismatches(conn) == []
    assert [(x.submission_id, x.decision, x.operator, x.reason) for x in audit] == [
        (a, "approved", "api:root", ""), (b, "rejected", "api:root", "spam")]


async def test_every_endpoint_has_a_summary(env):
    doc = orjson.loads((await env.client.get("/openapi.json")).content)
    paths = {route.path for route in admin.router.routes}
    ours = {p: ops for p, ops in doc["paths"].items() if p in paths}
    assert len(ours) == len(paths) == 8
    assert all(op.get("summary") for ops in ours.values() for op in ops.values())
