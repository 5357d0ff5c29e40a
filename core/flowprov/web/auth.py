"""The token gate of `flowprov serve` and the security headers of every answer.

With a token, every request but the login form and the style sheet must carry it: as
`Authorization: Bearer <token>` (scripts, curl) or as the session cookie the login form sets
(browsers). The cookie holds an HMAC of the token, never the token; both are compared in
constant time. Without a token (loopback, or `--no-auth`) the gate is not installed.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .respond import TEMPLATES, problem

COOKIE = "flowprov_session"
OPEN_PATHS = ("/login", "/static/")

# Pages run no script of their own; the lineage page sets its own policy naming its one script.
CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"flowprov serve session", hashlib.sha256).hexdigest()


def _bearer(request_headers: dict[bytes, bytes]) -> str | None:
    auth = request_headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def _cookie(request_headers: dict[bytes, bytes]) -> str | None:
    for part in request_headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


class SecurityHeaders:
    """Adds the headers above to every answer (an answer that set its own CSP keeps it)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for k, v in HEADERS.items():
                    if k.encode() not in present:
                        headers.append((k.encode(), v.encode()))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TokenGate:
    def __init__(self, app, token: str):
        self.app = app
        self.token = token.encode()
        self.session = session_value(token).encode()

    def allowed(self, headers: dict[bytes, bytes]) -> bool:
        bearer = _bearer(headers)
        if bearer is not None and hmac.compare_digest(bearer.encode(), self.token):
            return True
        cookie = _cookie(headers)
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.session)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS):
            return await self.app(scope, receive, send)
        if self.allowed(dict(scope["headers"])):
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        given = _bearer(dict(scope["headers"])) is not None or _cookie(dict(scope["headers"]))
        response = problem(
            request,
            401,
            "the token is wrong" if given else "this instance needs a token: log in",
        )
        response.headers["www-authenticate"] = 'Bearer realm="flowprov"'
        await response(scope, receive, send)


def _safe_next(target: str | None) -> str:
    # only a path of this site: never another origin (//host, https://...)
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: Request, status: int, message: str | None, target: str) -> Response:
    from starlette.responses import HTMLResponse

    html = TEMPLATES.get_template("login.html").render(
        request=request,
        data={"error": message, "next": target},
        instance=request.app.state.instance_name,
    )
    return HTMLResponse(html, status_code=status)


async def login(request: Request) -> Response:
    token = request.app.state.token
    if request.method == "GET":
        return _login_page(request, 200, None, _safe_next(request.query_params.get("next")))
    body = await request.body()
    if len(body) > 4096:
        return problem(request, 400, "the login form is larger than 4 KiB")
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    target = _safe_next(form.get("next"))
    given = form.get("token", "")
    if token is None:
        return RedirectResponse(target, status_code=303)
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _login_page(request, 401, "the token is wrong", target)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session_value(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


ROUTES = [
    Route("/login", login, methods=["GET", "POST"]),  # the one POST: it never touches the store
    Route("/logout", logout, methods=["GET"]),
]
