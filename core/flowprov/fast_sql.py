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
"""

from __future__ import annotations

from collections import namedtuple

from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

_plans: dict[tuple, _Plan | None] = {}


class _Plan:
    """A statement compiled for one dialect: its SQL, how to build its parameters, its rows."""

    __slots__ = ("stmt", "sql", "binds", "positional", "defaults", "returns_pk", "row")

    def __init__(self, stmt, sql, binds, positional, defaults, returns_pk, row):
        self.stmt = stmt  # kept: the cache is keyed by its id
        self.sql = sql
        self.binds = binds  # [(name, key, constant or _REQUIRED, processor or None)]
        self.positional = positional
        self.defaults = defaults  # {key: constant} of the columns an INSERT leaves out
        self.returns_pk = returns_pk  # the INSERT's RETURNING gives the new primary key
        self.row = row  # namedtuple of the result columns, or None


_REQUIRED = object()


class _Result:
    """The part of SQLAlchemy's Result the store uses."""

    __slots__ = ("rows", "pk")

    def __init__(self, rows, pk=None):
        self.rows = rows
        self.pk = pk

    def scalar(self):
        return self.rows[0][0] if self.rows else None

    def first(self):
        return self.rows[0] if self.rows else None

    @property
    def inserted_primary_key(self) -> tuple:
        return (self.pk,)


def _plan(stmt, dialect, keys: tuple | None) -> _Plan | None:
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None
    defaults = {}
    for col in list(compiled.insert_prefetch) + list(compiled.update_prefetch):
        default = col.default
        if default is None or not getattr(default, "is_scalar", False):
            return None  # a callable default: SQLAlchemy's execution context computes it
        defaults[col.key] = default.arg
    row = None
    returns_pk = bool(compiled.effective_returning)  # an INSERT's implicit RETURNING of its id
    if returns_pk:
        if not isinstance(stmt, Insert) or len(compiled.effective_returning) != 1:
            return None
        if not compiled.effective_returning[0].primary_key:
            return None
    elif compiled._result_columns:
        for entry in compiled._result_columns:
            if entry.type._cached_result_processor(dialect, None) is not None:
                return None  # a column whose values SQLAlchemy converts (dates, JSON)
        row = namedtuple("Row", [e.keyname for e in compiled._result_columns], rename=True)
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
        if bp.expanding or bp.literal_execute:
            return None
        constant = _REQUIRED if bp.required or bp.callable is not None else bp.effective_value
        binds.append((name, bp.key, constant, processors.get(name)))
    return _Plan(stmt, compiled.string, binds, dialect.positional, defaults, returns_pk, row)


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
    for name, key, constant, proc in plan.binds:
        if key in params:
            v = params[key]
        elif key in plan.defaults:
            v = plan.defaults[key]
        elif constant is _REQUIRED:
            return conn.execute(stmt, params)  # let SQLAlchemy say what is missing
        else:
            v = constant
        values.append((name, proc(v) if proc is not None else v))  # None too: JSON's null
    args = [v for _, v in values] if plan.positional else dict(values)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(plan.sql, args)
        if plan.row is not None:
            return _Result([plan.row(*r) for r in cursor.fetchall()])
        if plan.returns_pk:
            return _Result([], cursor.fetchone()[0])
        return _Result([], getattr(cursor, "lastrowid", None))  # SQLite's new row id
    except dialect.loaded_dbapi.Error as e:
        gone = dialect.is_disconnect(e, conn.connection.dbapi_connection, cursor)
        if gone:
            conn.invalidate(e)  # the pool must not hand this connection out again
        raise DBAPIError.instance(
            plan.sql,
            args,
            e,
            dialect.loaded_dbapi.Error,
            connection_invalidated=gone,
            dialect=dialect,
        ) from e
    finally:
        cursor.close()
