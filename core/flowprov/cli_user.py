"""`flowprov login`: who this member acts as (recorded as created_by of new records)."""

from __future__ import annotations

import os

import click

from .cli_output import _console


@click.command()
@click.argument("handle")
@click.option("--name", default=None, help="Full name, e.g. 'Test User1'.")
@click.option(
    "--force",
    is_flag=True,
    help="Rewrite a user file (user.yaml) that cannot be read, instead of stopping at it.",
)
def login(handle, name, force):
    """Act as HANDLE from now on (recorded as created_by of new records).

    The user is recorded in the current instance first; only when that worked is user.yaml
    written, so a login that fails changes nothing. A connection that may only read (a reader
    role, a schema awaiting `flowprov migrate`) keeps the login in user.yaml and says so."""
    from rich.markup import escape

    from . import config as C
    from .errors import PermissionDenied, SchemaOutdated, ValidationError
    from .events import check_handle
    from .uids import USER_UID, random_uid

    try:
        check_handle(handle)
    except ValueError as e:
        raise ValidationError(str(e)) from None
    path = C.user_file()
    old = C.load_user_config(strict=not force)  # a broken file: stop here, naming --force
    replaced = force and old is None and path.exists()
    if old is not None and old.handle == handle:
        uid, name = old.uid or random_uid(USER_UID), name if name is not None else old.name
        kept = None
    else:
        found = C.salvage(path, C.UserConfig) if replaced else {}
        same = found.get("handle") == handle
        uid = found.get("uid") if same else None
        if same and name is None:
            name = found.get("name")
        kept = uid
        uid = uid or random_uid(USER_UID)
    user = C.UserConfig(handle=handle, name=name, uid=uid)

    inst = _current_instance()
    unrecorded = None  # why the instance could not take the user (it may only be read)
    if inst is not None:
        try:
            user = user.copy(uid=_record_user(inst, user))  # the instance's uid for a known handle
        except (PermissionDenied, SchemaOutdated) as e:
            # a reader (or a schema awaiting `migrate`): who this member is still matters for
            # what they read and for later writes elsewhere; the instance's uid if it has one
            unrecorded = str(e)
            user = user.copy(uid=_known_uid(inst, handle) or user.uid)
    C.save_user_config(user)

    out = _console()
    out.print(
        f"logged in as [bold]{escape(handle)}[/]"
        + (f" ({escape(name)})" if name else "")
        + f" (uid: {user.uid})"
    )
    if replaced:
        how = f"kept the uid {kept} it held for {handle}" if kept else "it held no usable uid"
        out.print(f"  replaced the unreadable {escape(str(path))} ({how})")
    if inst is None:
        out.print(
            "  no instance is set up yet: the user is recorded in the first instance "
            "flowprov writes to (`flowprov init --storage DIR`)"
        )
    elif unrecorded:
        out.print(
            f"  not recorded in instance {escape(inst.name)!r}, which this connection may not "
            f"change: {escape(unrecorded)}"
        )
    else:
        out.print(f"  recorded in instance {escape(inst.name)!r}")
    env = os.environ.get("FLOWPROV_USER")
    if env and env != handle:
        _console(stderr=True).print(
            f"note: FLOWPROV_USER={escape(env)} is set and wins over this login while it is set"
        )


def _current_instance():
    """The current instance, None when none is configured; a broken config still raises."""
    from .config import ConfigFileError
    from .errors import NoInstanceError
    from .instance import current

    try:
        return current()
    except ConfigFileError:
        raise  # a broken file is not "no instance": nothing is written until it is fixed
    except NoInstanceError:
        return None


def _known_uid(inst, handle: str) -> str | None:
    from sqlalchemy import select

    from . import schema as S
    from .db import read_connection

    with read_connection(inst.engine) as conn:
        return conn.execute(select(S.users.c.uid).where(S.users.c.handle == handle)).scalar()


def _record_user(inst, user) -> str:
    """Record `user` in the instance (not the one user.yaml names: it is not written yet, and may
    be broken) and return the uid the instance keeps for the handle."""
    from .events import UserSeen
    from .store import Store

    inst.require_writable()  # an older schema takes no writes
    store = Store(inst.engine, default_user=user.handle, where=inst.where)
    (applied,) = store.apply([UserSeen(handle=user.handle, name=user.name, uid=user.uid)])
    return applied.uid


COMMANDS = (login,)
