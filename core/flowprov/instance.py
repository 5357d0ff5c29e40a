"""An instance: a database (SQLite by default) plus a default storage root, and who is using it.

``init`` creates one offline; ``current()`` opens the configured one (cached per process and
re-resolved when FLOWPROV_INSTANCE or the current-instance file changes); ``delete`` removes one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError

from . import config as C
from .db import db_error, make_engine, migrate, open_schema, parse_url, read_connection, safe_url
from .errors import DatabaseUnavailable, InstanceNotEmpty, PermissionDenied, ValidationError
from .storage import SYSTEM_DIR, StorageRoot, is_url, normalize_root, storage_type
from .uids import random_uid

logger = logging.getLogger("flowprov")


@dataclass
class Instance:
    config: C.InstanceConfig
    config_path: Path
    _storages_at: float = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def db_display(self) -> str:
        return safe_url(self.config.db)

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.config.db)
        open_schema(engine, f"database {self.db_display} of instance {self.name!r}")
        return engine

    @cached_property
    def storage(self) -> StorageRoot:
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
        """Every registered storage root by id. Roots are never removed or changed, so the list is
        cached; it is re-read after 10 s, or on request, to see roots other processes added."""
        import time

        from . import schema as S

        cached = self.__dict__.get("_storages")
        if cached is not None and not refresh and time.monotonic() - self._storages_at < 10:
            return cached
        try:
            with read_connection(self.engine) as conn:
                rows = conn.execute(
                    select(S.storages.c.id, S.storages.c.root).order_by(S.storages.c.id)
                ).all()
        except DatabaseUnavailable:
            if cached is None:
                raise
            return (
                cached  # roots never change: the last list stays right while the database is away
            )
        self._storages_at = time.monotonic()
        self.__dict__["_storages"] = {r.id: StorageRoot(r.root) for r in rows}
        return self.__dict__["_storages"]

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.__dict__["engine"].dispose()


class _UserAwareStore:
    """The instance's Store, acting as whoever the current user is at each call."""

    def __init__(self, inst: Instance):
        from .store import Store

        self._inst = inst
        self._store = Store(inst.engine, default_user="", where=f"instance {inst.name!r}")
        self._user_seen: str | None = None

    def apply_stream(self, make_events, chunk: int = 2000) -> dict[str, int]:
        self.apply([])  # records the current user first
        return self._store.apply_stream(make_events, chunk)

    def apply(self, events):
        from .events import UserSeen

        user = C.current_user_config()
        self._store.default_user = user.handle
        if self._user_seen != user.handle:  # make sure the user's name is recorded once
            events = [UserSeen(handle=user.handle, name=user.name, uid=user.uid), *events]
            results = self._store.apply(events)[1:]
            self._user_seen = user.handle
            return results
        return self._store.apply(events)


_cache: dict[tuple, Instance] = {}


def _cache_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)


def current(name: str | None = None) -> Instance:
    """The configured instance (or the one named); a NoInstanceError says how to set one up."""
    path = C.locate_instance_config(name)
    key = _cache_key(path)
    inst = _cache.get(key)
    if inst is None:
        inst = Instance(C.load_instance_config(path), path)
        if name is None:
            _cache.clear()
        _cache[key] = inst
    return inst


def reset_cache() -> None:
    for inst in _cache.values():
        inst.close()
    _cache.clear()


def init(
    storage: str | os.PathLike,
    db: str | None = None,
    name: str | None = None,
) -> tuple[Instance, bool]:
    """Create (or reconnect to) an instance. Returns (instance, created)."""
    from .events import StorageDeclared

    root = normalize_root(storage)
    name = name or (Path(root).name if not is_url(root) else root.rstrip("/").rsplit("/", 1)[-1])
    if not name or "/" in name or name.startswith("."):
        raise ValidationError(f"invalid instance name {name!r}: pass --name NAME")
    local = storage_type(root) == "local"
    if local:
        default_db = f"sqlite:///{os.path.join(root, SYSTEM_DIR, 'flowprov.sqlite')}"
    else:
        data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "flowprov"
        default_db = f"sqlite:///{data / (name + '.sqlite')}"
    url = parse_url(db or default_db)
    if not local:  # an unreachable bucket fails here, before anything is written
        StorageRoot(root).check()
    existing = C.instance_file(name)
    if existing.is_file():
        old = C.load_instance_config(existing)
        if old.storage != root:
            raise ValidationError(
                f"an instance named {name!r} already exists with storage {old.storage}: "
                "choose another --name or `flowprov delete` it first"
            )
    # Folders are made only for an SQLite file that needs them; a server database is reached
    # first, so a wrong URL leaves nothing behind.
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        try:
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValidationError(f"cannot create the folder for {url.database}: {e}") from e
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
    if local:
        try:
            os.makedirs(os.path.join(root, SYSTEM_DIR), exist_ok=True)
        except OSError as e:
            raise ValidationError(f"cannot create the storage folder {root}: {e}") from e
    if empty:
        migrate(engine)
        created = True
    else:
        open_schema(engine, where)  # an existing instance (or a foreign database: refused)
        created = False
    uid = random_uid(12)
    cfg = C.InstanceConfig(name=name, uid=uid, db=config_db_url(url), storage=root)
    if existing.is_file():
        cfg = cfg.copy(uid=C.load_instance_config(existing).uid)
    path = C.save_instance_config(cfg)
    _cache.clear()
    inst = Instance(cfg, path)
    inst.__dict__["engine"] = engine
    try:
        inst.store.apply([StorageDeclared(root=root, type=storage_type(root), is_default=True)])
    except PermissionDenied:
        if created:
            raise
        # a read-only role connecting to an existing instance: queries work, writes are refused
        logger.warning("connected read-only to %s: queries work, changes are refused", where)
    return inst, created


def config_db_url(url) -> str:
    """The URL as written to the instance config: never with a password (PGPASSWORD, the URL
    given at run time or ~/.pgpass supply it)."""
    from sqlalchemy.engine import URL

    u = parse_url(url)  # URL.set(password=None) would keep the password: rebuild without it
    bare = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
    return bare.render_as_string(hide_password=False)


def delete(inst: Instance, force: bool = False) -> dict:
    """Remove the instance: refuses while records or managed files exist unless force."""
    from . import schema as S

    counts = inst.counts()
    with read_connection(inst.engine) as conn:
        managed = conn.execute(
            select(S.artifacts.c.hash, S.artifacts.c.suffix, S.storages.c.root)
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
    from .storage import object_key

    removed = 0
    for row in managed:
        root = StorageRoot(row.root)
        key = object_key(row.hash, row.suffix)
        if root.exists(key):
            root.remove(key)
            removed += 1
    url = parse_url(inst.config.db)
    inst.close()
    if url.get_backend_name() == "sqlite" and url.database:
        for ext in ("", "-wal", "-shm", "-journal"):
            p = Path(url.database + ext)
            if p.exists():
                p.unlink()
    else:
        engine = make_engine(inst.config.db)
        from sqlalchemy import text

        S.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    if inst.storage.is_local:
        for d in (
            os.path.join(inst.storage.root, SYSTEM_DIR, "objects"),
            os.path.join(inst.storage.root, SYSTEM_DIR),
            inst.storage.root,
        ):
            _rmdir_if_empty(d)
    C.forget_instance(inst.name)
    _cache.clear()
    return {"files_removed": removed, **counts}


def _rmdir_if_empty(d: str) -> None:
    """Remove folder d if it is empty (flowprov's own folders, then the root flowprov created);
    never anything inside it — a user's files and folders stay."""
    try:
        os.rmdir(d)
    except OSError:
        pass
