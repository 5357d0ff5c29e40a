"""Re-pointing a storage root after its data moved (`flowprov storage move OLD NEW`).

Keys never change: a root's artifacts are recorded by their path relative to the root, so when
the whole folder (or bucket prefix) moves, changing the root's one row makes every record name
the new place. Before that row changes, a sample of the recorded files is looked for at NEW —
each must be there with its recorded size, and a few small ones must hash the same — so a typo
in NEW cannot silently turn every record into a lie. Nothing is changed when the check fails.

What moves with OLD: every declared root inside it (they moved with the folder), the instance's
default root and — for the default local layout, an SQLite database in OLD/.flowprov/ — the
database itself, which the instance config then follows.

What does not: files recorded under another root by a key that happens to lie inside OLD (an
enclosing root declared first, or the host root `/`, which records files outside every declared
root by absolute path). Their keys name the old place; they are counted and reported, never
rewritten — the old records stay true about where those files were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import schema as S
from .errors import DatabaseUnavailable, InstanceError, StorageError, ValidationError
from .storage import HOST_ROOT, StorageRoot, normalize_root, object_key, storage_type

# files at most this big are also re-hashed (up to HASHED of them): the sizes say the files are
# there, the hashes say they are the same files
HASH_MAX_SIZE = 16 << 20
HASHED = 3


@dataclass
class SampleCheck:
    uid: str
    key: str  # the artifact's key, or its object key for a copy flowprov keeps
    path: str  # where it was looked for under NEW
    ok: bool
    detail: str = ""
    hashed: bool = False


@dataclass
class MoveReport:
    old: str
    new: str
    storage_uid: str = ""
    # every root re-pointed, OLD first, then the declared roots inside it: (old, new)
    moved: list[tuple[str, str]] = field(default_factory=list)
    artifacts: int = 0  # latest recorded files (and copies flowprov keeps) under the moved roots
    checks: list[SampleCheck] = field(default_factory=list)
    forced: bool = False
    # files recorded under another root by a key inside OLD: root → how many (left as they are)
    left_behind: dict[str, int] = field(default_factory=dict)
    # the SQLite database lived in OLD/.flowprov/: (old path, path used now)
    database: tuple[str, str] | None = None
    database_note: str | None = None
    config_changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # field → (old, new)
    config: object | None = None  # the instance config after the move (an InstanceConfig)
    already: bool = False  # the database already named NEW: only the config was brought along

    @property
    def failures(self) -> list[SampleCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def hashed(self) -> int:
        return sum(c.hashed for c in self.checks)


class MoveRefused(StorageError):
    """The sampled files are not at NEW (or not the same): nothing was changed. `report` holds
    every check, for the CLI to list."""

    def __init__(self, message: str, report: MoveReport):
        super().__init__(message)
        self.report = report


def move_root(
    inst,
    old: str | os.PathLike,
    new: str | os.PathLike,
    sample: int = 20,
    force: bool = False,
    save_config: bool = True,
) -> MoveReport:
    """Re-point the storage root OLD (and the roots declared inside it) at NEW, where its data
    now is. Refuses (MoveRefused) when sampled files are not at NEW, unless `force`; refuses
    (PermissionDenied) before reading any file when this member may not write.

    The instance config follows when OLD held the default root or the SQLite database
    (`save_config=False` leaves the file alone: report.config is the config to write). The
    instance cache is reset: `inst` and earlier `current()` results are stale afterwards."""
    from .instance import Instance, reset_cache
    from .rights import WRITE, require

    old_r, new_r = normalize_root(old), normalize_root(new)
    if sample < 1:
        raise ValidationError(f"--sample must be at least 1, not {sample}")
    for r in (old_r, new_r):
        if r == HOST_ROOT:
            raise ValidationError(
                f"{HOST_ROOT} is the host root (files outside every declared root, by absolute "
                "path): it never moves"
            )
    if old_r == new_r:
        raise ValidationError(f"{old_r} and {new_r} are the same root")
    report = MoveReport(old_r, new_r, forced=force)
    if storage_type(new_r) == "local" and not os.path.isdir(new_r):
        raise ValidationError(
            f"{new_r} is not a folder: move the data there first, then re-point the root"
        )

    # an SQLite database inside OLD moved with it: work on it where it is now
    db_url = _database_after_move(inst.config.db, old_r, new_r, report)
    work = (
        inst
        if db_url == inst.config.db
        else Instance(inst.config.copy(db=db_url), inst.config_path)
    )
    try:
        require(work, WRITE, f"move storage root {old_r} to {new_r}")
        work.require_writable()  # a schema older than this flowprov: members must migrate first

        with _read(work) as conn:
            declared = {r.root: r for r in conn.execute(select(S.storages)).all()}
        if old_r not in declared:
            if new_r in declared:  # moved before; the config (or the database path) did not follow
                report.already = True
                report.storage_uid = declared[new_r].uid
                _follow_config(inst, work, report, save_config)
                reset_cache()
                return report
            roots = ", ".join(sorted(r for r in declared if r != HOST_ROOT)) or "none"
            raise ValidationError(f"{old_r} is not a declared storage root (declared: {roots})")
        if new_r in declared:
            raise ValidationError(
                f"{new_r} is already a declared storage root (uid {declared[new_r].uid}): a root "
                "cannot be moved onto another"
            )
        moving = _moving_roots(declared, old_r, new_r)
        report.moved = [(o, n) for o, n in moving.items()]
        report.storage_uid = declared[old_r].uid
        _refuse_overlaps(work, declared, moving, old_r)
        _check_reachable(new_r)

        ids = {declared[o].id: n for o, n in moving.items()}
        _sample(work, ids, sample, report)
        if report.failures and not force:
            bad = report.failures
            first = "; ".join(f"{c.key}: {c.detail}" for c in bad[:2])
            hint = ""
            hidden = [c.key.startswith(".flowprov/") for c in report.checks]
            if any(h and not c.ok for h, c in zip(hidden, report.checks, strict=True)) and any(
                not h and c.ok for h, c in zip(hidden, report.checks, strict=True)
            ):  # the files are there, flowprov's copies are not
                hint = f" (were the hidden folders moved too? e.g. {old_r}/.flowprov)"
            raise MoveRefused(
                f"refused to move {old_r} to {new_r}: {len(bad)} of {len(report.checks)} sampled "
                f"files are not there as recorded ({first}{'; …' if len(bad) > 2 else ''}){hint}. "
                "Nothing was changed; check NEW, or pass --force to move anyway",
                report,
            )
        report.left_behind = _left_behind(work, declared, moving, old_r)

        from .db import db_error, write_transaction
        from .events import now

        at = now()
        try:
            with write_transaction(work.engine) as conn:
                for o, n in moving.items():
                    row = declared[o]
                    values = dict(root=n, type=storage_type(n), updated_at=at)
                    if (
                        storage_type(n) != row.type
                    ):  # a region and options belonged to the old store
                        values["region"] = None
                        if "options" in S.storages.c:
                            values["options"] = None
                    done = conn.execute(
                        update(S.storages)
                        .where(S.storages.c.id == row.id, S.storages.c.root == o)
                        .values(**values)
                    ).rowcount
                    if done != 1:
                        raise InstanceError(
                            f"storage root {o} changed while it was being moved: nothing was "
                            "changed, run the move again"
                        )
                _remember_move(conn, moving)
        except IntegrityError:
            raise ValidationError(
                f"{new_r} was declared as a storage root while {old_r} was being moved: nothing "
                "was changed"
            ) from None
        except DBAPIError as e:  # refused by the database (a role that may only read)
            raise db_error(e, f"database {work.db_display}") from e
        _follow_config(inst, work, report, save_config, moving)
    finally:
        if work is not inst:
            work.close()
    reset_cache()
    return report


MOVED_KEY = "moved_roots"  # instance_meta: {old root: where it is now}, for stale configs


def _remember_move(conn, moving: dict[str, str]) -> None:
    """Keep, in the database every member reads, where moved roots went: a member whose config
    still names OLD can then be told where it is (see moved_to)."""
    import json

    from sqlalchemy import inspect as sa_inspect

    from .db import read_meta, write_meta

    if not sa_inspect(conn).has_table("instance_meta"):
        return  # a schema before 0007
    moved = json.loads(read_meta(conn).get(MOVED_KEY) or "{}")
    moved = {k: moving.get(v, v) for k, v in moved.items()}  # moved again: follow it
    moved.update(moving)
    for n in moving.values():
        moved.pop(n, None)  # moved back to where it once was
    write_meta(conn, {MOVED_KEY: json.dumps(moved, sort_keys=True)})


def moved_to(inst, root: str) -> str | None:
    """Where a root that `storage move` re-pointed is now (None: it was never moved away)."""
    import json

    from .db import read_connection, read_meta

    with read_connection(inst.engine) as conn:
        moved = json.loads(read_meta(conn).get(MOVED_KEY) or "{}")
    return moved.get(normalize_root(root))


# -- the database -------------------------------------------------------------------------------


def _database_after_move(db: str, old_r: str, new_r: str, report: MoveReport) -> str:
    """The URL of the instance's database now: unchanged, unless it is an SQLite file inside OLD
    that moved to NEW with the folder."""
    from .db import parse_url, sqlite_path
    from .instance import config_db_url

    path = sqlite_path(db)
    if path is None or storage_type(old_r) != "local":
        return db
    rel = StorageRoot(old_r).key_of(os.path.abspath(path))
    if rel is None:
        return db
    moved = os.path.join(new_r, rel) if storage_type(new_r) == "local" else None
    at_old, at_new = os.path.isfile(path), bool(moved) and os.path.isfile(moved)
    if at_old and at_new:
        raise InstanceError(
            f"the instance's database is both in {old_r} ({path}) and in {new_r} ({moved}): a copy,"
            " not a move — flowprov cannot tell which one is current. Keep the one you use "
            "(delete or rename the other) and run the move again"
        )
    if at_new:
        report.database = (path, moved)
        return config_db_url(parse_url(db).set(database=moved))
    if at_old:
        report.database = (path, path)
        report.database_note = (
            f"the database stays at {path}, inside the old location: move it yourself (with "
            "nothing running), then point the instance at it with `flowprov init --storage "
            f"{new_r} --db sqlite:///<its new path>`"
        )
        return db
    raise DatabaseUnavailable(
        f"the instance's database {path} is not there, nor at {moved or 'NEW'}: "
        f"move {old_r}/.flowprov along with the data"
    )


def _follow_config(inst, work, report: MoveReport, save: bool, moving=None) -> None:
    """Bring the instance config along: its default root (when it moved) and its database URL."""
    from . import config as C

    cfg = inst.config
    changes: dict = {}
    if work.config.db != cfg.db:
        changes["db"] = work.config.db
    default_new = None
    if moving is not None:
        default_new = moving.get(cfg.storage)
    elif cfg.storage == report.old:  # already moved: the config still names OLD
        default_new = report.new
    if default_new is not None:
        changes["storage"] = default_new
    report.config = cfg.copy(**changes) if changes else cfg
    if not changes:
        return
    report.config_changes = {k: (getattr(cfg, k), v) for k, v in changes.items()}
    if not save:
        return
    if os.path.abspath(inst.config_path) == os.path.abspath(C.instance_file(cfg.name)):
        C.save_instance_config(report.config, make_current=False)
    else:  # FLOWPROV_INSTANCE names a yaml file elsewhere: that file is the instance's config
        C._write_yaml(inst.config_path, report.config)


def _read(inst):
    from .db import read_connection

    return read_connection(inst.engine)


# -- which roots move, and what would clash -----------------------------------------------------


def _moving_roots(declared: dict, old_r: str, new_r: str) -> dict[str, str]:
    """OLD → NEW, then every declared root inside OLD → its place inside NEW (they moved with
    the folder)."""
    out = {old_r: new_r}
    for r in sorted(declared, key=lambda r: declared[r].id):
        if r in (old_r, HOST_ROOT):
            continue
        rel = _inside(old_r, r)
        if rel is not None:
            n = os.path.join(new_r, rel) if storage_type(new_r) == "local" else f"{new_r}/{rel}"
            if n in declared:
                raise ValidationError(
                    f"{r} (inside {old_r}) would move to {n}, which is already a declared root"
                )
            out[r] = n
    return out


def _refuse_overlaps(inst, declared: dict, moving: dict[str, str], old_r: str) -> None:
    """A file keeps the key of the first-declared root that contains it. After the move, files
    at NEW must still resolve to the moved root, and files of other roots to theirs."""
    a = S.artifacts
    old_id = declared[old_r].id
    others = [r for r in declared if r not in moving and r != HOST_ROOT]
    for n in moving.values():
        for r in others:
            if _inside(n, r) is not None:
                raise ValidationError(
                    f"the declared root {r} lies inside {n}: its files would be recorded as the "
                    "moved root's. Choose another location"
                )
            rel = _inside(r, n)
            if rel is None:
                continue
            if declared[r].id < old_id:
                raise ValidationError(
                    f"{n} lies inside the root {r}, declared before {old_r}: files there are "
                    f"recorded relative to {r}, so the moved files would not be found again. "
                    "Choose another location"
                )
            with _read(inst) as conn:
                clash = conn.execute(
                    select(func.count())
                    .select_from(a)
                    .where(
                        a.c.storage_id == declared[r].id,
                        a.c.key.startswith(rel + "/", autoescape=True),
                    )
                ).scalar()
            if clash:
                raise ValidationError(
                    f"{clash} artifacts of the root {r} are recorded inside {n}: after the move "
                    "they would be found as the moved root's. Choose another location"
                )


def _inside(outer: str, inner: str) -> str | None:
    """The key of root `inner` inside root `outer`, or None (a folder is never inside a bucket)."""
    a, b = StorageRoot(outer), StorageRoot(inner)
    if a.is_local != b.is_local:
        return None
    return a.key_of(inner)


def _check_reachable(new_r: str) -> None:
    root = StorageRoot(new_r)
    if not root.is_local:  # (a local NEW was checked to be a folder first thing)
        root.check()  # the bucket is there and reachable with these credentials


# -- the sample ---------------------------------------------------------------------------------


def _sample(inst, ids: dict[int, str], n: int, report: MoveReport) -> None:
    """Check up to n recorded files at their new places: the alphabetically first and last keys
    (often in different folders), then random ones, plus copies flowprov keeps."""
    a = S.artifacts
    from .verify import CHECK_COLUMNS

    cols = CHECK_COLUMNS
    in_place = (
        a.c.storage_id.in_(list(ids)),
        a.c.managed.is_(False),
        a.c.is_latest.is_(True),
        a.c.removed.is_(None),
    )
    managed = (a.c.storage_id.in_(list(ids)), a.c.managed.is_(True), a.c.removed.is_(None))
    with _read(inst) as conn:
        n_place = conn.execute(select(func.count()).select_from(a).where(*in_place)).scalar()
        n_managed = conn.execute(select(func.count()).select_from(a).where(*managed)).scalar()
        report.artifacts = n_place + n_managed
        m = min(n_managed, max(1, n // 4))
        k = min(n_place, n - m)
        m = min(n_managed, n - k)
        queries = []
        if k:
            queries += [
                select(*cols).where(*in_place).order_by(a.c.key).limit(1),
                select(*cols).where(*in_place).order_by(a.c.key.desc()).limit(1),
                select(*cols).where(*in_place).order_by(func.random()).limit(k + 2),
            ]
        picked: dict[int, dict] = {}  # by id, first and last keys first
        for q in queries:
            for r in conn.execute(q).mappings():
                picked.setdefault(r["id"], dict(r))
        rows = list(picked.values())[:k]
        if m:
            q = select(*cols).where(*managed).order_by(func.random()).limit(m)
            rows += [dict(r) for r in conn.execute(q).mappings()]
    checks = [_look(r, StorageRoot(ids[r["storage_id"]])) for r in rows]
    report.checks += checks
    # a few small files are hashed too: the right sizes in the wrong folder would pass above
    small = sorted(
        (
            (c, r)
            for c, r in zip(checks, rows, strict=True)
            if c.ok
            and not r["hash_type"].endswith("-dir")
            and 0 < (r["size"] or 0) <= HASH_MAX_SIZE
        ),
        key=lambda cr: cr[1]["size"],
    )
    from .verify import check_row

    for c, r in small[:HASHED]:
        found = check_row(r, {r["storage_id"]: StorageRoot(ids[r["storage_id"]])})
        c.hashed = True
        if found.status != "ok":
            c.ok, c.detail = False, f"{found.status}: {found.detail or ''}".rstrip(": ")


def _look(row: dict, root: StorageRoot) -> SampleCheck:
    """Is the recorded file (or folder) at its place under root, with its recorded size?"""
    key = object_key(row["hash"], row["suffix"]) if row["managed"] else row["key"]
    path = root.path(key)
    c = SampleCheck(row["uid"], key, path, True)
    is_dir = row["hash_type"].endswith("-dir")
    try:
        if root.is_local:
            st = os.stat(path)
            found_dir, size = os.path.isdir(path), st.st_size
        else:
            from .storage import remote_errors

            with remote_errors(f"check {path}"):
                info = root.fs.info(path)
            found_dir, size = info.get("type") == "directory", info.get("size")
    except FileNotFoundError:
        c.ok, c.detail = False, "missing"
        return c
    except (OSError, StorageError) as e:
        c.ok, c.detail = False, f"unreadable: {e}"
        return c
    if found_dir != is_dir:
        c.ok, c.detail = (
            False,
            f"a {'folder' if found_dir else 'file'}, recorded as a "
            + ("folder" if is_dir else "file"),
        )
    elif not is_dir and row["size"] is not None and size != row["size"]:
        c.ok, c.detail = False, f"size {size:,} bytes, recorded {row['size']:,}"
    return c


# -- what stays where it was ---------------------------------------------------------------------


def _left_behind(inst, declared: dict, moving: dict[str, str], old_r: str) -> dict[str, int]:
    """Files recorded under a root that is not moving (an enclosing root, the host root) by a
    key inside OLD: how many per root. They are left as they are (keys never move)."""
    a = S.artifacts
    out: dict[str, int] = {}
    with _read(inst) as conn:
        for r, row in declared.items():
            if r in moving:
                continue
            rel = _inside(r, old_r)  # the host root `/` holds every local folder
            if not rel:
                continue
            n = conn.execute(
                select(func.count())
                .select_from(a)
                .where(
                    a.c.storage_id == row.id,
                    a.c.key.startswith(rel + "/", autoescape=True),
                    a.c.is_latest.is_(True) | a.c.managed.is_(True),
                )
            ).scalar()
            if n:
                out[r] = n
    return out
