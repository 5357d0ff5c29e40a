"""`flowprov storage add`: the one way, beside `init`, that a storage root comes to exist.

Engines never create roots: a file outside every declared root is recorded by its absolute
location under the host root. A root declared inside (or around) another is allowed, but keys
never move: a file keeps the key of the first-declared root that contains it.
"""

from __future__ import annotations

import click
from rich.markup import escape

from .cli_output import _console


@click.group()
def storage():
    """Storage roots: where artifacts are recorded in place."""


@storage.command("add")
@click.argument("root")
@click.option("--description", default=None, help="What this root holds.")
@click.option("--region", default=None, help="Cloud region of a bucket.")
def add(root, description, region):
    """Declare ROOT (a folder, s3://bucket/prefix or gs://bucket/prefix): files inside it are
    recorded in place, keyed by their path relative to it."""
    from .errors import ValidationError
    from .instance import current
    from .records import Storage
    from .storage import HOST_ROOT, StorageRoot, normalize_root

    r = normalize_root(root)
    if r == HOST_ROOT:
        raise ValidationError(
            f"{HOST_ROOT} is the host root flowprov keeps for files outside every declared root"
        )
    inst = current()
    StorageRoot(r).check()  # a bucket that is not there fails here, before anything is written
    known = {s.root for s in inst.storages(refresh=True).values()}
    s = Storage(r, description=description, region=region).save()
    inst.storages(refresh=True)
    out = _console()
    word = "already declared" if r in known else "declared"
    out.print(f"{word}: {escape(s.root)} ({s.type}, {s.uid})")
    outer = [k for k in known if k not in (r, HOST_ROOT) and StorageRoot(k).key_of(r) is not None]
    if outer and r not in known:
        out.print(
            f"note: inside {escape(outer[0])}; files already recorded there keep their keys "
            "relative to it"
        )


COMMANDS = (storage,)
