"""Home (recent top-level runs, failures first; counts; what runs now) and search. STUB."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from .respond import page


def home(request: Request):
    return page(request, "home.html", {"runs": [], "counts": {}})


ROUTES = [Route("/", home, methods=["GET"])]
