"""The store's prebuilt statements, run straight through the DB-API cursor.

SQLAlchemy Core spends about 0.2 ms per `execute` on this project's machines (the cache key, the
execution context, the result object) on statements the database runs in a few microseconds: on
the event hot path — a Prefect task or Snakemake job makes ten or so — that is most of the
store's time. `execute(conn, stmt, params)` compiles `stmt` once per dialect (and, for an INSERT,
per set of columns), with SQLAlchemy, and then runs the SQL it made on the connection's DB-API
cursor, in the same transaction, with SQLAlchemy's own bind processors (SQLite's datetime
format, JSON) and scalar column defaults applied as SQLAlchemy would apply them. Errors are
SQLAlchemy's (IntegrityError, OperationalError, ...), so callers retry and report as before.

Anything the shortcut does not reproduce exactly goes through `conn.execute` unchanged: a
statement with a Python-side default that is not a constant, result columns whose type converts
values (dates, JSON), expanding or literal-rendered parameters, many parameter sets at once.

`insert_many(conn, table, rows, returning)` is the bulk twin, for the many rows of one batch (a
trace's tasks, a batch of files): one multi-row INSERT … VALUES (…), (…) per chunk of rows, as
SQLAlchemy's "insertmanyvalues" sends them — on SQLite, one statement per row would cost the
search index's FTS5 triggers a flush each (+76 % on a 100,000-task ingest) — but with the
parameters built in one pass here: SQLAlchemy's own per-row work was ~40 % of a trace ingest.
On PostgreSQL the rows go through psycopg's own executemany (one query text, pipelined).
"""

from __future__ import annotations

import re
from collections import namedtuple
from contextlib import nullcontext

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from . import search_index

_plans: dict[tuple, _Plan | None] = {}


class _Plan:
    """A statement compiled for one dialect: its SQL, how to build its parameters, its rows."""

    __slots__ = (
        "stmt",
        "sql",
        "binds",
        "positional",
        "defaults",
        "returns_pk",
        "row",
        "convert",
        "expanding",
        "sized",
    )

    def __init__(self, stmt, sql, binds, positional, defaults, returns_pk, row, convert=None):
        self.stmt = stmt  # kept: the cache is keyed by its id
        self.sql = sql
        self.binds = binds  # [(name, key, constant or _REQUIRED, processor or None)]
        self.positional = positional
        self.defaults = defaults  # {key: constant} of the columns an INSERT leaves out
        self.returns_pk = returns_pk  # the INSERT's RETURNING gives the new primary key
        self.row = row  # namedtuple of the result columns, or None
        self.convert = convert  # [(column index, SQLAlchemy's result processor)] or None
        # an expanding IN parameter is one `?` per value: the SQL split at each one's place
        self.expanding = set(_POSTCOMPILE.findall(sql)) & {name for name, _, _, _ in binds}
        self.sized: dict[tuple, str] = {}  # the SQL for each tuple of list lengths


_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_(\w+)\]")


_REQUIRED = object()


def _row_class(names: list[str]):
    """A namedtuple of the result columns that also reads as a mapping by their names, as
    SQLAlchemy's Row does (row._mapping)."""
    base = namedtuple("Row", names, rename=True)
    keys = tuple(names)

    def _mapping(self) -> dict:
        return dict(zip(keys, self, strict=True))

    return type("Row", (base,), {"__slots__": (), "_mapping": property(_mapping), "_keys": keys})


class _Result:
    """The part of SQLAlchemy's Result the store uses. Rows are made when first read: as named
    tuples, or straight from the driver's tuples as dicts (mappings())."""

    __slots__ = ("_raw", "_make", "_rows", "pk")

    def __init__(self, rows, pk=None, make=None):
        self._raw = rows
        self._make = make  # the row class, for rows still as the driver gave them
        self._rows = None if make is not None else rows
        self.pk = pk

    @property
    def rows(self) -> list:
        if self._rows is None:
            make = self._make
            self._rows = [make(*r) for r in self._raw]
        return self._rows

    def __iter__(self):
        return iter(self.rows)

    def all(self) -> list:
        return self.rows

    def mappings(self) -> _Mappings:
        if self._rows is None:
            keys = self._make._keys
            return _Mappings([dict(zip(keys, r, strict=True)) for r in self._raw])
        return _Mappings([r._mapping for r in self.rows])

    def scalar(self):
        return self.rows[0][0] if self.rows else None

    def first(self):
        return self.rows[0] if self.rows else None

    @property
    def inserted_primary_key(self) -> tuple:
        return (self.pk,)


