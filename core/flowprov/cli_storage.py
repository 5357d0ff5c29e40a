"""`flowprov storage add`: the one way, beside `init`, that a storage root comes to exist;
`flowprov storage move`: re-point a root after its data moved; `flowprov gc`: the objects in
flowprov's storage that no record references.

Engines never create roots: a file outside every declared root is recorded by its absolute
location under the host root. A root declared inside (or around) another is allowed, but keys
never move: a file keeps the key of the first-declared root that contains it.
"""

from __future__ import annotations

import click
from rich.markup import escape

from .cli_instance import storage_option_flags, storage_options_of
from .cli_output import _console


@click.group()
def storage():
    """Storage roots: where artifacts are recorded in place."""


@storage.command("add")
@click.argument("root")
@click.option("--description", default=None, help="What this root holds.")
@storage_option_flags
def add(root, description, storage_options, endpoint_url, region):
    """Declare ROOT (a folder, s3://bucket/prefix or gs://bucket/prefix): files inside it are
    recorded in place, keyed by their path relative to it. Its settings (endpoint, region) are
    kept with the instance; for a root already declared, the options given change them."""
    from .errors import ValidationError
    from .events import StorageDeclared
    from .instance import current
    from .storage import (
        HOST_ROOT,
        StorageRoot,
        environment_options,
        merge_options,
        normalize_root,
        storage_type,
        validate_options,
    )

    r = normalize_root(root)
    if r == HOST_ROOT:
        raise ValidationError(
            f"{HOST_ROOT} is the host root flowprov keeps for files outside every declared root"
        )
    kind = storage_type(r)
    opts = storage_options_of(storage_options, endpoint_url, region if kind == "s3" else None)
    given = validate_options(kind, opts) if opts else None
    inst = current()
    known = {s.root: s for s in inst.storages(refresh=True).values()}
    if r in known:  # the team's settings stay; what is passed explicitly changes them
        base = known[r].options or {}
        to_store = merge_options(base, given) if given else None
    else:  # a new root keeps what the environment names now, under what is passed
        env = {} if kind == "local" else validate_options(kind, environment_options(kind))
        base, to_store = env, merge_options(env, given or {}) or None
    # a bucket that is not there (or a key without rights) fails here, before anything is written
    StorageRoot(r, merge_options(base, given or {}) or None).check()
    res = inst.store.apply(
        [
            StorageDeclared(
                root=r, type=kind, region=region, description=description, options=to_store
            )
        ]
    )
    inst.storages(refresh=True)
    out = _console()
    word = "already declared" if r in known else "declared"
    out.print(f"{word}: {escape(r)} ({kind}, {res[0].uid})")
    if to_store:
        out.print(f"  settings kept with the instance: {escape(str(to_store))}")
    outer = [k for k in known if k not in (r, HOST_ROOT) and StorageRoot(k).key_of(r) is not None]
    if outer and r not in known:
        out.print(
            f"note: inside {escape(outer[0])}; files already recorded there keep their keys "
            "relative to it"
        )


@storage.command("move")
@click.argument("old")
@click.argument("new")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many recorded files to look for at NEW before changing anything.",
)
@click.option(
    "--force", is_flag=True, help="Re-point the root even when sampled files are not at NEW."
)
def move(old, new, sample, force):
    """Re-point the storage root OLD at NEW after its data moved there (a folder moved on disk, a
    bucket prefix copied elsewhere). Keys do not change; roots declared inside OLD move with it,
    and the instance config follows its default root and an SQLite database inside OLD."""
    from .instance import current
    from .relocate import MoveRefused, move_root

    out = _console()
    try:
        rep = move_root(current(), old, new, sample=sample, force=force)
    except MoveRefused as e:
        _print_checks(out, e.report.failures)
        raise
    if rep.already:
        out.print(f"{escape(rep.old)} was already moved to {escape(rep.new)} in the database")
    else:
        if rep.failures:
            _print_checks(out, rep.failures)
        checked = f"checked {len(rep.checks)} of {rep.artifacts:,} recorded files at the new place"
        if rep.failures:
            checked += f": {len(rep.failures)} not there as recorded (moved anyway: --force)"
        elif rep.checks:
            checked += ": all there with their recorded sizes"
            if rep.hashed:
                checked += f" ({rep.hashed} re-hashed: same content)"
        out.print(checked)
        out.print(
            f"moved storage root {escape(rep.old)} → {escape(rep.new)} (uid {rep.storage_uid}); "
            "keys unchanged"
        )
        for o, n in rep.moved[1:]:
            out.print(f"  also moved, being inside it: {escape(o)} → {escape(n)}")
    for name, (before, after) in rep.config_changes.items():
        what = "database" if name == "db" else "default storage"
        out.print(f"  instance config: {what} {escape(before)} → {escape(after)}")
    if rep.database_note:
        out.print(f"  note: {escape(rep.database_note)}")
    for root, n in rep.left_behind.items():
        how = "by absolute path under the host root /" if root == "/" else f"under {root}"
        out.print(
            f"  note: {n:,} files recorded {escape(how)} lie inside {escape(rep.old)}; their "
            "records keep the old place (keys never move), so `verify` reports them missing"
        )


