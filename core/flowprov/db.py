"""Database engines, connection pragmas and schema migrations.

SQLite is tuned for many writers on one machine: WAL journal, ``synchronous=NORMAL``, a 30 s
busy timeout, and write transactions that take the write lock up front (``BEGIN IMMEDIATE``) so
two writers never deadlock upgrading read locks. Other databases (PostgreSQL) use their defaults.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DataError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)

from .errors import (
    DatabaseMissing,
    DatabaseUnavailable,
    InstanceError,
    PermissionDenied,
    ValidationError,
)
from .migrations import COMPATIBILITY, SCHEMA_HEAD, compatibility_floor

_WRITE = "flowprov_write"


def parse_url(url: str | URL) -> URL:
    """A SQLAlchemy URL; plain postgresql:// means the psycopg 3 driver flowprov[postgres] installs."""
    try:
        u = make_url(url)
        if u.drivername in ("postgresql", "postgres"):
            u = u.set(drivername="postgresql+psycopg")
        return u
    except ArgumentError as e:
        raise ValidationError(
            f"not a database URL: {url!r} (expected e.g. sqlite:////path/db.sqlite or "
            "postgresql://user@host/dbname)"
        ) from e


def safe_url(url: str | URL) -> str:
    """The URL with any password masked, for messages and logs."""
    return parse_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str | URL) -> str | None:
    """The file of an SQLite URL (None for other databases and in-memory ones)."""
    u = parse_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    if u.database.startswith("file:"):  # a URI filename (?uri=true): its path part
        path = u.database[len("file:") :].split("?", 1)[0]
        return None if "mode=memory" in u.database else path
    return os.path.expanduser(u.database)


def make_engine(url: str | URL, must_exist: bool = False, read_only: bool = False) -> Engine:
    """An engine for `url`. With must_exist, a missing SQLite file is a DatabaseMissing error:
    connecting would create an empty database in its place. With read_only the database itself
    refuses writes (`flowprov serve`): SQLite opened with mode=ro, PostgreSQL sessions with
    default_transaction_read_only — on top of whatever role the URL names."""
    u = parse_url(url)
    path = sqlite_path(u) if (must_exist or read_only) else None
    if path is not None and not os.path.exists(path):
        raise DatabaseMissing(
            f"the database file {path} is missing (deleted, or moved with its storage folder: "
            "`flowprov init --storage NEW_FOLDER` finds it there); nothing was created"
        )
    try:
        if u.get_backend_name() == "sqlite":
            if read_only and path is not None:
                u = u.set(database=f"file:{path}?mode=ro", query={**u.query, "uri": "true"})
            engine = create_engine(u, connect_args={"timeout": 30})
            _tune_sqlite(engine, read_only)
        elif u.get_backend_name() == "postgresql":
            args = {}
            if "connect_timeout" not in u.query:
                # a server behind a dead network would otherwise hold a job for minutes (libpq's
                # default); PGCONNECT_TIMEOUT or ?connect_timeout= in the URL override this
                args["connect_timeout"] = int(os.environ.get("PGCONNECT_TIMEOUT", "15"))
            if read_only:
                args["options"] = "-c default_transaction_read_only=on"
            engine = create_engine(u, pool_pre_ping=True, connect_args=args)
        else:
            engine = create_engine(u, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as e:
        raise ValidationError(
            f"no driver for database {safe_url(u)}: {e}. For PostgreSQL: pip install 'flowprov[postgres]'"
        ) from e
    except ArgumentError as e:
        raise ValidationError(f"invalid database URL {safe_url(u)}: {e}") from e
    return engine


def _tune_sqlite(engine: Engine, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = (
            None  # we issue BEGIN ourselves (SQLAlchemy's documented recipe)
        )
        cur = dbapi_conn.cursor()
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")  # persistent per file; a no-op once set
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        sql = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN"
        raw = conn.connection.dbapi_connection
        if not isinstance(raw, sqlite3.Connection):
            conn.exec_driver_sql(sql)
            return
        # straight to the driver: SQLAlchemy's statement machinery cost more than SQLite's own
        # BEGIN, on every write (a registered file, a task's event); its errors as SQLAlchemy's
        try:
            raw.execute(sql)
        except sqlite3.Error as e:
            from .fast_sql import raise_as_sqlalchemy

            raise_as_sqlalchemy(conn, None, sql, (), e)


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that writes; rolled back entirely on any error."""
    with engine.connect().execution_options(**{_WRITE: True}) as conn:
        with conn.begin():
            yield conn


@contextlib.contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A read-only use of the database; what the database refuses becomes a FlowprovError."""
    try:
        with engine.connect() as conn:
            with conn.begin():
                yield conn
    except DBAPIError as e:
        raise db_error(e, f"database {safe_url(engine.url)}") from e


def _alembic_config(conn: Connection):
    from importlib.resources import files

    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("flowprov") / "migrations"))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: Engine, revision: str = "head", uid: str | None = None) -> None:
    """Bring the schema to `revision` (creates every table on an empty database), recording the
    compatibility floor and, when given and none is recorded yet, the instance's uid."""
    from alembic import command

    if engine.dialect.name != "sqlite":
        with write_transaction(engine) as conn:
            command.upgrade(_alembic_config(conn), revision)
            _record_floor(conn, uid)
        return
    # SQLite alters a table by copying it; the copy's DROP of the old table must not trip the
    # foreign keys pointing at it (SQLite's documented procedure: keys off outside the
    # transaction, checked with foreign_key_check before commit)
    with engine.connect().execution_options(**{_WRITE: True}) as conn:
        raw = conn.connection.driver_connection  # outside any transaction (autocommit)
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                command.upgrade(_alembic_config(conn), revision)
                _record_floor(conn, uid)
                bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if bad:
                    raise RuntimeError(f"schema upgrade broke foreign keys: {bad[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def _record_floor(conn: Connection, uid: str | None) -> None:
    rev = _revision_or_none(conn)
    if rev is None or "instance_meta" not in inspect(conn).get_table_names():
        return  # a revision before 0007 (tests build old instances this way)
    floor = compatibility_floor(rev)
    write_meta(conn, {"schema_floor": floor, "min_flowprov": COMPATIBILITY[floor][0]})
    if uid:
        write_meta(conn, {"uid": uid}, replace=False)


def schema_revision(conn: Connection) -> str | None:
    try:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, DatabaseError):
        return None


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands relative to this flowprov."""

    revision: str
    relation: str  # "current", "older" (a migration is available) or "newer" (compatible)

    @property
    def writable(self) -> bool:
        return self.relation != "older"


def open_schema(engine: Engine, where: str) -> SchemaState:
    """Check the database is a flowprov database this flowprov may use; never changes it.

    An older schema is read through temporary views (compat.py) and refuses writes; a newer one
    is used when its compatibility floor allows this flowprov, else refused naming the release
    to install."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")  # fails early on files that are not databases
            rev = _revision_or_none(conn)
            if rev is None:
                tables = set(inspect(conn).get_table_names())
            elif rev not in COMPATIBILITY:
                meta = read_meta(conn)
            elif rev != SCHEMA_HEAD:
                from . import compat

                views = compat.view_statements(conn)
    except DatabaseError as e:
        raise db_error(e, where) from e
    if rev == SCHEMA_HEAD:
        return SchemaState(rev, "current")
    if rev is None:
        if tables:
            raise InstanceError(
                f"{where} is a database, but not a flowprov one (tables: "
                f"{', '.join(sorted(tables)[:5])}). Point FLOWPROV_INSTANCE at a flowprov instance "
                "or run `flowprov init`."
            )
        raise InstanceError(f"{where} is empty: it was never initialised. Run `flowprov init`.")
    if rev not in COMPATIBILITY:
        floor = meta.get("schema_floor")
        if floor is not None and floor in COMPATIBILITY:
            return SchemaState(rev, "newer")
        need = meta.get("min_flowprov")
        raise InstanceError(
            f"{where} has schema revision {rev!r}, newer than this flowprov knows "
            f"({SCHEMA_HEAD!r}) and not usable by it: "
            + (
                f"install flowprov>={need} (pip install -U 'flowprov>={need}')."
                if need
                else "upgrade flowprov (pip install -U flowprov)."
            )
        )
    from . import compat

    engine.dispose()  # the views must be on every connection from here on
    compat.install(engine, views)
    return SchemaState(rev, "older")


