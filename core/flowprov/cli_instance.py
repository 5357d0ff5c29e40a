"""`flowprov init`, `info`, `delete`: creating, inspecting and removing an instance; `flowprov
instance set|get`: the settings every member of an instance shares."""

from __future__ import annotations

import sys

import click

from .cli_output import _console


def storage_option_flags(f):
    """--storage-option, --endpoint-url, --region: a root's settings (init, storage add)."""
    for flag in reversed(_STORAGE_FLAGS):
        f = flag(f)
    return f


_STORAGE_FLAGS = (
    click.option(
        "--storage-option",
        "storage_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="An fsspec option of the storage, kept with the instance for every member (never a "
        "secret), e.g. endpoint_url=https://s3.lab.org (repeatable).",
    ),
    click.option(
        "--endpoint-url",
        default=None,
        help="S3-compatible endpoint (= --storage-option endpoint_url=…).",
    ),
    click.option(
        "--region", default=None, help="Bucket region (= --storage-option region_name=…)."
    ),
)


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
@storage_option_flags
@click.option(
    "--save-password",
    is_flag=True,
    help="Write the password of a PostgreSQL URL to ~/.pgpass (PGPASSFILE), mode 0600.",
)
@click.option(
    "--force", is_flag=True, help="Rewrite this instance's config file even if it is broken."
)
def init(storage, db, name, storage_options, endpoint_url, region, save_password, force):
    """Create an instance (or reconnect to an existing one) and make it current.

    Never upgrades an existing database (see `flowprov migrate`)."""
    from rich.markup import escape

    from . import instance

    options = storage_options_of(storage_options, endpoint_url, region)
    if save_password:  # before anything is written
        from sqlalchemy.engine import make_url

        from .errors import ValidationError

        if not db or not make_url(db).password:
            raise ValidationError("--save-password needs --db with a password in the URL")
    inst, created = instance.init(storage, db=db, name=name, force=force, options=options)
    verb = "created" if created else "connected to existing"
    out = _console()
    out.print(f"{verb} flowprov instance [bold]{escape(inst.name)}[/] (uid {inst.uid})")
    out.print(f"  storage:  {escape(inst.storage.root)}")
    out.print(f"  database: {escape(inst.db_display)}")
    out.print(f"  config:   {escape(str(inst.config_path))}")
    if db:
        from .pgpass import password_hint, save_pgpass

        if save_password:
            out.print(f"  password: saved to {escape(str(save_pgpass(db)))} (mode 0600)")
        else:
            hint = password_hint(db)
            if hint:
                out.print(f"  password: {escape(hint)}")
    for note in inst.notes:
        out.print(f"  note:     {escape(note)}")


def storage_options_of(pairs, endpoint_url, region) -> dict | None:
    options = {}
    for p in pairs:
        if "=" not in p:
            raise click.BadParameter(
                f"expected KEY=VALUE, got {p!r}", param_hint="--storage-option"
            )
        k, v = p.split("=", 1)
        options[k.strip()] = v
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if region:
        options["region_name"] = region
    return options or None


@click.command()
def info():
    """The current instance: storage root and its settings, database, schema, current user,
    record counts."""
    from rich.markup import escape

    from .errors import FlowprovError
    from .instance import current
    from .migrations import SCHEMA_HEAD

    inst = current()
    out = _console()
    state = inst.schema
    counts = inst.counts()
    out.print(f"instance:  [bold]{escape(inst.name)}[/] (uid {inst.uid})")
    for root in inst.storages().values():
        if root.root == "/":
            continue
        default = " (default)" if root.root == inst.config.storage else ""
        out.print(f"storage:   {escape(root.root)}{default}")
        for key, value, source in _effective(root):
            out.print(
                f"             {escape(key)} = {escape(str(value))}  [dim]({escape(source)})[/]"
            )
    schema = f"schema {state.revision}"
    if state.relation == "older":
        schema += (
            f", older than this flowprov's {SCHEMA_HEAD}: a migration is available — "
            "`flowprov migrate --dry-run` shows it; reading works, changes wait for it"
        )
    elif state.relation == "newer":
        schema += f", newer than this flowprov's {SCHEMA_HEAD} and compatible with it"
    out.print(f"database:  {escape(inst.db_display)} ({schema})")
    try:
        u = inst.user
        who = u.handle + (f" ({u.name})" if u.name else "")
        if u.is_os_account:
            who += " — your OS account; `flowprov login HANDLE` to act as yourself"
    except FlowprovError as e:  # a broken user.yaml: say so here, the rest still shows
        who = f"[red]unknown[/]: {escape(str(e))}"
    out.print(f"user:      {who}")
    out.print(f"config:    {escape(str(inst.config_path))}")
    out.print("records:   " + ", ".join(f"{n} {k}" for k, n in counts.items()))


def _effective(root) -> list[tuple[str, object, str]]:
    """(option, value, where it comes from) of a remote root's settings in force."""
    if root.is_local:
        return []
    return [(k, v, src) for k, (v, src) in root.effective_options().items()]


@click.command()
@click.option("--dry-run", is_flag=True, help="Show the steps and what they mean; change nothing.")
def migrate(dry_run):
    """Upgrade the current instance's database to this flowprov's schema (only its owner may).

    Opening an instance never does this: every member on an older flowprov is affected, so it is
    done once, on purpose."""
    from rich.markup import escape

    from . import rights
    from .db import make_engine, open_schema, pending_migrations
    from .db import migrate as do_migrate
    from .instance import current, reset_cache
    from .migrations import COMPATIBILITY, SCHEMA_HEAD, compatibility_floor

    inst = current()
    out = _console()
    # its own engine: reading an older schema puts temporary views before the tables, and the
    # migration must see the tables themselves
    state = open_schema(make_engine(inst.config.db, must_exist=True), inst.where)
    engine = make_engine(inst.config.db, must_exist=True)
    if state.relation != "older":
        out.print(f"instance {escape(inst.name)!s} is at schema {state.revision}: nothing to do")
        return
    steps = pending_migrations(engine)
    floor = compatibility_floor(SCHEMA_HEAD)
    out.print(f"instance [bold]{escape(inst.name)}[/]: schema {state.revision} → {SCHEMA_HEAD}")
    for rev, what in steps:
        out.print(f"  {rev}  {escape(what)}")
    out.print(
        f"  afterwards flowprov releases before {COMPATIBILITY[floor][0]} (schema < {floor}) "
        "cannot use this instance: every member needs pip install -U 'flowprov>="
        f"{COMPATIBILITY[floor][0]}'"
    )
    if dry_run:
        out.print("dry run: nothing was changed")
        return
    rights.require(inst, rights.OWNER, "migrate the schema")
    try:
        do_migrate(engine, uid=inst.config.uid)
    finally:
        engine.dispose()
    reset_cache()
    out.print(f"migrated to schema {SCHEMA_HEAD}")


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


@click.group("instance")
def instance_group():
    """Settings of the current instance, shared by every member (kept in its database)."""


@instance_group.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Remove the setting.")
def instance_set(key, value, unset):
    """Set an instance setting KEY to VALUE (or remove it with --unset).

    Known settings: export.license (default license of exported RO-Crates, a URL or SPDX id),
    openlineage.namespace (OpenLineage job namespace, default the instance's name)."""
    from rich.markup import escape

    from . import instance_settings
    from .errors import ValidationError
    from .instance import current

    if unset and value is not None:
        raise ValidationError(f"give either a value or --unset for {key!r}, not both")
    if not unset and value is None:
        raise ValidationError(f"give a value for {key!r} (or --unset to remove it)")
    inst = current()
    instance_settings.set(inst, key, None if unset else value)
    if unset:
        _console().print(f"{escape(key)} unset on instance {escape(inst.name)}")
    else:
        _console().print(f"{escape(key)} = {escape(value.strip())} on instance {escape(inst.name)}")


@instance_group.command("get")
@click.argument("key", required=False)
def instance_get(key):
    """Show an instance setting (KEY), or every known setting and its value."""
    from rich.markup import escape

    from . import instance_settings
    from .instance import current

    inst = current()
    out = _console()
    if key is not None:
        value = instance_settings.get(inst, key)
        if value is None:
            out.print(f"{escape(key)} is not set")
            sys.exit(1)
        click.echo(value)
        return
    values = instance_settings.all_settings(inst)
    for k, help_ in instance_settings.KNOWN.items():
        shown = escape(values[k]) if k in values else "[dim](not set)[/]"
        out.print(f"{escape(k)} = {shown}  [dim]{escape(help_)}[/]")


COMMANDS = (init, info, migrate, delete, instance_group)
