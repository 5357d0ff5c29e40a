"""Which values of a Prefect flow or task run are files it read or made — the rules, in one place.

Arguments (also inside lists, tuples, sets and dict values):
- a `str` or `os.PathLike` (`pathlib.Path`) naming an existing regular file → an input;
- a folder → an input only when flowprov already knows an artifact at that place (an earlier task
  returned it, a Snakemake `directory()` output, `fp.Artifact(folder).save()` of a folder inside a
  storage root — one copied in is known by its copy, not by its place) — never merely because an
  argument names a folder (`workdir="."`, `outdir=Path("results")` would hash every BAM in it);
- anything else (a string naming nothing, a number) is a parameter and nothing more.

Return values: a `str` or `os.PathLike` naming an existing regular file, or an `os.PathLike` naming
a folder → an output (a folder returned as a plain string is not: strings are too often not paths).

An argument the run also returns: untouched during the run (a file: same size, mtime, ctime and
inode; a folder: same content) → it was read and passed on: an input only. Rewritten → it named
where to write: an output only — whether the run read the bytes it held before cannot be known,
so they are not recorded as read.

Files are recorded where they are: inside a declared storage root by their key, anywhere else by
their absolute location (the core's host root). No storage root is ever made here. A path that is
flowprov's own stored copy of an artifact (what `artifact.cache()` returns: an object in a storage
root, or this machine's cache of remote ones) is that artifact; when the store cannot say which
artifact it is (unreachable, or several hold those bytes), it is not recorded: never a guess.
"""

from __future__ import annotations

import os
import stat as S_
from dataclasses import dataclass
from pathlib import PurePath

MAX_DEPTH = 4  # containers nested deeper are not searched for paths


@dataclass
class Seen:
    """A file or folder as a run found it: its events (registration, use) and what tells later
    whether it changed."""

    events: list
    hash: str
    stat: tuple | None  # a file's (size, mtime_ns, ctime_ns, inode); None for a folder


def _stat(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def candidates(value, depth: int = 0):
    """(absolute path, given as a PathLike, its st_mode) of every str/PathLike in value naming
    something that exists (one stat each: a hook's every system call gives the interpreter lock
    away to the engine's other threads)."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, PurePath | os.PathLike) or (
        isinstance(value, str) and 0 < len(value) < 4096 and "\n" not in value
    ):
        try:
            p = os.fspath(value)
            if isinstance(p, str):
                mode = os.stat(p).st_mode
                yield os.path.abspath(p), not isinstance(value, str), mode
        except (OSError, ValueError, TypeError):  # missing, NUL bytes, bytes paths, odd PathLikes
            pass
        return
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from candidates(v, depth + 1)


def input_paths(params, known_folder) -> list[str]:
    """The files (and known folders) among a run's arguments; `known_folder(path) -> bool`."""
    out = []
    for p, _, mode in candidates(params):
        if S_.S_ISREG(mode) or (S_.S_ISDIR(mode) and known_folder(p)):
            out.append(p)
    return list(dict.fromkeys(out))


def output_paths(value) -> list[str]:
    """The files, and folders returned as paths, in a run's return value."""
    out = [
        p
        for p, as_path, mode in candidates(value)
        if S_.S_ISREG(mode) or (as_path and S_.S_ISDIR(mode))
    ]
    return list(dict.fromkeys(out))


def read(path: str, *, roots, run, user) -> Seen:
    """A run reading path now: the events (registered at its place, used by run) and its state.
    Raises what hashing raises (a file that vanished, an unreadable one)."""
    from flowprov.artifacts import input_events

    before = _stat(path)
    events = input_events(path, run=run, roots=roots, created_by=user)
    is_dir = events[0].hash_type.endswith("-dir")
    return Seen(events, events[0].hash, None if is_dir else before)


def unchanged(path: str, seen: Seen, now_hash: str) -> bool:
    """Whether path is as the run found it: a file by its stat (rewritten with the same bytes is
    a change: it was written), a folder by its content."""
    if seen.stat is None:
        return now_hash == seen.hash
    return _stat(path) == seen.stat and now_hash == seen.hash


def place_of(path: str, roots) -> tuple[str, str]:
    """(storage root, key) where the core records a local path (in_place_event's rule)."""
    from flowprov.artifacts import _containing_root, host_place

    found = _containing_root(path, roots)
    return (found[0].root, found[1]) if found is not None else host_place(path)


def known_in_store(path: str, roots, instance: str | None) -> bool:
    """Whether the store has an artifact at path's place (any version)."""
    from flowprov import schema as S
    from flowprov.db import read_connection
    from flowprov.instance import current
    from sqlalchemy import select

    root, key = place_of(path, roots)
    inst = current(instance)
    sid = next((i for i, r in inst.storages().items() if r.root == root), None)
    if sid is None:
        return False
    query = select(S.artifacts.c.id).where(
        S.artifacts.c.storage_id == sid, S.artifacts.c.key == key
    )
    with read_connection(inst.engine) as conn:
        return conn.execute(query.limit(1)).first() is not None


def object_folders(roots) -> dict[str, str]:
    """The folders holding flowprov's stored copies → the root they belong to ("cache": this
    machine's cache of remote objects). Read once per flow run, with the roots."""
    from flowprov._settings import settings
    from flowprov.storage import OBJECTS_DIR

    out = {os.path.join(os.path.abspath(settings.cache_dir), "objects"): "cache"}
    for root in reversed(roots):  # the first-declared wins
        if root.is_local:
            out[os.path.join(root.root, *OBJECTS_DIR.split("/"))] = root.root
    return out


def stored_copy(path: str, folders: dict[str, str]) -> str | None:
    """The root (or "cache") whose stored objects path is one of, else None; `folders`: what
    object_folders(roots) returns."""
    return folders.get(os.path.dirname(path))


def read_stored_copy(path: str, where: str, *, run, user, instance) -> Seen | None:
    """A run reading flowprov's stored copy of an artifact: the use of that artifact (by uid), or
    None when the store cannot say which artifact it is."""
    from flowprov import schema as S
    from flowprov._settings import settings
    from flowprov.db import read_connection
    from flowprov.events import ArtifactRef, ArtifactUsed
    from flowprov.hashing import hash_path
    from flowprov.instance import current
    from sqlalchemy import select

    before = _stat(path)
    digest = hash_path(path, settings.hash_algorithm)
    a, st = S.artifacts.c, S.storages.c
    query = (
        select(a.uid, a.key).join(S.storages, st.id == a.storage_id).where(a.hash == digest.hash)
    )
    if where != "cache":  # an object in a root: the artifact copied in without a key
        query = query.where(a.key.is_(None), st.root == where)
    with read_connection(current(instance).engine) as conn:
        rows = conn.execute(query.limit(3)).all()
    keyless = [r for r in rows if r.key is None]
    found = keyless if len(keyless) == 1 else rows
    if len(found) != 1:
        return None
    used = ArtifactUsed(run=run, artifact=ArtifactRef(uid=found[0].uid), created_by=user)
    return Seen([used], digest.hash, before)
