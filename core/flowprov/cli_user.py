"""`flowprov login`: who this member acts as (recorded as created_by of new records)."""

from __future__ import annotations

import click

from .cli_output import _console


@click.command()
@click.argument("handle")
@click.option("--name", default=None, help="Full name, e.g. 'Test User1'.")
def login(handle, name):
    """Act as HANDLE from now on (recorded as created_by of new records)."""
    from .errors import ValidationError
    from .events import check_handle

    try:
        check_handle(handle)
    except ValueError as e:
        raise ValidationError(str(e)) from None
    from . import config as C
    from .errors import NoInstanceError
    from .uids import USER_UID, random_uid

    old = C.load_user_config()
    uid = old.uid if old is not None and old.handle == handle else random_uid(USER_UID)
    if name is None and old is not None and old.handle == handle:
        name = old.name
    C.save_user_config(C.UserConfig(handle=handle, name=name, uid=uid))
    try:
        from .records import User

        u = User.current()
        uid = u.uid
    except NoInstanceError:
        pass
    _console().print(
        f"logged in as [bold]{handle}[/]" + (f" ({name})" if name else "") + f" (uid: {uid})"
    )


COMMANDS = (login,)
