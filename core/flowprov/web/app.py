"""The app: every page module's routes, the static files, the token gate, the error pages."""

from __future__ import annotations

import logging
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..errors import DoesNotExist, FlowprovError, ValidationError
from .auth import ROUTES as AUTH_ROUTES
from .auth import SecurityHeaders, TokenGate
from .respond import HTTPProblem, problem

log = logging.getLogger("flowprov.serve")


class ServerTiming:
    """`Server-Timing: app;dur=<ms>` on every answer: the server's own time, which the benchmark
    and a browser's network panel read apart from the network's."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()

        async def send_timed(message):
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - t0) * 1000
                headers = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={ms:.2f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_timed)


def create_app(token: str | None = None, read_only: bool = True) -> Starlette:
    """The app over the current instance. read_only (the default; tests of pages may not need
    it) reopens the instance's database so that the database itself refuses writes."""
    from ..instance import current
    from . import pages_home, pages_lineage, pages_lists, pages_records

    inst = current()
    if read_only:
        inst.open_read_only()
    _ = inst.engine  # the schema is checked now, not on the first visitor's request

    routes = [
        *pages_home.ROUTES,
        *pages_lists.ROUTES,
        *pages_records.ROUTES,
        *pages_lineage.ROUTES,
        *AUTH_ROUTES,
        Mount("/static", StaticFiles(packages=[("flowprov.web", "static")]), name="static"),
    ]
    middleware = [Middleware(ServerTiming), Middleware(SecurityHeaders)]
    if token:
        middleware.append(Middleware(TokenGate, token=token))

    async def on_problem(request: Request, e: HTTPProblem):
        return problem(request, e.status, e.message)

    async def on_http(request: Request, e: HTTPException):
        message = {404: "no such page", 405: "this app is read-only: GET only"}.get(
            e.status_code, e.detail
        )
        return problem(request, e.status_code, message)

    async def on_flowprov(request: Request, e: FlowprovError):
        if isinstance(e, DoesNotExist):
            return problem(request, 404, str(e))
        if isinstance(e, ValidationError):
            return problem(request, 400, str(e))
        log.error("flowprov serve: %s %s: %s", request.method, request.url.path, e)
        return problem(request, 500, f"flowprov error: {e}")

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            HTTPProblem: on_problem,
            HTTPException: on_http,
            FlowprovError: on_flowprov,
        },
    )
    app.state.instance_name = inst.name
    app.state.token = token
    return app
