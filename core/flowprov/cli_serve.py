"""CLI: `flowprov serve` — the read-only web app over the current instance."""

from __future__ import annotations

import os

import click

from .errors import FlowprovError, ValidationError
from .netbind import is_loopback


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    default=None,
    envvar="FLOWPROV_SERVE_TOKEN",
    help="Visitors must give this token (Bearer header or the login form); required to bind "
    "another address than loopback. Also read from FLOWPROV_SERVE_TOKEN (kept out of `ps`).",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Bind another address than loopback with no token: everyone who can reach it reads "
    "the whole instance.",
)
def serve(host, port, token, no_auth):
    """A read-only web app over the instance: runs, artifacts, lineage, search."""
    if token is not None and len(token) < 8:
        raise ValidationError("--token must be at least 8 characters")
    if not is_loopback(host) and not token and not no_auth:
        raise FlowprovError(
            f"refusing to serve {host} without a token: anyone who can reach it would read the "
            "whole instance. Give --token (or FLOWPROV_SERVE_TOKEN), or --no-auth to mean it."
        )
    try:
        import uvicorn

        from .web import create_app
    except ImportError as e:
        raise FlowprovError(
            f"flowprov serve needs its web extra ({e.name} is missing): pip install 'flowprov[web]'"
        ) from e
    from .instance import current

    app = create_app(token=token)
    inst = current()
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"flowprov serve: instance {inst.name!r} ({inst.db_display}, read-only) at "
        f"http://{shown}:{port}/" + ("  (token required)" if token else ""),
        err=True,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=os.environ.get("FLOWPROV_SERVE_LOG", "warning"),
        server_header=False,
        proxy_headers=False,
    )


COMMANDS = (serve,)
