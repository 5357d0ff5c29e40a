"""How every page answers: HTML from a template, or its JSON twin, from the same `data`.

A page builds one JSON-safe `data` dict and hands it to `page()`; the template renders from
`data` alone, so `?format=json` (or `Accept: application/json`) holds everything the page shows.
Problems a visitor can cause are raised as `NotFound` / `BadRequest` and become a 404 / 400 page
(or JSON) with the reason.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from importlib.resources import files
from pathlib import PurePath
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response


class HTTPProblem(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(HTTPProblem):
    status = 404


class BadRequest(HTTPProblem):
    status = 400


def _default(o: Any):
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, PurePath | bytes):
        return str(o)
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False)


class JSONTwin(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return to_json(content).encode("utf-8")


def wants_json(request: Request) -> bool:
    fmt = request.query_params.get("format")
    if fmt is not None:
        if fmt not in ("json", "html"):
            raise BadRequest(f"format must be 'json' or 'html', not {fmt[:40]!r}")
        return fmt == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


# -- templates ---------------------------------------------------------------------------------


def _when(v) -> str:
    if v in (None, ""):
        return ""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return v
    return v.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if v.utcoffset() is not None else "")


def _size(n) -> str:
    if n is None:
        return ""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _duration(seconds) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{float(seconds):.1f} s" if seconds < 10 else f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(files("flowprov.web").joinpath("templates"))),
        # every value from the store is user data: escaped wherever it is written
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, size=_size, duration=_duration, tojson_text=to_json)
    env.globals.update(json_url=json_url)
    return env


def json_url(request: Request) -> str:
    """This page's URL (path and query) asking for its JSON twin."""
    u = request.url.include_query_params(format="json")
    return f"{u.path}?{u.query}"


TEMPLATES = _environment()


def page(
    request: Request, template: str, data: dict, status: int = 200, **context: Any
) -> Response:
    """The page of `data`: its template as HTML, or `data` itself as JSON."""
    if wants_json(request):
        return JSONTwin(data, status_code=status)
    html = TEMPLATES.get_template(template).render(
        request=request, data=data, instance=request.app.state.instance_name, **context
    )
    return HTMLResponse(html, status_code=status)


def problem(request: Request, status: int, message: str) -> Response:
    """The error page (or JSON) of a status and its reason."""
    try:
        as_json = wants_json(request)
    except BadRequest:
        as_json = False
    if as_json:
        return JSONTwin({"error": message, "status": status}, status_code=status)
    html = TEMPLATES.get_template("error.html").render(
        request=request,
        data={"error": message, "status": status},
        instance=getattr(request.app.state, "instance_name", ""),
    )
    return HTMLResponse(html, status_code=status)
