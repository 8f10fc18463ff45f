"""Where upstream platforms push reports and replies: ``/upstream/{channel}/{report|mo}``.

The answer waits until the core has committed what the push carried, so an
upstream whose push is not answered as received sends it again.
"""
from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from starlette.responses import Response

from hongyan.channels.upstream import RawPush, UpstreamChannel

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

COMMIT_TIMEOUT = 10.0


def _channel(request: Request, name: str) -> UpstreamChannel | None:
    rt = getattr(request.app.state, "runtime", None)
    if rt is None:
        return None
    for ch in rt.router.channels():
        if ch.config.name == name and isinstance(ch, UpstreamChannel):
            return ch
    return None


@router.api_route("/upstream/{name}/{kind}", methods=["GET", "POST"])
async def push(request: Request, name: str, kind: str) -> Response:
    ch = _channel(request, name)
    if ch is None or kind not in ("report", "mo"):
        return Response(b"not found", status_code=404, media_type="text/plain")
    raw = RawPush(request.method, request.scope.get("query_string", b""),
                  {k.lower(): v for k, v in request.headers.items()}, await request.body())
    answer, items = ch.push(kind, raw)
    if items:
        loop = asyncio.get_running_loop()
        left = len(items)
        done = loop.create_future()

        def ack() -> None:
            nonlocal left
            left -= 1
            if left == 0 and not done.done():
                done.set_result(None)

        def ack_threadsafe() -> None:
            loop.call_soon_threadsafe(ack)

        for item in items:
            item.ack = ack_threadsafe
            if hasattr(item, "carrier_id"):
                ch.events.report(item)
            else:
                ch.events.mo(item)
        try:
            await asyncio.wait_for(done, COMMIT_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("upstream %s: %s push not committed within %.0f s", name, kind, COMMIT_TIMEOUT)
            answer = ch.client.busy_answer(kind)
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)