class _Mappings(_Result):
    """Rows as dicts (SQLAlchemy's RowMapping, as far as the callers read one)."""

    def mappings(self) -> _Mappings:
        return self


def _plan(stmt, dialect, keys: tuple | None) -> _Plan | None:
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    if compiled.literal_execute_params:
        return None
    if compiled.post_compile_params and not (dialect.positional and dialect.name == "sqlite"):
        return None  # an expanding IN is written out here for SQLite's `?` only
    defaults = {}
    for col in list(compiled.insert_prefetch) + list(compiled.update_prefetch):
        default = col.default
        if default is None or not getattr(default, "is_scalar", False):
            return None  # a callable default: SQLAlchemy's execution context computes it
        defaults[col.key] = default.arg
    row = convert = None
    returns_pk = bool(compiled.effective_returning)  # an INSERT's implicit RETURNING of its id
    if returns_pk:
        if not isinstance(stmt, Insert) or len(compiled.effective_returning) != 1:
            return None
        if not compiled.effective_returning[0].primary_key:
            return None
    elif compiled._result_columns:
        names = [e.keyname for e in compiled._result_columns]
        if len(set(names)) != len(names):
            return None  # rows read by name would be ambiguous
        # SQLite's driver gives no column types: SQLAlchemy converts by the statement's types
        # alone (dates, JSON), with the same processors used here; other drivers' types matter
        processors = [
            e.type._cached_result_processor(dialect, None) for e in compiled._result_columns
        ]
        convert = [(i, f) for i, f in enumerate(processors) if f is not None] or None
        if convert and dialect.name != "sqlite":
            return None
        row = _row_class(names)
    if isinstance(stmt, Insert) and not returns_pk and dialect.name != "sqlite":
        table_pk = list(stmt.table.primary_key.columns)
        if len(table_pk) == 1 and table_pk[0].autoincrement in (True, "auto"):
            return None  # the new id could not be read back
    processors = compiled._bind_processors
    names = compiled.positiontup if dialect.positional else list(compiled.bind_names.values())
    by_name = {name: bp for bp, name in compiled.bind_names.items()}
    binds = []
    for name in names:
        bp = by_name[name]
        if bp.literal_execute or (bp.expanding and processors.get(name) is not None):
            return None
        constant = _REQUIRED if bp.required or bp.callable is not None else bp.effective_value
        binds.append((name, bp.key, constant, _faster(bp.type, dialect, processors.get(name))))
    return _Plan(
        stmt, compiled.string, binds, dialect.positional, defaults, returns_pk, row, convert
    )


_SQLITE_DATETIME = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def _faster(type_, dialect, proc):
    """SQLAlchemy's bind processor, or one that gives the same text faster. SQLite's DATETIME
    formats each field with a %-format: a plain datetime's isoformat (without its offset, which
    SQLite's format leaves out too) is the same text in 2/3 of the time; four dates a task row."""
    if proc is None or dialect.name != "sqlite":
        return proc
    from datetime import datetime

    from sqlalchemy.dialects.sqlite import DATETIME

    impl = type_.dialect_impl(dialect)
    if not isinstance(impl, DATETIME) or impl._storage_format != _SQLITE_DATETIME:
        return proc

    def process(value):
        if value.__class__ is datetime:  # not a subclass (pendulum's): SQLAlchemy's own then
            return value.isoformat(" ", "microseconds")[:26]
        return proc(value)

    return process