def _print_checks(out, checks) -> None:
    from rich.table import Table

    t = Table(pad_edge=False)
    for col in ("uid", "key", "looked for at", "found"):
        t.add_column(col, overflow="fold")
    for c in checks:
        t.add_row(c.uid, escape(c.key), escape(c.path), escape(c.detail))
    out.print(t)


@click.command()
@click.option("--delete", is_flag=True, help="Remove them (default: only list them: a dry run).")
@click.option(
    "--min-age",
    default="1h",
    show_default=True,
    help="Remove only objects unchanged for this long (90s, 30m, 1h, 2d): a running batch "
    "copies bytes in before its record commits.",
)
@click.option("--storage", "root", default=None, help="Only this storage root.")
def gc(delete, min_age, root):
    """List the objects in flowprov's storage (.flowprov/objects of every reachable root) that no
    record references: copies a killed batch left, leftovers of cut copies. --delete removes
    them; nothing outside .flowprov/objects is ever touched."""
    from rich.table import Table

    from .gc import _duration, collect, parse_age
    from .instance import current

    age = parse_age(min_age)  # a bad value fails here, before any work
    out = _console()
    rep = collect(current(), delete=delete, storage=root, min_age=age)
    for r, why in rep.skipped.items():
        out.print(f"[yellow]skipped[/] {escape(r)}: {escape(why)}")
    if rep.orphans:
        t = Table(pad_edge=False)
        for col in ("path", "size", "age", "note"):
            t.add_column(col, overflow="fold")
        for o in rep.orphans:
            note = "removed" if o.removed else (f"kept: {o.keep}" if o.keep else "")
            if o.kind == "partial":
                note = "a copy cut short" + (f"; {note}" if note else "")
            if o.recorded_as:
                note = f"same content as {o.recorded_as}" + (f"; {note}" if note else "")
            t.add_row(
                escape(o.path),
                f"{o.size:,}" if o.size is not None else "?",
                _age(o.age),
                escape(note),
            )
        out.print(t)
    for p in rep.foreign:
        out.print(f"[yellow]not flowprov's naming, left alone:[/] {escape(p)}")
    roots = f"{len(rep.roots)} root{'s' if len(rep.roots) != 1 else ''}"
    summary = (
        f"{len(rep.orphans)} objects no record references ({rep.size:,} bytes) in {roots}; "
        f"{rep.referenced:,} referenced"
    )
    if delete:
        gone = rep.removed
        kept = len(rep.orphans) - len(gone)
        summary += f"; removed {len(gone)} ({sum(o.size or 0 for o in gone):,} bytes)"
        if kept:
            summary += f", kept {kept}"
    elif rep.orphans:
        n = len(rep.deletable)
        summary += (
            f"; `flowprov gc --delete` would remove {n} (older than {_duration(age)})"
            if n
            else f"; none older than {_duration(age)} (see --min-age)"
        )
    out.print(summary)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n:
            return f"{seconds / n:.0f}{unit}"
    return f"{seconds:.0f}s"


COMMANDS = (storage, gc)
