"""The native API's route endpoints: which channels carry which messages.

Admin accounts only (role ``admin``); others get ``permission_denied``.
Changes go through the writer, one transaction each, and apply to this
process's dispatcher at once and to other processes within about a second
(``hongyan.core.routing.Router`` polls the table). Refusals use the native
error shape of ``hongyan.dialects.rest``.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from hongyan.core import routing
from hongyan.core.accounts import AdminError
from hongyan.web import JSON

from .admin import Admin, run_read, run_write

router = APIRouter(prefix="/v1/admin", default_response_class=JSON, tags=["admin: routes"])


class RouteIn(BaseModel):
    channel: str | int = Field(description="The channel's name (or id).")
    carrier: str | None = Field(None, description="cmcc, unicom, telecom, cbn, unknown (or 移动, 联通, 电信, 广电); "
                                                  "null = any.")
    product: str | int | None = Field(None, description="A product code (or id); null = any.")
    account: str | int | None = Field(None, description="An account's username (or id); null = any.")
    weight: int = Field(1, ge=1, description="Share among routes with the same match and priority.")
    priority: int = Field(0, description="Lower is tried first among routes that match as specifically.")
    enabled: bool = True


class RouteSwitch(BaseModel):
    enabled: bool




def _one(conn: Connection, route_id: int) -> dict:
    for r in routing.list_routes(conn):
        if r["id"] == route_id:
            return r
    raise AdminError(f"no route {route_id}")


@router.get("/routes", summary="Every route, in the order a message tries them")
async def list_routes(request: Request, caller: Admin):
    return {"items": await run_read(request, routing.list_routes)}


@router.post("/routes", summary="Add a route", status_code=201)
async def add_route(request: Request, caller: Admin, body: RouteIn):
    def do(conn: Connection):
        rid = routing.add_route(conn, **body.model_dump())
        return _one(conn, rid)
    return await run_write(request, do)


@router.patch("/routes/{route_id}", summary="Switch a route on or off")
async def switch_route(request: Request, caller: Admin, route_id: int, body: RouteSwitch):
    def do(conn: Connection):
        routing.set_route_enabled(conn, route_id, body.enabled)
        return _one(conn, route_id)
    return await run_write(request, do)


@router.delete("/routes/{route_id}", summary="Delete a route")
async def remove_route(request: Request, caller: Admin, route_id: int):
    await run_write(request, routing.remove_route, route_id)
    return {"code": "ok", "id": route_id}