def read_meta(conn: Connection) -> dict[str, str]:
    """The instance's own description (uid, compatibility floor); empty before schema 0007."""
    if "instance_meta" not in inspect(conn).get_table_names():
        return {}
    return dict(conn.execute(text("SELECT key, value FROM instance_meta")).all())


def write_meta(conn: Connection, values: dict[str, str], replace: bool = True) -> None:
    """Set instance_meta rows (replace=False keeps values already there, e.g. the uid)."""
    have = read_meta(conn)
    for k, v in values.items():
        if k in have and (not replace or have[k] == v):
            continue
        if k in have:
            conn.execute(
                text("UPDATE instance_meta SET value = :v WHERE key = :k"), {"k": k, "v": v}
            )
        else:
            conn.execute(
                text("INSERT INTO instance_meta (key, value) VALUES (:k, :v)"), {"k": k, "v": v}
            )


def pending_migrations(engine: Engine) -> list[tuple[str, str]]:
    """(revision, what it does) of each migration between the database and this flowprov."""
    from alembic.script import ScriptDirectory

    with engine.connect() as conn:
        rev = _revision_or_none(conn)
    script = ScriptDirectory.from_config(_alembic_config(None))
    steps = []
    for s in script.iterate_revisions(SCHEMA_HEAD, rev or "base"):
        doc = (s.module.__doc__ or "").strip().split("\n\n", 1)[0]
        steps.append((s.revision, " ".join(doc.split())))
    return list(reversed(steps))


def _revision_or_none(conn: Connection) -> str | None:
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)
    return {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}


def db_error(e: Exception, where: str) -> Exception:
    """The FlowprovError for what a database driver raised (its message never holds a password:
    drivers do not echo them, and URLs are shown through safe_url)."""
    msg = str(getattr(e, "orig", e)).strip()
    low = msg.lower()
    if "permission denied" in low or "read-only" in low or "readonly" in low:
        return PermissionDenied(
            f"{where} refused the change: {msg} — this connection may only read (see the "
            "README's PostgreSQL roles)"
        )
    if isinstance(e, (DataError, ProgrammingError)) and "no such table" not in low:
        return ValidationError(f"{where} cannot take this value or query: {msg}")
    if (
        isinstance(e, OperationalError)
        and "unable to open" not in msg
        and "not a database" not in msg
        and "no such table" not in low
    ):
        from .pgpass import missing_password_hint

        hint = missing_password_hint(msg)
        return DatabaseUnavailable(f"cannot reach {where}: {msg}" + (f" — {hint}" if hint else ""))
    return InstanceError(f"{where} is not a readable flowprov database: {msg}")
