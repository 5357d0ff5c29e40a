"""An instance: a database (SQLite by default) plus a default storage root, and who is using it.

``init`` creates one offline; ``current()`` opens the configured one (cached per process and
re-resolved when FLOWPROV_INSTANCE or the current-instance file changes); ``delete`` removes one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError

from . import config as C
from .db import (
    SchemaState,
    db_error,
    make_engine,
    migrate,
    open_schema,
    parse_url,
    read_connection,
    read_meta,
    safe_url,
    sqlite_path,
)
from .errors import (
    DatabaseUnavailable,
    InstanceError,
    InstanceNotEmpty,
    PermissionDenied,
    SchemaOutdated,
    ValidationError,
)
from .migrations import SCHEMA_HEAD
from .storage import SYSTEM_DIR, StorageRoot, is_url, normalize_root, storage_type
from .uids import random_uid

logger = logging.getLogger("flowprov")
_announced: set[str] = set()  # instances whose available migration was announced


@dataclass
class Instance:
    config: C.InstanceConfig
    config_path: Path
    _storages_at: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def db_display(self) -> str:
        return safe_url(self.config.db)

    @cached_property
    def engine_unchecked(self) -> Engine:
        """The engine, before the schema is looked at (rights checks, `migrate`, `delete`)."""
        return make_engine(self.config.db, must_exist=True)

    def open_read_only(self) -> None:
        """From here on the database itself refuses this instance's writes (`flowprov serve`)."""
        self.close()
        for cached in ("engine_unchecked", "engine", "schema", "meta"):
            self.__dict__.pop(cached, None)
        self.__dict__["engine_unchecked"] = make_engine(
            self.config.db, must_exist=True, read_only=True
        )

    @cached_property
    def schema(self) -> SchemaState:
        """Where the database's schema stands; an older one is read through views and a
        migration is announced once per process."""
        state = open_schema(self.engine_unchecked, self.where)
        if state.relation == "older" and self.name not in _announced:
            _announced.add(self.name)
            logger.warning(
                "instance %r has schema %s, older than this flowprov's %s: reading works, "
                "changes are refused until a member who owns the database runs `flowprov migrate`",
                self.name,
                state.revision,
                SCHEMA_HEAD,
            )
        return state

    @property
    def where(self) -> str:
        return f"database {self.db_display} of instance {self.name!r}"

    @cached_property
    def engine(self) -> Engine:
        _ = self.schema  # checked (and made readable) before first use
        return self.engine_unchecked

    @cached_property
    def meta(self) -> dict[str, str]:
        """The instance's description kept in its database (schema 0007 on)."""
        with read_connection(self.engine) as conn:
            return read_meta(conn)

    @property
    def uid(self) -> str:
        """The instance's uid: the database's (every member sees the same), else the config's."""
        return self.meta.get("uid") or self.config.uid

    def require_writable(self) -> None:
        if not self.schema.writable:
            raise SchemaOutdated(
                f"{self.where} has schema {self.schema.revision}, older than this flowprov's "
                f"{SCHEMA_HEAD}: nothing was written. A member who owns the database runs "
                "`flowprov migrate` (see `flowprov migrate --dry-run`); until then, keep using "
                "the flowprov release that matches it"
            )

    @property
    def storage(self) -> StorageRoot:
        """The default root, with the options every member shares (kept in the database; while
        it cannot be read, the root alone)."""
        from .errors import FlowprovError

        try:
            roots = self.storages().values()
        except FlowprovError:
            roots = ()
        for r in roots:
            if r.root == self.config.storage:
                return r
        if roots:  # read, and the config's root is not among them: moved by another member?
            from .relocate import moved_to

            new = moved_to(self, self.config.storage)
            if new is not None:
                raise InstanceError(
                    f"the storage root {self.config.storage} of instance {self.name!r} was moved "
                    f"to {new} (`flowprov storage move`): run `flowprov init --storage {new} "
                    f"--name {self.name}` (with the same --db) to bring this config along"
                )
        return StorageRoot(self.config.storage)

    @property
    def user(self) -> C.UserConfig:
        return C.current_user_config()

    @cached_property
    def store(self) -> _UserAwareStore:
        return _UserAwareStore(self)

    def counts(self) -> dict[str, int]:
        from . import schema as S

        with read_connection(self.engine) as conn:
            return {
                name: conn.execute(select(func.count()).select_from(t)).scalar()
                for name, t in S.TABLES.items()
            }

    def storages(self, refresh: bool = False) -> dict[int, StorageRoot]:
        """Every registered storage root by id, cached: re-read after 10 s, or on request, to see
        roots other processes added. Roots are never removed; `storage move` re-points one, and
        a process running meanwhile may keep the old place for up to 10 s — move while idle."""
        import time

        from . import schema as S

        cached = self.__dict__.get("_storages")
        if cached is not None and not refresh and time.monotonic() - self._storages_at < 10:
            return cached
        try:
            with read_connection(self.engine) as conn:
                rows = conn.execute(
                    select(S.storages.c.id, S.storages.c.root, S.storages.c.options).order_by(
                        S.storages.c.id
                    )
                ).all()
        except DatabaseUnavailable:
            if cached is None:
                raise
            return cached  # the last list stays right while the database is away
        self._storages_at = time.monotonic()
        self.__dict__["_storages"] = {r.id: StorageRoot(r.root, r.options) for r in rows}
        return self.__dict__["_storages"]

    def close(self) -> None:
        engine = self.__dict__.get("engine_unchecked") or self.__dict__.get("engine")
        if engine is not None:
            engine.dispose()


