"""The ASGI app: every HTTP front door, health and metrics, over one Runtime."""
from __future__ import annotations

import inspect
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse

from hongyan import __version__, console
from hongyan.config import Settings
from hongyan import dialects
from hongyan.dialects import rest
from hongyan.channels import upstream_routes
from hongyan.metrics import render_metrics
from hongyan.runtime import Runtime
from hongyan.web import JSON


def _no_telemetry() -> dict:
    # Recent FastAPI checks for OpenTelemetry on every request; Hongyan exports
    # Prometheus metrics instead, so that check is switched off where it exists.
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt = runtime or Runtime(settings)
        app.state.runtime = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(title="Hongyan", version=__version__, lifespan=lifespan,
                  description="Hongyan (鸿雁) enterprise SMS platform: the native API.",
                  default_response_class=JSON, **_no_telemetry())
    app.include_router(rest.router)
    for module in dialects.modules():
        app.include_router(module.router)
    app.include_router(console.router)
    app.include_router(upstream_routes.router)

    @app.exception_handler(rest.ApiError)
    async def _api_error(request: Request, exc: rest.ApiError):
        return rest.error_response(exc.outcome)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return rest.error_response(rest.validation_outcome(exc.errors()))

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request):
        return {"status": "ok", "version": __version__, **request.app.state.runtime.stats()}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request):
        body, ctype = render_metrics(request.app.state.runtime)
        return PlainTextResponse(body, media_type=ctype)

    return app