def raise_as_sqlalchemy(conn, cursor, sql, args, e):
    """A DB-API error as SQLAlchemy's own exception (IntegrityError, OperationalError, ...); a
    connection the error says is gone is invalidated, so the pool never hands it out again."""
    dialect = conn.dialect
    gone = dialect.is_disconnect(e, conn.connection.dbapi_connection, cursor)
    if gone:
        conn.invalidate(e)
    raise DBAPIError.instance(
        sql, args, e, dialect.loaded_dbapi.Error, connection_invalidated=gone, dialect=dialect
    ) from e


def _max_params() -> int:
    import sqlite3

    return 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def insert_many(conn, table, rows: list[dict], returning: tuple = ()) -> list[tuple]:
    """INSERT many rows into `table` in as few statements as the database allows; returns the
    `returning` columns' values of the new rows (as the driver gives them: for ids and texts), in
    no particular order. On SQLite one multi-row INSERT per chunk, built here; elsewhere (or for
    rows whose keys differ) SQLAlchemy's own executemany, whose PostgreSQL path already batches."""
    if not rows:
        return []
    dialect = conn.dialect
    stmt = _inserts.get(id(table))
    if stmt is None:
        stmt = _inserts[id(table)] = table.insert()
    keys = rows[0].keys()
    plan = None
    if dialect.name == "sqlite" and dialect.positional and all(r.keys() == keys for r in rows):
        cache_key = ("many", id(table), dialect.driver, tuple(sorted(keys)))
        try:
            plan = _plans[cache_key]
        except KeyError:
            plan = _plans[cache_key] = _plan(stmt, dialect, tuple(sorted(keys)))
    if plan is not None and plan.returns_pk:
        plan = None
    getters = []
    for _, key, constant, proc in plan.binds if plan is not None else ():
        if key not in keys and key not in plan.defaults and constant is _REQUIRED:
            plan = None  # let SQLAlchemy say what is missing
            break
        getters.append((key, key in keys, plan.defaults.get(key, constant), proc))
    if plan is None and dialect.driver == "psycopg" and (not returning or "uid" in keys):
        # psycopg's own executemany: one INSERT, parsed once and pipelined. SQLAlchemy's batches
        # of rows with RETURNING make a new query text per batch (100 rows × 20 columns), which
        # psycopg parses each time: ~3 ms per batch, a third of a PostgreSQL writer's time.
        conn.execute(stmt, rows)
        if not returning:
            return []
        uid, cols = table.c["uid"], [table.c[c] for c in returning]
        uids = [r["uid"] for r in rows]
        out = []
        for i in range(0, len(uids), 1000):
            query = select(*cols).where(uid.in_(uids[i : i + 1000]))
            out += [tuple(r) for r in conn.execute(query)]
        return out
    if plan is None:
        # RETURNING (of the primary key if nothing else) is what lets SQLAlchemy batch the rows
        cols = returning or tuple(c.key for c in table.primary_key)
        got = conn.execute(stmt.returning(*(table.c[c] for c in cols)), rows).all()
        return [tuple(r) for r in got] if returning else []
    # the compiled one-row INSERT, its VALUES group repeated once per row of a chunk
    head, _, group = plan.sql.partition(" VALUES ")
    quote = dialect.identifier_preparer.quote
    tail = f" RETURNING {', '.join(quote(table.c[c].name) for c in returning)}" if returning else ""
    per = max(1, min(1000, _max_params() // max(1, len(getters))))
    build = _builders.get(cache_key)
    if build is None:
        build = _builders[cache_key] = _row_builder(getters)
    out: list[tuple] = []
    cursor = conn.connection.dbapi_connection.cursor()
    indexed = (
        search_index.sqlite_indexed_after(cursor, table.name)
        if len(rows) >= _INDEX_AFTER
        else nullcontext()
    )
    try:
        with indexed:
            for start in range(0, len(rows), per):
                chunk = rows[start : start + per]
                args = []
                for row in chunk:
                    args += build(row)
                sql = f"{head} VALUES {', '.join([group] * len(chunk))}{tail}"
                try:
                    cursor.execute(sql, args)
                    if returning:
                        out.extend(cursor.fetchall())
                except dialect.loaded_dbapi.Error as e:
                    raise_as_sqlalchemy(conn, cursor, sql, args, e)
    finally:
        cursor.close()
    return out


_inserts: dict[int, object] = {}
_builders: dict[tuple, object] = {}


def _row_builder(getters):
    """A function of one row giving its parameters in the INSERT's order, written once per plan
    as one tuple expression — `(p0(row['uid']), row['name'], c2, …)` — with SQLAlchemy's bind
    processors and the constants of the columns the rows leave out: a loop over twenty columns
    per row was a sixth of a trace's ingest."""
    env: dict[str, object] = {}
    parts = []
    for n, (key, given, fixed, proc) in enumerate(getters):
        expr = f"row[{key!r}]" if given else f"c{n}"
        if not given:
            env[f"c{n}"] = fixed
        if proc is not None:
            env[f"p{n}"] = proc
            expr = f"p{n}({expr})"
        parts.append(expr)
    exec(f"def build(row):\n    return ({', '.join(parts)},)\n", env)  # noqa: S102 - our own text
    return env["build"]


# From this many rows on, a batch is indexed for search after its rows, not by row triggers.
# Dropping and putting back the trigger is a schema change: ~0.45 ms here, and every other
# connection to the file then re-reads the schema on its next statement (~0.4 ms each, measured).
# The trigger costs ~6 µs a row: worth it for a trace's chunks and large batches, not for the
# batches of 100 that 8 concurrent writers send (8,815 → 8,174 files/s with 100 here).
_INDEX_AFTER = 1000


def execute(conn, stmt, params: dict | None = None):
    """conn.execute(stmt, params), for one parameter set, through the DB-API cursor when the
    statement allows it."""
    if params is not None and not isinstance(params, dict):
        return conn.execute(stmt, params)  # many parameter sets: executemany's own path
    params = params or {}
    dialect = conn.dialect
    keys = tuple(sorted(params)) if isinstance(stmt, Insert) else None
    cache_key = (id(stmt), dialect.name, dialect.driver, keys)
    try:
        plan = _plans[cache_key]
    except KeyError:
        plan = _plans[cache_key] = _plan(stmt, dialect, keys)
    if plan is None:
        return conn.execute(stmt, params)
    values = []
    sql, sizes = plan.sql, ()
    for name, key, constant, proc in plan.binds:
        if key in params:
            v = params[key]
        elif key in plan.defaults:
            v = plan.defaults[key]
        elif constant is _REQUIRED:
            return conn.execute(stmt, params)  # let SQLAlchemy say what is missing
        else:
            v = constant
        if name in plan.expanding:
            if not v:
                return conn.execute(stmt, params)  # SQLAlchemy's own "empty IN" expression
            sizes += (len(v),)
            values.extend((name, x) for x in v)
            continue
        values.append((name, proc(v) if proc is not None else v))  # None too: JSON's null
    if sizes:
        sql = plan.sized.get(sizes)
        if sql is None:
            counts = iter(sizes)
            sql = _POSTCOMPILE.sub(lambda m: ", ".join("?" * next(counts)), plan.sql)
            if len(plan.sized) < 64:
                plan.sized[sizes] = sql
    args = [v for _, v in values] if plan.positional else dict(values)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, args)
        if plan.row is not None:
            rows, convert = cursor.fetchall(), plan.convert
            if convert is not None:
                for n, r in enumerate(rows):
                    r = rows[n] = list(r)
                    for i, f in convert:
                        r[i] = f(r[i])
            return _Result(rows, make=plan.row)
        if plan.returns_pk:
            return _Result([], cursor.fetchone()[0])
        return _Result([], getattr(cursor, "lastrowid", None))  # SQLite's new row id
    except dialect.loaded_dbapi.Error as e:
        raise_as_sqlalchemy(conn, cursor, sql, args, e)
    finally:
        cursor.close()
