"""`flowprov init`, `info`, `delete`: creating, inspecting and removing an instance."""

from __future__ import annotations

import click

from .cli_output import _console


@click.command()
@click.option(
    "--storage",
    required=True,
    help="Storage root: a local folder, s3://bucket/prefix or gs://bucket/prefix.",
)
@click.option(
    "--db", default=None, help="SQLAlchemy database URL (default: SQLite inside the storage root)."
)
@click.option("--name", default=None, help="Instance name (default: the storage folder's name).")
def init(storage, db, name):
    """Create an instance (or reconnect to an existing one) and make it current."""
    from . import instance

    inst, created = instance.init(storage, db=db, name=name)
    user = inst.user.handle
    verb = "created" if created else "connected to existing"
    out = _console()
    out.print(f"{verb} flowprov instance [bold]{user}/{inst.name}[/]")
    out.print(f"  storage:  {inst.storage.root}")
    out.print(f"  database: {inst.db_display}")
    out.print(f"  config:   {inst.config_path}")


@click.command()
def info():
    """The current instance: storage root, database, schema, current user, record counts."""
    from .db import read_connection, schema_revision
    from .instance import current

    inst = current()
    counts = inst.counts()
    with read_connection(inst.engine) as conn:
        rev = schema_revision(conn)
    u = inst.user
    out = _console()
    out.print(f"instance:  [bold]{inst.name}[/] (uid {inst.config.uid})")
    out.print(f"storage:   {inst.storage.root}")
    out.print(f"database:  {inst.db_display} (schema {rev})")
    out.print(f"user:      {u.handle}" + (f" ({u.name})" if u.name else ""))
    out.print(f"config:    {inst.config_path}")
    out.print("records:   " + ", ".join(f"{n} {k}" for k, n in counts.items()))


@click.command()
@click.option(
    "--force", is_flag=True, help="Also remove every record and the files flowprov copied in."
)
def delete(force):
    """Delete the current instance (refuses while it holds records or files, unless --force)."""
    from . import instance

    inst = instance.current()
    done = instance.delete(inst, force=force)
    _console().print(
        f"deleted instance [bold]{inst.name}[/]: database removed, {done['files_removed']} managed files "
        f"removed from {inst.storage.root}; files registered in place were left alone"
    )


COMMANDS = (init, info, delete)