class _UserAwareStore:
    """The instance's Store, acting as whoever the current user is at each call."""

    def __init__(self, inst: Instance):
        from .store import Store

        self._inst = inst
        self._store = Store(inst.engine, default_user="", where=f"instance {inst.name!r}")
        self._user_seen: str | None = None

    def apply_stream(self, make_events, chunk: int = 2000) -> dict[str, int]:
        from . import openlineage as ol

        self.apply([])  # checks the schema takes writes; records the current user first
        if not ol.configured():
            return self._store.apply_stream(make_events, chunk)
        signals: list = []

        def tapped():  # what starts or ends a run, noted as the stream goes by
            from .openlineage.emitter import signals_of

            signals.clear()  # a retry starts over
            for e in make_events():
                signals_of((e,), signals)
                yield e

        counts = self._store.apply_stream(tapped, chunk)
        from .openlineage.emitter import submit_signals

        submit_signals(self._inst, signals)
        return counts

    def apply(self, events):
        from .events import UserSeen

        self._inst.require_writable()
        user = C.current_user_config()
        self._store.default_user = user.handle
        if self._user_seen != user.handle:  # make sure the user's name is recorded once
            results = self._store.apply(
                [UserSeen(handle=user.handle, name=user.name, uid=user.uid), *events]
            )[1:]
            self._user_seen = user.handle
        else:
            results = self._store.apply(events)
        if events and _ol_configured():  # committed: its runs' OpenLineage events can go out
            from .openlineage.emitter import submit

            submit(self._inst, events, results)
        return results


def _ol_configured() -> bool:
    from .openlineage import configured

    return configured()


_cache: dict[tuple, Instance] = {}


def _cache_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path), (st.st_mtime_ns, st.st_size, st.st_ino))


# The current instance is asked for on every write. It is found again from its files only when
# the variables that name them or one of the files changed: the answer is kept with the
# (mtime, size, inode) of each file it was read from (current_user_config does the same).
_ENV = ("FLOWPROV_INSTANCE", "FLOWPROV_CONFIG_DIR", "XDG_CONFIG_HOME", "HOME")
_found: tuple | None = None  # (the variables' values, ((file, its stamp), ...), the instance)


