"""`flowprov serve`: a read-only web app over an instance.

Starlette (routing, responses, static files) with Jinja2 templates rendered on the server, run by
uvicorn; no JavaScript build step, every asset served by the app itself. Each page module holds
its routes (`ROUTES`); `app.create_app` puts them together with the safety the whole app shares
(read-only database, token, security headers, error pages).
"""

from .app import create_app

__all__ = ["create_app"]