def _stamp(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def current(name: str | None = None) -> Instance:
    """The configured instance (or the one named); a NoInstanceError says how to set one up."""
    found = _found
    if name is None and found is not None:
        env = os.environ
        if tuple(map(env.get, _ENV)) == found[0] and all(_stamp(f) == s for f, s in found[1]):
            return found[2]
    return _locate(name)


def _locate(name: str | None) -> Instance:
    global _found
    env = tuple(map(os.environ.get, _ENV))
    pointer = None if name or env[0] else str(C.current_instance_file())
    pointer_stamp = _stamp(pointer) if pointer else None  # taken before the file is read
    path = C.locate_instance_config(name)
    key = _cache_key(path)
    inst = _cache.get(key)
    if inst is None:
        inst = Instance(C.load_instance_config(path), path)
        if name is None:
            _cache.clear()
        _cache[key] = inst
    if name is None:
        files = ((str(path), key[1]),) + (((pointer, pointer_stamp),) if pointer else ())
        _found = (env, files, inst)
    return inst


def reset_cache() -> None:
    global _found
    _found = None
    for inst in _cache.values():
        inst.close()
    _cache.clear()


def init(
    storage: str | os.PathLike,
    db: str | None = None,
    name: str | None = None,
    force: bool = False,
    options: dict | None = None,
) -> tuple[Instance, bool]:
    """Create (or reconnect to) an instance. Returns (instance, created); what the member should
    know (an OS account recorded as user, a migration available, a relocated root, orphaned
    objects) is in `instance.notes`.

    Never migrates an existing database, and writes the config file last: a refused or failed
    init leaves no config behind. `force` rewrites a config file that cannot be read."""
    from . import storage as _storage
    from .events import StorageDeclared

    root = normalize_root(storage)
    name = name or (Path(root).name if not is_url(root) else root.rstrip("/").rsplit("/", 1)[-1])
    if not name or "/" in name or name.startswith("."):
        raise ValidationError(f"invalid instance name {name!r}: pass --name NAME")
    kind = storage_type(root)
    given = _storage.validate_options(kind, options) if options else None
    local = kind == "local"
    # what the environment names now (endpoint, region): kept with a new root, so a changed
    # variable later is an override that is warned about, never a silent switch of server
    from_env = {} if local else _storage.validate_options(kind, _storage.environment_options(kind))
    if local:
        default_db = f"sqlite:///{os.path.join(root, SYSTEM_DIR, 'flowprov.sqlite')}"
    else:
        data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "flowprov"
        default_db = f"sqlite:///{data / (name + '.sqlite')}"
    url = parse_url(db or default_db)
    if not local:  # an unreachable bucket fails here, before anything is written
        StorageRoot(root, _storage.merge_options(from_env, given or {}) or None).check()
    existing = C.instance_file(name)
    old = None
    if existing.is_file() and not force:
        old = C.load_instance_config(existing)  # a broken file: named, with `--force` to fix
    # Folders are made only for an SQLite file that needs them; a server database is reached
    # first, so a wrong URL leaves nothing behind.
    db_file = sqlite_path(url)
    if db_file is not None:
        try:
            Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValidationError(f"cannot create the folder for {db_file}: {e}") from e
    engine = make_engine(url)
    where = f"database {safe_url(url)}"
    try:
        with engine.connect() as conn:
            empty = not sa_inspect(conn).get_table_names()
    except DBAPIError as e:
        engine.dispose()
        raise db_error(e, where) from e
    except ArgumentError as e:
        raise ValidationError(f"invalid database URL {safe_url(url)}: {e}") from e
    notes: list[str] = []
    if empty:
        uid = old.uid if old is not None and old.storage == root else random_uid(12)
        if local:
            try:
                os.makedirs(os.path.join(root, SYSTEM_DIR), exist_ok=True)
            except OSError as e:
                raise ValidationError(f"cannot create the storage folder {root}: {e}") from e
        migrate(engine, uid=uid)
        state = SchemaState(SCHEMA_HEAD, "current")
        created, moved_from, moved_roots, stored = True, None, {}, None
    else:
        state = open_schema(engine, where)  # an existing instance (or a foreign database: refused)
        created = False
        with read_connection(engine) as conn:
            meta = read_meta(conn)
            uid = meta.get("uid") or (old.uid if old is not None else random_uid(12))
            moved_roots = json.loads(meta.get("moved_roots") or "{}")  # by `storage move`
            recorded = _default_root(conn)
            moved_from = _moved_default_root(recorded, root, db_file)
            stored = _stored_options(conn, root)
        if recorded is not None and recorded != root and moved_from is None:
            engine.dispose()
            raise ValidationError(
                f"{where} is an instance whose storage root is {recorded}, not {root}: pass "
                f"--storage {recorded}; then `flowprov storage add {root}` declares another root, "
                f"or `flowprov storage move {recorded} {root}` re-points it if its data moved"
            )
    if (
        old is not None
        and old.storage != root
        and moved_from != old.storage
        and (created or moved_roots.get(old.storage) != root)
    ):
        engine.dispose()
        raise ValidationError(
            f"an instance named {name!r} already exists with storage {old.storage}: choose "
            "another --name, or `flowprov init --storage … --name NAME --force` to replace its config"
        )
    cfg = C.InstanceConfig(name=name, uid=uid, db=config_db_url(url), storage=root)
    inst = Instance(cfg, existing)
    inst.__dict__["engine_unchecked"] = engine
    inst.__dict__["schema"] = state
    inst.notes = notes
    if moved_from is not None:
        from .relocate import move_root

        report = move_root(inst, moved_from, root, save_config=False)
        notes.append(
            f"the storage folder moved from {moved_from}: root re-pointed after checking "
            f"{len(report.checks)} sampled files ({report.hashed} re-hashed) are here"
        )
    if created or stored is None:  # a new root, or one an older flowprov stored no settings for
        to_store = _storage.merge_options(from_env, given or {}) or None
        if not created and to_store:
            notes.append(f"storage settings kept with the instance from now on: {to_store}")
    else:  # the team's settings stay; what this member passes explicitly is changed
        to_store = _storage.merge_options(stored, given) if given else None
    if state.writable:
        user = C.current_user_config()
        try:
            inst.store.apply(
                [StorageDeclared(root=root, type=kind, is_default=True, options=to_store)]
            )
            if not created:
                _record_uid(engine, uid)
        except PermissionDenied:
            if created:
                raise
            # a read-only role connecting to an existing instance: queries work, writes are refused
            notes.append("connected read-only: queries work, changes are refused")
        else:
            if user.source_note():
                notes.append(user.source_note())
    else:
        notes.append(
            f"the database has schema {state.revision}, older than this flowprov's {SCHEMA_HEAD}: "
            "reading works; a member who owns it runs `flowprov migrate` before anything is recorded"
        )
    if created and local:
        orphans = _count_orphans(inst)
        if orphans:
            notes.append(
                f"{root}/{SYSTEM_DIR}/objects holds {orphans} objects from an earlier database that "
                "no record references: `flowprov gc` lists them"
            )
    path = C.save_instance_config(cfg)
    inst.config_path = path
    _cache.clear()
    return inst, created


def _stored_options(conn, root: str) -> dict | None:
    from . import schema as S

    return conn.execute(select(S.storages.c.options).where(S.storages.c.root == root)).scalar()


def _default_root(conn) -> str | None:
    from . import schema as S

    return conn.execute(
        select(S.storages.c.root).where(S.storages.c.is_default.is_(True)).order_by(S.storages.c.id)
    ).scalar()


def _moved_default_root(recorded: str | None, root: str, db_file: str | None) -> str | None:
    """The instance's former default root when its SQLite file was found inside `root` — the
    storage folder moved with its database — and the former folder is gone; else None."""
    if db_file is None or storage_type(root) != "local":
        return None
    if os.path.dirname(os.path.abspath(db_file)) != os.path.join(root, SYSTEM_DIR):
        return None
    if recorded is None or recorded == root or storage_type(recorded) != "local":
        return None
    if os.path.exists(os.path.join(recorded, SYSTEM_DIR, "flowprov.sqlite")):
        return None  # the old folder still holds a database: not a move
    return recorded


def _record_uid(engine, uid: str) -> None:
    from .db import write_meta, write_transaction

    with write_transaction(engine) as conn:
        write_meta(conn, {"uid": uid}, replace=False)


def _count_orphans(inst: Instance) -> int:
    try:
        from .gc import count_orphans
    except ImportError:  # pragma: no cover - gc lands beside this
        return 0
    return count_orphans(inst)


def config_db_url(url) -> str:
    """The URL as written to the instance config: never with a password (PGPASSWORD, the URL
    given at run time or ~/.pgpass supply it)."""
    from sqlalchemy.engine import URL

    u = parse_url(url)  # URL.set(password=None) would keep the password: rebuild without it
    bare = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
    return bare.render_as_string(hide_password=False)


def delete(inst: Instance, force: bool = False) -> dict:
    """Remove the instance: refuses while records or managed files exist unless force.

    Only a member who owns the database may (checked before anything is touched); the database
    goes first, in one step, and the files flowprov copied in are removed only after that has
    committed — a failure in between leaves files without records, never records without files
    (`flowprov gc` finds such leftovers of a re-created instance)."""
    from . import rights
    from . import schema as S
    from .storage import object_key

    rights.require(inst, rights.OWNER, "delete the instance")
    counts = inst.counts()
    with read_connection(inst.engine) as conn:
        managed = conn.execute(
            select(
                S.artifacts.c.hash, S.artifacts.c.suffix, S.storages.c.root, S.storages.c.options
            )
            .join(S.storages, S.storages.c.id == S.artifacts.c.storage_id)
            .where(S.artifacts.c.managed.is_(True))
        ).all()
    records = counts["transforms"] + counts["runs"] + counts["artifacts"]
    if (records or managed) and not force:
        raise InstanceNotEmpty(
            f"instance {inst.name!r} holds {counts['artifacts']} artifacts, {counts['runs']} runs,"
            f" {counts['transforms']} transforms and {len(managed)} managed files; "
            "run `flowprov delete --force` to remove them all"
        )
    default = inst.storage  # read before the database goes
    _drop_database(inst)
    removed = 0
    for row in managed:
        root = StorageRoot(row.root, row.options)
        key = object_key(row.hash, row.suffix)
        if root.exists(key):
            root.remove(key)
            removed += 1
    if default.is_local:
        for d in (
            os.path.join(default.root, SYSTEM_DIR, "objects"),
            os.path.join(default.root, SYSTEM_DIR),
            default.root,
        ):
            _rmdir_if_empty(d)
    C.forget_instance(inst.name)
    _cache.clear()
    return {"files_removed": removed, **counts}


def _drop_database(inst: Instance) -> None:
    """The SQLite file, or every flowprov table of a server database, in one transaction."""
    from sqlalchemy import text

    from . import schema as S
    from .db import write_transaction

    url = parse_url(inst.config.db)
    path = sqlite_path(url)
    if path is not None:
        inst.close()
        for ext in ("", "-wal", "-shm", "-journal"):
            p = Path(path + ext)
            if p.exists():
                p.unlink()
        return
    engine = inst.engine_unchecked
    engine.dispose()  # connections of a schema read through views hold temporary objects
    try:
        with write_transaction(engine) as conn:
            S.metadata.drop_all(conn, checkfirst=True)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    except DBAPIError as e:
        raise db_error(e, inst.where) from e
    finally:
        inst.close()


def _rmdir_if_empty(d: str) -> None:
    """Remove folder d if it is empty (flowprov's own folders, then the root flowprov created);
    never anything inside it — a user's files and folders stay."""
    try:
        os.rmdir(d)
    except OSError:
        pass
